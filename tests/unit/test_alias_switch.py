"""Moving the read alias marks the new index as the alias's write index, in the same atomic request."""

from __future__ import annotations

from typing import Any

from service.search.opensearch import OpenSearchIndexAdmin


class _Indices:
    """The few index calls `ClusterIndexAdmin.switch` makes, over an in-memory alias table."""

    def __init__(self, alias: str, indexes: list[str], current: str) -> None:
        self.alias = alias
        self.indexes = indexes
        self.current = current
        self.alias_requests: list[dict[str, Any]] = []

    def get_alias(self, name: str, **_: Any) -> dict[str, Any]:
        return {self.current: {"aliases": {name: {}}}}

    def get(self, index: str, **_: Any) -> dict[str, Any]:
        return {name: {} for name in self.indexes}

    def get_mapping(self, index: str, **_: Any) -> dict[str, Any]:
        return {index: {"mappings": {"_meta": {}}}}

    def put_mapping(self, index: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {"acknowledged": True}

    def update_aliases(self, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.alias_requests.append(body)
        return {"acknowledged": True}


class _Client:
    def __init__(self, indices: _Indices) -> None:
        self.indices = indices


def test_switch_adds_the_target_as_write_index_and_removes_the_old_one_atomically() -> None:
    # Given an alias on v1 and a built v2
    indices = _Indices("chunks", ["chunks-v1", "chunks-v2"], current="chunks-v1")
    admin = OpenSearchIndexAdmin(_Client(indices), "chunks", 64)  # type: ignore[arg-type]

    # When the alias is switched to v2
    admin.switch("chunks-v2")

    # Then one request removes v1 and adds v2 as the alias's write index
    assert indices.alias_requests == [
        {
            "actions": [
                {"remove": {"index": "chunks-v1", "alias": "chunks"}},
                {"add": {"index": "chunks-v2", "alias": "chunks", "is_write_index": True}},
            ]
        }
    ]
