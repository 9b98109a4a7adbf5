"""The provisioning adapter against an OpenSearch-compatible server (osmem-server, port 0).

osmem-server has no security plugin, so the two security calls are recorded instead of
sent; everything about indexes, aliases, mappings and replicas goes over real HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opensearchpy import OpenSearch
from osmem_server import OsmemServer

from service.contract import PROJECT
from service.search.provision import OpenSearchProvisionTarget, ProvisionPlan, provision
from service.search.security import platform_roles

ALIAS = "provision-test"


class RecordingSecurity(OpenSearchProvisionTarget):
    def __init__(self, client: OpenSearch) -> None:
        super().__init__(client)
        self.security_calls: list[tuple[str, str]] = []

    def put_role(self, name: str, body: dict[str, Any]) -> None:
        self.security_calls.append(("role", name))

    def put_role_mapping(self, name: str, body: dict[str, Any]) -> None:
        self.security_calls.append(("mapping", name))


@pytest.fixture(scope="module")
def client() -> Iterator[OpenSearch]:
    server = OsmemServer.start(addr="127.0.0.1:0", japanese=False)
    yield OpenSearch(hosts=[server.url])
    server.close()


def test_provisioning_creates_the_index_once_behind_the_alias_with_the_replicas(client: OpenSearch) -> None:
    # Given an empty server and a plan with zero replicas
    target = RecordingSecurity(client)
    plan = ProvisionPlan(ALIAS, 8, 0, platform_roles(ALIAS, "arn:writer", "arn:reader"))
    # When provisioning runs twice, as two `pulumi up`s would
    first = provision(target, plan)
    second = provision(target, plan)
    # Then the first run created `<alias>-v1` behind the alias, the second created nothing
    assert first.created_index == f"{ALIAS}-v1"
    assert second.created_index is None
    assert second.indexes == [f"{ALIAS}-v1"]
    settings = client.indices.get_settings(index=ALIAS)[f"{ALIAS}-v1"]["settings"]["index"]
    assert str(settings["number_of_replicas"]) == "0"
    # And the roles and mappings were applied on both runs
    assert target.security_calls.count(("mapping", f"{PROJECT}-reader")) == 2
    # And a version made later by a reindex gets the stack's replicas from the template
    client.indices.create(index=f"{ALIAS}-v2", body={"settings": {"index": {"number_of_shards": 1}}})
    later = client.indices.get_settings(index=f"{ALIAS}-v2")[f"{ALIAS}-v2"]["settings"]["index"]
    assert str(later["number_of_replicas"]) == "0"
