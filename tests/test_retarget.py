"""Retargeting a vertex sequence onto shape keys by bounded least squares."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import lsq_linear

from model_core.vertex.retarget import fit_shape_key_weights


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


def test_retargeter_is_reused_and_handles_more_keys_than_coordinates():
    """One factorization serves many calls (same answers as the one-off function), and a rig
    with more keys than coordinates (K > 3V) still gives bounded weights that reproduce it."""
    from model_core.vertex.retarget import ShapeKeyRetargeter
    rng = np.random.default_rng(2)
    basis, deltas = _rig(rng)
    r = ShapeKeyRetargeter(basis, deltas)
    w = rng.uniform(-0.5, 1.5, size=(30, 7))
    verts = basis[None] + np.einsum("tk,kvc->tvc", w, deltas)
    parts = np.concatenate([r(verts[i:i + 7]) for i in range(0, 30, 7)])
    np.testing.assert_array_equal(parts, fit_shape_key_weights(verts, basis, deltas))
    with pytest.raises(ValueError, match=r"\[T, 60, 3\] for this rig"):
        r(verts[:, :50])
    small_basis, many = np.zeros((2, 3)), rng.normal(size=(9, 2, 3))   # K = 9 > 3V = 6
    target = np.einsum("k,kvc->vc", np.full(9, 0.4), many)[None]
    est, info = ShapeKeyRetargeter(small_basis, many)(target, return_info=True)
    assert est.shape == (1, 9) and est.min() >= 0 and est.max() <= 1
    assert info["residual"].max() < 1e-6


def test_retarget_session_streams_like_the_whole_file():
    """A RetargetSession over a vertex session gives, for any push sizes, the weights of the
    whole-file vertices fitted at once."""
    from model_core.vertex.retarget import RetargetSession, ShapeKeyRetargeter
    from model_core.vertex import PCACodec, VertexModel
    rng = np.random.default_rng(3)
    basis, deltas = _rig(rng, V=20, K=3)
    offs = np.einsum("tk,kvc->tvc", rng.uniform(0, 1, size=(300, 3)), deltas).astype(np.float32)
    vm = VertexModel.create(PCACodec.fit([offs], n_components=3), ["a"], d_model=32, head_dim=32,
                            predictor_ff=64, head_ff=64, encoder_channels=16, history_frames=8,
                            sample_steps=2)
    audio = (rng.normal(size=24000) * 0.1).astype(np.float32)
    r = ShapeKeyRetargeter(basis, deltas)
    whole = r(vm.generate(audio, 16000, basis, seed=1))
    sess = RetargetSession(vm.stream(basis, seed=1), r)
    cuts = [0, 1, 500, 5000, 13000, 24000]
    parts = [sess.push(audio[a:b]) for a, b in zip(cuts, cuts[1:])] + [sess.flush()]
    assert all(p.shape[1:] == (3,) and p.dtype == np.float32 for p in parts)
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)
    assert len(whole) == 45 and sess.latency_ms > 0


def test_bad_shapes():
    with pytest.raises(ValueError):
        fit_shape_key_weights(np.zeros((2, 5, 3)), np.zeros((4, 3)), np.zeros((1, 5, 3)))
    with pytest.raises(ValueError):
        fit_shape_key_weights(np.zeros((2, 5, 3)), np.zeros((5, 3)), np.zeros((0, 5, 3)))
    with pytest.raises(ValueError):
        fit_shape_key_weights(np.full((2, 5, 3), np.nan), np.zeros((5, 3)), np.ones((1, 5, 3)))


def test_retarget_cli(tmp_path):
    import argparse
    from model_core.cli.vertex import add_vertex_parsers
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
