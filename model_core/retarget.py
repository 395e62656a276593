"""Retargeting a vertex sequence onto a shape-key rig of the same topology.

For each frame t we solve the bounded least-squares problem

    w_t = argmin_{0 <= w <= 1} || sum_k w_k * deltas[k] - (vertices[t] - basis) ||^2

(``deltas[k] = shape key k - basis``), as :func:`scipy.optimize.lsq_linear` does.

Efficiency: with A = deltas as a [3V, K] matrix and its thin QR factorization A = Q R (done
once), ``||A w - b||^2 = ||R w - Q^T b||^2 + const``, so every frame reduces to a K x K
problem. All frames are first solved unconstrained at once (one triangular/least-squares
solve for the [K, T] right-hand sides); frames whose solution already lies in [0, 1]
(within ``1e-9``) are exact answers of the bounded problem and are kept; only the
others call ``lsq_linear`` (method ``"bvls"``, exact active-set) on the small R system.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import lsq_linear

__all__ = ["fit_shape_key_weights"]


def fit_shape_key_weights(vertices, basis, deltas, lower: float = 0.0, upper: float = 1.0,
                          tol: float = 1e-10, return_info: bool = False):
    """Shape-key weights that best reproduce a vertex sequence, each in [lower, upper].

    Args:
        vertices: float [T, V, 3] target positions (or one frame [V, 3]).
        basis: float [V, 3] the rig's basis (rest) shape, same units and space.
        deltas: float [K, V, 3] shape key minus basis, for the K keys to solve for.
        lower, upper: weight bounds (Blender's default slider range is [0, 1]).
        tol: ``lsq_linear`` tolerance for the bounded frames.
        return_info: also return ``{"n_bounded": frames that needed lsq_linear,
            "residual": per-frame RMS vertex residual [T] (native units)}``.
    Returns:
        float32 [T, K] weights (``[K]`` for a single frame), or (weights, info).
    Raises:
        ValueError: mismatched shapes, no keys, or non-finite values.
    """
    v = np.asarray(vertices, np.float64)
    single = v.ndim == 2
    if single:
        v = v[None]
    b0 = np.asarray(basis, np.float64)
    d = np.asarray(deltas, np.float64)
    if v.ndim != 3 or v.shape[2] != 3:
        raise ValueError(f"vertices must be [T, V, 3], got {np.shape(vertices)}")
    V = v.shape[1]
    if b0.shape != (V, 3):
        raise ValueError(f"basis must be [{V}, 3], got {b0.shape}")
    if d.ndim != 3 or d.shape[1:] != (V, 3) or d.shape[0] == 0:
        raise ValueError(f"deltas must be [K, {V}, 3] with K >= 1, got {d.shape}")
    if not (np.all(np.isfinite(v)) and np.all(np.isfinite(b0)) and np.all(np.isfinite(d))):
        raise ValueError("vertices, basis and deltas must be finite")
    if not lower < upper:
        raise ValueError(f"need lower < upper, got {lower}, {upper}")
    T, K = v.shape[0], d.shape[0]
    A = d.reshape(K, -1).T                      # [3V, K]
    B = (v - b0[None]).reshape(T, -1).T         # [3V, T]
    if A.shape[0] >= K:
        Q, R = np.linalg.qr(A)                  # A = Q R, Q [3V, K], R [K, K]
        C = Q.T @ B                             # [K, T]
    else:                                       # fewer coordinates than keys: keep A
        R, C = A, B
    W = np.linalg.lstsq(R, C, rcond=None)[0]    # unconstrained, all frames at once [K, T]
    bad = np.flatnonzero(((W < lower - 1e-9) | (W > upper + 1e-9)).any(0))
    for t in bad:
        W[:, t] = lsq_linear(R, C[:, t], bounds=(lower, upper), method="bvls", tol=tol).x
    W = np.clip(W, lower, upper).T              # [T, K]
    out = W[0] if single else W
    out = out.astype(np.float32)
    if not return_info:
        return out
    res = (A @ W.T - B)                         # [3V, T]
    rms = np.sqrt((res ** 2).reshape(V, 3, T).sum(1).mean(0))
    return out, {"n_bounded": int(len(bad)), "residual": rms.astype(np.float32)}
