"""Convert a mocked inventory into the Terraform plan JSON that checkov reads.

pulumi-aws is bridged from the Terraform AWS provider, so each Pulumi type token has
a Terraform resource type and each input a Terraform attribute: the token
`aws:s3/bucketPolicy:BucketPolicy` is `aws_s3_bucket_policy`, `kmsMasterKeyId` is
`kms_master_key_id`. The bridge renames a few things, handled here explicitly:

- EC2 resources drop the `ec2` module (`aws:ec2/vpc:Vpc` is `aws_vpc`);
- repeated blocks are pluralised in Pulumi (`rules`) and singular in Terraform (`rule`);
- map-valued attributes (tags, environment variables, alarm dimensions) keep their keys.

References between resources (a bucket policy's `bucket` naming a bucket's id) are
written into `configuration` as Terraform expressions, which is how checkov's graph
checks connect, for instance, a bucket to its public-access block.
Plan format: https://developer.hashicorp.com/terraform/internals/json-format
"""

from __future__ import annotations

import re
from typing import Any

# Pulumi's plural names for Terraform's repeated blocks, for the resources this program uses.
PLURAL_BLOCKS = {
    "rules": "rule",
    "origins": "origin",
    "attributes": "attribute",
    "globalSecondaryIndexes": "global_secondary_index",
    "queues": "queue",
    "notifications": "notification",
    "costFilters": "cost_filter",
    "logPublishingOptions": "log_publishing_options",
    "keySchemas": "key_schema",
}
# Attributes whose value is a map of user keys, which must not be renamed.
MAP_ATTRIBUTES = frozenset(
    {
        "tags",
        "variables",
        "dimensions",
        "stageVariables",
        "requestParameters",
        "requestTemplates",
        "responseParameters",
        "advancedOptions",
    }
)
# Pulumi EC2 types whose Terraform name has no `ec2_` prefix.
EC2_UNPREFIXED = frozenset(
    {
        "vpc",
        "subnet",
        "security_group",
        "route_table",
        "route_table_association",
        "route",
        "eip",
        "nat_gateway",
        "internet_gateway",
        "vpc_endpoint",
        "default_security_group",
        "instance",
        "flow_log",
    }
)
# Attributes of the state whose values other resources refer to.
REFERABLE = ("id", "arn", "name", "bucket", "url", "keyId", "invokeArn", "executionArn")
# Tokens the bridge names differently from the mechanical rule.
TYPE_OVERRIDES = {
    "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy": "aws_sqs_queue_redrive_allow_policy",
    "aws:sqs/redrivePolicy:RedrivePolicy": "aws_sqs_queue_redrive_policy",
}
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def snake(name: str) -> str:
    return _CAMEL.sub(r"_\1", name).lower()


def terraform_type(token: str) -> str | None:
    """`aws:s3/bucket:Bucket` -> `aws_s3_bucket`; None for non-AWS and component types."""
    if token in TYPE_OVERRIDES:
        return TYPE_OVERRIDES[token]
    parts = token.split(":")
    if len(parts) != 3 or parts[0] != "aws" or "/" not in parts[1]:
        return None
    module, member = parts[1].split("/")
    kind = snake(member)
    if module == "ec2" and kind in EC2_UNPREFIXED:
        return f"aws_{kind}"
    if module == "index":
        return f"aws_{kind}"
    return f"aws_{module.lower()}_{kind}"


def terraform_values(value: Any, key: str | None = None) -> Any:
    """Inputs with Terraform attribute names, recursively.

    Pulumi flattens single-item blocks into objects; Terraform's plan keeps every
    block as a list, and checkov only follows references inside lists.
    """
    if isinstance(value, dict):
        if key in MAP_ATTRIBUTES:
            return dict(value)
        block = {PLURAL_BLOCKS.get(k, snake(k)): terraform_values(v, k) for k, v in value.items()}
        return block if key is None else [block]
    if isinstance(value, list):
        items = [terraform_values(v, key) for v in value]
        return [i[0] if isinstance(i, list) and len(i) == 1 and isinstance(i[0], dict) else i for i in items]
    return value


def address_name(logical: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", logical)


def _refs(target: str) -> list[str]:
    return [target, target.rsplit(".", 1)[0]]


def _link(values: dict[str, Any], lookup: dict[str, str], own: str) -> dict[str, Any]:
    """Turn values naming another resource into Terraform references, in place.

    In a real plan such a value is unknown until apply (null plus a reference in
    `configuration`); checkov builds its graph edges from exactly that shape.
    """
    expressions: dict[str, Any] = {}

    def target(v: Any) -> str | None:
        found = lookup.get(v) if isinstance(v, str) else None
        return found if found and not found.startswith(f"{own}.") else None

    for attr, value in values.items():
        if snake(attr) in {"tags", "variables", "dimensions"}:
            continue
        if target(value):
            expressions[attr] = {"references": _refs(str(target(value)))}
            values[attr] = None
        elif isinstance(value, list) and any(target(v) for v in value):
            expressions[attr] = {"references": [r for v in value if target(v) for r in _refs(str(target(v)))]}
            values[attr] = [None if target(v) else v for v in value]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            nested = [_link(v, lookup, own) for v in value]
            if any(nested):
                expressions[attr] = nested
    return expressions


def to_plan(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A Terraform plan document for inventory `resources` (each with type, name, inputs, state)."""
    converted: list[tuple[str, str, dict[str, Any]]] = []
    lookup: dict[str, str] = {}
    states: list[tuple[str, dict[str, Any]]] = []
    for resource in resources:
        tf_type = terraform_type(resource["type"])
        if tf_type is None:
            continue
        name = address_name(resource["name"]).replace("-", "_")
        converted.append((tf_type, name, terraform_values(resource["inputs"])))
        states.append((f"{tf_type}.{name}", resource.get("state", {})))
    # Most specific attributes first, so an id wins over a name that happens to match it.
    for attr in REFERABLE:
        for address, state in states:
            found = state.get(attr)
            if isinstance(found, str) and found:
                lookup.setdefault(found, f"{address}.{snake(attr)}")
    planned, config, changes = [], [], []
    for tf_type, name, values in converted:
        address = f"{tf_type}.{name}"
        common = {
            "address": address,
            "mode": "managed",
            "type": tf_type,
            "name": name,
            "provider_name": "registry.terraform.io/hashicorp/aws",
        }
        planned.append({**common, "schema_version": 0, "values": values})
        expressions = _link(values, lookup, address)
        config.append({**common, "provider_config_key": "aws", "expressions": expressions})
        changes.append(
            {
                **common,
                "change": {"actions": ["create"], "before": None, "after": values, "after_unknown": {}},
            }
        )
    return {
        "format_version": "1.2",
        "terraform_version": "1.9.0",
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes,
        "configuration": {"provider_config": {"aws": {"name": "aws"}}, "root_module": {"resources": config}},
    }
