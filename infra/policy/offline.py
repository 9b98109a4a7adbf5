"""The policy pack over a mocked stack run: what `pulumi preview --policy-pack` would report.

`make rehearse` and the tests call `violations(run)`; the CLI serves the same rules
from `infra/policy/__main__.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs

from infra.policy import rules
from infra.tools.offline import StackRun


class Collector:
    """A ReportViolation that keeps the messages, each prefixed with its rule's name."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.rule = ""

    def __call__(self, message: str, urn: str | None = None) -> None:
        self.messages.append(f"{self.rule}: {message}" if self.rule else message)


def resource_args(resource_type: str, props: Mapping[str, Any], name: str) -> ResourceValidationArgs:
    return ResourceValidationArgs(resource_type, props, f"urn:{name}", name, None, None)  # type: ignore[arg-type]


def policy_resource(resource_type: str, name: str, props: Mapping[str, Any]) -> PolicyResource:
    return PolicyResource(resource_type, props, f"urn:{name}", name, None, None, None, [], {})  # type: ignore[arg-type]


def violations(run: StackRun) -> list[str]:
    """Every mandatory rule over every resource of `run`, then the stack rules; [] when compliant."""
    found = Collector()
    for record in run.resources:
        for rule, (_, validator) in rules.RESOURCE_RULES.items():
            found.rule = rule
            validator(resource_args(record.type, record.inputs, record.name), found)
    resources = [
        policy_resource(r.type, r.name, {**r.inputs, "name": r.state.get("name")}) for r in run.resources
    ]
    for rule, (_, stack_validator) in rules.STACK_RULES.items():
        found.rule = rule
        stack_validator(StackValidationArgs(resources), found)
    return found.messages
