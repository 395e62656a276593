"""StreamTalkerModel: the torch backend -- the network (:class:`StreamTalkerNet`) plus what
training needs. Sessions, the DDIM loop and ``generate`` are the backend-independent
:class:`~model_core.runtime.inference.InferenceModel`'s."""

from __future__ import annotations

import numpy as np
import torch

from ..face import is_lip_channel
from .config import ModelConfig
from .ddim import NoiseGenerator, sample_ddim
from .diffusion import DDPMNoiser
from .device import resolve_device
from .frontend import frontend_feat_dim
from .inference import InferenceModel, Normalization, lip_scale
from .network import StreamTalkerNet


class StreamTalkerModel(InferenceModel):
    """A loaded model on the torch backend. Build with :func:`model_core.load_model` or
    :meth:`from_config`.

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

    # -- training ------------------------------------------------------------------------
    def training_loss(self, batch: dict, noiser: DDPMNoiser, generator=None, net=None,
                      teacher=None, teacher_history: str = "student") -> dict:
        """DDPM loss (x0 + velocity) on a batch of chunk examples.

        With a ``teacher`` (guidance distillation, after Meng et al., "On Distillation of
        Guided Diffusion Models", CVPR 2023, stage 1) the target is not the data but the
        teacher's classifier-free-guided x0 prediction at the same noisy input, history and
        style, ``x0_u + g * (x0_c - x0_u)`` with the per-channel ``g`` of
        :meth:`InferenceModel.guidance_scale`; the student always hears the audio, so one
        unguided pass of it samples what two guided passes of the teacher did. The teacher
        sees the history the student trains on (``teacher_history = "student"``), or the
        true one: ``"true"`` on every channel, ``"true_lips"`` on the jaw*/mouth* channels
        only (ARKit models; the upper face keeps the student's history, so the blinks the
        student starts are continued). A teacher that sees the true history is a privileged
        expert, as in DAgger (Ross et al., AISTATS 2011): from its own drifted or corrupted
        past the student learns what the guided teacher does from the right one.

        Args:
            batch: ``feats`` [B, M, F], ``mel_offset`` [B], ``align_idx`` [B, K],
                ``align_w`` [B, K], ``history`` [B, H, D] and ``target`` [B, K, D] in data
                space, ``style`` [B] int64 (n_styles = unknown), optional ``mask`` [B, K],
                optional ``frame_closure`` [B, K] (1 on P/B/M frames: their lip channels'
                losses weigh ``closure_loss_weight`` times more).
            noiser: the forward process; generator: CPU generator for noise, timesteps and
                condition dropout; net: the module to call (e.g. a DistributedDataParallel
                wrapper of ``self.net``), default ``self.net``.
            teacher: None, or a frozen :class:`StreamTalkerModel` whose ``config.guidance``
                (and ``guidance_channels``) the student learns to include.
            teacher_history: ``"student"``, ``"true"`` or ``"true_lips"`` (above).
        Returns:
            dict of scalar tensors (``loss``, ``x0``, ``velocity``).
        Raises:
            ValueError: an unknown ``teacher_history``, or ``"true_lips"`` for a model
                without ARKit channels.
        """
        cfg, dev = self.config, self.device
        net = net or self.net
        b = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
        B = b["target"].shape[0]
        x0 = self.normalize(b["target"])
        clean = self.normalize(b["history"])
        style = b["style"].clone()
        if "rollout_feats" in b:
            hist = self.rollout_history(b, style, generator)
        else:
            hist = self.corrupt_history(clean, generator)
        style[torch.rand(B, generator=generator).to(dev) < cfg.style_drop] = cfg.n_styles
        drop = torch.rand(B, generator=generator).to(dev) < cfg.cond_drop
        if teacher is not None:
            drop = torch.zeros_like(drop)
        R = max(1, cfg.diffusion_repeats)
        x0r = x0.repeat(R, 1, 1)
        t = torch.randint(0, noiser.T, (R * B,), generator=generator).to(dev)
        noise = torch.randn(x0r.shape, generator=generator).to(dev)
        x_t = noiser.add_noise(x0r, noise, t)
        out = net(b["feats"], b["mel_offset"], b["align_idx"], b["align_w"], hist, style, drop,
                  x_t, t)
        x0_pred = out[0] if isinstance(out, tuple) else out
        target = x0r if teacher is None else teacher.guided_x0(
            b, self._teacher_history(teacher_history, hist, clean), style, x_t, t)
        mask = b.get("mask")
        # the velocity loss anchors on the true last frame: the target continues the real
        # motion, not the corrupted history the network was shown
        losses = DDPMNoiser.loss(x0_pred.float(), target, clean[:, -1:].repeat(R, 1, 1),
                                 cfg.velocity_weight, None if mask is None else mask.repeat(R, 1),
                                 self.loss_channel_weights(), self._closure_weights(b, R))
        if isinstance(out, tuple):
            losses.update(self._viseme_loss(out[1], out[2], b, drop))
            losses["loss"] = losses["loss"] + cfg.aux_viseme_weight * losses["viseme"]
        return losses

    @torch.no_grad()
    def guided_x0(self, b: dict, hist: torch.Tensor, style: torch.Tensor, x_t: torch.Tensor,
                  t: torch.Tensor) -> torch.Tensor:
        """This model's classifier-free-guided x0 prediction float32 [R*B, K, D] (normalized)
        for a training batch ``b`` (on its device), history ``hist`` [B, H, D], ``style`` [B],
        noisy chunks ``x_t`` [R*B, K, D] at timesteps ``t`` [R*B], with
        ``config.guidance`` on the channels ``config.guidance_channels`` names: the target
        of guidance distillation (:meth:`training_loss` with ``teacher``)."""
        g = self.guidance_scale(self.config.guidance)
        g = torch.as_tensor(np.asarray(g, np.float32), device=x_t.device)
        B = hist.shape[0]
        args = (b["feats"], b["mel_offset"], b["align_idx"], b["align_w"], hist, style)
        x0 = []
        for dropped in (False, True):
            out = self.net(*args, torch.full((B,), dropped, device=x_t.device), x_t, t)
            x0.append((out[0] if isinstance(out, tuple) else out).float())
        return x0[1] + g * (x0[0] - x0[1])

    @torch.no_grad()
    def rollout_history(self, b: dict, style: torch.Tensor, generator=None) -> torch.Tensor:
        """The history window a rollout batch trains on (``ModelConfig.rollout_chunks``):
        the true history before the J chunks that precede each example, continued by J
        chunks this model samples itself, with no gradient, in eval mode, by the sessions'
        own path (:meth:`chunk_denoiser` and :func:`~.ddim.sample_ddim`, the config's DDIM
        steps, eta, lip_temperature and blink_temperature, no guidance: what a guidance-distilled model
        samples), so the example's chunk is learnt from the history the model will really
        give itself.

        Args:
            b: the batch (on this model's device) with the ``rollout_*`` tensors of
                :class:`~model_core.training.batches.ChunkBatcher`; style: int64 [B];
            generator: CPU generator (seeds the sampling noise).
        Returns:
            float32 [B, H, D], normalized.
        """
        cfg = self.config
        hist = self.normalize(b["rollout_history"])
        B, J, K = b["rollout_align_idx"].shape
        scheduler = self.ddim_scheduler(cfg.sample_steps, cfg.eta)
        t_cache = self.timestep_cache(scheduler.timesteps)
        noise_scale = self.noise_scale(cfg.lip_temperature, cfg.blink_temperature)
        rng = NoiseGenerator(int(torch.randint(2 ** 62, (1,), generator=generator)))
        roll = {k: b[f"rollout_{k}"].cpu().numpy()
                for k in ("feats", "mel_offset", "align_idx", "align_w")}
        style_np, keep_audio = style.cpu().numpy(), np.zeros(B, bool)
        was_training = self.net.training
        self.net.eval()
        try:
            h = hist.float().cpu().numpy()
            for c in range(J):
                cond_in = {k: v[:, c] for k, v in roll.items()}
                denoise = self.chunk_denoiser({**cond_in, "history": h, "style": style_np},
                                              keep_audio, t_cache)
                x = sample_ddim(denoise, (B, K, cfg.dim), scheduler, rng, 1.0, noise_scale)
                h = np.concatenate([h[:, K:], x], axis=1)
        finally:
            self.net.train(was_training)
        return torch.from_numpy(h).to(hist.device)

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
            hist = torch.where(self._lip_channels(dev), hist, clean)
        return hist

    #: what the distillation teacher's history may be (:meth:`training_loss`)
    TEACHER_HISTORIES = ("student", "true", "true_lips")

    def check_teacher_history(self, which: str, name: str = "teacher_history") -> str:
        """``which`` if this model's distillation teacher may see that history
        (:data:`TEACHER_HISTORIES`; ``"true_lips"`` for ARKit models only).

        Raises:
            ValueError: anything else, naming the setting ``name``."""
        if which not in self.TEACHER_HISTORIES or (
                which == "true_lips" and self.config.output_kind != "arkit"):
            raise ValueError(f"{name} must be one of {self.TEACHER_HISTORIES} "
                             f"('true_lips' for ARKit models only), got {which!r}")
        return which

    def _teacher_history(self, which: str, student: torch.Tensor, true: torch.Tensor):
        """The history [B, H, D] the distillation teacher sees (:meth:`training_loss`)."""
        which = self.check_teacher_history(which)
        if which == "student":
            return student
        if which == "true":
            return true
        return torch.where(self._lip_channels(true.device), true, student)

    def _lip_channels(self, device) -> torch.Tensor:
        """bool [D]: the jaw*/mouth* channels (:func:`model_core.face.is_lip_channel`),
        built once per device (the training loss asks for it every batch)."""
        cache = self.__dict__.setdefault("_lip_channel_masks", {})
        key = str(device)
        if key not in cache:
            cache[key] = torch.tensor([is_lip_channel(n) for n in self.channel_names],
                                      device=device)
        return cache[key]

    def _closure_weights(self, b: dict, R: int) -> torch.Tensor | None:
        """[R*B, K, D] factor on the loss: ``closure_loss_weight`` on the lip channels of the
        frames ``frame_closure`` marks, 1 elsewhere; None when off or unmarked."""
        w, fc = self.config.closure_loss_weight, b.get("frame_closure")
        if w == 1.0 or fc is None or self.config.output_kind != "arkit":
            return None
        extra = torch.from_numpy(lip_scale(self.channel_names, w) - 1.0).to(fc.device)
        return (1.0 + fc.float()[..., None] * extra).repeat(R, 1, 1)

    def loss_channel_weights(self) -> torch.Tensor | None:
        """Per-channel weights [D] of the x0/velocity loss: ``lip_loss_weight`` on the
        jaw*/mouth* channels of an ARKit model, 1 elsewhere; None when all are 1."""
        w = self.config.lip_loss_weight
        if w == 1.0 or self.config.output_kind != "arkit":
            return None
        return torch.from_numpy(lip_scale(self.channel_names, w))

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
