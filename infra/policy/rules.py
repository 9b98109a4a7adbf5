"""The rag-platform CrossGuard rules: one validator per policy, all mandatory.

Validators read Pulumi property names (camelCase inputs) and report one violation per
problem. They are plain functions so the tests call each with one compliant and one
non-compliant resource; `infra/policy/__main__.py` serves them as a policy pack
(`pulumi preview --policy-pack infra/policy`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlparse

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.iam import PERMISSIONS_BOUNDARY_NAME
from infra.stacks import read_tiers
from service.contract import KEYS_HASH_KEY, Env

# `stack` also scopes the deploy roles to their own stacks' resources whose ARNs are ids
# (bootstrap/policies.py, aws:ResourceTag/stack), so it is required like the cost tags.
REQUIRED_TAGS = ("project", "environment", "tier", "stack", "owner", "cost-center")
# Every taggable type this program declares; `tests/infra` checks the list stays complete.
TAGGABLE = frozenset(
    {
        "aws:apigatewayv2/api:Api",
        "aws:apigatewayv2/domainName:DomainName",
        "aws:apigatewayv2/stage:Stage",
        "aws:budgets/budget:Budget",
        "aws:cloudfront/distribution:Distribution",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "aws:cognito/userPool:UserPool",
        "aws:dynamodb/table:Table",
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
        "aws:ec2/eip:Eip",
        "aws:ec2/flowLog:FlowLog",
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/routeTable:RouteTable",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/vpc:Vpc",
        "aws:ec2/vpcEndpoint:VpcEndpoint",
        "aws:iam/role:Role",
        "aws:kms/key:Key",
        "aws:lambda/function:Function",
        "aws:opensearch/domain:Domain",
        "aws:s3/bucket:Bucket",
        "aws:secretsmanager/secret:Secret",
        "aws:sns/topic:Topic",
        "aws:sqs/queue:Queue",
        "aws:wafv2/webAcl:WebAcl",
    }
)
_WEAK_TLS = ("Policy-Min-TLS-1-0-2019-07",)
Validator = Callable[[ResourceValidationArgs, ReportViolation], None]


def _block(props: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = props.get(key)
    return value if isinstance(value, Mapping) else {}


# --- encryption at rest ----------------------------------------------------------------
def _sse_rule(props: Mapping[str, Any]) -> bool:
    rules = props.get("rules") or []
    return bool(rules) and all(
        _block(r, "applyServerSideEncryptionByDefault").get("sseAlgorithm") in ("aws:kms", "aws:kms:dsse")
        for r in rules
    )


ENCRYPTED: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": _sse_rule,
    "aws:sqs/queue:Queue": lambda p: bool(p.get("kmsMasterKeyId") or p.get("sqsManagedSseEnabled")),
    "aws:opensearch/domain:Domain": lambda p: (
        _block(p, "encryptAtRest").get("enabled") is True
        and _block(p, "nodeToNodeEncryption").get("enabled") is True
    ),
    "aws:dynamodb/table:Table": lambda p: _block(p, "serverSideEncryption").get("enabled") is True,
    "aws:cloudwatch/logGroup:LogGroup": lambda p: bool(p.get("kmsKeyId")),
    "aws:sns/topic:Topic": lambda p: bool(p.get("kmsMasterKeyId")),
    "aws:secretsmanager/secret:Secret": lambda p: bool(p.get("kmsKeyId")),
    "aws:lambda/function:Function": lambda p: bool(p.get("kmsKeyArn")),
}


def encryption_everywhere(args: ResourceValidationArgs, report: ReportViolation) -> None:
    check = ENCRYPTED.get(args.resource_type)
    if check is not None and not check(args.props):
        report(f"{args.resource_type} {args.name} must be encrypted with the stack's KMS key", None)


# --- nothing public ----------------------------------------------------------------------
def _public_principal(policy_json: Any) -> bool:
    if not isinstance(policy_json, str):
        return False
    statements = json.loads(policy_json).get("Statement", [])
    return any(s.get("Effect") == "Allow" and s.get("Principal") in ("*", {"AWS": "*"}) for s in statements)


def no_public_search_domain(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "aws:opensearch/domain:Domain":
        return
    if not _block(args.props, "vpcOptions").get("subnetIds"):
        report("the search domain must be inside a VPC (vpcOptions.subnetIds)", None)
    if _public_principal(args.props.get("accessPolicies")):
        report("the search domain's access policy must not allow Principal '*'", None)
    if _block(args.props, "advancedSecurityOptions").get("enabled") is not True:
        report("the search domain must enable fine-grained access control", None)


def no_public_bucket(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
        flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        off = [f for f in flags if args.props.get(f) is not True]
        if off:
            report(f"public access block must set {off}", None)
    elif args.resource_type == "aws:s3/bucket:Bucket" and str(args.props.get("acl", "private")).startswith(
        "public"
    ):
        report("buckets must not have a public ACL", None)
    elif args.resource_type == "aws:s3/bucketPolicy:BucketPolicy" and _public_principal(
        args.props.get("policy")
    ):
        report("bucket policies must not allow Principal '*'", None)


# --- HTTPS only ---------------------------------------------------------------------------
def _denies_insecure_transport(policy_json: Any) -> bool:
    if not isinstance(policy_json, str):
        return False
    return any(
        s.get("Effect") == "Deny"
        and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for s in json.loads(policy_json).get("Statement", [])
    )


def https_only(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props = args.props
    if args.resource_type == "aws:opensearch/domain:Domain":
        endpoint = _block(props, "domainEndpointOptions")
        if endpoint.get("enforceHttps") is not True or endpoint.get("tlsSecurityPolicy") in (
            None,
            *_WEAK_TLS,
        ):
            report("the search domain must enforce HTTPS with TLS 1.2 or later", None)
    elif args.resource_type == "aws:s3/bucketPolicy:BucketPolicy" and not _denies_insecure_transport(
        props.get("policy")
    ):
        report("the bucket policy must deny requests without TLS (aws:SecureTransport)", None)
    elif (
        args.resource_type == "aws:cloudfront/distribution:Distribution"
        and _block(props, "defaultCacheBehavior").get("viewerProtocolPolicy") == "allow-all"
    ):
        report("CloudFront must not serve plain HTTP", None)


# --- queues ---------------------------------------------------------------------------------
def dlq_on_every_queue(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "aws:sqs/queue:Queue":
        return
    # A dead-letter queue is named `...-dlq` (service.contract.ResourceNames); every other
    # queue must redrive to one.
    if not args.props.get("redrivePolicy") and not str(args.props.get("name", "")).endswith("-dlq"):
        report(f"queue {args.name} has no dead-letter queue (redrivePolicy)", None)


def _suffix(arn: Any) -> str:
    return str(arn).rsplit(":", 1)[-1]


def timeout_below_visibility(args: StackValidationArgs, report: ReportViolation) -> None:
    """An SQS-triggered function's timeout must be below its queue's visibility timeout."""
    by_type: dict[str, list[Any]] = {}
    for resource in args.resources:
        by_type.setdefault(resource.resource_type, []).append(resource)
    functions = {r.props.get("name"): r for r in by_type.get("aws:lambda/function:Function", [])}
    queues = {r.props.get("name"): r for r in by_type.get("aws:sqs/queue:Queue", [])}
    for mapping in by_type.get("aws:lambda/eventSourceMapping:EventSourceMapping", []):
        function = functions.get(_suffix(mapping.props.get("functionName")))
        queue = queues.get(_suffix(mapping.props.get("eventSourceArn")))
        if function is None or queue is None:
            continue
        timeout = function.props.get("timeout", 3)
        visibility = queue.props.get("visibilityTimeoutSeconds", 30)
        if timeout >= visibility:
            report(
                f"{function.name} timeout {timeout}s must be below {queue.name} visibility {visibility}s",
                None,
            )


# --- tags and HA ------------------------------------------------------------------------------
def required_tags(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in TAGGABLE:
        return
    tags = args.props.get("tags") or {}
    missing = [t for t in REQUIRED_TAGS if not tags.get(t)]
    if missing:
        report(f"{args.name} is missing tags {missing}", None)


def ha_in_prod(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Search in a `highAvailability` tier (infra/tiers.yaml, named by the `tier` tag) is HA."""
    if args.resource_type != "aws:opensearch/domain:Domain":
        return
    tier = (args.props.get("tags") or {}).get("tier")
    if not any(t.name == tier and t.high_availability for t in read_tiers()):
        return
    cluster = _block(args.props, "clusterConfig")
    zones = _block(cluster, "zoneAwarenessConfig").get("availabilityZoneCount", 2)
    if cluster.get("instanceCount", 0) < 3 or not cluster.get("zoneAwarenessEnabled") or zones < 3:
        report("prod search needs at least 3 data nodes across 3 zones with zone awareness", None)
    if not cluster.get("dedicatedMasterEnabled") or cluster.get("dedicatedMasterCount", 0) < 3:
        report("prod search needs 3 dedicated master nodes", None)


# --- IAM ------------------------------------------------------------------------------------
def permissions_boundary_on_every_role(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Every role carries the bootstrap's boundary; the deploy roles could not create it otherwise."""
    if args.resource_type != "aws:iam/role:Role":
        return
    boundary = str(args.props.get("permissionsBoundary") or "")
    if not boundary.endswith(f":policy/{PERMISSIONS_BOUNDARY_NAME}"):
        report(
            f"role {args.name} must carry the permissions boundary {PERMISSIONS_BOUNDARY_NAME} "
            f"(permissions_boundary=infra.iam.permissions_boundary()), got {boundary or 'none'}",
            None,
        )


# --- endpoints outside AWS (issue 13) ----------------------------------------------------------
# Function variables that hold an endpoint the function sends credentials to.
ENDPOINT_VARIABLES = (Env.SEARCH_ENDPOINT.value, Env.OPENAI_BASE_URL.value)
# Variables that would carry a credential's value: a stack sets the secret's id instead
# (SEARCH_CREDENTIALS_SECRET_ID, OPENAI_API_KEY_SECRET_ID, API_KEYS_SECRET_ARN; service/secrets.py).
CREDENTIAL_VARIABLES = (Env.SEARCH_API_KEY.value, Env.OPENAI_API_KEY.value, Env.API_KEYS.value)
AWS_HOST_SUFFIX = ".amazonaws.com"
_FUNCTION = "aws:lambda/function:Function"


def _variables(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return _block(_block(props, "environment"), "variables")


def _host(url: str) -> str:
    return urlparse(url if "://" in url else f"https://{url}").hostname or ""


def external_endpoints_https(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """Credentials go to an endpoint with every request: never over plain HTTP."""
    if args.resource_type != _FUNCTION:
        return
    variables = _variables(args.props)
    for name in ENDPOINT_VARIABLES:
        value = variables.get(name)
        # A domain endpoint the program builds arrives as `https://vpc-...`; a bare host means https.
        if isinstance(value, str) and "://" in value and not value.startswith("https://"):
            report(f"function {args.name}: {name}={value} must be an https:// URL", None)


def no_credentials_in_environment(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """A credential is read from Secrets Manager at cold start, never set as a function variable."""
    if args.resource_type != _FUNCTION:
        return
    found = sorted(set(_variables(args.props)) & set(CREDENTIAL_VARIABLES))
    if found:
        report(
            f"function {args.name} carries credentials in its environment ({', '.join(found)}); "
            "set the Secrets Manager secret's id instead (service/secrets.py)",
            None,
        )


def _outside_aws(variables: Mapping[str, Any]) -> list[str]:
    return [
        f"{name}={variables[name]}"
        for name in ENDPOINT_VARIABLES
        if isinstance(variables.get(name), str)
        and variables[name]
        and not _host(variables[name]).endswith(AWS_HOST_SUFFIX)
    ]


def egress_has_nat(args: StackValidationArgs, report: ReportViolation) -> None:
    """A VPC function that calls an endpoint outside AWS needs a NAT gateway and a default route to it.

    VPC endpoints cover only AWS APIs; without the route every call to the endpoint times out
    (https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc-internet.html).
    """
    nat = [r for r in args.resources if r.resource_type == "aws:ec2/natGateway:NatGateway"]
    routed = any(
        r.resource_type == "aws:ec2/route:Route"
        and r.props.get("destinationCidrBlock") == "0.0.0.0/0"
        and r.props.get("natGatewayId")
        for r in args.resources
    )
    for resource in args.resources:
        if resource.resource_type != _FUNCTION:
            continue
        outside = _outside_aws(_variables(resource.props))
        if outside and not (nat and routed):
            report(
                f"function {resource.name} calls {', '.join(outside)} outside AWS but the stack has no "
                "NAT gateway with a default route (config network.natGateway)",
                None,
            )


# --- credentials (issue 15) ----------------------------------------------------------------------
def keys_table_protected(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """The scoped-keys table (keyed by `KEYS_HASH_KEY`) is recoverable and under the stack's key."""
    if args.resource_type != "aws:dynamodb/table:Table" or args.props.get("hashKey") != KEYS_HASH_KEY:
        return
    if _block(args.props, "pointInTimeRecovery").get("enabled") is not True:
        report(f"keys table {args.name} must enable point-in-time recovery", None)
    if not _block(args.props, "serverSideEncryption").get("kmsKeyArn"):
        report(f"keys table {args.name} must be encrypted with the stack's KMS key (kmsKeyArn)", None)


# NIST SP 800-63B 5.1.1.2 sets 8 as the floor; 12 with every character class is this pack's.
MIN_PASSWORD_LENGTH = 12
_PASSWORD_CLASSES = ("requireLowercase", "requireUppercase", "requireNumbers", "requireSymbols")


def cognito_strong_sign_in(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """User pools: strong passwords, MFA offered or required, no self sign-up; clients: no probing."""
    props = args.props
    if args.resource_type == "aws:cognito/userPool:UserPool":
        policy = _block(props, "passwordPolicy")
        if int(policy.get("minimumLength", 8)) < MIN_PASSWORD_LENGTH:
            report(f"user pool {args.name} must require passwords of {MIN_PASSWORD_LENGTH}+ characters", None)
        missing = [c for c in _PASSWORD_CLASSES if policy.get(c) is not True]
        if missing:
            report(f"user pool {args.name} password policy must set {missing}", None)
        if props.get("mfaConfiguration") not in ("OPTIONAL", "ON"):
            report(f"user pool {args.name} must offer MFA (mfaConfiguration OPTIONAL or ON)", None)
        if _block(props, "adminCreateUserConfig").get("allowAdminCreateUserOnly") is not True:
            report(f"user pool {args.name} must not allow self sign-up (allowAdminCreateUserOnly)", None)
    elif (
        args.resource_type == "aws:cognito/userPoolClient:UserPoolClient"
        and props.get("preventUserExistenceErrors") != "ENABLED"
    ):
        report(f"app client {args.name} must set preventUserExistenceErrors ENABLED", None)


# Hosted sign-in redirects: https, or http://localhost for testing, never with a fragment
# (https://docs.aws.amazon.com/cognito/latest/developerguide/user-pool-settings-client-apps.html;
# RFC 6749 section 3.1.2).
_REDIRECT = re.compile(r"https://[^\s#]+|http://localhost(:\d+)?(/[^\s#]*)?")


def cognito_sign_in_redirects(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """App clients sign in with the authorization-code flow only, back to https URLs only.

    The implicit flow puts tokens in the URL (RFC 9700 section 2.1.2 says not to use it), and a
    public client must not get client credentials. An http redirect would hand the code to anyone
    on the network.
    """
    if args.resource_type != "aws:cognito/userPoolClient:UserPoolClient":
        return
    props = args.props
    flows = set(props.get("allowedOauthFlows") or [])
    if flows - {"code"}:
        report(f"app client {args.name} must allow the code flow only, not {sorted(flows - {'code'})}", None)
    if flows and "openid" not in (props.get("allowedOauthScopes") or []):
        report(f"app client {args.name} must allow the openid scope (ID tokens)", None)
    for key in ("callbackUrls", "logoutUrls"):
        # A URL not known yet at preview (the API's, on a first deploy) is checked at `up`.
        for url in props.get(key) or []:
            if isinstance(url, str) and not _REDIRECT.fullmatch(url):
                report(f"app client {args.name} {key} {url!r} must be https (or http://localhost)", None)


RESOURCE_RULES: dict[str, tuple[str, Validator]] = {
    "encryption-everywhere": ("Data at rest is encrypted with KMS", encryption_everywhere),
    "no-public-search-domain": ("The search domain is private, in a VPC, with FGAC", no_public_search_domain),
    "no-public-bucket": ("No bucket is public", no_public_bucket),
    "https-only": ("Endpoints refuse plain HTTP and TLS below 1.2", https_only),
    "dlq-on-every-queue": ("Every queue has a dead-letter queue", dlq_on_every_queue),
    "required-tags": (
        "Taggable resources carry project, environment, tier, stack, owner, cost-center",
        required_tags,
    ),
    "ha-in-prod": ("Search in a high-availability tier (prod) is highly available", ha_in_prod),
    "permissions-boundary-on-every-role": (
        "Every IAM role carries the bootstrap's permissions boundary",
        permissions_boundary_on_every_role,
    ),
    "external-endpoints-https": (
        "Endpoints the functions send credentials to are https",
        external_endpoints_https,
    ),
    "no-credentials-in-environment": (
        "Credentials come from Secrets Manager, never from function variables",
        no_credentials_in_environment,
    ),
    "keys-table-protected": (
        "The scoped API keys table has point-in-time recovery and the stack's KMS key",
        keys_table_protected,
    ),
    "cognito-strong-sign-in": (
        "User pools require strong passwords, offer MFA and refuse self sign-up",
        cognito_strong_sign_in,
    ),
    "cognito-sign-in-redirects": (
        "App clients use the code flow only and redirect to https URLs only",
        cognito_sign_in_redirects,
    ),
}
StackValidator = Callable[[StackValidationArgs, ReportViolation], None]
STACK_RULES: dict[str, tuple[str, StackValidator]] = {
    "lambda-timeout-below-visibility": (
        "An SQS-triggered Lambda's timeout is below its queue's visibility timeout",
        timeout_below_visibility,
    ),
    "egress-has-nat": ("Functions that call endpoints outside AWS have a NAT route", egress_has_nat),
}


def policies() -> list[Policy]:
    mandatory = EnforcementLevel.MANDATORY
    built: list[Policy] = [
        ResourceValidationPolicy(name=name, description=desc, validate=fn, enforcement_level=mandatory)
        for name, (desc, fn) in RESOURCE_RULES.items()
    ]
    built += [
        StackValidationPolicy(name=name, description=desc, validate=fn, enforcement_level=mandatory)
        for name, (desc, fn) in STACK_RULES.items()
    ]
    return built
