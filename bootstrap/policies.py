"""The IAM documents bootstrap/ creates, as plain data: deploy roles that cannot escalate.

The pattern is AWS CDK's bootstrap (`bootstrap-template.yaml`, `CdkBoostrapPermissionsBoundary`
and `cdk-hnb659fds-permissions-boundary`,
https://docs.aws.amazon.com/cdk/v2/guide/customizing-synthesis.html#bootstrapping-env-permissions-boundary):

* one managed **permissions boundary** (`infra.iam.PERMISSIONS_BOUNDARY_NAME`) that every role of
  the program carries. It allows everything except (a) creating or changing a role without
  the boundary, (b) removing a boundary, (c) changing the boundary policy itself, the deploy
  roles or the GitHub OIDC provider, (d) any IAM write at all (a workload never needs one), and
  (e) touching a prod resource from a role that is not a prod role;
* per GitHub environment a **deploy role** whose rights stop at its own stacks' resources:
  names `rag-platform-<stack>*` for resources whose ARN carries a name, the `stack` tag
  (`aws:ResourceTag/stack`, `aws:RequestTag/stack`) for those whose ARN is an id. IAM
  writes are allowed only on roles named for its stacks and only with the boundary attached
  (`iam:PermissionsBoundary`), and it may pass only those roles, only to the services the
  program uses;
* a **preview role** that reads metadata only: no `ReadOnlyAccess` (which reads every S3
  object and DynamoDB item), and an explicit deny of every data-plane read.

Every document here is checked by an IAM policy evaluator in tests/infra/test_deploy_roles.py
and by `make rehearse` (infra/tools/rehearse.py), and linted by `make security-scan`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.iam import PERMISSIONS_BOUNDARY_NAME
from service.contract import PROJECT

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
# The tag every taggable resource carries with its stack name (infra/config.py `tags()`).
STACK_TAG = "stack"
DEPLOY_ROLE_PREFIX = f"{PROJECT}-github-"
PREVIEW_ROLE_NAME = f"{DEPLOY_ROLE_PREFIX}preview"
# The role .github/workflows/bootstrap.yml assumes (GitHub environment `bootstrap`, with
# required reviewers) to apply changes to this program after an administrator's first run.
BOOTSTRAP_ENVIRONMENT = "bootstrap"
BOOTSTRAP_ROLE_NAME = f"{DEPLOY_ROLE_PREFIX}bootstrap"
# Services the program's roles are passed to: Lambda functions and VPC flow logs.
PASSED_TO_SERVICES = ("lambda.amazonaws.com", "vpc-flow-logs.amazonaws.com")
# Service-linked roles a first deploy may need (OpenSearch in a VPC).
SERVICE_LINKED = ("opensearchservice.amazonaws.com", "es.amazonaws.com")
Document = dict[str, Any]


@dataclass(frozen=True)
class Deployer:
    """One GitHub environment and the Pulumi stacks its jobs may deploy."""

    environment: str
    # A glob over stack names: "staging", "prod", "pr-*" (ephemeral PR stacks).
    stacks: str

    @property
    def role_name(self) -> str:
        return f"{DEPLOY_ROLE_PREFIX}deploy-{self.environment}"

    @property
    def name_globs(self) -> tuple[str, ...]:
        """Physical-name patterns of this deployer's resources: `rag-platform-<stack>[-...]`.

        The separator after the stack name keeps `staging` from matching `staging2` and,
        above all, the PR glob `pr-*` from ever matching `prod`.
        """
        base = f"{PROJECT}-{self.stacks}"
        return (base, f"{base}-*", f"{base}/*")


DEPLOYERS = (
    Deployer("staging", "staging"),
    Deployer("production", "prod"),
    Deployer("ephemeral", "pr-*"),
)


def _statement(sid: str, effect: str, actions: list[str], resources: list[str], **condition: Any) -> Document:
    statement: Document = {"Sid": sid, "Effect": effect, "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def _doc(*statements: Document) -> Document:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def boundary_policy_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:policy/{PERMISSIONS_BOUNDARY_NAME}"


def oidc_provider_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:oidc-provider/{GITHUB_OIDC_HOST}"


# IAM writes that change a role's permissions and accept the iam:PermissionsBoundary
# condition key (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html).
BOUNDED_ROLE_WRITES = [
    "iam:AttachRolePolicy",
    "iam:CreateRole",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy",
]
# Role writes without that key; allowed only on roles named for the deployer's stacks.
OTHER_ROLE_WRITES = [
    "iam:DeleteRole",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:UpdateRole",
    "iam:UpdateRoleDescription",
]
IAM_WRITES = [
    "iam:Add*",
    "iam:Attach*",
    "iam:Change*",
    "iam:Create*",
    "iam:Deactivate*",
    "iam:Delete*",
    "iam:Detach*",
    "iam:Enable*",
    "iam:PassRole",
    "iam:Put*",
    "iam:Remove*",
    "iam:Reset*",
    "iam:Set*",
    "iam:Tag*",
    "iam:Untag*",
    "iam:Update*",
    "iam:Upload*",
]


def guard_statements(account: str) -> list[Document]:
    """Denies shared by the boundary and every deploy role: nothing may weaken the guardrail."""
    return [
        _statement(
            "DenyRoleWritesWithoutBoundary",
            "Deny",
            BOUNDED_ROLE_WRITES,
            ["*"],
            StringNotEquals={"iam:PermissionsBoundary": boundary_policy_arn(account)},
        ),
        _statement(
            "DenyBoundaryRemoval",
            "Deny",
            ["iam:DeleteRolePermissionsBoundary", "iam:DeleteUserPermissionsBoundary"],
            ["*"],
        ),
        _statement(
            "DenyBoundaryPolicyChanges",
            "Deny",
            [
                "iam:CreatePolicyVersion",
                "iam:DeletePolicy",
                "iam:DeletePolicyVersion",
                "iam:SetDefaultPolicyVersion",
                "iam:TagPolicy",
                "iam:UntagPolicy",
            ],
            [boundary_policy_arn(account)],
        ),
        _statement(
            "DenyDeployRoleChanges",
            "Deny",
            IAM_WRITES,
            [f"arn:aws:iam::{account}:role/{DEPLOY_ROLE_PREFIX}*"],
        ),
        _statement("DenyOidcProviderChanges", "Deny", IAM_WRITES, [oidc_provider_arn(account)]),
    ]


def _prod_globs() -> tuple[str, ...]:
    return next(d for d in DEPLOYERS if d.environment == "production").name_globs


def prod_resource_arns(account: str) -> list[str]:
    """ARN patterns of every named prod resource (the program's naming, `rag-platform-prod*`)."""
    arns: list[str] = []
    for glob in _prod_globs():
        arns += [pattern.format(account=account, n=glob) for pattern in NAMED_ARNS]
    return sorted(set(arns))


def boundary_document(account: str) -> Document:
    """The permissions boundary every role of the program carries."""
    prod_roles = [f"arn:aws:iam::{account}:role/{glob}" for glob in _prod_globs()]
    return _doc(
        # A boundary only caps: the role's own policy still grants (CDK's `ExplicitAllowAll`).
        _statement("ExplicitAllowAll", "Allow", ["*"], ["*"]),
        *guard_statements(account),
        _statement("DenyIamWritesFromWorkloads", "Deny", IAM_WRITES, ["*"]),
        _statement(
            "DenyProdResourcesToOtherRoles",
            "Deny",
            ["*"],
            prod_resource_arns(account),
            ArnNotLike={"aws:PrincipalArn": prod_roles},
        ),
        _statement(
            "DenyProdTaggedResourcesToOtherRoles",
            "Deny",
            ["*"],
            ["*"],
            StringEquals={f"aws:ResourceTag/{STACK_TAG}": "prod"},
            ArnNotLike={"aws:PrincipalArn": prod_roles},
        ),
    )


# Resources whose ARN carries the physical name; `{n}` is one of a deployer's name globs.
# Formats: https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html
NAMED_ARNS = (
    "arn:aws:s3:::{n}",
    "arn:aws:s3:::{n}/*",
    "arn:aws:sqs:*:{account}:{n}",
    "arn:aws:dynamodb:*:{account}:table/{n}",
    "arn:aws:dynamodb:*:{account}:table/{n}/*",
    "arn:aws:lambda:*:{account}:function:{n}",
    "arn:aws:lambda:*:{account}:function:{n}:*",
    "arn:aws:logs:*:{account}:log-group:/aws/*/{n}",
    "arn:aws:logs:*:{account}:log-group:/aws/*/{n}:*",
    "arn:aws:es:*:{account}:domain/{n}",
    "arn:aws:es:*:{account}:domain/{n}/*",
    "arn:aws:sns:*:{account}:{n}",
    "arn:aws:secretsmanager:*:{account}:secret:{n}",
    "arn:aws:cloudwatch::{account}:dashboard/{n}",
    "arn:aws:budgets::{account}:budget/{n}",
    "arn:aws:wafv2:*:{account}:*/webacl/{n}/*",
    "arn:aws:kms:*:{account}:alias/{n}",
)
NAMED_SERVICES = [
    "budgets:*",
    "cloudwatch:*",
    "dynamodb:*",
    "es:*",
    "kms:*",
    "lambda:*",
    "logs:*",
    "s3:*",
    "secretsmanager:*",
    "sns:*",
    "sqs:*",
    "wafv2:*",
]
# Services whose resources are ids: scoped by the `stack` tag, on the resource or the request.
TAGGED_SERVICES = ["apigateway:*", "cloudfront:*", "cloudwatch:*", "ec2:*", "kms:*", "sns:*"]
# Actions AWS authorises on "*" only, or that only read metadata.
UNSCOPED_READS = [
    "apigateway:GET",
    "cloudfront:Get*",
    "cloudfront:List*",
    "cloudwatch:Describe*",
    "cloudwatch:List*",
    "dynamodb:Describe*",
    "dynamodb:List*",
    "ec2:Describe*",
    "es:Describe*",
    "es:List*",
    "iam:GetPolicy",
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:ListAttachedRolePolicies",
    "iam:ListRolePolicies",
    "iam:ListRoleTags",
    "kms:DescribeKey",
    "kms:List*",
    # `make preflight` (infra/tools/preflight.py iam_requests) runs with the deploy role.
    "lambda:GetAccountSettings",
    "lambda:List*",
    "logs:Describe*",
    "logs:ListTagsForResource",
    "s3:ListAllMyBuckets",
    "secretsmanager:ListSecrets",
    "servicequotas:GetAWSDefaultServiceQuota",
    "servicequotas:GetServiceQuota",
    "sns:List*",
    "sqs:ListQueues",
    "sts:GetCallerIdentity",
    "tag:GetResources",
    "wafv2:Get*",
    "wafv2:List*",
]
# Account-level actions with no resource-level permissions: CloudWatch Logs resource
# policies (OpenSearch log publishing), vended-log deliveries (API Gateway access logs,
# https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-logging.html), WAF capacity.
ACCOUNT_LEVEL = [
    "logs:CreateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:DeleteResourcePolicy",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:UpdateLogDelivery",
    "wafv2:CheckCapacity",
]


def deploy_document(deployer: Deployer, account: str) -> Document:
    """Everything one deployer's stacks need, on those stacks' resources only."""
    globs = deployer.name_globs
    named = sorted({p.format(account=account, n=g) for p in NAMED_ARNS for g in globs})
    roles = [f"arn:aws:iam::{account}:role/{g}" for g in globs]
    functions = [f"arn:aws:lambda:*:{account}:function:{g}" for g in globs]
    tag = {f"aws:ResourceTag/{STACK_TAG}": deployer.stacks}
    request_tag = {f"aws:RequestTag/{STACK_TAG}": deployer.stacks}
    return _doc(
        _statement("OwnNamedResources", "Allow", NAMED_SERVICES, named),
        _statement("OwnTaggedResources", "Allow", TAGGED_SERVICES, ["*"], StringLike=tag),
        # A new resource must be tagged for this deployer's stacks; an existing one that
        # carries a stack tag must already be this deployer's, so a request tag can never
        # re-label another stack's resource as its own.
        _statement(
            "CreateTaggedResources",
            "Allow",
            TAGGED_SERVICES,
            ["*"],
            StringLike=request_tag,
            StringLikeIfExists=tag,
        ),
        _statement(
            "EventSourceMappingsOfOwnFunctions",
            "Allow",
            [
                "lambda:CreateEventSourceMapping",
                "lambda:DeleteEventSourceMapping",
                "lambda:GetEventSourceMapping",
                "lambda:UpdateEventSourceMapping",
            ],
            ["*"],
            ArnLike={"lambda:FunctionArn": functions},
        ),
        _statement("ReadMetadata", "Allow", UNSCOPED_READS, ["*"]),
        _statement("AccountLevel", "Allow", ACCOUNT_LEVEL, ["*"]),
        _statement(
            "OwnRolesWithBoundary",
            "Allow",
            BOUNDED_ROLE_WRITES,
            roles,
            StringEquals={"iam:PermissionsBoundary": boundary_policy_arn(account)},
        ),
        _statement("OwnRoles", "Allow", OTHER_ROLE_WRITES, roles),
        _statement(
            "PassOwnRoles",
            "Allow",
            ["iam:PassRole"],
            roles,
            StringEquals={"iam:PassedToService": list(PASSED_TO_SERVICES)},
        ),
        _statement(
            "ServiceLinkedRoles",
            "Allow",
            ["iam:CreateServiceLinkedRole"],
            [f"arn:aws:iam::{account}:role/aws-service-role/*"],
            StringEquals={"iam:AWSServiceName": list(SERVICE_LINKED)},
        ),
        *guard_statements(account),
    )


# Data-plane reads the preview role must never make, whatever else grants them.
DATA_READS = [
    "dynamodb:BatchGetItem",
    "dynamodb:GetItem",
    "dynamodb:PartiQLSelect",
    "dynamodb:Query",
    "dynamodb:Scan",
    "es:ESHttpGet",
    "es:ESHttpPost",
    "kms:Decrypt",
    "lambda:InvokeFunction",
    "logs:FilterLogEvents",
    "logs:GetLogEvents",
    "logs:StartQuery",
    "s3:GetObject",
    "s3:GetObjectVersion",
    # Object keys are document names: listing them is reading data too.
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "secretsmanager:GetSecretValue",
    "sqs:ReceiveMessage",
    "ssm:GetParameter",
    "ssm:GetParameters",
]
# What `pulumi preview` reads to diff the program against the stack's resources.
PREVIEW_READS = [
    *UNSCOPED_READS,
    "budgets:ViewBudget",
    "cloudwatch:GetDashboard",
    "iam:GetOpenIDConnectProvider",
    "iam:GetPolicyVersion",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "lambda:GetEventSourceMapping",
    "lambda:GetFunction",
    "lambda:GetFunctionCodeSigningConfig",
    "lambda:GetFunctionConfiguration",
    "lambda:GetPolicy",
    "s3:GetAccelerateConfiguration",
    "s3:GetBucket*",
    "s3:GetEncryptionConfiguration",
    "s3:GetLifecycleConfiguration",
    "s3:GetReplicationConfiguration",
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetResourcePolicy",
    "sns:GetSubscriptionAttributes",
    "sns:GetTopicAttributes",
    "sqs:GetQueueAttributes",
    "sqs:ListQueueTags",
]


def preview_document(state_bucket: str | None = None) -> Document:
    """Metadata reads for `pulumi preview`, and an explicit deny of every data read.

    With a DIY state bucket the one object read left is the stacks' state, which holds
    resource ids and config, its secrets encrypted with each stack's own passphrase.
    """
    object_reads = [a for a in DATA_READS if a.startswith("s3:")]
    other_reads = [a for a in DATA_READS if not a.startswith("s3:")]
    deny_objects: Document = {"Sid": "DenyObjectReads", "Effect": "Deny", "Action": object_reads}
    if state_bucket:
        # Listing the state bucket names stacks, not documents.
        deny_objects["NotResource"] = [
            f"arn:aws:s3:::{state_bucket}",
            *state_object_arns(state_bucket, PROJECT, "*"),
        ]
    else:
        deny_objects["Resource"] = ["*"]
    return _doc(
        _statement("ReadMetadata", "Allow", sorted(PREVIEW_READS), ["*"]),
        _statement("DenyDataReads", "Deny", other_reads, ["*"]),
        deny_objects,
    )


# --- Pulumi state in a DIY S3 backend (`pulumi login s3://BUCKET`) ------------------------
# Project-scoped layout: .pulumi/stacks/<project>/<stack>.json, and .pulumi/{history,backups,
# locks}/<project>/<stack>/... (https://www.pulumi.com/docs/iac/concepts/state-and-backends/).
# Each deploy role reads and writes only its own stacks' state, so the staging or PR role
# can neither read nor rewrite prod's.
STATE_ROOT = ".pulumi"
BOOTSTRAP_PROJECT = f"{PROJECT}-bootstrap"


def state_object_arns(bucket: str, project: str, stacks: str) -> list[str]:
    return [
        f"arn:aws:s3:::{bucket}/{STATE_ROOT}/*/{project}/{stacks}.json*",
        f"arn:aws:s3:::{bucket}/{STATE_ROOT}/*/{project}/{stacks}/*",
    ]


def state_document(bucket: str, project: str, stacks: str, *, write: bool) -> Document:
    """Access to the state of `project`'s stacks matching `stacks`; read-only unless `write`."""
    actions = ["s3:GetObject", "s3:GetObjectVersion"]
    if write:
        actions += ["s3:DeleteObject", "s3:PutObject"]
    statements = [
        _statement(
            "ListState",
            "Allow",
            ["s3:ListBucket"],
            [f"arn:aws:s3:::{bucket}"],
            StringLike={"s3:prefix": [f"{STATE_ROOT}/*"]},
        ),
        _statement(
            "ReadBackendMeta", "Allow", ["s3:GetObject"], [f"arn:aws:s3:::{bucket}/{STATE_ROOT}/meta.yaml"]
        ),
        _statement("StackState", "Allow", actions, state_object_arns(bucket, project, stacks)),
    ]
    if not write:
        # A preview takes the backend's lock file like an update does.
        statements.append(
            _statement(
                "PreviewLocks",
                "Allow",
                ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
                [f"arn:aws:s3:::{bucket}/{STATE_ROOT}/locks/*"],
            )
        )
    return _doc(*statements)


def bootstrap_document(account: str) -> Document:
    """The bootstrap workflow's rights: exactly what this program manages, nothing else.

    The deploy roles and the boundary deny every change to these resources
    (`guard_statements`), so only this role - behind the `bootstrap` environment's reviewers -
    and an administrator can change who may deploy what.
    """
    managed = [
        f"arn:aws:iam::{account}:role/{DEPLOY_ROLE_PREFIX}*",
        boundary_policy_arn(account),
        oidc_provider_arn(account),
    ]
    return _doc(
        _statement("ManageBootstrapResources", "Allow", ["iam:*"], managed),
        _statement(
            "ReadIam",
            "Allow",
            ["iam:ListOpenIDConnectProviders", "sts:GetCallerIdentity"],
            ["*"],
        ),
    )
