"""An on-disk embedding cache: re-running `ragctl eval` (or a reindex) never re-embeds a known text.

`CachingEmbedder(inner, path)` implements the `Embedder` protocol around any
embedder. Vectors are stored in one SQLite file keyed by the inner model id and
the SHA-256 of the exact text, as little-endian float32, so a cache can be
shared by several models and survives text reordering. Queries are cached too
(in their own namespace: some models embed queries and passages differently).

The cache lives outside any search index (by default under `<data_dir>/cache/`),
so deleting it is always safe: it only costs time.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

from service.embed.protocol import Embedder

DEFAULT_FILE = "embeddings.sqlite"
_SQL_VARIABLES = 500


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _pack(vector: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)


def _unpack(blob: bytes) -> list[float]:
    return list(struct.unpack(f"<{len(blob) // 4}f", blob))


class CachingEmbedder:
    """Wraps `inner`; only texts missing from the cache reach it, in their original order."""

    def __init__(self, inner: Embedder, path: Path) -> None:
        self.inner = inner
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (model TEXT NOT NULL, kind TEXT NOT NULL, "
            "key TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (model, kind, key))"
        )
        self._db.commit()
        self.hits = 0
        self.misses = 0

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _lookup(self, kind: str, keys: Sequence[str]) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _SQL_VARIABLES):
            batch = unique[start : start + _SQL_VARIABLES]
            marks = ",".join("?" * len(batch))
            rows = self._db.execute(
                f"SELECT key, vector FROM vectors WHERE model = ? AND kind = ? AND key IN ({marks})",  # noqa: S608
                (self.model_id, kind, *batch),
            )
            for key, blob in rows:
                vector = _unpack(blob)
                if len(vector) == self.dimension:
                    found[key] = vector
        return found

    def _store(self, kind: str, items: dict[str, list[float]]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO vectors (model, kind, key, vector) VALUES (?, ?, ?, ?)",
            [(self.model_id, kind, key, _pack(vector)) for key, vector in items.items()],
        )
        self._db.commit()

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        keys = [text_key(t) for t in texts]
        with self._lock:
            found = self._lookup("document", keys)
        missing = {key: text for key, text in zip(keys, texts, strict=True) if key not in found}
        if missing:
            vectors = self.inner.embed_documents(list(missing.values()))
            fresh = dict(zip(missing, vectors, strict=True))
            with self._lock:
                self._store("document", fresh)
            found.update(fresh)
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        return [found[key] for key in keys]

    def embed_query(self, text: str) -> list[float]:
        key = text_key(text)
        with self._lock:
            found = self._lookup("query", [key])
        if key in found:
            self.hits += 1
            return found[key]
        vector = self.inner.embed_query(text)
        with self._lock:
            self._store("query", {key: vector})
        self.misses += 1
        return vector
