"""The bench's synthetic vectors have the shape of the embeddings they were fitted on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines import bench_vectors


def test_samples_have_the_fitted_mean_and_principal_axes(tmp_path: Path) -> None:
    # Given anisotropic unit vectors: a common direction plus variance along a few axes
    rng = np.random.default_rng(2)
    dim, axes = 48, 4
    basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)
    spread = np.concatenate([[1.0, 0.7, 0.5, 0.4], np.full(dim - 1 - axes, 0.02)]).astype(np.float32)
    raw = 1.2 * basis[0] + (rng.standard_normal((5000, dim - 1)).astype(np.float32) * spread) @ basis[1:]
    real = (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)
    # When a profile is fitted, saved, loaded and sampled
    path = tmp_path / "profile.npz"
    bench_vectors.fit(real, axes=axes).save(path)
    profile = bench_vectors.load(path)
    samples = profile.sample(np.random.default_rng(3), 5000)
    # Then the samples are unit vectors with the real mean direction and strength
    assert np.allclose(np.linalg.norm(samples, axis=1), 1.0, atol=1e-5)
    real_mean, sample_mean = real.mean(axis=0), samples.mean(axis=0)
    # (within 0.05: normalising the Gaussian samples shifts it slightly)
    assert abs(np.linalg.norm(sample_mean) - np.linalg.norm(real_mean)) < 0.05
    cosine = sample_mean @ real_mean / (np.linalg.norm(sample_mean) * np.linalg.norm(real_mean))
    assert cosine > 0.99
    # And their variance lies along the same principal axes, unlike isotropic noise
    top = np.linalg.eigh(np.cov((samples - sample_mean).T))[1][:, -axes:]
    captured = np.linalg.norm(profile.axes @ top) ** 2 / axes
    assert captured > 0.9


def test_the_shipped_profile_is_minilm_shaped() -> None:
    # Given the profile the bench ships / Then it has MiniLM's 384 dimensions and its anisotropy
    profile = bench_vectors.load()
    assert profile.dimension == 384
    assert 0.3 < float(np.linalg.norm(profile.mean)) < 0.4
