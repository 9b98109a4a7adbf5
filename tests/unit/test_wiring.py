from __future__ import annotations

from pathlib import Path

from service.search.admin import LocalIndexAdmin
from service.search.elastic import ElasticsearchIndexAdmin
from service.search.opensearch import OpenSearchIndexAdmin
from service.settings import Settings
from service.wiring import build_index_admin


def test_reindex_uses_the_admin_of_the_configured_backend(tmp_path: Path) -> None:
    # Given one settings object per backend
    local = Settings(data_dir=tmp_path)
    opensearch = Settings(search_backend="opensearch", search_endpoint="http://127.0.0.1:9")
    elastic = Settings(search_backend="elasticsearch", search_endpoint="http://127.0.0.1:9")
    # Then each gets its own versioned-index admin, reading the configured alias
    assert isinstance(build_index_admin(local, 384), LocalIndexAdmin)
    assert isinstance(build_index_admin(opensearch, 384), OpenSearchIndexAdmin)
    assert isinstance(build_index_admin(elastic, 384), ElasticsearchIndexAdmin)
    assert build_index_admin(opensearch, 384).alias == opensearch.index_alias
