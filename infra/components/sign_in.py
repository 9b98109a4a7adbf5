"""Signed-in users (issue 15): a Cognito user pool, its public app client and one group per mapped group.

Created only when `auth.cognito.enabled`. The API verifies the pool's ID tokens
(service/api/tokens.py): issuer `https://cognito-idp.<region>.amazonaws.com/<pool id>`, audience
the app client id, groups in `cognito:groups`. Users are created by administrators only (the
pool is a company's staff, not a public sign-up), MFA is offered or required, and passwords
follow the policy pack's rule `cognito-strong-sign-in`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

# ID tokens live an hour (Cognito's default, 5 min - 1 day allowed); the API refuses them after.
ID_TOKEN_MINUTES = 60
REFRESH_TOKEN_DAYS = 30


@dataclass(frozen=True)
class SignInArgs:
    pool_name: str
    region: str
    mfa: str
    password_minimum_length: int
    deletion_protection: bool
    groups: Sequence[str]
    tags: dict[str, str]


class CognitoSignIn(pulumi.ComponentResource):
    pool: aws.cognito.UserPool
    client: aws.cognito.UserPoolClient
    issuer: pulumi.Output[str]

    def __init__(self, name: str, args: SignInArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ragplatform:auth:CognitoSignIn", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.pool = aws.cognito.UserPool(
            f"{name}-pool",
            name=args.pool_name,
            username_attributes=["email"],
            auto_verified_attributes=["email"],
            admin_create_user_config=aws.cognito.UserPoolAdminCreateUserConfigArgs(
                allow_admin_create_user_only=True
            ),
            password_policy=aws.cognito.UserPoolPasswordPolicyArgs(
                minimum_length=args.password_minimum_length,
                require_lowercase=True,
                require_uppercase=True,
                require_numbers=True,
                require_symbols=True,
                temporary_password_validity_days=7,
            ),
            mfa_configuration=args.mfa,
            software_token_mfa_configuration=aws.cognito.UserPoolSoftwareTokenMfaConfigurationArgs(
                enabled=True
            ),
            account_recovery_setting=aws.cognito.UserPoolAccountRecoverySettingArgs(
                recovery_mechanisms=[
                    aws.cognito.UserPoolAccountRecoverySettingRecoveryMechanismArgs(
                        name="verified_email", priority=1
                    )
                ]
            ),
            deletion_protection="ACTIVE" if args.deletion_protection else "INACTIVE",
            tags=args.tags,
            opts=child,
        )
        # A public client (no secret): the page and CLIs hold no secret; SRP keeps the password
        # off the wire (https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-authentication-flow.html).
        self.client = aws.cognito.UserPoolClient(
            f"{name}-client",
            name=f"{args.pool_name}-api",
            user_pool_id=self.pool.id,
            generate_secret=False,
            explicit_auth_flows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            prevent_user_existence_errors="ENABLED",
            enable_token_revocation=True,
            id_token_validity=ID_TOKEN_MINUTES,
            access_token_validity=ID_TOKEN_MINUTES,
            refresh_token_validity=REFRESH_TOKEN_DAYS,
            # Units of the validities above, not secrets.
            token_validity_units=aws.cognito.UserPoolClientTokenValidityUnitsArgs(
                id_token="minutes",  # noqa: S106
                access_token="minutes",  # noqa: S106
                refresh_token="days",  # noqa: S106
            ),
            opts=child,
        )
        for group in args.groups:
            aws.cognito.UserGroup(
                f"{name}-group-{group}",
                name=group,
                user_pool_id=self.pool.id,
                description="Mapped to workspaces and a role by auth.groupMap",
                opts=child,
            )
        self.issuer = self.pool.id.apply(
            lambda pool: f"https://cognito-idp.{args.region}.amazonaws.com/{pool}"
        )
        self.register_outputs({"issuer": self.issuer, "clientId": self.client.id})
