"""The DDPM forward process and training loss (x0 parameterisation), in torch. The noise
schedule and the DDIM sampler are numpy, shared by every inference backend
(:mod:`model_core.runtime.ddim`; re-exported here).

References (DDPM, the cosine schedule): :mod:`model_core.runtime.ddim`.
"""

from __future__ import annotations

import torch

from .ddim import DDIMScheduler, make_alphas_cumprod

__all__ = ["DDIMScheduler", "DDPMNoiser", "make_alphas_cumprod"]


class DDPMNoiser:
    """The forward process and the training loss of an x0-predicting denoiser.

    Args:
        schedule: ``"cosine"`` or ``"linear"``; timesteps: T (1000).
    """

    def __init__(self, schedule: str = "cosine", timesteps: int = 1000):
        self.T = timesteps
        self.alphas_cumprod = torch.from_numpy(make_alphas_cumprod(schedule, timesteps))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0): x0, noise [B, ...], t int64 [B] -> x_t [B, ...]."""
        ab = self.alphas_cumprod.to(x0.device)[t].float().view(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    @staticmethod
    def loss(x0_pred: torch.Tensor, x0: torch.Tensor, prev: torch.Tensor,
             velocity_weight: float = 1.0, mask: torch.Tensor | None = None,
             channel_weight: torch.Tensor | None = None,
             element_weight: torch.Tensor | None = None) -> dict:
        """x0 MSE plus a velocity term on consecutive frames.

        Args:
            x0_pred, x0: [B, K, D] predicted and true clean chunks (normalized units).
            prev: [B, 1, D] the frame before the chunk (last history frame), so the velocity
                across the chunk boundary is also matched.
            velocity_weight: weight of the velocity MSE.
            mask: optional [B, K] float, 1 for frames that count.
            channel_weight: optional [D] float weight per channel (all 1 when None); the
                losses are divided by the sum of the weights, so they stay means.
            element_weight: optional [B, K, D] further factor per frame and channel (e.g. the
                closure weight on P/B/M frames); not in the divisor, so it adds weight.
        Returns:
            dict with scalar tensors ``loss``, ``x0``, ``velocity``.
        """
        m = torch.ones(x0.shape[:2], device=x0.device) if mask is None else mask
        cw = torch.ones(x0.shape[-1], device=x0.device) if channel_weight is None \
            else channel_weight.to(x0.device)
        denom = m.sum().clamp(min=1) * cw.sum()
        if element_weight is not None:
            cw = cw * element_weight.to(x0.device)
        l_x0 = ((((x0_pred - x0) ** 2) * cw).sum(-1) * m).sum() / denom
        vp = torch.diff(torch.cat([prev, x0_pred], 1), dim=1)
        vt = torch.diff(torch.cat([prev, x0], 1), dim=1)
        l_v = ((((vp - vt) ** 2) * cw).sum(-1) * m).sum() / denom
        return {"loss": l_x0 + velocity_weight * l_v, "x0": l_x0, "velocity": l_v}
