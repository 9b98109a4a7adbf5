"""Provisioning the search domain during `pulumi up`: roles as data, idempotent, replicas from config."""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest

from service.contract import PROJECT, Env
from service.search import mappings
from service.search.provision import ProvisionError, ProvisionPlan, provision
from service.search.security import READ_ACTIONS, platform_roles
from service.settings import Settings
from service.wiring import Container
from tests.factories import HashingEmbedder

WRITER = f"arn:aws:iam::123456789012:role/{PROJECT}-staging-ingester"
READER = f"arn:aws:iam::123456789012:role/{PROJECT}-staging-api"
ALIAS = f"{PROJECT}-chunks"


class FakeCluster:
    """An in-memory domain: security roles, mappings, indexes with settings and aliases."""

    def __init__(self) -> None:
        self.roles: dict[str, dict[str, Any]] = {}
        self.role_mappings: dict[str, dict[str, Any]] = {}
        self.indexes: dict[str, dict[str, Any]] = {}
        self.templates: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []

    def put_role(self, name: str, body: dict[str, Any]) -> None:
        self.roles[name] = body

    def put_role_mapping(self, name: str, body: dict[str, Any]) -> None:
        self.role_mappings[name] = body

    def put_index_template(self, name: str, body: dict[str, Any]) -> None:
        self.templates[name] = body

    def _behind(self, alias: str) -> list[str]:
        return [name for name, body in self.indexes.items() if alias in body.get("aliases", {})]

    def alias_exists(self, alias: str) -> bool:
        return bool(self._behind(alias))

    def create_index(self, name: str, body: dict[str, Any]) -> None:
        if name in self.indexes:
            raise RuntimeError(f"resource_already_exists_exception: {name}")
        self.indexes[name] = {**body, "settings": {"index": dict(body["settings"]["index"])}}
        self.created.append(name)

    def mappings(self, alias: str) -> dict[str, dict[str, Any]]:
        return {name: self.indexes[name]["mappings"] for name in self._behind(alias)}

    def set_replicas(self, pattern: str, replicas: int) -> None:
        for name in self.indexes:
            if fnmatch.fnmatchcase(name, pattern):
                self.indexes[name]["settings"]["index"]["number_of_replicas"] = replicas

    def put_mapping(self, index: str, body: dict[str, Any]) -> None:
        mapping = self.indexes[index]["mappings"]
        mapping["_meta"] = body["_meta"]
        mapping.setdefault("properties", {}).update(body.get("properties", {}))

    def replicas(self, name: str) -> int:
        return int(self.indexes[name]["settings"]["index"]["number_of_replicas"])


def plan(replicas: int = 0, dimension: int = 1024) -> ProvisionPlan:
    return ProvisionPlan(ALIAS, dimension, replicas, platform_roles(ALIAS, WRITER, READER))


def test_first_run_maps_the_roles_and_creates_the_index_with_the_stack_replicas() -> None:
    # Given an empty domain and staging's plan (one node: zero replicas)
    cluster = FakeCluster()
    # When provisioning runs
    report = provision(cluster, plan(replicas=0))
    # Then the writer and the reader are mapped to exactly their IAM roles
    assert cluster.role_mappings == {
        f"{PROJECT}-writer": {"backend_roles": [WRITER], "users": [], "hosts": []},
        f"{PROJECT}-reader": {"backend_roles": [READER], "users": [], "hosts": []},
    }
    # And the first version exists behind the read alias with the stack's replicas
    assert cluster.created == [f"{ALIAS}-v1"]
    assert cluster.replicas(f"{ALIAS}-v1") == 0
    assert mappings.mapped_dimension(cluster.indexes[f"{ALIAS}-v1"]["mappings"]) == 1024
    assert report.as_dict() == {
        "roles": [f"{PROJECT}-writer", f"{PROJECT}-reader"],
        "createdIndex": f"{ALIAS}-v1",
        "replicas": 0,
        "indexes": [f"{ALIAS}-v1"],
        "upgraded": [],
    }


def test_every_run_is_idempotent_and_converges_replicas() -> None:
    # Given a provisioned domain
    cluster = FakeCluster()
    provision(cluster, plan(replicas=0))
    roles_before = dict(cluster.roles)
    # When `pulumi up` runs it again, after search.replicas went to 1
    report = provision(cluster, plan(replicas=1))
    # Then nothing is created twice, the roles are the same, and the replicas follow the config
    assert cluster.created == [f"{ALIAS}-v1"]
    assert report.created_index is None
    assert cluster.roles == roles_before
    assert cluster.replicas(f"{ALIAS}-v1") == 1
    # And every later version (a reindex) is created with the same replicas by the template
    template = cluster.templates[f"{ALIAS}-replicas"]
    assert template["index_patterns"] == [f"{ALIAS}-v*"]
    assert template["template"]["settings"]["index"]["number_of_replicas"] == 1


def test_reader_may_only_search_and_writer_never_administers() -> None:
    # Given the two roles as data
    writer, reader = platform_roles(ALIAS, WRITER, READER)
    # Then the reader's only action is search, on the alias and its versions, with no cluster action
    assert reader.role_body()["index_permissions"] == [
        {"index_patterns": [ALIAS, f"{ALIAS}-v*"], "allowed_actions": list(READ_ACTIONS)}
    ]
    assert READ_ACTIONS == ("indices:data/read/search",)
    assert reader.role_body()["cluster_permissions"] == []
    # And the writer has no admin action: it cannot create, delete or re-map an index
    actions = writer.role_body()["index_permissions"][0]["allowed_actions"]
    assert not [a for a in actions if a.startswith("indices:admin")]
    assert "indices:data/write/index" in actions
    # And it may send bulk `update` items: a readers-only change rewrites fields in place
    assert "indices:data/write/update" in actions


def test_the_same_iam_role_cannot_be_writer_and_reader() -> None:
    with pytest.raises(ValueError, match="different IAM roles"):
        platform_roles(ALIAS, WRITER, WRITER)


def test_an_index_of_another_dimension_fails_the_deploy_naming_the_fix() -> None:
    # Given a domain whose index holds 1024-dimensional vectors
    cluster = FakeCluster()
    provision(cluster, plan(dimension=1024))
    # When the stack now embeds 512 dimensions, Then provisioning (and so `pulumi up`) fails
    with pytest.raises(ProvisionError, match="ragctl reindex"):
        provision(cluster, plan(dimension=512))


def test_plan_reads_the_contract_variables_and_names_a_missing_one() -> None:
    # Given the provisioner's environment as the program sets it
    settings = Settings(
        search_backend="opensearch",
        search_endpoint="https://vpc-x.us-east-1.es.amazonaws.com",
        embedding_dimension=1024,
        search_replicas=2,
        search_writer_role_arn=WRITER,
        search_reader_role_arn=READER,
    )
    # Then the plan carries the replicas into the index settings
    built = ProvisionPlan.from_settings(settings)
    assert built.index_body()["settings"]["index"]["number_of_replicas"] == 2
    assert built.index_body()["aliases"] == {settings.index_alias: mappings.alias_options()}
    # And without the reader role the error names the variable
    without_reader = settings.model_copy(update={"search_reader_role_arn": None})
    with pytest.raises(ValueError, match=Env.SEARCH_READER_ROLE_ARN):
        ProvisionPlan.from_settings(without_reader)


def test_api_container_never_creates_or_reads_an_index_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the API's cloud wiring (a provisioned stack), with a cluster that records ensure_index
    from service.search.cluster import ClusterBackend

    calls: list[str] = []
    monkeypatch.setattr(ClusterBackend, "ensure_index", lambda self: calls.append(self.index))
    monkeypatch.setenv(Env.SEARCH_BACKEND, "opensearch")
    monkeypatch.setenv(Env.SEARCH_ENDPOINT, "http://127.0.0.1:9")
    monkeypatch.setenv(Env.SEARCH_PROVISIONED, "true")
    container = Container(Settings(), embedder=HashingEmbedder(1024))
    # When the API builds its backend and retriever (what the first request does)
    backend = container.retriever.backend
    # Then no index was created or its mapping read: the provisioner owns indexes
    assert calls == []
    assert backend.dimension == 1024


def test_without_a_provisioner_the_process_creates_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the same cluster wiring outside a stack (local platform against your own cluster)
    from service.search.cluster import ClusterBackend

    calls: list[str] = []
    monkeypatch.setattr(ClusterBackend, "ensure_index", lambda self: calls.append(self.index))
    settings = Settings(search_backend="opensearch", search_endpoint="http://127.0.0.1:9")
    # When the backend is built, Then the process creates (or checks) the index itself
    assert Container(settings, embedder=HashingEmbedder(1024)).backend is not None
    assert calls == [settings.index_alias]


def test_provisioning_handler_fails_the_deploy_naming_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from service.handlers import provision as handler_module
    from service.settings import get_settings

    # Given the provisioning function deployed without the reader role's ARN
    monkeypatch.setenv(Env.SEARCH_BACKEND, "opensearch")
    monkeypatch.setenv(Env.SEARCH_ENDPOINT, "http://127.0.0.1:9")
    monkeypatch.setenv(Env.SEARCH_WRITER_ROLE_ARN, WRITER)
    get_settings.cache_clear()
    context = type(
        "Context",
        (),
        {
            "function_name": "p",
            "memory_limit_in_mb": 256,
            "aws_request_id": "r",
            "invoked_function_arn": "arn:aws:lambda:us-east-1:1:function:p",
        },
    )()
    # When `pulumi up` invokes it, Then it raises (failing the invocation) and names the variable
    try:
        with pytest.raises(ValueError, match=Env.SEARCH_READER_ROLE_ARN):
            handler_module.handler({"fingerprint": "f"}, context)
    finally:
        get_settings.cache_clear()


def test_a_v2_index_gains_the_access_fields_in_place_keeping_its_meta() -> None:
    # Given a domain whose index was built with mapping v2 (before workspaces), with alias history
    cluster = FakeCluster()
    provision(cluster, plan())
    mapping = cluster.indexes[f"{ALIAS}-v1"]["mappings"]
    for name in mappings.ACCESS_FIELDS:
        del mapping["properties"][name]
    mapping["_meta"] = {**mapping["_meta"], "mapping_version": 2, "alias_history": ["old-v0"]}
    # When the provisioner runs
    report = provision(cluster, plan())
    # Then the index has the v3 fields and version, nothing else of its _meta lost, and no new index
    assert report.upgraded == [f"{ALIAS}-v1"]
    assert report.created_index is None
    for name in mappings.ACCESS_FIELDS:
        assert name in mapping["properties"]
    assert mapping["_meta"]["mapping_version"] == mappings.MAPPING_VERSION
    assert mapping["_meta"]["alias_history"] == ["old-v0"]
    # And the next run has nothing to upgrade
    assert provision(cluster, plan()).upgraded == []
