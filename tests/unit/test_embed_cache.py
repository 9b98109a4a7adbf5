"""The on-disk embedding cache used by `ragctl eval` (and usable by reindex)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.embed.cache import CachingEmbedder
from service.embed.protocol import Embedder
from tests.factories import HashingEmbedder


def test_it_is_an_embedder(tmp_path: Path) -> None:
    cached = CachingEmbedder(HashingEmbedder(16), tmp_path / "c.sqlite")
    assert isinstance(cached, Embedder)
    assert (cached.model_id, cached.dimension) == ("hashing-16", 16)


def test_a_second_run_embeds_nothing_and_returns_the_same_vectors(tmp_path: Path) -> None:
    # Given texts embedded once through a cache on disk
    inner = HashingEmbedder()
    first = CachingEmbedder(inner, tmp_path / "cache.sqlite").embed_documents(["alpha beta", "gamma"])
    calls = inner.embedded_texts
    # When a new process (a new wrapper on the same file) embeds them again
    again = CachingEmbedder(inner, tmp_path / "cache.sqlite")
    second = again.embed_documents(["gamma", "alpha beta"])
    # Then the model is not called and the vectors match (float32 precision)
    assert inner.embedded_texts == calls
    assert second[0] == pytest.approx(first[1], abs=1e-6)
    assert second[1] == pytest.approx(first[0], abs=1e-6)
    assert (again.hits, again.misses) == (2, 0)


def test_only_missing_texts_reach_the_model_in_order(tmp_path: Path) -> None:
    # Given one cached text
    inner = HashingEmbedder()
    cached = CachingEmbedder(inner, tmp_path / "cache.sqlite")
    cached.embed_documents(["known"])
    # When a batch mixes it with new texts, including a duplicate
    vectors = cached.embed_documents(["new one", "known", "new two", "new one"])
    # Then only the distinct new texts are embedded, and every position gets its vector
    assert inner.calls[-1] == ["new one", "new two"]
    assert vectors[0] == vectors[3]
    assert vectors[1] == pytest.approx(inner.embed_query("known"), abs=1e-6)


def test_models_do_not_share_entries(tmp_path: Path) -> None:
    # Given a text cached for one model
    path = tmp_path / "cache.sqlite"
    CachingEmbedder(HashingEmbedder(16), path).embed_documents(["text"])
    # When another model embeds it through the same file
    other = HashingEmbedder(32)
    vectors = CachingEmbedder(other, path).embed_documents(["text"])
    # Then that model is called and its own dimension comes back
    assert other.embedded_texts == 1
    assert len(vectors[0]) == 32


def test_queries_are_cached_apart_from_passages(tmp_path: Path) -> None:
    inner = HashingEmbedder()
    cached = CachingEmbedder(inner, tmp_path / "cache.sqlite")
    # Given a query embedded once, when it is embedded again, then it comes from the cache
    first = cached.embed_query("what is lift")
    assert cached.embed_query("what is lift") == pytest.approx(first, abs=1e-6)
    assert (cached.hits, cached.misses) == (1, 1)
    # And an empty batch costs nothing
    assert cached.embed_documents([]) == []
    cached.close()
