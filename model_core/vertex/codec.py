"""PCA motion codec: vertex offsets from the template <-> a compact latent of D channels.

``z = ((x - mean) @ components.T) / scale`` with ``x`` the flattened offsets [V*3],
``components`` the top D principal directions (orthonormal rows) of the training offsets and
``scale`` the per-component standard deviation (whitening: every latent channel has unit
variance on the training set, so the model's normalization works whatever the mesh units).
``decode`` inverts it: ``x = mean + (z * scale) @ components``.

Saved as one safetensors file (``mean`` [3V], ``components`` [D, 3V], ``scale`` [D],
``explained_variance_ratio`` [D], float32; metadata ``kind = "pca"``, ``n_vertices``,
``n_frames_fit``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from ..io.files import atomic_write
from ..runtime.device import exact_matmul


class PCACodec:
    """A fitted PCA codec. Build with :meth:`fit` or :meth:`load`.

    Attributes:
        mean: float32 [3V]; components: float32 [D, 3V] orthonormal rows; scale: float32 [D]
        (std of each component, native units); explained_variance_ratio: float32 [D]
        (fraction of the training offsets' total variance per component);
        n_vertices: V; n_components: D; n_frames_fit: frames used to fit.
    """

    def __init__(self, mean, components, scale, explained_variance_ratio, n_frames_fit: int = 0):
        self.mean = np.ascontiguousarray(np.asarray(mean, np.float32).ravel())
        self.components = np.ascontiguousarray(components, np.float32)
        self.scale = np.asarray(scale, np.float32).ravel()
        self.explained_variance_ratio = np.asarray(explained_variance_ratio, np.float32).ravel()
        self.n_frames_fit = int(n_frames_fit)
        D, F = self.components.shape
        if F % 3 or F != self.mean.size or self.scale.size != D \
                or self.explained_variance_ratio.size != D:
            raise ValueError(f"PCA codec: inconsistent shapes mean {self.mean.shape}, "
                             f"components {self.components.shape}, scale {self.scale.shape}")

    @property
    def n_vertices(self) -> int:
        return self.mean.size // 3

    @property
    def n_components(self) -> int:
        return self.components.shape[0]

    @property
    def explained_variance(self) -> float:
        """Total fraction of the training variance the D components keep (0..1)."""
        return float(self.explained_variance_ratio.sum())

    @property
    def channel_names(self) -> list[str]:
        """``pc000`` ... : the latent channel names for :class:`~model_core.runtime.config.ModelConfig`."""
        return [f"pc{i:03d}" for i in range(self.n_components)]

    # -- fitting -------------------------------------------------------------------------
    @classmethod
    def fit(cls, offsets, n_components: int = 128, max_frames: int | None = 50000,
            seed: int = 0, device="cpu", exact_limit: int = 4000) -> "PCACodec":
        """Fit on training offsets (vertices minus each speaker's template).

        Args:
            offsets: a list of float [T_i, V, 3] arrays, or one array [N, V, 3] / [N, 3V].
            n_components: D (clipped to min(N, 3V)).
            max_frames: at most this many frames (drawn uniformly with ``seed``) are used,
                bounding memory (VOCASET train: ~40 k frames x 15069 floats); None = all.
            device: torch device for the SVD (``"cuda"`` is much faster on BIWI).
            exact_limit: full SVD when min(N, 3V) <= this, else a randomized SVD
                (``torch.svd_lowrank``, 6 power iterations, oversampling 16 directions).
        Returns:
            the codec; ``explained_variance_ratio`` relative to the exact total variance.
        Raises:
            ValueError: no frames, inconsistent vertex counts or non-finite values.
        """
        if isinstance(offsets, np.ndarray):
            parts = [offsets]
        else:
            parts = list(offsets)
        if not parts:
            raise ValueError("PCA codec: no training offsets")
        F = None
        flat = []
        for a in parts:
            a = np.asarray(a, np.float32)
            a = a.reshape(a.shape[0], -1)
            if F is not None and a.shape[1] != F:
                raise ValueError(f"PCA codec: sequences with different vertex counts "
                                 f"({a.shape[1] // 3} vs {F // 3})")
            F = a.shape[1]
            flat.append(a)
        X = np.concatenate(flat)
        if X.shape[0] == 0 or F % 3:
            raise ValueError(f"PCA codec: need [N, V, 3] offsets, got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("PCA codec: offsets contain NaN or infinite values")
        if max_frames is not None and X.shape[0] > max_frames:
            idx = np.sort(np.random.default_rng(seed).choice(X.shape[0], max_frames, replace=False))
            X = X[idx]
        import torch    # fitting only: decoding (inference) is numpy

        N = X.shape[0]
        mean = X.astype(np.float64).mean(0)
        Xt = torch.from_numpy(X).to(device=device, dtype=torch.float64 if min(N, F) <= exact_limit
                                    else torch.float32)
        Xt = Xt - torch.from_numpy(mean).to(Xt)
        total = float((Xt.double() ** 2).sum()) / max(1, N - 1)
        D = int(min(n_components, N, F))
        if min(N, F) <= exact_limit:
            _, S, Vh = torch.linalg.svd(Xt, full_matrices=False)
            S, Vh = S[:D], Vh[:D]
        else:
            torch.manual_seed(seed)
            _, S, V = torch.svd_lowrank(Xt, q=min(D + 16, N, F), niter=6)
            S, Vh = S[:D], V[:, :D].T
        var = (S.double() ** 2 / max(1, N - 1)).cpu().numpy()
        comps = Vh.double().cpu().numpy()
        scale = np.sqrt(np.maximum(var, 1e-30))
        evr = var / total if total > 0 else np.zeros_like(var)
        return cls(mean, comps, scale, evr, n_frames_fit=N)

    # -- coding --------------------------------------------------------------------------
    def _flat(self, offsets) -> tuple[np.ndarray, tuple]:
        a = np.asarray(offsets, np.float32)
        lead = a.shape[:-2] if a.ndim >= 2 and a.shape[-1] == 3 and a.shape[-2] == self.n_vertices \
            else a.shape[:-1]
        a = a.reshape(*lead, -1) if lead else a.reshape(-1)
        if a.shape[-1] != self.mean.size:
            raise ValueError(f"PCA codec: expected offsets of {self.n_vertices} vertices "
                             f"([..., V, 3] or [..., 3V]), got shape {np.shape(offsets)}")
        return a, lead

    def encode(self, offsets) -> np.ndarray:
        """Offsets float [T, V, 3] (or [T, 3V]) -> latents float32 [T, D] (whitened units)."""
        a, _ = self._flat(offsets)
        return (((a - self.mean) @ self.components.T) / self.scale).astype(np.float32)

    def decode(self, latents) -> np.ndarray:
        """Latents float [T, D] -> offsets float32 [T, V, 3] (native units); the same bits
        in every process (:func:`~model_core.runtime.device.exact_matmul`)."""
        z = np.asarray(latents, np.float32)
        if z.shape[-1] != self.n_components:
            raise ValueError(f"PCA codec: expected latents [..., {self.n_components}], "
                             f"got {z.shape}")
        x = self.mean + exact_matmul(z * self.scale, self.components)
        return x.reshape(*z.shape[:-1], self.n_vertices, 3).astype(np.float32)

    def reconstruction_error(self, offsets) -> float:
        """Mean Euclidean vertex error of encode -> decode (native units)."""
        a, _ = self._flat(offsets)
        rec = self.decode(self.encode(a)).reshape(a.shape)
        return float(np.linalg.norm((rec - a).reshape(-1, 3), axis=1).mean())

    # -- files ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the codec as safetensors (temporary name + rename).

        Raises:
            FileExistsError: ``path`` exists and ``overwrite`` is False.
        """
        p = Path(path)
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} already exists; choose a new name")
        return atomic_write(p, lambda tmp: save_file(
            {"mean": self.mean, "components": self.components, "scale": self.scale,
             "explained_variance_ratio": self.explained_variance_ratio}, str(tmp),
            metadata={"kind": "pca", "n_vertices": str(self.n_vertices),
                      "n_frames_fit": str(self.n_frames_fit)}), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PCACodec":
        """Read a codec written by :meth:`save`.

        Raises:
            FileNotFoundError; ValueError: missing tensors or inconsistent shapes.
        """
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"codec file not found: {p}")
        try:
            t = load_file(str(p))
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{p}: truncated or corrupt safetensors file ({e})") from None
        need = {"mean", "components", "scale", "explained_variance_ratio"}
        if not need <= set(t):
            raise ValueError(f"{p}: not a PCA codec (missing {sorted(need - set(t))})")
        from safetensors import safe_open
        with safe_open(str(p), "np") as f:
            meta = f.metadata() or {}
        return cls(t["mean"], t["components"], t["scale"], t["explained_variance_ratio"],
                   int(meta.get("n_frames_fit", 0)))

    def summary(self) -> str:
        return (f"PCA codec: {self.n_components} components over {self.n_vertices} vertices, "
                f"explained variance {100 * self.explained_variance:.2f} % "
                f"(fitted on {self.n_frames_fit} frames)")
