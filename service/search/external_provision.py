"""The first index on an external Elasticsearch or OpenSearch cluster (config `search.provider: external`).

The stack owns no security on such a cluster: what the credentials may do is set where they
were issued (an Elastic API key's role descriptors, an OpenSearch user's roles), so there are
no roles or mappings to apply. What remains is the index: the provisioning function creates
`<alias>-v1` behind the alias when the alias is missing and checks the vector size of every
index behind it, with the same code the local platform uses (`ClusterBackend.ensure_index`).
Replica counts are the cluster's defaults and the operator's to set.
"""

from __future__ import annotations

from typing import Any

from service.settings import Settings


def provision_external(settings: Settings) -> dict[str, Any]:
    """Create the read alias's first index if missing; raise naming the problem otherwise."""
    from service.wiring import build_backend

    backend = build_backend(settings, settings.embedding_dimension)
    # Refuses an index of another vector size, naming it (service/search/cluster.py).
    backend.ensure_index()
    return {
        "engine": settings.search_backend.value,
        "alias": settings.index_alias,
        "dimension": backend.dimension,
        "roles": [],
    }
