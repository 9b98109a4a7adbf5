"""Signed-in users (issue 15): a Cognito user pool, its hosted sign-in, its public app client and
one group per mapped group.

Created only when `auth.cognito.enabled`. The API verifies the pool's ID tokens
(service/api/tokens.py): issuer `https://cognito-idp.<region>.amazonaws.com/<pool id>`, audience
the app client id, groups in `cognito:groups`. Users are created by administrators only (the
pool is a company's staff, not a public sign-up), MFA is offered or required, and passwords
follow the policy pack's rule `cognito-strong-sign-in`.

The API's page signs in through the pool's prefix domain (`<prefix>.auth.<region>.amazoncognito.com`)
with the authorization-code flow and PKCE; the app client allows that flow only, back to the
page's URL only (policy rule `cognito-sign-in-redirects`). The page URL is the API's URL, which
exists before the API's function does (the HTTP API, the edge or the custom domain), so the
program hands it in as an Output and one `pulumi up` creates everything in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.hosted_sign_in import OAUTH_SCOPES, check_domain_prefix, page_url

# ID tokens live an hour (Cognito's default, 5 min - 1 day allowed); the API refuses them after.
ID_TOKEN_MINUTES = 60
REFRESH_TOKEN_DAYS = 30
HOSTED_UI_CLASSIC = 1


@dataclass(frozen=True)
class SignInArgs:
    pool_name: str
    region: str
    mfa: str
    password_minimum_length: int
    deletion_protection: bool
    groups: Sequence[str]
    tags: dict[str, str]
    # The prefix of `<prefix>.auth.<region>.amazoncognito.com`: unique in the region.
    domain_prefix: pulumi.Input[str]
    # The API's URL; the page at its root is the one callback and logout URL.
    api_url: pulumi.Input[str]


class CognitoSignIn(pulumi.ComponentResource):
    pool: aws.cognito.UserPool
    client: aws.cognito.UserPoolClient
    domain: aws.cognito.UserPoolDomain
    issuer: pulumi.Output[str]
    authorize_url: pulumi.Output[str]
    token_url: pulumi.Output[str]
    logout_url: pulumi.Output[str]

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
        self.domain = aws.cognito.UserPoolDomain(
            f"{name}-domain",
            domain=pulumi.Output.from_input(args.domain_prefix).apply(check_domain_prefix),
            user_pool_id=self.pool.id,
            # 1: the classic hosted UI. It needs no branding style resource and works on every
            # feature plan; 2 (managed login) needs a plan above Lite and a style per client
            # (botocore cognito-idp CreateUserPoolDomain, ManagedLoginVersion).
            managed_login_version=HOSTED_UI_CLASSIC,
            opts=child,
        )
        page = pulumi.Output.from_input(args.api_url).apply(page_url)
        # A public client (no secret): the page and CLIs hold no secret; SRP keeps the password
        # off the wire (https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-authentication-flow.html).
        # The page uses the hosted sign-in's authorization-code flow with PKCE, and nothing else
        # (https://docs.aws.amazon.com/cognito/latest/developerguide/authorization-endpoint.html).
        self.client = aws.cognito.UserPoolClient(
            f"{name}-client",
            name=f"{args.pool_name}-api",
            user_pool_id=self.pool.id,
            generate_secret=False,
            explicit_auth_flows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            prevent_user_existence_errors="ENABLED",
            allowed_oauth_flows=["code"],
            allowed_oauth_flows_user_pool_client=True,
            allowed_oauth_scopes=list(OAUTH_SCOPES),
            supported_identity_providers=["COGNITO"],
            callback_urls=[page],
            logout_urls=[page],
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
        # The prefix domain's endpoints
        # (https://docs.aws.amazon.com/cognito/latest/developerguide/cognito-userpools-server-contract-reference.html);
        # through `self.domain.domain`, so the API waits for the domain to exist.
        base = self.domain.domain.apply(
            lambda prefix: f"https://{prefix}.auth.{args.region}.amazoncognito.com"
        )
        self.authorize_url = base.apply(lambda b: f"{b}/oauth2/authorize")
        self.token_url = base.apply(lambda b: f"{b}/oauth2/token")
        self.logout_url = base.apply(lambda b: f"{b}/logout")
        self.register_outputs(
            {"issuer": self.issuer, "clientId": self.client.id, "authorizeUrl": self.authorize_url}
        )
