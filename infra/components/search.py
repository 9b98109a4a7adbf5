"""The OpenSearch Service domain: private, encrypted, fine-grained access control, logged."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config import OpenSearchServiceConfig as SearchConfig

HTTPS = 443
# Index slow logs, error (application) logs and audit logs, plus search slow logs
# (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/createdomain-configure-slow-logs.html).
LOG_TYPES = ("INDEX_SLOW_LOGS", "SEARCH_SLOW_LOGS", "ES_APPLICATION_LOGS", "AUDIT_LOGS")


@dataclass(frozen=True)
class HttpAccess:
    """HTTP verbs (`es:ESHttp*`) on request paths relative to the domain (`<alias>/_search`, `*`).

    The same access goes into the domain's resource policy and the role's own policy;
    inside the domain, fine-grained access control then applies the role's OpenSearch
    role (`service.search.security`).
    """

    actions: tuple[str, ...]
    paths: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.actions or not all(a.startswith("es:ESHttp") for a in self.actions):
            raise ValueError(f"domain access takes es:ESHttp* actions only, got {self.actions}")

    def resources(self, domain_arn: str) -> list[str]:
        return [f"{domain_arn}/{path}" for path in self.paths]


@dataclass(frozen=True)
class DomainAccess:
    """What one IAM role may send to the domain."""

    principal_arn: pulumi.Input[str]
    access: HttpAccess


@dataclass(frozen=True)
class SearchClusterArgs:
    domain_name: str
    domain_arn: pulumi.Input[str]
    settings: SearchConfig
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    client_security_group_id: pulumi.Input[str]
    # One entry per role; no role gets every verb on every path.
    access: Sequence[DomainAccess]
    # The provisioning function's role: a principal of its own, never a function that
    # handles untrusted input (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/fgac.html#fgac-master-user).
    master_role_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    log_retention_days: int
    tags: dict[str, str]


def _access_policy(domain_arn: str, access: Sequence[DomainAccess], principals: list[str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": principal},
                    "Action": sorted(entry.access.actions),
                    "Resource": entry.access.resources(domain_arn),
                }
                for entry, principal in zip(access, principals, strict=True)
            ],
        }
    )


def _cluster_config(s: SearchConfig) -> aws.opensearch.DomainClusterConfigArgs:
    return aws.opensearch.DomainClusterConfigArgs(
        instance_type=s.instance_type,
        instance_count=s.instance_count,
        zone_awareness_enabled=s.zone_awareness,
        zone_awareness_config=(
            aws.opensearch.DomainClusterConfigZoneAwarenessConfigArgs(
                availability_zone_count=s.availability_zone_count
            )
            if s.zone_awareness
            else None
        ),
        dedicated_master_enabled=s.dedicated_master_count > 0,
        dedicated_master_type=s.dedicated_master_type,
        dedicated_master_count=s.dedicated_master_count or None,
    )


class SearchCluster(pulumi.ComponentResource):
    domain: aws.opensearch.Domain
    security_group: aws.ec2.SecurityGroup

    def __init__(
        self, name: str, args: SearchClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("ragplatform:search:SearchCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        s = args.settings
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description="Search domain: HTTPS from the platform Lambdas only",
            tags=args.tags,
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-in-lambdas",
            security_group_id=self.security_group.id,
            referenced_security_group_id=args.client_security_group_id,
            ip_protocol="tcp",
            from_port=HTTPS,
            to_port=HTTPS,
            description="HTTPS from the platform Lambdas",
            opts=child,
        )
        log_groups, log_policy = self._log_groups(name, args)
        self.domain = aws.opensearch.Domain(
            f"{name}-domain",
            domain_name=args.domain_name,
            engine_version=s.engine_version,
            cluster_config=_cluster_config(s),
            ebs_options=aws.opensearch.DomainEbsOptionsArgs(
                ebs_enabled=True, volume_type=s.volume_type, volume_size=s.volume_size_gb
            ),
            encrypt_at_rest=aws.opensearch.DomainEncryptAtRestArgs(enabled=True, kms_key_id=args.kms_key_arn),
            node_to_node_encryption=aws.opensearch.DomainNodeToNodeEncryptionArgs(enabled=True),
            domain_endpoint_options=aws.opensearch.DomainDomainEndpointOptionsArgs(
                enforce_https=True, tls_security_policy=s.tls_policy
            ),
            # Fine-grained access control with IAM as the master identity: no internal
            # user database, no password to rotate. The provisioning function's role is the
            # master user; it maps the ingester and API roles to their OpenSearch roles
            # during `pulumi up` (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/fgac.html).
            advanced_security_options=aws.opensearch.DomainAdvancedSecurityOptionsArgs(
                enabled=True,
                anonymous_auth_enabled=False,
                internal_user_database_enabled=False,
                master_user_options=aws.opensearch.DomainAdvancedSecurityOptionsMasterUserOptionsArgs(
                    master_user_arn=args.master_role_arn
                ),
            ),
            vpc_options=aws.opensearch.DomainVpcOptionsArgs(
                subnet_ids=list(args.subnet_ids)[: s.availability_zone_count],
                security_group_ids=[self.security_group.id],
            ),
            access_policies=pulumi.Output.all(args.domain_arn, *[a.principal_arn for a in args.access]).apply(
                lambda v: _access_policy(v[0], args.access, list(v[1:]))
            ),
            log_publishing_options=[
                aws.opensearch.DomainLogPublishingOptionArgs(
                    log_type=log_type, cloudwatch_log_group_arn=group.arn, enabled=True
                )
                for log_type, group in log_groups.items()
            ],
            # OpenSearch 5.3+ takes hourly automated snapshots and keeps 14 days
            # (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/managedomains-snapshots.html);
            # the start hour is kept for engines that honour it.
            snapshot_options=aws.opensearch.DomainSnapshotOptionsArgs(
                automated_snapshot_start_hour=s.automated_snapshot_start_hour
            ),
            software_update_options=aws.opensearch.DomainSoftwareUpdateOptionsArgs(
                auto_software_update_enabled=True
            ),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_policy]),
        )
        self.register_outputs({"endpoint": self.domain.endpoint, "domainArn": self.domain.arn})

    def _log_groups(
        self, name: str, args: SearchClusterArgs
    ) -> tuple[dict[str, aws.cloudwatch.LogGroup], aws.cloudwatch.LogResourcePolicy]:
        child = pulumi.ResourceOptions(parent=self)
        groups = {
            log_type: aws.cloudwatch.LogGroup(
                f"{name}-{log_type.lower().replace('_', '-')}",
                name=f"/aws/opensearch/{args.domain_name}/{log_type.lower()}",
                retention_in_days=args.log_retention_days,
                kms_key_id=args.kms_key_arn,
                tags=args.tags,
                opts=child,
            )
            for log_type in LOG_TYPES
        }
        # OpenSearch writes to the groups through a resource policy, not a role
        # (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/createdomain-configure-slow-logs.html).
        policy = aws.cloudwatch.LogResourcePolicy(
            f"{name}-log-policy",
            policy_name=f"{args.domain_name}-opensearch-logs",
            policy_document=pulumi.Output.all(*[g.arn for g in groups.values()]).apply(
                lambda arns: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "es.amazonaws.com"},
                                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                                "Resource": [f"{a}:*" for a in arns],
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )
        return groups, policy
