"""The rag-platform CrossGuard rules: one validator per policy, all mandatory.

Validators read Pulumi property names (camelCase inputs) and report one violation per
problem. They are plain functions so the tests call each with one compliant and one
non-compliant resource; `infra/policy/__main__.py` serves them as a policy pack
(`pulumi preview --policy-pack infra/policy`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

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

# `stack` also scopes the deploy roles to their own stacks' resources whose ARNs are ids
# (bootstrap/policies.py, aws:ResourceTag/stack), so it is required like the cost tags.
REQUIRED_TAGS = ("project", "environment", "stack", "owner", "cost-center")
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
    if args.resource_type != "aws:opensearch/domain:Domain":
        return
    if (args.props.get("tags") or {}).get("environment") != "prod":
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


RESOURCE_RULES: dict[str, tuple[str, Validator]] = {
    "encryption-everywhere": ("Data at rest is encrypted with KMS", encryption_everywhere),
    "no-public-search-domain": ("The search domain is private, in a VPC, with FGAC", no_public_search_domain),
    "no-public-bucket": ("No bucket is public", no_public_bucket),
    "https-only": ("Endpoints refuse plain HTTP and TLS below 1.2", https_only),
    "dlq-on-every-queue": ("Every queue has a dead-letter queue", dlq_on_every_queue),
    "required-tags": (
        "Taggable resources carry project, environment, stack, owner, cost-center",
        required_tags,
    ),
    "ha-in-prod": ("Prod search is highly available", ha_in_prod),
    "permissions-boundary-on-every-role": (
        "Every IAM role carries the bootstrap's permissions boundary",
        permissions_boundary_on_every_role,
    ),
}


def policies() -> list[Policy]:
    mandatory = EnforcementLevel.MANDATORY
    built: list[Policy] = [
        ResourceValidationPolicy(name=name, description=desc, validate=fn, enforcement_level=mandatory)
        for name, (desc, fn) in RESOURCE_RULES.items()
    ]
    built.append(
        StackValidationPolicy(
            name="lambda-timeout-below-visibility",
            description="An SQS-triggered Lambda's timeout is below its queue's visibility timeout",
            validate=timeout_below_visibility,
            enforcement_level=mandatory,
        )
    )
    return built
