"""Noise schedules, the DDPM training loss and the DDIM sampler (x0 parameterisation).

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

import torch


def make_alphas_cumprod(schedule: str, timesteps: int) -> torch.Tensor:
    """abar_t for t = 0..T-1, float64 [T].

    Raises:
        ValueError: unknown schedule name.
    """
    if schedule == "linear":
        betas = torch.linspace(1e-4, 0.02, timesteps, dtype=torch.float64)
    elif schedule == "cosine":
        s = 0.008
        steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    else:
        raise ValueError(f"unknown noise schedule {schedule!r}; use 'cosine' or 'linear'")
    return torch.cumprod(1 - betas, dim=0)


class DDPMNoiser:
    """The forward process and the training loss of an x0-predicting denoiser.

    Args:
        schedule: ``"cosine"`` or ``"linear"``; timesteps: T (1000).
    """

    def __init__(self, schedule: str = "cosine", timesteps: int = 1000):
        self.T = timesteps
        self.alphas_cumprod = make_alphas_cumprod(schedule, timesteps)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0): x0, noise [B, ...], t int64 [B] -> x_t [B, ...]."""
        ab = self.alphas_cumprod.to(x0.device)[t].float().view(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    @staticmethod
    def loss(x0_pred: torch.Tensor, x0: torch.Tensor, prev: torch.Tensor,
             velocity_weight: float = 1.0, mask: torch.Tensor | None = None,
             channel_weight: torch.Tensor | None = None) -> dict:
        """x0 MSE plus a velocity term on consecutive frames.

        Args:
            x0_pred, x0: [B, K, D] predicted and true clean chunks (normalized units).
            prev: [B, 1, D] the frame before the chunk (last history frame), so the velocity
                across the chunk boundary is also matched.
            velocity_weight: weight of the velocity MSE.
            mask: optional [B, K] float, 1 for frames that count.
            channel_weight: optional [D] float weight per channel (all 1 when None); the
                losses are divided by the sum of the weights, so they stay means.
        Returns:
            dict with scalar tensors ``loss``, ``x0``, ``velocity``.
        """
        m = torch.ones(x0.shape[:2], device=x0.device) if mask is None else mask
        cw = torch.ones(x0.shape[-1], device=x0.device) if channel_weight is None \
            else channel_weight.to(x0.device)
        denom = m.sum().clamp(min=1) * cw.sum()
        l_x0 = ((((x0_pred - x0) ** 2) * cw).sum(-1) * m).sum() / denom
        vp = torch.diff(torch.cat([prev, x0_pred], 1), dim=1)
        vt = torch.diff(torch.cat([prev, x0], 1), dim=1)
        l_v = ((((vp - vt) ** 2) * cw).sum(-1) * m).sum() / denom
        return {"loss": l_x0 + velocity_weight * l_v, "x0": l_x0, "velocity": l_v}


class DDIMScheduler:
    """DDIM sampler for an x0-predicting model (diffusers-style API).

    Args:
        schedule, train_timesteps: the training noise schedule.
        eta: 0 for deterministic DDIM, 1 for DDPM-like ancestral noise (finite, in [0, 1]).
        clip_min, clip_max: optional tensors [D] bounding x0 (normalized units), or None.

    Use: ``set_timesteps(n)``; then for ``t`` in ``timesteps``:
    ``x = step(x0_pred, t, x, generator)``. The last step returns x0_pred itself.

    Raises:
        ValueError: eta not a finite number in [0, 1].
    """

    def __init__(self, schedule: str = "cosine", train_timesteps: int = 1000, eta: float = 0.0,
                 clip_min: torch.Tensor | None = None, clip_max: torch.Tensor | None = None):
        if isinstance(eta, bool) or not isinstance(eta, numbers.Real) or not (
                math.isfinite(eta) and 0 <= eta <= 1):
            raise ValueError(f"DDIM eta must be a number in [0, 1] (0 = deterministic DDIM, "
                             f"1 = DDPM-like noise), got {eta!r}")
        self.T = train_timesteps
        self.eta = float(eta)
        self.alphas_cumprod = make_alphas_cumprod(schedule, train_timesteps)
        self.clip_min, self.clip_max = clip_min, clip_max
        self.timesteps: list[int] = []
        self._prev: dict[int, int] = {}

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Choose ``num_inference_steps`` timesteps, trailing spacing, descending.

        Raises:
            ValueError: if not 1 <= num_inference_steps <= train_timesteps.
        """
        n = num_inference_steps
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n <= self.T:
            raise ValueError(f"DDIM steps must be an integer in 1..{self.T}, got "
                             f"{num_inference_steps!r}")
        n = int(n)
        ts = [int(round(self.T - i * self.T / n)) - 1 for i in range(n)]
        self.timesteps = ts
        self._prev = {t: (ts[i + 1] if i + 1 < n else -1) for i, t in enumerate(ts)}

    def clip(self, x0: torch.Tensor) -> torch.Tensor:
        """Bound x0 to [clip_min, clip_max] where set."""
        if self.clip_min is not None:
            x0 = torch.maximum(torch.minimum(x0, self.clip_max.to(x0)), self.clip_min.to(x0))
        return x0

    def step(self, x0_pred: torch.Tensor, t: int, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """One DDIM update x_t -> x_{t_prev} (Song et al. 2021, eq. 12).

        Noise for eta > 0 is drawn on the CPU from ``generator`` and moved to the sample's
        device, so CPU and CUDA runs draw the same numbers.
        """
        x0 = self.clip(x0_pred)
        t_prev = self._prev[t]
        if t_prev < 0:
            return x0
        ab_t = float(self.alphas_cumprod[t])
        ab_p = float(self.alphas_cumprod[t_prev])
        eps = (sample - math.sqrt(ab_t) * x0) / math.sqrt(1 - ab_t)
        sigma = self.eta * math.sqrt((1 - ab_p) / (1 - ab_t)) * math.sqrt(1 - ab_t / ab_p)
        out = math.sqrt(ab_p) * x0 + math.sqrt(max(1 - ab_p - sigma ** 2, 0.0)) * eps
        if sigma > 0:
            z = torch.randn(sample.shape, generator=generator, dtype=torch.float32)
            out = out + sigma * z.to(sample.device)
        return out
