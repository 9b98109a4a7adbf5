"""Opening the local engine's text index, migrating one written with an older schema first.

tantivy opens an index only with the schema it was written with. The stored documents hold every
field of every chunk (and the vectors live apart, in SQLite, keyed by chunk id), so an index with
an older schema is rewritten losslessly: each stored document is read back, rewritten with the
current fields (`rewrite`) into `text.migrating/`, committed, and swapped in:

1. `text.migrating/` is built and committed beside `text/`;
2. `text/` is renamed `text.old/`;
3. `text.migrating/` is renamed `text/`;
4. `text.old/` is removed.

Each rename is atomic (POSIX rename(2)), and `_recover` finishes or discards whatever a crash left
behind at the next open: `text/` absent means step 2 happened, so `text.migrating/` is complete.
Processes opening the same directory take turns (an advisory lock on `text.lock`), so one
migrates and the others open the result. While it migrates, it holds the old index's writer lock,
so a process still running the old code cannot write to the copy being replaced.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import tantivy

from service.search.protocol import SearchBackendError

TEXT = "text"
_STAGING = "text.migrating"
_REPLACED = "text.old"
_LOCK = "text.lock"
# The text index's writer heap, for the engine's writer and the migration's alike.
WRITER_HEAP_BYTES = 64 * 1024 * 1024
# tantivy's smallest writer heap per thread (15 MB): the old index's writer is only held as a lock.
_GUARD_HEAP_BYTES = 15_000_000


def open_text_index(
    directory: Path,
    schema: tantivy.Schema,
    prepare: Callable[[tantivy.Index], None],
    rewrite: Callable[[Any], dict[str, Any]],
) -> tantivy.Index:
    """The index in `directory/text` with `schema`, created if absent, migrated if written with
    another schema. `prepare` registers the tokenizers on an index; `rewrite` turns a stored
    document of the old index into the new document's fields."""
    directory.mkdir(parents=True, exist_ok=True)
    with _exclusive(directory / _LOCK):
        _recover(directory)
        text = directory / TEXT
        text.mkdir(exist_ok=True)
        try:
            index = tantivy.Index(schema, path=str(text))
        except ValueError:  # written with another schema (fields, tokenizers)
            _migrate(directory, schema, prepare, rewrite)
            index = tantivy.Index(schema, path=str(text))
    prepare(index)
    return index


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _recover(directory: Path) -> None:
    """Finish a swap that a crash interrupted (`text/` absent: the staged copy is complete), or
    discard a staged copy that was never swapped in, and what the last swap replaced."""
    text, staging, replaced = directory / TEXT, directory / _STAGING, directory / _REPLACED
    if not text.exists():
        if staging.exists():
            os.replace(staging, text)
        elif replaced.exists():  # not reachable by the steps above; never lose the old copy
            os.replace(replaced, text)
        _sync(directory)
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(replaced, ignore_errors=True)


def _migrate(
    directory: Path,
    schema: tantivy.Schema,
    prepare: Callable[[tantivy.Index], None],
    rewrite: Callable[[Any], dict[str, Any]],
) -> None:
    text, staging = directory / TEXT, directory / _STAGING
    try:
        old = tantivy.Index.open(str(text))
    except ValueError as error:  # not an index tantivy can read at all
        raise SearchBackendError(
            f"{text}: {error}; rebuild it with `ragctl reindex`", transient=False
        ) from error
    try:
        guard = old.writer(heap_size=_GUARD_HEAP_BYTES, num_threads=1)
    except ValueError as error:
        raise SearchBackendError(
            f"{text} needs migrating but another process writes to it: {error}", transient=True
        ) from error
    staging.mkdir()
    new = tantivy.Index(schema, path=str(staging))
    prepare(new)
    writer = new.writer(heap_size=WRITER_HEAP_BYTES, num_threads=1)
    searcher = old.searcher()
    total = searcher.num_docs
    try:
        if total:
            for _, address in searcher.search(tantivy.Query.all_query(), total, count=False).hits:
                writer.add_document(tantivy.Document(**rewrite(searcher.doc(address))))
    except (KeyError, IndexError, TypeError) as error:  # a stored document lacks a field it needs
        raise SearchBackendError(
            f"{text}: cannot migrate a stored document ({error!r}); rebuild it with `ragctl reindex`",
            transient=False,
        ) from error
    writer.commit()
    writer.wait_merging_threads()
    del writer, new
    os.replace(text, directory / _REPLACED)
    os.replace(staging, text)
    _sync(directory)
    del guard, old  # releases the old index's writer lock
    shutil.rmtree(directory / _REPLACED, ignore_errors=True)


def _sync(directory: Path) -> None:
    """Make the renames in `directory` durable (fsync of the directory, POSIX)."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
