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

__all__ = ["ShapeKeyRetargeter", "RetargetSession", "RetargetedModel",
           "fit_shape_key_weights"]


class ShapeKeyRetargeter:
    """Bounded least-squares fit onto one shape-key rig, factorized once (thin QR of the
    [3V, K] delta matrix) and reused for every frame or batch of frames.

    Args:
        basis: float [V, 3] the rig's basis (rest) shape, same units and space as the
            vertices to fit.
        deltas: float [K, V, 3] shape key minus the key it is relative to, for the K keys.
        lower, upper: weight bounds (Blender's default slider range is [0, 1]).
        tol: ``lsq_linear`` tolerance for the frames that hit a bound.
    Raises:
        ValueError: mismatched shapes, no keys, non-finite values or ``lower >= upper``.
    """

    def __init__(self, basis, deltas, lower: float = 0.0, upper: float = 1.0, tol: float = 1e-10):
        b0 = np.asarray(basis, np.float64)
        d = np.asarray(deltas, np.float64)
        if b0.ndim != 2 or b0.shape[1] != 3:
            raise ValueError(f"basis must be [V, 3], got {b0.shape}")
        V = b0.shape[0]
        if d.ndim != 3 or d.shape[1:] != (V, 3) or d.shape[0] == 0:
            raise ValueError(f"deltas must be [K, {V}, 3] with K >= 1, got {d.shape}")
        if not (np.all(np.isfinite(b0)) and np.all(np.isfinite(d))):
            raise ValueError("basis and deltas must be finite")
        if not lower < upper:
            raise ValueError(f"need lower < upper, got {lower}, {upper}")
        self.basis, self.lower, self.upper, self.tol = b0, float(lower), float(upper), tol
        self.n_vertices, self.n_keys = V, d.shape[0]
        self.A = d.reshape(self.n_keys, -1).T           # [3V, K]
        if self.A.shape[0] >= self.n_keys:
            self.Q, self.R = np.linalg.qr(self.A)       # A = Q R, Q [3V, K], R [K, K]
        else:                                           # fewer coordinates than keys: keep A
            self.Q, self.R = None, self.A

    def __call__(self, vertices, return_info: bool = False):
        """Weights for float [T, V, 3] vertices (or one frame [V, 3]): float32 [T, K]
        (``[K]`` for one frame), each in [lower, upper]; with ``return_info`` also
        ``{"n_bounded": frames that needed lsq_linear, "residual": per-frame RMS vertex
        residual [T] (native units)}``.

        Raises:
            ValueError: vertices not [T, V, 3] for this rig's V, or not finite.
        """
        v = np.asarray(vertices, np.float64)
        single = v.ndim == 2
        if single:
            v = v[None]
        V = self.n_vertices
        if v.ndim != 3 or v.shape[1:] != (V, 3):
            raise ValueError(f"vertices must be [T, {V}, 3] for this rig, got {np.shape(vertices)}")
        if not np.all(np.isfinite(v)):
            raise ValueError("vertices must be finite")
        T = v.shape[0]
        B = (v - self.basis[None]).reshape(T, -1).T     # [3V, T]
        C = B if self.Q is None else self.Q.T @ B       # [K, T]
        W = np.linalg.lstsq(self.R, C, rcond=None)[0]   # unconstrained, all frames at once
        lo, hi = self.lower, self.upper
        bad = np.flatnonzero(((W < lo - 1e-9) | (W > hi + 1e-9)).any(0))
        for t in bad:
            W[:, t] = lsq_linear(self.R, C[:, t], bounds=(lo, hi), method="bvls", tol=self.tol).x
        W = np.clip(W, lo, hi).T                        # [T, K]
        out = (W[0] if single else W).astype(np.float32)
        if not return_info:
            return out
        res = self.A @ W.T - B                          # [3V, T]
        rms = np.sqrt((res ** 2).reshape(V, 3, T).sum(1).mean(0))
        return out, {"n_bounded": int(len(bad)), "residual": rms.astype(np.float32)}


class RetargetSession:
    """A vertex streaming session whose frames come out as shape-key weights: a
    :class:`~model_core.runtime.driver.Session`.

    ``push(samples)`` -> float32 [n_new, K]; ``flush()`` -> the rest; ``latency_ms``;
    ``fps`` (the vertex session's); ``channel_names`` (the K shape-key names). The same
    contract as :class:`~model_core.runtime.session.StreamingSession` (each frame is fitted
    on its own, so chunking cannot change the result).

    Args:
        session: a :class:`~model_core.vertex.model.VertexSession` (frames [n, V, 3]);
        retargeter: the rig's :class:`ShapeKeyRetargeter` (same V);
        names: the K shape-key names (default ``key000``...).
    Raises:
        ValueError: ``names`` is not K names.
    """

    def __init__(self, session, retargeter: ShapeKeyRetargeter, names=None):
        self.session, self.retargeter = session, retargeter
        self.fps = session.fps
        K = retargeter.n_keys
        self.channel_names = [str(n) for n in names] if names is not None else [
            f"key{i:03d}" for i in range(K)]
        if len(self.channel_names) != K:
            raise ValueError(f"{len(self.channel_names)} names for {K} shape keys")

    @property
    def latency_ms(self) -> float:
        return self.session.latency_ms

    def _fit(self, verts: np.ndarray) -> np.ndarray:
        if len(verts) == 0:
            return np.zeros((0, self.retargeter.n_keys), np.float32)
        return self.retargeter(verts)

    def push(self, samples) -> np.ndarray:
        return self._fit(self.session.push(samples))

    def flush(self) -> np.ndarray:
        return self._fit(self.session.flush())


class RetargetedModel:
    """A vertex model seen through one shape-key rig: its sessions give the rig's shape-key
    weights, so whatever drives an ARKit model (a file, a sound strip, a live microphone)
    drives it the same way: ``stream(seed, style, steps, fps)``, ``fps``, ``sample_rate``,
    ``channel_names`` (the K key names).

    Args:
        model: a :class:`~model_core.vertex.model.VertexModel` (torch or onnx backend);
        basis: float [V, 3], the rig's basis shape, also the speaker template the model's
            offsets are added to; deltas: float [K, V, 3] (:class:`ShapeKeyRetargeter`);
        names: the K shape-key names.
    Raises:
        ValueError: as :class:`ShapeKeyRetargeter`, or ``names`` is not K names.
    """

    def __init__(self, model, basis, deltas, names):
        self.model = model
        self.fps, self.sample_rate = model.fps, model.sample_rate
        self.basis = np.asarray(basis, np.float32)
        self.retargeter = ShapeKeyRetargeter(basis, deltas)
        self.channel_names = [str(n) for n in names]
        if len(self.channel_names) != self.retargeter.n_keys:
            raise ValueError(f"{len(self.channel_names)} names for "
                             f"{self.retargeter.n_keys} shape keys")

    def stream(self, seed: int = 0, style=None, **kwargs) -> RetargetSession:
        """A :class:`RetargetSession` over the model's session with the basis as template;
        ``seed``, ``style`` and the keywords (``steps``, ``fps``, ...) as
        :meth:`VertexModel.stream <model_core.vertex.model.VertexModel.stream>`."""
        return RetargetSession(self.model.stream(self.basis, seed=seed, style=style, **kwargs),
                               self.retargeter, self.channel_names)


def fit_shape_key_weights(vertices, basis, deltas, lower: float = 0.0, upper: float = 1.0,
                          tol: float = 1e-10, return_info: bool = False):
    """Shape-key weights that best reproduce a vertex sequence, each in [lower, upper]
    (one-off :class:`ShapeKeyRetargeter`).

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
    return ShapeKeyRetargeter(basis, deltas, lower, upper, tol)(vertices, return_info)
