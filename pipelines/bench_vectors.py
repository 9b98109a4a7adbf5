"""Synthetic chunk vectors for `ragctl bench query` that resemble MiniLM embeddings of real text.

Why not uniform random unit vectors, or isotropic clusters: an approximate index's recall
depends on the data's geometry, and both are far from real embeddings. Real sentence
embeddings are anisotropic (they share a common direction: the mean of all-MiniLM-L6-v2's
unit vectors on Cranfield and CISI has norm 0.35, and two random chunks have cosine 0.22
on average) and their variance sits in few directions (participation ratio 28 of 384
dimensions; 64 principal axes hold 71% of it). Uniform or isotropic noise spreads it over
all 384, where every point is about as far from every other and a graph index finds the
true neighbours only by luck (recall@10 0.54 with the previous isotropic clusters).

So the bench samples from a Gaussian with the first two moments of real MiniLM chunk
embeddings, then normalises: the mean, and the top `AXES` principal axes with their
variances, measured on the 4,126 chunk embeddings of Cranfield and CISI
(`fit` reproduces `PROFILE` from an embedding cache, see `main`); the remaining variance is
spread evenly over the other directions. This is the maximum-entropy distribution with those
moments: it adds no cluster structure beyond what the covariance implies, so it is, if
anything, harder for a graph index than real text, whose topics cluster.

An approximate index's recall is measured with queries from the same distribution as the data,
as ANN benchmarks do: points drawn from the profile, and `QUESTIONS`, the MiniLM embeddings of
the 337 real questions of Cranfield and CISI, the collections the profile was fitted on
(`python -m pipelines.bench_vectors --questions DIR...` reproduces the file). The bench's own
questions, about this platform's documentation, are embedded live for the latency runs; their
vectors fall outside the profile (no synthetic chunk is about deploying a stack), so their
recall is reported apart.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

PROFILE = Path(__file__).resolve().parent / "bench_data" / "minilm-profile.npz"
QUESTIONS = PROFILE.with_name("minilm-questions.npz")
AXES = 128
Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Profile:
    """Mean, principal axes (rows) with their variances, and the variance per remaining direction."""

    mean: Matrix
    axes: Matrix
    variances: Matrix
    residual: float

    @property
    def dimension(self) -> int:
        return len(self.mean)

    def sample(self, rng: np.random.Generator, count: int) -> Matrix:
        """`count` unit vectors drawn from the profile's Gaussian."""
        along = rng.standard_normal((count, len(self.variances)), dtype=np.float32)
        vectors = self.mean + (along * np.sqrt(self.variances)) @ self.axes
        rest = rng.standard_normal((count, self.dimension), dtype=np.float32)
        rest -= (rest @ self.axes.T) @ self.axes  # only the directions outside the axes
        vectors += np.float32(np.sqrt(self.residual)) * rest
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors.astype(np.float32)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            mean=self.mean.astype(np.float32),
            axes=self.axes.astype(np.float16),
            variances=self.variances.astype(np.float32),
            residual=np.float32(self.residual),
        )


def fit(vectors: Matrix, axes: int = AXES) -> Profile:
    """The profile of a set of embeddings: mean, top `axes` principal axes, residual variance."""
    mean = vectors.mean(axis=0)
    covariance = np.cov((vectors - mean).T)
    values, vecs = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1]
    values, vecs = np.maximum(values[order], 0.0), vecs[:, order]
    others = vectors.shape[1] - axes
    residual = float(values[axes:].sum() / others) if others else 0.0
    return Profile(
        mean.astype(np.float32),
        vecs[:, :axes].T.astype(np.float32),
        values[:axes].astype(np.float32),
        residual,
    )


def load(path: Path = PROFILE) -> Profile:
    with np.load(path) as data:
        axes = data["axes"].astype(np.float32)
        # float16 storage: re-orthonormalise the axes so projections stay exact.
        q, _ = np.linalg.qr(axes.T)
        signs = np.sign(np.sum(q.T * axes, axis=1, keepdims=True))
        return Profile(
            data["mean"].astype(np.float32),
            (q.T * signs).astype(np.float32),
            data["variances"].astype(np.float32),
            float(data["residual"]),
        )


def cached_documents(cache: Path, model: str) -> Matrix:
    """The document embeddings of one model in an embedding cache (`service.embed.cache`)."""
    with sqlite3.connect(cache) as db:
        rows = db.execute(
            "SELECT vector FROM vectors WHERE model = ? AND kind = 'document' ORDER BY key", (model,)
        ).fetchall()
    return np.array([np.frombuffer(blob, dtype=np.float32) for (blob,) in rows], dtype=np.float32)


def questions() -> Matrix:
    """The real question embeddings of the profile's collections (unit vectors, float32)."""
    with np.load(QUESTIONS) as data:
        vectors: Matrix = data["vectors"].astype(np.float32)
    normalised: Matrix = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return normalised


def embed_questions(datasets: list[Path], path: Path = QUESTIONS) -> int:
    """Embed every query of the BEIR `datasets` with the bundled MiniLM and save them (float16)."""
    from service.embed.local import LocalMiniLMEmbedder

    texts = [
        json.loads(line)["text"]
        for dataset in datasets
        for line in (dataset / "queries.jsonl").read_text().splitlines()
        if line.strip()
    ]
    embedder = LocalMiniLMEmbedder()
    vectors = np.array([embedder.embed_query(text) for text in texts], dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, vectors=vectors.astype(np.float16))
    return len(texts)


def main(argv: list[str]) -> int:
    """`python -m pipelines.bench_vectors CACHE [MODEL]`: refit PROFILE, e.g. from the cache that
    `ragctl eval --dataset .../cranfield --dataset .../cisi` fills.
    `python -m pipelines.bench_vectors --questions DIR...`: re-embed QUESTIONS from those datasets."""
    if not argv:
        print(main.__doc__, file=sys.stderr)
        return 2
    if argv[0] == "--questions":
        count = embed_questions([Path(d) for d in argv[1:]])
        print(f"{QUESTIONS}: {count} questions")
        return 0
    vectors = cached_documents(Path(argv[0]), argv[1] if len(argv) > 1 else "all-MiniLM-L6-v2")
    fit(vectors).save(PROFILE)
    print(f"{PROFILE}: fitted on {len(vectors)} embeddings")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
