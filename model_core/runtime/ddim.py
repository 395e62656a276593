"""The DDIM sampler in numpy: the noise schedule, the scheduler and the sampling loop of one
chunk, shared by every inference backend (torch and onnxruntime compute only the network's
x0 prediction; everything else here is float32 numpy, so both backends draw the same noise
from the same :class:`NoiseGenerator` in the same order).

References:
- DDPM: Ho, Jain, Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020
  (forward process q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), linear betas
  1e-4 .. 0.02).
- Cosine schedule: Nichol & Dhariwal, "Improved DDPM", ICML 2021, eq. 17 (s = 0.008,
  betas clipped at 0.999).
- DDIM: Song, Meng, Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, eq. 12 and 16
  (sigma_t(eta)).
- "Trailing" timestep spacing: Lin et al., "Common Diffusion Noise Schedules and Sample
  Steps are Flawed", WACV 2024, Table 2.
- Classifier-free guidance: Ho & Salimans 2022, applied to the x0 prediction.
The scheduler API (``set_timesteps``, ``timesteps``, ``step``) follows diffusers.
"""

from __future__ import annotations

import math
import numbers
from typing import Callable

import numpy as np
from ..errors import SettingError


class NoiseGenerator:
    """The sampler's Gaussian noise, in numpy: the very numbers ``torch.randn(shape,
    generator=torch.Generator().manual_seed(seed))`` draws on the CPU, one call after another
    (to float32 rounding), so the torch backend kept its frames when the noise moved to numpy
    and every backend draws the same noise.

    How torch draws them (ATen ``normal_fill``, tensors of 16 or more elements): one uniform
    per element from a 32-bit Mersenne Twister seeded with the seed's low 32 bits,
    ``(bits & 0xFFFFFF) / 2**24``; then Box-Muller on each block of 16 (element j pairs with
    j + 8); a size that is not a multiple of 16 draws 16 fresh uniforms for its last 16
    elements and transforms them again. Smaller tensors (fewer than 16 elements, only a
    latent model with K * D < 16 would ask) use the same recipe on one block of 16, keeping
    its first elements: there torch's numbers would differ, ours stay the same in every
    backend.

    Args:
        seed: 0..2**64-1 (only the low 32 bits matter, as in torch).
    """

    def __init__(self, seed: int):
        self._mt = np.random.RandomState(int(seed) & 0xFFFFFFFF)

    def _uniform(self, n: int) -> np.ndarray:
        bits = self._mt.randint(0, 2 ** 32, size=n, dtype=np.uint32)
        return (bits & 0xFFFFFF).astype(np.float64) * 2.0 ** -24

    @staticmethod
    def _box_muller(block: np.ndarray) -> np.ndarray:
        """float64 [..., 16] uniforms -> normals, pairing element j with j + 8."""
        u1, u2 = 1.0 - block[..., :8], block[..., 8:]
        radius = np.sqrt(-2.0 * np.log(u1))
        theta = 2.0 * math.pi * u2
        return np.concatenate([radius * np.cos(theta), radius * np.sin(theta)], axis=-1)

    def standard_normal(self, shape, dtype=np.float32) -> np.ndarray:
        """Standard normal float32 noise of ``shape`` (``dtype`` must be float32: the
        signature of :meth:`numpy.random.Generator.standard_normal`)."""
        if np.dtype(dtype) != np.float32:
            raise ValueError(f"NoiseGenerator draws float32 noise, not {np.dtype(dtype)}")
        shape = tuple(int(d) for d in np.atleast_1d(shape))
        n = int(np.prod(shape))
        if n < 16:
            return self._box_muller(self._uniform(16))[:n].astype(np.float32).reshape(shape)
        data = self._uniform(n)
        full = n - n % 16
        data[:full] = self._box_muller(data[:full].reshape(-1, 16)).reshape(-1)
        if n % 16:
            data[n - 16:] = self._box_muller(self._uniform(16))
        return data.astype(np.float32).reshape(shape)


def make_alphas_cumprod(schedule: str, timesteps: int) -> np.ndarray:
    """abar_t for t = 0..T-1, float64 [T].

    Raises:
        ValueError: unknown schedule name.
    """
    if schedule == "linear":
        betas = np.linspace(1e-4, 0.02, timesteps, dtype=np.float64)
    elif schedule == "cosine":
        s = 0.008
        steps = np.arange(timesteps + 1, dtype=np.float64) / timesteps
        f = np.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = np.minimum(1 - f[1:] / f[:-1], 0.999)
    else:
        raise ValueError(f"unknown noise schedule {schedule!r}; use 'cosine' or 'linear'")
    return np.cumprod(1 - betas)


class DDIMScheduler:
    """DDIM sampler for an x0-predicting model (diffusers-style API), numpy float32.

    Args:
        schedule, train_timesteps: the training noise schedule.
        eta: 0 for deterministic DDIM, 1 for DDPM-like ancestral noise (finite, in [0, 1]).
        clip_min, clip_max: optional float32 arrays [D] bounding x0 (normalized units), or
            None (both or neither).

    Use: ``set_timesteps(n)``; then for ``t`` in ``timesteps``:
    ``x = step(x0_pred, t, x, rng)``. The last step returns x0_pred itself (clipped).

    Raises:
        ValueError: eta not a finite number in [0, 1].
    """

    def __init__(self, schedule: str = "cosine", train_timesteps: int = 1000, eta: float = 0.0,
                 clip_min: np.ndarray | None = None, clip_max: np.ndarray | None = None):
        if isinstance(eta, bool) or not isinstance(eta, numbers.Real) or not (
                math.isfinite(eta) and 0 <= eta <= 1):
            raise SettingError(f"DDIM eta must be a number in [0, 1] (0 = deterministic DDIM, "
                             f"1 = DDPM-like noise), got {eta!r}")
        self.T = train_timesteps
        self.eta = float(eta)
        self.alphas_cumprod = make_alphas_cumprod(schedule, train_timesteps)
        self.clip_min = None if clip_min is None else np.asarray(clip_min, np.float32)
        self.clip_max = None if clip_max is None else np.asarray(clip_max, np.float32)
        self.timesteps: list[int] = []
        self._prev: dict[int, int] = {}

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Choose ``num_inference_steps`` timesteps, trailing spacing, descending.

        Raises:
            ValueError: if not 1 <= num_inference_steps <= train_timesteps.
        """
        n = num_inference_steps
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n <= self.T:
            raise SettingError(f"DDIM steps must be an integer in 1..{self.T}, got "
                             f"{num_inference_steps!r}")
        n = int(n)
        ts = [int(round(self.T - i * self.T / n)) - 1 for i in range(n)]
        self.timesteps = ts
        self._prev = {t: (ts[i + 1] if i + 1 < n else -1) for i, t in enumerate(ts)}

    def clip(self, x0: np.ndarray) -> np.ndarray:
        """Bound x0 (float32 [..., D]) to [clip_min, clip_max] where set."""
        if self.clip_min is not None:
            x0 = np.maximum(np.minimum(x0, self.clip_max), self.clip_min)
        return x0

    def step(self, x0_pred: np.ndarray, t: int, sample: np.ndarray,
             rng: "NoiseGenerator | np.random.Generator | None" = None) -> np.ndarray:
        """One DDIM update x_t -> x_{t_prev} (Song et al. 2021, eq. 12).

        Args:
            x0_pred: float32 [..., D], the network's clean prediction; t: the current
                timestep (one of ``timesteps``); sample: x_t, float32, same shape;
            rng: where the eta noise (float32, ``sample``'s shape) is drawn from (a
                :class:`NoiseGenerator`, or anything with its ``standard_normal``); needed
                only when eta > 0.
        Returns:
            x_{t_prev}, float32, ``sample``'s shape (x0 itself after the last timestep).
        Raises:
            ValueError: eta > 0 and no ``rng``.
        """
        x0 = self.clip(np.asarray(x0_pred, np.float32))
        t_prev = self._prev[t]
        if t_prev < 0:
            return x0
        ab_t = float(self.alphas_cumprod[t])
        ab_p = float(self.alphas_cumprod[t_prev])
        eps = (sample - np.float32(math.sqrt(ab_t)) * x0) / np.float32(math.sqrt(1 - ab_t))
        sigma = self.eta * math.sqrt((1 - ab_p) / (1 - ab_t)) * math.sqrt(1 - ab_t / ab_p)
        out = (np.float32(math.sqrt(ab_p)) * x0
               + np.float32(math.sqrt(max(1 - ab_p - sigma ** 2, 0.0))) * eps)
        if sigma > 0:
            if rng is None:
                raise ValueError("DDIM with eta > 0 needs a random generator (rng)")
            out = out + np.float32(sigma) * rng.standard_normal(sample.shape, dtype=np.float32)
        return out.astype(np.float32, copy=False)


def sample_ddim(denoise: Callable[[np.ndarray, int], np.ndarray], shape: tuple[int, ...],
                scheduler: DDIMScheduler, rng: NoiseGenerator, guidance: float = 1.0,
                noise_scale: np.ndarray | None = None) -> np.ndarray:
    """The DDIM loop of one chunk, for any backend.

    Noise order (the same in every backend): the initial noise ``shape`` float32 from
    ``rng.standard_normal``, then, with eta > 0, one draw of ``shape`` per step but the last.

    Args:
        denoise: ``denoise(x_t, t) -> x0`` where x_t is float32 ``shape`` [N, K, D] and x0 is
            float32 [B, K, D]: without guidance B = N (N chunks at once: a session's one, or
            a training batch's rollout); with guidance N = 1 and B = 2 (row 0 with the
            audio, row 1 without).
        shape: (N, K, D); scheduler: timesteps set; rng: the session's generator;
        guidance: classifier-free guidance scale on the audio (1 = off), or a float32 [D]
            scale per channel (then B = 2);
        noise_scale: optional per-channel scale float32 [D] of the initial noise.
    Returns:
        the sampled chunks x0, model space, float32 ``shape``.
    """
    x = rng.standard_normal(shape, dtype=np.float32)
    if noise_scale is not None:
        x = x * noise_scale
    g = np.asarray(guidance, np.float32)
    guided = bool(np.any(g != 1.0))
    for t in scheduler.timesteps:
        x0 = denoise(x, t)
        if guided:
            x0 = x0[1:] + g * (x0[:1] - x0[1:])
        x = scheduler.step(x0, t, x, rng)
    return x
