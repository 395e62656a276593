"""StreamTalkerModel: the torch backend -- the network (:class:`StreamTalkerNet`) and its part
of sampling. Sessions, the DDIM loop and ``generate`` are the backend-independent
:class:`~model_core.runtime.inference.InferenceModel`'s; the training objective (loss,
history corruption, rollouts, guidance distillation) is :mod:`model_core.training.objective`'s,
outside the runtime."""

from __future__ import annotations

import numpy as np
import torch

from .config import ModelConfig
from .device import resolve_device
from .frontend import frontend_feat_dim
from .inference import InferenceModel, Normalization
from .network import StreamTalkerNet


class StreamTalkerModel(InferenceModel):
    """The torch backend: a loaded model whose network runs in torch. Build with
    :func:`model_core.load_model` or :meth:`from_config`; train with
    :mod:`model_core.training` (the objective: :func:`model_core.training.objective.training_loss`).

    Attributes:
        config: the :class:`ModelConfig`.
        fps: model frames per second; sample_rate: 16000 Hz; channel_names: D names;
        net: the :class:`StreamTalkerNet`; device: torch.device.
    """

    backend = "torch"

    def __init__(self, config: ModelConfig, net: StreamTalkerNet, device="cpu"):
        super().__init__(config)
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()

    @classmethod
    def from_config(cls, config: ModelConfig, device="cpu", seed: int = 0) -> "StreamTalkerModel":
        """A freshly initialised (untrained) model; weights from ``torch.manual_seed(seed)``."""
        torch.manual_seed(seed)
        return cls(config, StreamTalkerNet(config, frontend_feat_dim(config)), device)

    # -- properties ----------------------------------------------------------------------
    def parameter_count(self) -> int:
        """Trainable parameters of the network (a pretrained speech encoder not counted)."""
        return sum(p.numel() for p in self.net.parameters())

    def to(self, device) -> "StreamTalkerModel":
        self.device = resolve_device(device)
        self.net.to(self.device)
        return self

    # -- normalization -------------------------------------------------------------------
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Data space [..., D] -> model space (per-channel mean/std)."""
        return (x - self.net.data_mean) / self.net.data_std

    def rest_history(self, batch: int = 1) -> torch.Tensor:
        """History window filled with the rest pose, model space, [batch, H, D]."""
        rest = self.normalize(self.net.rest_pose).detach()
        return rest.view(1, 1, -1).expand(batch, self.config.history_frames, -1).clone()

    # -- the torch backend's part of sampling (InferenceModel) --------------------------
    @property
    def normalization(self) -> Normalization:
        """The output normalization, from the network's buffers (numpy float32 [D])."""
        net = self.net
        return Normalization(*(b.detach().float().cpu().numpy()
                               for b in (net.data_mean, net.data_std, net.rest_pose)),
                             clip01=self.config.output_kind == "arkit")

    @torch.inference_mode()
    def timestep_cache(self, timesteps: list[int]) -> dict:
        """{t: the head's timestep embedding, tensor [1, 1, head_dim]} for ``timesteps``."""
        dev = self.device
        return {t: self.net.timestep_embedding(torch.tensor([t], device=dev)) for t in timesteps}

    @torch.inference_mode()
    def chunk_denoiser(self, cond_in: dict, drop_audio: np.ndarray, t_cache: dict):
        """See :meth:`InferenceModel.chunk_denoiser`: the condition predictor and
        ``denoise_prepare`` run here, once; the returned function runs ``denoise_step``."""
        net, dev = self.net, self.device
        c = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dev) for k, v in cond_in.items()}
        cond = net.condition(drop_audio=torch.from_numpy(drop_audio).to(dev), **c)
        base = net.denoise_prepare(cond, c["history"])
        B = len(drop_audio)

        def denoise(x: np.ndarray, t: int) -> np.ndarray:
            with torch.inference_mode():
                temb = t_cache[t]
                x_t = torch.from_numpy(np.ascontiguousarray(x)).to(dev).expand(B, -1, -1)
                return net.denoise_step(base, x_t, temb).float().cpu().numpy()
        return denoise
