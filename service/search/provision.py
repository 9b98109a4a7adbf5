"""Provision an OpenSearch domain for the platform: security roles, mappings and the first index.

Runs inside the VPC as the domain's master user, from the provisioning function that
`pulumi up` invokes (`service.handlers.provision`), and is idempotent: every step is a
create-or-replace (`PUT`), and the index is created only when the read alias is missing.
Nothing else creates indexes in the cloud: the API only reads, and the ingester may only
write documents.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from service.contract import Env
from service.search import mappings
from service.search.security import SecurityRole, platform_roles, security_document
from service.settings import Settings

log = logging.getLogger(__name__)
# Above the engines' and plugins' own templates, which use low priorities.
TEMPLATE_PRIORITY = 100


class ProvisionTarget(Protocol):
    """The few cluster calls provisioning needs (an adapter per client library)."""

    def put_role(self, name: str, body: dict[str, Any]) -> None: ...

    def put_role_mapping(self, name: str, body: dict[str, Any]) -> None: ...

    def put_index_template(self, name: str, body: dict[str, Any]) -> None: ...

    def alias_exists(self, alias: str) -> bool: ...

    def create_index(self, name: str, body: dict[str, Any]) -> None: ...

    def mappings(self, alias: str) -> dict[str, dict[str, Any]]:
        """`{concrete index: mappings}` of the indexes behind `alias`."""
        ...

    def set_replicas(self, pattern: str, replicas: int) -> None:
        """Set `number_of_replicas` on every index matching `pattern`."""
        ...

    def put_mapping(self, index: str, body: dict[str, Any]) -> None:
        """Add fields (and replace `_meta`) on an existing index."""
        ...


@dataclass(frozen=True)
class ProvisionPlan:
    alias: str
    dimension: int
    replicas: int
    roles: tuple[SecurityRole, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> ProvisionPlan:
        writer, reader = settings.search_writer_role_arn, settings.search_reader_role_arn
        missing = [
            name
            for name, value in ((Env.SEARCH_WRITER_ROLE_ARN, writer), (Env.SEARCH_READER_ROLE_ARN, reader))
            if not value
        ]
        if missing or writer is None or reader is None:
            raise ValueError(f"provisioning needs {', '.join(missing)}")
        return cls(
            alias=settings.index_alias,
            dimension=settings.embedding_dimension,
            replicas=settings.search_replicas,
            roles=platform_roles(settings.index_alias, writer, reader),
        )

    def index_body(self) -> dict[str, Any]:
        """The mapping of `service.search.mappings`, with this stack's replica count."""
        body = mappings.opensearch_index_body(self.dimension, self.alias)
        body["settings"]["index"]["number_of_replicas"] = self.replicas
        return body

    def security(self) -> dict[str, Any]:
        return security_document(self.roles)

    @property
    def versions_pattern(self) -> str:
        return f"{self.alias}-v*"

    def template_body(self) -> dict[str, Any]:
        """An index template giving every later version (`ragctl reindex`) the stack's replicas.

        Without it a new version would get the engine's default of one replica, which a
        single-node staging domain cannot place: yellow again after every reindex.
        """
        return {
            "index_patterns": [self.versions_pattern],
            "priority": TEMPLATE_PRIORITY,
            "template": {"settings": {"index": {"number_of_replicas": self.replicas}}},
            "_meta": {"managed_by": "rag-platform search provisioner"},
        }


@dataclass
class ProvisionReport:
    roles: list[str] = field(default_factory=list)
    created_index: str | None = None
    replicas: int = 0
    indexes: list[str] = field(default_factory=list)
    upgraded: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "roles": self.roles,
            "createdIndex": self.created_index,
            "replicas": self.replicas,
            "indexes": self.indexes,
            "upgraded": self.upgraded,
        }


class ProvisionError(RuntimeError):
    """The domain holds something provisioning must not overwrite; the message says what to do."""


def provision(target: ProvisionTarget, plan: ProvisionPlan) -> ProvisionReport:
    """Apply the security roles and mappings, then make sure the read alias has a usable index."""
    report = ProvisionReport(replicas=plan.replicas)
    for role in plan.roles:
        target.put_role(role.name, role.role_body())
        target.put_role_mapping(role.name, role.mapping_body())
        report.roles.append(role.name)
    target.put_index_template(f"{plan.alias}-replicas", plan.template_body())
    if not target.alias_exists(plan.alias):
        concrete = f"{plan.alias}-v1"
        target.create_index(concrete, plan.index_body())
        report.created_index = concrete
        log.info("created %s (mapping v%d) behind %s", concrete, mappings.MAPPING_VERSION, plan.alias)
    found = target.mappings(plan.alias)
    for concrete, mapping in sorted(found.items()):
        dimension = mappings.mapped_dimension(mapping)
        if dimension != plan.dimension:
            raise ProvisionError(
                f"index {concrete!r} behind {plan.alias!r} holds {dimension}-dimensional vectors but the "
                f"stack embeds {plan.dimension}; run `ragctl reindex` for the new model or restore "
                "rag-platform:models.embeddingDimension"
            )
        # Only the provisioner may change mappings in a stack: it brings older indexes up in place
        # where the change is additive (`mappings.upgrade_in_place_body`).
        upgrade = mappings.upgrade_in_place_body(mapping)
        if upgrade is not None:
            target.put_mapping(concrete, upgrade)
            report.upgraded.append(concrete)
    # Replicas are a dynamic setting: applying them every time converges every version,
    # including those kept for rollback, after a change of search.replicas without a reindex.
    target.set_replicas(plan.versions_pattern, plan.replicas)
    report.indexes = sorted(found)
    return report


class OpenSearchProvisionTarget:
    """`ProvisionTarget` on opensearch-py (the security plugin's REST API and the indices API)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def put_role(self, name: str, body: dict[str, Any]) -> None:
        self._client.security.create_role(role=name, body=body)

    def put_role_mapping(self, name: str, body: dict[str, Any]) -> None:
        self._client.security.create_role_mapping(role=name, body=body)

    def put_index_template(self, name: str, body: dict[str, Any]) -> None:
        self._client.indices.put_index_template(name=name, body=body)

    def alias_exists(self, alias: str) -> bool:
        return bool(self._client.indices.exists_alias(name=alias))

    def create_index(self, name: str, body: dict[str, Any]) -> None:
        self._client.indices.create(index=name, body=body)

    def mappings(self, alias: str) -> dict[str, dict[str, Any]]:
        response = self._client.indices.get_mapping(index=alias)
        return {name: dict(value.get("mappings", {})) for name, value in response.items()}

    def set_replicas(self, pattern: str, replicas: int) -> None:
        self._client.indices.put_settings(index=pattern, body={"index": {"number_of_replicas": replicas}})

    def put_mapping(self, index: str, body: dict[str, Any]) -> None:
        self._client.indices.put_mapping(index=index, body=body)
