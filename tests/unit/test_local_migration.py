"""An index written with an older schema opens with the current code, migrated from its stored
documents without losing a chunk, also when a crash interrupted the migration."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import tantivy

from service.access import AccessScope, operator_scope
from service.models import Chunk, SearchFilters
from service.search.local import ANALYZER, LocalSearchBackend, analyzer
from service.search.vector_store import VectorStore
from tests.scoped_chunks import allowed, scoped_chunks

DIM = 4
READER = AccessScope(workspace="default", user="ann")


def _old_schema(*, access: bool = True) -> tantivy.Schema:
    """The schema before the `chunk_key` fast field (as released up to this change); without
    `access`, the schema from before workspaces and document permissions (issue 15)."""
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("chunk_id", stored=True, tokenizer_name="raw")
    builder.add_text_field("document_id", stored=True, tokenizer_name="raw")
    builder.add_text_field("title", stored=True, tokenizer_name=ANALYZER)
    builder.add_text_field("text", stored=True, tokenizer_name=ANALYZER)
    builder.add_text_field("source", stored=True, tokenizer_name="raw")
    builder.add_text_field("tags", stored=True, tokenizer_name="raw")
    builder.add_date_field("published", stored=True, indexed=True, fast=True)
    builder.add_integer_field("position", stored=True, indexed=False)
    if access:
        builder.add_text_field("workspace", stored=True, tokenizer_name="raw")
        builder.add_text_field("allowed_users", stored=True, tokenizer_name="raw")
        builder.add_text_field("allowed_groups", stored=True, tokenizer_name="raw")
        builder.add_boolean_field("restricted", stored=True, indexed=True)
    return builder.build()


def _vector(number: int) -> list[float]:
    return [1.0, float(number % 7), float(number % 3), 0.5]


def _write_old_index(directory: Path, chunks: list[Chunk], *, access: bool = True) -> None:
    """An index as the code before this change wrote it: text with the old schema, vectors."""
    (directory / "text").mkdir(parents=True)
    index = tantivy.Index(_old_schema(access=access), path=str(directory / "text"))
    index.register_tokenizer(ANALYZER, analyzer())
    writer = index.writer(heap_size=15_000_000, num_threads=1)
    for chunk in chunks:
        fields: dict[str, Any] = chunk.stored_fields()
        fields["restricted"] = chunk.restricted
        if not access:
            for name in ("workspace", "allowed_users", "allowed_groups", "restricted"):
                del fields[name]
        if chunk.published is not None:
            day = chunk.published
            fields["published"] = datetime(day.year, day.month, day.day, tzinfo=UTC)
        writer.add_document(tantivy.Document(**fields))
    writer.commit()
    writer.wait_merging_threads()
    vectors = VectorStore(directory / "vectors.sqlite", DIM)
    vectors.write(((c.chunk_id, _vector(i)) for i, c in enumerate(chunks)), ())
    vectors.close()


def _readable(chunks: list[Chunk], scope: AccessScope, filters: SearchFilters | None = None) -> set[str]:
    return {c.chunk_id for c in chunks if allowed(c, scope, filters)}


def _assert_everything_found(directory: Path, chunks: list[Chunk]) -> None:
    backend = LocalSearchBackend(directory, DIM)
    backend.ensure_index()
    # Every chunk is there, with its fields, readable by exactly whom it was before
    assert backend.count() == len(chunks)
    by_id = {c.chunk_id: c for c in chunks}
    for scope in (
        READER,
        operator_scope(),
        operator_scope("acme"),
        AccessScope("default", groups=frozenset({"finance"})),
    ):
        found = backend.knn([1.0, 1.0, 1.0, 0.5], len(chunks), scope=scope)
        assert {h.chunk_id for h in found} == _readable(chunks, scope)
        for hit in found:
            chunk = by_id[hit.chunk_id]
            assert (
                hit.document_id,
                hit.title,
                hit.text,
                hit.source,
                hit.position,
                hit.tags,
                hit.published,
            ) == (
                chunk.document_id,
                chunk.title,
                chunk.text,
                chunk.source,
                chunk.position,
                chunk.tags,
                chunk.published,
            )
        assert {h.chunk_id for h in backend.bm25("note", len(chunks), scope=scope)} == _readable(
            chunks, scope
        )
    # And filters still hold on the migrated fields
    dated = SearchFilters(tags=("even",), date_from=date(2024, 1, 5))
    assert {
        h.chunk_id for h in backend.knn([1.0, 0.0, 0.0, 0.5], len(chunks), dated, scope=READER)
    } == _readable(chunks, READER, dated)

    # And the index takes writes again (a document restricted to bob, then opened again)
    def reader_sees() -> set[str]:
        return {h.chunk_id for h in backend.knn([1.0, 0.0, 0.0, 0.5], len(chunks), scope=READER)}

    assert backend.update_permissions("default/doc-1.md", ["bob"], []) == 3
    assert reader_sees() == _readable(chunks, READER) - {"default-4", "default-6", "default-7"}
    assert backend.update_permissions("default/doc-1.md", [], []) == 3
    assert reader_sees() == _readable(chunks, READER)
    backend.close()
    # And no staging or replaced copy is left behind
    assert sorted(p.name for p in directory.iterdir() if p.name.startswith("text")) == ["text", "text.lock"]


def test_an_index_written_with_the_old_schema_is_migrated_on_open_without_loss(tmp_path: Path) -> None:
    # Given an index written by the code before the `chunk_key` fast field
    chunks = scoped_chunks()
    _write_old_index(tmp_path / "index", chunks)
    # When the current code opens it, then it finds everything, as before
    _assert_everything_found(tmp_path / "index", chunks)
    # And it opens again as it is (already migrated)
    _assert_everything_found(tmp_path / "index", chunks)


def test_an_index_from_before_workspaces_is_migrated_into_the_default_workspace(tmp_path: Path) -> None:
    # Given an index written before workspaces and permissions (no access fields at all)
    chunks = [c for c in scoped_chunks() if c.workspace == "default" and not c.restricted]
    _write_old_index(tmp_path / "index", chunks, access=False)
    # When the current code opens it, then every chunk is in the default workspace, readable
    # by its readers and by no other workspace, as the cluster backends upgrade such an index
    _assert_everything_found(tmp_path / "index", chunks)


_CRASH = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from service.search import local, local_migration
    from service.search.local import LocalSearchBackend

    step, directory = sys.argv[1], Path(sys.argv[2])
    real_replace, real_rmtree = os.replace, local_migration.shutil.rmtree
    calls = []

    def replace(source, target):
        calls.append(source)
        if step == "first rename" and len(calls) == 1 or step == "second rename" and len(calls) == 2:
            os._exit(3)  # the process dies: no cleanup, no finally
        real_replace(source, target)

    def rmtree(path, ignore_errors=False):
        if step == "cleanup" and Path(path).name == "text.old" and Path(path).exists():
            os._exit(3)
        real_rmtree(path, ignore_errors=ignore_errors)

    local_migration.os.replace = replace
    local_migration.shutil.rmtree = rmtree
    if step == "copy":  # dies after rewriting ten stored documents
        real_chunk_of = local._chunk_of

        def chunk_of(doc):
            calls.append(doc)
            if len(calls) > 10:
                os._exit(3)
            return real_chunk_of(doc)

        local._chunk_of = chunk_of
    LocalSearchBackend(directory, 4)
    sys.exit(0)
    """
)


# What each crash leaves behind besides the lock file: the step's state, for the next open.
LEFT_BEHIND = {
    "copy": ["text", "text.migrating"],  # a partial, uncommitted copy
    "first rename": ["text", "text.migrating"],  # a complete copy, not swapped in
    "second rename": ["text.migrating", "text.old"],  # the old index moved aside, no `text`
    "cleanup": ["text", "text.old"],  # swapped, the old copy not yet removed
}


@pytest.mark.parametrize("step", list(LEFT_BEHIND))
def test_a_crash_during_the_migration_loses_nothing_and_the_next_open_finishes_it(
    tmp_path: Path, step: str
) -> None:
    # Given an index with the old schema
    chunks = scoped_chunks()
    _write_old_index(tmp_path / "index", chunks)
    # When the process migrating it dies at `step`
    died = subprocess.run([sys.executable, "-c", _CRASH, step, str(tmp_path / "index")], check=False)
    assert died.returncode == 3
    index = tmp_path / "index"
    left = sorted(p.name for p in index.iterdir() if p.name.startswith("text") and p.name != "text.lock")
    assert left == LEFT_BEHIND[step]
    # Then the next open finds every chunk
    _assert_everything_found(tmp_path / "index", chunks)
