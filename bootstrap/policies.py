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

from collections.abc import Sequence
from typing import Any

from bootstrap.deployers import (
    DEPLOY_ROLE_PREFIX,
    DEPLOYERS,
    DRIFT_ENVIRONMENT,
    DRIFT_ROLE_NAME,
    PREVIEW_ROLE_NAME,
    PROTECTED,
    SECRETS_ALIAS_PREFIX,
    Deployer,
)
from infra.iam import PERMISSIONS_BOUNDARY_NAME
from service.contract import PROJECT

__all__ = [
    "DEPLOYERS",
    "DEPLOY_ROLE_PREFIX",
    "DRIFT_ENVIRONMENT",
    "DRIFT_ROLE_NAME",
    "PREVIEW_ROLE_NAME",
    "Deployer",
]

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
# The tag every taggable resource carries with its stack name (infra/config.py `tags()`).
STACK_TAG = "stack"
# The role .github/workflows/bootstrap.yml assumes (GitHub environment `bootstrap`, with
# required reviewers) to apply changes to this program after an administrator's first run.
BOOTSTRAP_ENVIRONMENT = "bootstrap"
BOOTSTRAP_ROLE_NAME = f"{DEPLOY_ROLE_PREFIX}bootstrap"
# Services the program's roles are passed to: Lambda functions and VPC flow logs.
PASSED_TO_SERVICES = ("lambda.amazonaws.com", "vpc-flow-logs.amazonaws.com")
# Service-linked roles a first deploy may need (OpenSearch in a VPC).
SERVICE_LINKED = ("opensearchservice.amazonaws.com", "es.amazonaws.com")
# The tag on bootstrap's secrets keys; the guard denies every change to a key that carries it.
SECRETS_KEY_TAG = f"{PROJECT}-pulumi-secrets"
Document = dict[str, Any]


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


# Verbs that change a KMS key or its aliases (every kms action not listed here only uses or reads a key).
KEY_CHANGES = (
    "CancelKeyDeletion",
    "Connect",
    "Create",
    "Delete",
    "Disable",
    "Enable",
    "Import",
    "Put",
    "Replicate",
    "Retire",
    "Revoke",
    "Rotate",
    "ScheduleKeyDeletion",
    "TagResource",
    "UntagResource",
    "Update",
)


def secrets_alias_arns(account: str) -> str:
    return f"arn:aws:kms:*:{account}:{SECRETS_ALIAS_PREFIX}*"


def role_arn(account: str, name: str) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


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
        # The stacks' secrets keys are bootstrap's: no deploy role or workload may change their
        # policy, tags or aliases (only use them, where a key policy names it).
        _statement(
            "DenySecretsKeyChanges",
            "Deny",
            [f"kms:{verb}*" for verb in KEY_CHANGES],
            ["*"],
            StringEquals={f"aws:ResourceTag/{SECRETS_KEY_TAG}": "true"},
        ),
        _statement("DenySecretsAliasChanges", "Deny", ["kms:*"], [secrets_alias_arns(account)]),
    ]


def _prod_globs() -> tuple[str, ...]:
    return tuple(glob for d in PROTECTED for glob in d.name_globs)


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
            StringEquals={f"aws:ResourceTag/{STACK_TAG}": [d.stacks for d in PROTECTED]},
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
# cognito-idp: issue 15's optional user pool (auth.cognito.enabled).
TAGGED_SERVICES = ["apigateway:*", "cloudfront:*", "cloudwatch:*", "cognito-idp:*", "ec2:*", "kms:*", "sns:*"]
# Actions AWS authorises on "*" only, or that only read metadata.
UNSCOPED_READS = [
    "apigateway:GET",
    "cloudfront:Get*",
    "cloudfront:List*",
    "cloudwatch:Describe*",
    "cloudwatch:List*",
    # Issue 15's hosted sign-in domain: described by its name, on "*" only.
    "cognito-idp:DescribeUserPoolDomain",
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
    # Issue 15's optional user pool. Its app client is public (no secret), so describing it
    # reads no credential.
    "cognito-idp:DescribeUserPool",
    "cognito-idp:DescribeUserPoolClient",
    "cognito-idp:GetGroup",
    "cognito-idp:GetUserPoolMfaConfig",
    "cognito-idp:ListTagsForResource",
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


def _deny_object_reads(state_bucket: str | None) -> Document:
    object_reads = [a for a in DATA_READS if a.startswith("s3:")]
    deny: Document = {"Sid": "DenyObjectReads", "Effect": "Deny", "Action": object_reads}
    if state_bucket:
        # Listing the state bucket names stacks, not documents.
        deny["NotResource"] = [f"arn:aws:s3:::{state_bucket}", *state_object_arns(state_bucket, PROJECT, "*")]
    else:
        deny["Resource"] = ["*"]
    return deny


def preview_document(state_bucket: str | None = None, secrets_keys: Sequence[str] = ()) -> Document:
    """Metadata reads for `pulumi preview`, and an explicit deny of every data read.

    The one decryption left is of the stacks pull requests preview (`secrets_keys`: their
    secrets keys, staging's), which a preview needs to load the stack. Prod's key is outside
    it, and prod's key policy does not name this role either (`secrets_key_policy`).
    With a DIY state bucket the one object read left is the stacks' state.
    """
    other_reads = [a for a in DATA_READS if not a.startswith("s3:") and a != DECRYPT]
    deny_decrypt: Document = {"Sid": "DenyDecryptButPreviewedStacks", "Effect": "Deny", "Action": [DECRYPT]}
    if secrets_keys:
        deny_decrypt["NotResource"] = sorted(secrets_keys)
    else:
        deny_decrypt["Resource"] = ["*"]
    return _doc(
        _statement("ReadMetadata", "Allow", sorted(PREVIEW_READS), ["*"]),
        _statement("DenyDataReads", "Deny", other_reads, ["*"]),
        deny_decrypt,
        _deny_object_reads(state_bucket),
    )


def drift_document(account: str, state_bucket: str | None = None) -> Document:
    """The nightly drift check's rights: a preview's metadata reads, plus what a refresh reads.

    A refresh of a `SecretVersion` reads the secret's value (GetSecretValue, and the decrypt
    Secrets Manager makes with the stack's key on the caller's behalf), so this role may read
    the secrets of the drift-checked stacks, and only through Secrets Manager. Every other data
    read stays denied. The role runs main's reviewed code only (environment `drift`).
    """
    checked = [d for d in DEPLOYERS if d.drift_checked]
    secrets = sorted(f"arn:aws:secretsmanager:*:{account}:secret:{g}" for d in checked for g in d.name_globs)
    denied = [a for a in DATA_READS if not a.startswith("s3:") and a not in (DECRYPT, SECRET_VALUE)]
    return _doc(
        _statement("ReadMetadata", "Allow", sorted(PREVIEW_READS), ["*"]),
        _statement("RefreshStackSecrets", "Allow", [SECRET_VALUE], secrets),
        _statement(
            "DecryptStackSecretsViaSecretsManager",
            "Allow",
            [DECRYPT],
            ["*"],
            StringLike={
                f"aws:ResourceTag/{STACK_TAG}": [d.stacks for d in checked],
                "kms:ViaService": "secretsmanager.*.amazonaws.com",
            },
        ),
        _statement("DenyDataReads", "Deny", denied, ["*"]),
        _deny_object_reads(state_bucket),
    )


DECRYPT = "kms:Decrypt"
SECRET_VALUE = "secretsmanager:GetSecretValue"  # noqa: S105 - an IAM action name, not a secret
# What Pulumi's `awskms` secrets provider calls: Encrypt a new stack's data key once, Decrypt it
# on every run (https://www.pulumi.com/docs/iac/concepts/secrets/#configuring-secrets-encryption).
KEY_USE = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]
# Administration of a key without any use of it (decrypting is not among these).
KEY_ADMIN = sorted({f"kms:{verb}*" for verb in KEY_CHANGES} | {"kms:Describe*", "kms:Get*", "kms:List*"})


def secrets_key_users(deployer: Deployer, account: str) -> list[str]:
    """The roles that may decrypt `deployer`'s stacks' secrets: never a role running PR code for prod."""
    names = [deployer.role_name]
    names += [d.role_name for d in DEPLOYERS if d.environment in deployer.shared_with]
    if deployer.previewed_by_pull_requests:
        names.append(PREVIEW_ROLE_NAME)
    if deployer.drift_checked:
        names.append(DRIFT_ROLE_NAME)
    return sorted(role_arn(account, n) for n in names)


def secrets_key_policy(deployer: Deployer, account: str) -> Document:
    """The key policy of `deployer`'s secrets key.

    Use is granted to named roles only, never to the account (`arn:aws:iam::ACCOUNT:root`),
    so no identity policy anywhere can add a reader
    (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html). The account
    and the bootstrap role administer the key (an administrator must be able to, or AWS refuses
    the policy: the lockout safety check) but administration does not include decrypting.
    """
    admins = sorted([f"arn:aws:iam::{account}:root", role_arn(account, BOOTSTRAP_ROLE_NAME)])
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "KeyAdministration",
                "Effect": "Allow",
                "Principal": {"AWS": admins},
                "Action": KEY_ADMIN,
                "Resource": "*",
            },
            {
                "Sid": "PulumiSecretsOfTheseStacks",
                "Effect": "Allow",
                "Principal": {"AWS": secrets_key_users(deployer, account)},
                "Action": KEY_USE,
                "Resource": "*",
            },
        ],
    }


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
