"""Deploy-role coverage: can this stack's deploy role make every request its `pulumi up` makes?

The requests come from the stack's resources under mocks (the inventory) and the table in
`infra.policy.deploy_actions`; the answer comes from evaluating bootstrap/'s real policy
documents with an IAM evaluator (`infra.policy.evaluator`). A resource type without an
entry in the table is reported by name, as is every request the role would be refused.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass

from bootstrap.policies import (
    DATA_READS,
    DEPLOYERS,
    PREVIEW_ROLE_NAME,
    STACK_TAG,
    Deployer,
    deploy_document,
    preview_document,
)
from infra.policy.deploy_actions import NO_IAM_PREFIXES, RESOURCE_ACTIONS, Need
from infra.policy.evaluator import Principal, Request, allowed
from infra.tools.offline import ACCOUNT_ID, ResourceRecord, StackRun

# Inputs that carry a resource's physical name; a resource without one gets Pulumi's
# auto-name, `<logical name>-<7 random characters>`, which is what AWS will see.
_NAME_KEYS = ("name", "bucket", "domainName", "dashboardName", "policyName")
_AUTONAME_SUFFIX = "-a1b2c3d"


def deployer_for(stack: str) -> Deployer:
    found = [d for d in DEPLOYERS if fnmatch.fnmatchcase(stack, d.stacks)]
    if len(found) != 1:
        raise LookupError(f"no single deploy role deploys stack {stack!r}: {[d.environment for d in found]}")
    return found[0]


def deploy_principal(deployer: Deployer, account: str = ACCOUNT_ID) -> Principal:
    return Principal(
        f"arn:aws:iam::{account}:role/{deployer.role_name}", [deploy_document(deployer, account)]
    )


def preview_principal(account: str = ACCOUNT_ID) -> Principal:
    return Principal(f"arn:aws:iam::{account}:role/{PREVIEW_ROLE_NAME}", [preview_document()])


# What `pulumi preview --refresh` calls: the table's metadata reads, never a data read.
_READ_VERBS = ("Describe", "Get", "List", "View")


def is_metadata_read(action: str) -> bool:
    verb = action.split(":", 1)[1]
    return verb.startswith(_READ_VERBS) and action not in DATA_READS


def physical_name(record: ResourceRecord) -> str:
    for key in _NAME_KEYS:
        value = record.inputs.get(key)
        if isinstance(value, str) and value:
            return value
    return record.name + _AUTONAME_SUFFIX


class _Index:
    """Finds the record an input points at, by its id, ARN, URL or name (as AWS would resolve it)."""

    def __init__(self, run: StackRun) -> None:
        self.by_key: dict[str, ResourceRecord] = {}
        for record in run.resources:
            for key in ("id", "arn", "url", "keyId"):
                value = record.state.get(key)
                if isinstance(value, str):
                    self.by_key.setdefault(value, record)
            if record.custom:
                self.by_key.setdefault(physical_name(record), record)

    def find(self, value: object) -> ResourceRecord | None:
        return self.by_key.get(value) if isinstance(value, str) else None


@dataclass(frozen=True)
class Gap:
    resource: str
    request: str

    def __str__(self) -> str:
        return f"{self.resource}: {self.request}"


def _requests(
    record: ResourceRecord, need: Need, index: _Index, region: str, stack: str
) -> Iterator[Request]:
    target = record
    if need.ref is not None:
        found = index.find(record.inputs.get(need.ref))
        if found is None:
            raise LookupError(
                f"{record.type} {record.name}: input {need.ref} points at no resource of the stack"
            )
        target = found
    # An untaggable child (a secret version, a rule) acts on its stack's tagged parents,
    # whose tags the policy pack's required-tags rule guarantees.
    tags = target.inputs.get("tags") or record.inputs.get("tags") or {STACK_TAG: stack}
    fields = {
        "region": region,
        "account": ACCOUNT_ID,
        "name": physical_name(target),
        "id": str(target.state.get("id", target.name)),
        "boundary": str(target.inputs.get("permissionsBoundary", "")),
    }
    context = {k: v.format(**fields) for k, v in need.context.items()}
    # A key whose value the resource does not supply is absent from the request, as in AWS.
    context = {k: v for k, v in context.items() if v}
    if isinstance(tags, dict) and tags.get(STACK_TAG):
        context[f"aws:ResourceTag/{STACK_TAG}"] = str(tags[STACK_TAG])
        context[f"aws:RequestTag/{STACK_TAG}"] = str(tags[STACK_TAG])
    resource = need.arn.format(**fields)
    for action in need.actions:
        yield Request(action, resource, context)


def gaps(run: StackRun, principal: Principal, region: str) -> list[Gap]:
    """Every request of `run` that `principal` may not make, and every unmapped resource type."""
    index = _Index(run)
    found: list[Gap] = []
    for record in run.resources:
        if not record.custom or record.type.startswith(NO_IAM_PREFIXES):
            continue
        label = f"{record.type} {record.name}"
        needs = RESOURCE_ACTIONS.get(record.type)
        if needs is None:
            found.append(Gap(label, "no IAM actions mapped: add the type to infra/policy/deploy_actions.py"))
            continue
        for need in needs:
            try:
                requests = list(_requests(record, need, index, region, run.stack))
            except LookupError as error:
                found.append(Gap(label, str(error)))
                continue
            found += [
                Gap(label, f"refused {request}") for request in requests if not allowed(principal, request)
            ]
    return found


def requests_for(run: StackRun, region: str) -> list[Request]:
    """Every request the stack's deploy needs (for the figures and the reverse checks)."""
    index = _Index(run)
    out: list[Request] = []
    for record in run.resources:
        for need in RESOURCE_ACTIONS.get(record.type, ()):
            out += list(_requests(record, need, index, region, run.stack))
    return out


def preview_gaps(run: StackRun, principal: Principal, region: str) -> list[Gap]:
    """The metadata reads of `run` that the preview role may not make (`apigateway:GET` included)."""
    index = _Index(run)
    found: list[Gap] = []
    for record in run.resources:
        for need in RESOURCE_ACTIONS.get(record.type, ()):
            try:
                requests = list(_requests(record, need, index, region, run.stack))
            except LookupError:
                continue  # reported by gaps()
            for request in requests:
                readable = is_metadata_read(request.action) or request.action == "apigateway:GET"
                if readable and not allowed(principal, request):
                    found.append(Gap(f"{record.type} {record.name}", f"refused {request}"))
    return found
