"""IAM policy evaluation, offline: may this role make this request?

The evaluator is principalmapper's local simulation (NCC Group's PMapper,
`principalmapper.querying.query_interface.local_check_authorization_full`): explicit denies
in every policy, then the permissions boundary, the resource policy and the identity
policies, with condition operators (String*, Arn*, Bool, ...IfExists, Null) evaluated
against the request context, in AWS's documented order
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).
The deploy-role proofs (tests/infra/test_deploy_roles.py, `make rehearse`) evaluate the
real documents of bootstrap/policies.py with it; nothing here matches strings.
"""

from __future__ import annotations

import collections
import collections.abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# principalmapper 1.1.5 imports these ABCs from `collections`, where Python 3.10 removed
# them (https://docs.python.org/3/whatsnew/3.10.html#removed); alias them before import.
for _abc in ("Mapping", "MutableMapping"):
    if not hasattr(collections, _abc):
        setattr(collections, _abc, getattr(collections.abc, _abc))

from principalmapper.common import Node, Policy  # type: ignore[import-untyped]  # noqa: E402
from principalmapper.querying.query_interface import (  # type: ignore[import-untyped]  # noqa: E402
    local_check_authorization_full,
)

Document = Mapping[str, Any]


@dataclass(frozen=True)
class Principal:
    """A role as IAM sees it: its ARN, its identity policies and its permissions boundary."""

    arn: str
    policies: Sequence[Document]
    boundary: Document | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def node(self) -> Any:
        policies = [Policy(self.arn, f"inline-{i}", dict(doc)) for i, doc in enumerate(self.policies)]
        boundary = (
            Policy(self.arn.replace(":role/", ":policy/") + "-boundary", "boundary", dict(self.boundary))
            if self.boundary is not None
            else None
        )
        return Node(
            self.arn,
            self.arn.rsplit("/", 1)[-1] + "-id",
            policies,
            None,
            {"Version": "2012-10-17", "Statement": []},
            None,
            0,
            False,
            False,
            boundary,
            False,
            dict(self.tags),
        )


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in sorted(self.context.items()))
        return f"{self.action} on {self.resource}{extra}"


def allowed(principal: Principal, request: Request, resource_policy: Document | None = None) -> bool:
    """True when IAM would allow `principal` to make `request` (same account, no SCPs).

    `resource_policy` is the resource's own policy (a KMS key policy, a bucket policy), owned by
    the principal's account. For KMS, IAM needs the key policy to name the principal or the
    account root: an identity policy alone never grants use of a key.
    """
    owner = principal.arn.split(":")[4] if resource_policy is not None else None
    return bool(
        local_check_authorization_full(
            principal.node(),
            request.action,
            request.resource,
            dict(request.context),
            dict(resource_policy) if resource_policy is not None else None,
            owner,
        )
    )
