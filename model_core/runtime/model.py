"""StreamTalkerModel: the network plus its config, normalization, sampler and sessions."""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm import tqdm

from ..face import is_lip_channel
from ..io.audio import to_model_rate
from .config import ChunkGeometry, ModelConfig
from .diffusion import DDIMScheduler, DDPMNoiser
from .device import resolve_device
from .driver import run
from .frontend import frontend_feat_dim
from .network import StreamTalkerNet
from .session import ResampledSession, StreamingSession


class StreamTalkerModel:
    """A loaded model. Build with :func:`model_core.load_model` or :meth:`from_config`.

    Attributes:
        config: the :class:`ModelConfig`.
        fps: model frames per second; sample_rate: 16000 Hz; channel_names: D names;
        net: the :class:`StreamTalkerNet`; device: torch.device.
    """

    def __init__(self, config: ModelConfig, net: StreamTalkerNet, device="cpu"):
        self.config = config
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        self.geometry = ChunkGeometry(config)

    @classmethod
    def from_config(cls, config: ModelConfig, device="cpu", seed: int = 0) -> "StreamTalkerModel":
        """A freshly initialised (untrained) model; weights from ``torch.manual_seed(seed)``."""
        torch.manual_seed(seed)
        return cls(config, StreamTalkerNet(config, frontend_feat_dim(config)), device)

    # -- properties ----------------------------------------------------------------------
    @property
    def fps(self) -> float:
        return self.config.fps

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def channel_names(self) -> list[str]:
        return list(self.config.channel_names)

    @property
    def dim(self) -> int:
        return self.config.dim

    def latency_ms(self, chunk_frames: int | None = None) -> float:
        """Algorithmic latency (chunk + look-ahead) in milliseconds of a ``chunk_frames``
        chunk (None: the config's)."""
        return self.geometry.latency_ms(self.config.chunk_frames if chunk_frames is None
                                        else chunk_frames)

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

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Model space -> data space; ARKit weights clipped to [0, 1]."""
        y = x * self.net.data_std + self.net.data_mean
        return y.clamp(0.0, 1.0) if self.config.output_kind == "arkit" else y

    def x0_bounds(self):
        """(min, max) of x0 in model space: the image of [0, 1] for ARKit, else (None, None)."""
        if self.config.output_kind != "arkit":
            return None, None
        lo = (0.0 - self.net.data_mean) / self.net.data_std
        hi = (1.0 - self.net.data_mean) / self.net.data_std
        return lo.detach(), hi.detach()

    def rest_history(self, batch: int = 1) -> torch.Tensor:
        """History window filled with the rest pose, model space, [batch, H, D]."""
        rest = self.normalize(self.net.rest_pose).detach()
        return rest.view(1, 1, -1).expand(batch, self.config.history_frames, -1).clone()

    def check_style(self, style) -> int:
        """Style index for the network: None -> the learned 'unknown' style.

        Raises:
            ValueError: style outside 0..n_styles-1.
        """
        n = self.config.n_styles
        if style is None:
            return n
        if isinstance(style, bool) or not isinstance(style, (int, np.integer)) or not 0 <= style < n:
            raise ValueError(f"style must be None or an integer in 0..{n - 1} "
                             f"(this model was trained on {n} identities), got {style!r}")
        return int(style)

    # -- sampling ------------------------------------------------------------------------
    def noise_scale(self, lip_temperature: float) -> torch.Tensor | None:
        """Per-channel scale of the initial DDIM noise, float32 [D], or None when all are 1:
        ``lip_temperature`` on the jaw*/mouth* channels of an ARKit model."""
        if lip_temperature == 1.0 or self.config.output_kind != "arkit":
            return None
        return self._lip_scale(lip_temperature)

    def _lip_scale(self, value: float) -> torch.Tensor:
        """float32 [D]: ``value`` on the lip channels (:func:`model_core.face.is_lip_channel`),
        1 elsewhere."""
        return torch.tensor([value if is_lip_channel(n) else 1.0 for n in self.channel_names],
                            dtype=torch.float32)

    def sample_chunk(self, cond_in: dict, K: int, scheduler: DDIMScheduler,
                     generator: torch.Generator, guidance: float = 1.0, t_cache=None,
                     noise_scale: torch.Tensor | None = None) -> torch.Tensor:
        """Run the condition predictor once and the DDIM loop for one chunk.

        Args:
            cond_in: inputs of :meth:`StreamTalkerNet.condition` for batch 1 (no drop_audio).
            K: chunk frames; scheduler: a DDIM scheduler with timesteps set;
            generator: CPU generator for the initial noise (and eta noise);
            guidance: classifier-free guidance scale on audio (1 = off);
            t_cache: optional {timestep: embedding [1, 1, d]} reused across chunks;
            noise_scale: optional per-channel scale [D] of the initial noise (see
            :meth:`noise_scale`).
        Returns:
            the sampled chunk x0, model space, float32 [1, K, D].
        """
        net, dev = self.net, self.device
        cfg_on = guidance != 1.0
        B = 2 if cfg_on else 1
        if cfg_on:
            cond_in = {k: torch.cat([v, v]) for k, v in cond_in.items()}
        drop = torch.tensor([False, True][:B], device=dev)
        cond = net.condition(drop_audio=drop, **cond_in)
        base = net.denoise_prepare(cond, cond_in["history"])
        x = torch.randn((1, K, self.dim), generator=generator, dtype=torch.float32)
        if noise_scale is not None:
            x = x * noise_scale
        x = x.to(dev)
        for t in scheduler.timesteps:
            if t_cache is not None and t in t_cache:
                temb = t_cache[t]
            else:
                temb = net.timestep_embedding(torch.tensor([t], device=dev))
            x0 = net.denoise_step(base, x.expand(B, -1, -1), temb)
            if cfg_on:
                x0 = x0[1:] + guidance * (x0[:1] - x0[1:])
            x = scheduler.step(x0, t, x, generator)
        return x

    def stream(self, seed: int = 0, style: int | None = None, chunk_frames: int | None = None,
               steps: int | None = None, eta: float | None = None, guidance: float | None = None,
               fps: float | None = None, lip_temperature: float | None = None):
        """Open a streaming session: a :class:`~model_core.runtime.session.StreamingSession`,
        wrapped in a :class:`~model_core.runtime.session.ResampledSession` when ``fps``
        differs from the model's. Both are :class:`~model_core.runtime.driver.Session` s.

        Args:
            seed: sampling seed (same seed + same audio -> same frames).
            style: training identity 0..n_styles-1, or None for the learned unknown style.
            chunk_frames: K, frames per step (default from the config).
            steps: DDIM steps; eta: DDIM eta; guidance: CFG scale (defaults from the config).
            fps: output frame rate (default: the model's); other rates are interpolated.
            lip_temperature: initial-noise scale on jaw/mouth channels (default from the config).
        Raises:
            ValueError: a setting out of range.
        """
        session = StreamingSession(self, seed=seed, style=style, chunk_frames=chunk_frames,
                                   steps=steps, eta=eta, guidance=guidance,
                                   lip_temperature=lip_temperature)
        if fps is None or fps == self.config.fps:
            return session
        return ResampledSession(session, fps)

    def generate(self, audio, sample_rate: int, seed: int = 0, progress: bool = False,
                 **stream_kwargs) -> np.ndarray:
        """Whole-file generation: the streaming session run over the audio.

        Args:
            audio: samples [N] or [N, C] (float, int16 or int32), any rate; float samples
                beyond ±4 (``audio.SAMPLE_LIMIT``) are clipped, with an AudioWarning.
            sample_rate: rate of ``audio`` in Hz, 4000..384000 (resampled to 16 kHz with soxr).
            seed: sampling seed, 0..2**64-1; progress: show a tqdm bar; other keywords go to
                :meth:`stream`.
        Returns:
            float32 [round(duration_s * fps), D], finite; ARKit weights in [0, 1].
        Raises:
            AudioError: empty, non-finite or badly shaped audio; ValueError: a sample rate
            that is not a number of Hz in 4000..384000 (a bool included), or bad settings
            (see :class:`~model_core.runtime.session.StreamingSession`).
        """
        x = to_model_rate(audio, sample_rate)
        session = self.stream(seed=seed, **stream_kwargs)
        block = self.sample_rate  # 1 s pushes; the result does not depend on the block size
        with tqdm(total=math.ceil(len(x) / block), unit="s", desc="generate",
                  disable=not progress, leave=False) as bar:
            return run(session, x, block, on_progress=lambda _: bar.update(1))

    # -- training ------------------------------------------------------------------------
    def training_loss(self, batch: dict, noiser: DDPMNoiser, generator=None, net=None) -> dict:
        """DDPM loss (x0 + velocity) on a batch of chunk examples.

        Args:
            batch: ``feats`` [B, M, F], ``mel_offset`` [B], ``align_idx`` [B, K],
                ``align_w`` [B, K], ``history`` [B, H, D] and ``target`` [B, K, D] in data
                space, ``style`` [B] int64 (n_styles = unknown), optional ``mask`` [B, K].
            noiser: the forward process; generator: CPU generator for noise, timesteps and
                condition dropout; net: the module to call (e.g. a DistributedDataParallel
                wrapper of ``self.net``), default ``self.net``.
        Returns:
            dict of scalar tensors (``loss``, ``x0``, ``velocity``).
        """
        cfg, dev = self.config, self.device
        net = net or self.net
        b = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
        B = b["target"].shape[0]
        x0 = self.normalize(b["target"])
        clean = self.normalize(b["history"])
        hist = self.corrupt_history(clean, generator)
        style = b["style"].clone()
        style[torch.rand(B, generator=generator).to(dev) < cfg.style_drop] = cfg.n_styles
        drop = torch.rand(B, generator=generator).to(dev) < cfg.cond_drop
        R = max(1, cfg.diffusion_repeats)
        x0r = x0.repeat(R, 1, 1)
        t = torch.randint(0, noiser.T, (R * B,), generator=generator).to(dev)
        noise = torch.randn(x0r.shape, generator=generator).to(dev)
        out = net(b["feats"], b["mel_offset"], b["align_idx"], b["align_w"], hist, style, drop,
                  noiser.add_noise(x0r, noise, t), t)
        x0_pred = out[0] if isinstance(out, tuple) else out
        mask = b.get("mask")
        # the velocity loss anchors on the true last frame: the target continues the real
        # motion, not the corrupted history the network was shown
        losses = DDPMNoiser.loss(x0_pred.float(), x0r, clean[:, -1:].repeat(R, 1, 1),
                                 cfg.velocity_weight, None if mask is None else mask.repeat(R, 1),
                                 self.loss_channel_weights())
        if isinstance(out, tuple):
            losses.update(self._viseme_loss(out[1], out[2], b, drop))
            losses["loss"] = losses["loss"] + cfg.aux_viseme_weight * losses["viseme"]
        return losses

    def corrupt_history(self, hist: torch.Tensor, generator=None) -> torch.Tensor:
        """The training history window, made less trustworthy so that the model learns to
        follow the audio rather than continue the history (exposure bias: at inference the
        history is the model's own output). Per example: with probability
        ``history_drop`` the history becomes the rest pose (as at a stream start);
        otherwise it is shrunk towards the data mean by a factor drawn from
        U(0, ``history_shrink``) and given Gaussian noise of a std drawn from
        U(0, ``history_noise``) (normalized units). With ``history_corrupt = "lips"`` only
        the jaw*/mouth* channels are corrupted (the upper face keeps its true history, which
        its blinks and gaze continue).

        Args:
            hist: float32 [B, H, D] normalized history; generator: CPU generator.
        Returns:
            float32 [B, H, D].
        """
        cfg, dev = self.config, hist.device
        B = hist.shape[0]
        clean = hist

        def u(scale):
            return (scale * torch.rand(B, 1, 1, generator=generator)).to(dev)

        if cfg.history_shrink > 0:
            hist = hist * (1.0 - u(cfg.history_shrink))
        if cfg.history_noise > 0:
            sd = u(cfg.history_noise) if (cfg.history_shrink > 0 or cfg.history_drop > 0) \
                else cfg.history_noise
            hist = hist + sd * torch.randn(hist.shape, generator=generator).to(dev)
        if cfg.history_drop > 0:
            rest = self.rest_history(B).to(dev)
            drop = (torch.rand(B, 1, 1, generator=generator) < cfg.history_drop).to(dev)
            hist = torch.where(drop, rest, hist)
        if cfg.history_corrupt == "lips" and cfg.output_kind == "arkit":
            lips = torch.tensor([is_lip_channel(n) for n in self.channel_names], device=dev)
            hist = torch.where(lips, hist, clean)
        return hist

    def loss_channel_weights(self) -> torch.Tensor | None:
        """Per-channel weights [D] of the x0/velocity loss: ``lip_loss_weight`` on the
        jaw*/mouth* channels of an ARKit model, 1 elsewhere; None when all are 1."""
        w = self.config.lip_loss_weight
        if w == 1.0 or self.config.output_kind != "arkit":
            return None
        return self._lip_scale(w)

    @staticmethod
    def _viseme_loss(audio_logits, cond_logits, b: dict, drop) -> dict:
        """Cross-entropy of the auxiliary viseme heads against ``mel_visemes`` [B, M] and
        ``frame_visemes`` [B, K] (-1 = unknown); the condition's labels are ignored where
        the audio was dropped. Returns ``viseme`` (the mean of both) and ``viseme_acc``
        (accuracy at the chunk frames)."""
        import torch.nn.functional as F
        mel_lab = b.get("mel_visemes")
        frame_lab = b.get("frame_visemes")
        if mel_lab is None or frame_lab is None:
            zero = audio_logits.sum() * 0.0
            return {"viseme": zero, "viseme_acc": zero.detach()}
        frame_lab = torch.where(drop.view(-1, 1), torch.full_like(frame_lab, -1), frame_lab)
        ce_a = F.cross_entropy(audio_logits.float().flatten(0, 1), mel_lab.flatten(),
                               ignore_index=-1)
        ce_c = F.cross_entropy(cond_logits.float().flatten(0, 1), frame_lab.flatten(),
                               ignore_index=-1)
        ce_a = torch.nan_to_num(ce_a)   # a batch without labels gives NaN
        ce_c = torch.nan_to_num(ce_c)
        known = frame_lab >= 0
        acc = ((cond_logits.argmax(-1) == frame_lab) & known).sum() / known.sum().clamp(min=1)
        return {"viseme": 0.5 * (ce_a + ce_c), "viseme_acc": acc.detach().float()}
