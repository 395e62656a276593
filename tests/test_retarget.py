"""Retargeting a vertex sequence onto shape keys by bounded least squares."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import lsq_linear

from model_core.retarget import fit_shape_key_weights


def _rig(rng, V=60, K=7):
    basis = rng.normal(size=(V, 3))
    deltas = rng.normal(size=(K, V, 3)) * 0.1
    return basis, deltas


def test_recovers_known_weights():
    rng = np.random.default_rng(0)
    basis, deltas = _rig(rng)
    w = rng.uniform(0, 1, size=(40, 7))
    w[:5, 0] = 0.0
    w[5:10, 1] = 1.0                          # on the bounds too
    verts = basis[None] + np.einsum("tk,kvc->tvc", w, deltas)
    est, info = fit_shape_key_weights(verts, basis, deltas, return_info=True)
    assert est.shape == (40, 7) and est.dtype == np.float32
    assert np.abs(est - w).max() <= 1e-4
    assert info["residual"].max() < 1e-5
    one = fit_shape_key_weights(verts[3], basis, deltas)
    assert one.shape == (7,) and np.abs(one - w[3]).max() <= 1e-4


def test_clips_outside_span_orthogonal():
    # orthogonal deltas: the bounded solution is exactly the clipped unconstrained one
    V, K = 30, 4
    basis = np.zeros((V, 3))
    deltas = np.zeros((K, V, 3))
    for k in range(K):
        deltas[k, k * 5:(k + 1) * 5, 1] = 1.0
    w = np.array([[1.7, -0.4, 0.5, 2.0], [0.2, 0.3, -3.0, 0.9]])
    verts = np.einsum("tk,kvc->tvc", w, deltas)
    verts[:, 25:, 0] += 0.3                   # plus something no key can make
    est, info = fit_shape_key_weights(verts, basis, deltas, return_info=True)
    assert np.allclose(est, np.clip(w, 0, 1), atol=1e-6)
    assert info["n_bounded"] == 2


def test_bounded_matches_lsq_linear():
    rng = np.random.default_rng(1)
    basis, deltas = _rig(rng, V=40, K=6)
    w = rng.uniform(-1.0, 2.0, size=(12, 6))
    verts = basis[None] + np.einsum("tk,kvc->tvc", w, deltas) + rng.normal(size=(12, 40, 3)) * 0.01
    est = fit_shape_key_weights(verts, basis, deltas)
    assert est.min() >= 0 and est.max() <= 1
    A = deltas.reshape(6, -1).T
    for t in range(12):
        ref = lsq_linear(A, (verts[t] - basis).ravel(), bounds=(0, 1), method="bvls").x
        assert np.abs(est[t] - ref).max() <= 1e-5


def test_bad_shapes():
    with pytest.raises(ValueError):
        fit_shape_key_weights(np.zeros((2, 5, 3)), np.zeros((4, 3)), np.zeros((1, 5, 3)))
    with pytest.raises(ValueError):
        fit_shape_key_weights(np.zeros((2, 5, 3)), np.zeros((5, 3)), np.zeros((0, 5, 3)))
    with pytest.raises(ValueError):
        fit_shape_key_weights(np.full((2, 5, 3), np.nan), np.zeros((5, 3)), np.ones((1, 5, 3)))


def test_retarget_cli(tmp_path):
    import argparse
    from model_core.vertex_cli import add_vertex_parsers
    rng = np.random.default_rng(2)
    basis, deltas = _rig(rng, V=20, K=3)
    w = rng.uniform(0, 1, size=(6, 3))
    np.save(tmp_path / "v.npy", (basis[None] + np.einsum("tk,kvc->tvc", w, deltas)).reshape(6, -1))
    np.savez(tmp_path / "rig.npz", basis=basis, deltas=deltas, names=np.array(["a", "b", "c"]))
    ap = argparse.ArgumentParser()
    add_vertex_parsers(ap.add_subparsers(dest="command"))
    args = ap.parse_args(["retarget", str(tmp_path / "v.npy"), "--basis", str(tmp_path / "rig.npz"),
                          "-o", str(tmp_path / "w.npz")])
    assert args.func(args) == 0
    z = np.load(tmp_path / "w.npz")
    assert list(z["names"]) == ["a", "b", "c"] and np.abs(z["weights"] - w).max() <= 1e-4
    with pytest.raises(FileExistsError):
        args.func(args)
