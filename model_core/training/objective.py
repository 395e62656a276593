"""The training objective of the torch backend (:class:`~model_core.runtime.model.StreamTalkerModel`):
the DDPM forward process and loss, the history a training example is shown (corrupted, or
the model's own rollout), the per-channel and per-frame loss weights, the auxiliary viseme
loss and guidance distillation from a frozen *distillation parent* (a guided model whose
classifier-free-guided prediction the trained model, its student, learns to give in one
pass). Not to be confused with the phone-rule curves of :mod:`model_core.training.teacher`,
which make the corpus's targets.

Everything here is training-only: the runtime (vendored into Blender) samples with the numpy
DDIM loop of :mod:`model_core.runtime.ddim` and never imports this module.

References: DDPM (Ho et al., NeurIPS 2020) with the x0 parameterisation and the cosine
schedule (:mod:`model_core.runtime.ddim`); guidance distillation after Meng et al., "On
Distillation of Guided Diffusion Models", CVPR 2023, stage 1; a privileged parent that sees
the true history as in DAgger (Ross et al., AISTATS 2011); the speaker-adversarial loss
through a gradient reversal layer after DANN (Ganin et al., "Domain-Adversarial Training of
Neural Networks", JMLR 2016).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..errors import SettingError
from ..face import is_lip_channel
from ..runtime.ddim import NoiseGenerator, make_alphas_cumprod, sample_ddim
from ..runtime.inference import lip_scale

__all__ = ["CLOSURE_CHANNELS", "DDPMNoiser", "Distillation", "OPENING_CHANNELS", "PARENT_HISTORIES",
           "check_open_floor", "check_parent_history", "closure_weights", "distill_scale",
           "open_floor",
           "SpeakerAdversary", "adversary_scale", "corrupt_history", "guided_x0",
           "loss_channel_weights", "rollout_history",
           "training_loss", "viseme_loss"]


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


@dataclass(frozen=True)
class Distillation:
    """Guidance distillation's frozen parent and how its target is made: the one options
    object :func:`training_loss`, :func:`~model_core.training.batches.optimizer_step` and
    the trainer pass (the trainer builds it from ``[train] distill_*``).

    Attributes:
        parent: a frozen :class:`~model_core.runtime.model.StreamTalkerModel` whose
            ``config.guidance`` (on ``config.guidance_channels``) the student learns to
            include.
        history: the history the parent sees: ``"student"``, ``"true"`` or ``"true_lips"``
            (:data:`PARENT_HISTORIES`, :func:`training_loss`).
        scale: None (the parent's own guidance on its guidance channels), or float32 [D]:
            one guidance scale per channel (:func:`distill_scale`: a guidance of its own on
            the lip-sealing channels).
        open_floor: in [0, 1]; > 0: the guided target away from P/B/M is moved that share of
            the way to the data where it would part the lips less (:func:`open_floor`;
            needs the batch's ``frame_closure``).
        open_ceiling: in [0, 1]; > 0: the same where it would part the lips more.
        seal_floor: in [0, 1]; > 0: on P/B/M frames, the guided target is moved that share
            of the way to the data where it would seal the lips less (:func:`open_floor`).
    """
    parent: object
    history: str = "student"
    scale: np.ndarray | None = None
    open_floor: float = 0.0
    open_ceiling: float = 0.0
    seal_floor: float = 0.0


class _GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient times ``-scale`` backward (DANN's gradient reversal
    layer, Ganin et al. 2016, section 4.2)."""

    @staticmethod
    def forward(ctx, x, scale: float):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


class SpeakerAdversary(torch.nn.Module):
    """A speaker classifier on the audio encoder's frames, trained against the encoder
    (``[train] speaker_adversary``): the classifier learns to tell the training voices
    apart from each encoder frame, and the encoder gets that gradient reversed and scaled
    (DANN, Ganin et al., JMLR 2016), so it is pushed toward features that say the phone
    and not who speaks it. Training-only: it is not part of the network, its checkpoint
    or the exported model (the trainer keeps its weights in the step's ``.state.pt``).

    Args:
        channels: the encoder's feature width C (``ModelConfig.encoder_channels``).
        n_speakers: training voices S (ids 0..S-1; -1 in a batch = unknown, ignored).
        hidden: width of the classifier's hidden layer.
    Attributes:
        scale: float >= 0, the weight of the reversed gradient the encoder gets at this
            step (:func:`adversary_scale`); the classifier itself always learns at 1.

    Use: :meth:`attach` to the network once, then :func:`training_loss` with
    ``adversary=`` calls :meth:`loss` after the network's forward pass.
    """

    def __init__(self, channels: int, n_speakers: int, hidden: int = 256):
        super().__init__()
        if n_speakers < 2:
            raise SettingError(f"[train] speaker_adversary needs at least 2 training voices, "
                               f"the corpus has {n_speakers}")
        self.head = torch.nn.Sequential(torch.nn.Linear(channels, hidden), torch.nn.GELU(),
                                        torch.nn.Linear(hidden, n_speakers))
        self.scale = 0.0
        self._feats: torch.Tensor | None = None
        self._hook = None

    def attach(self, net) -> None:
        """Record the audio encoder's output [B, M, C] on every forward pass with a
        gradient (``net.encoder``, or ``net.feat_proj`` for a pretrained front end);
        passes without a gradient (rollouts, validation) are left alone."""
        module = net.encoder if net.encoder is not None else net.feat_proj
        if self._hook is not None:
            self._hook.remove()

        def keep(_module, _inputs, out):
            if torch.is_grad_enabled() and out.requires_grad:
                self._feats = out
        self._hook = module.register_forward_hook(keep)

    def loss(self, speaker: torch.Tensor) -> dict:
        """Cross-entropy of the speaker classifier on the frames of the last forward pass.

        Args:
            speaker: int64 [B], each example's training voice (-1 = unknown: ignored).
        Returns:
            ``speaker`` (mean cross-entropy over the known examples' frames, nats; 0 when
            none is known) and ``speaker_acc`` (frame accuracy), scalar tensors.
        Raises:
            RuntimeError: no forward pass with a gradient since :meth:`attach`.
        """
        import torch.nn.functional as F
        feats, self._feats = self._feats, None
        if feats is None:
            raise RuntimeError("SpeakerAdversary.loss: no encoder output recorded; attach() "
                               "it to the network and run its forward pass first")
        feats = feats.expand(speaker.shape[0], -1, -1)
        logits = self.head(_GradientReversal.apply(feats.float(), float(self.scale)))
        labels = speaker.view(-1, 1).expand(-1, logits.shape[1])
        ce = torch.nan_to_num(F.cross_entropy(logits.flatten(0, 1), labels.flatten(),
                                              ignore_index=-1))
        known = labels >= 0
        acc = ((logits.argmax(-1) == labels) & known).sum() / known.sum().clamp(min=1)
        return {"speaker": ce, "speaker_acc": acc.detach().float()}


def adversary_scale(weight: float, step: int, steps: int) -> float:
    """The reversed gradient's weight at ``step`` (0-based) of ``steps``:
    ``weight * (2 / (1 + exp(-10 p)) - 1)``, p = step / steps, rising from 0 to about
    ``weight`` (DANN's schedule, Ganin et al. 2016, section 5.2.2: the classifier learns
    before the encoder is pushed by it)."""
    p = step / max(1, steps)
    return float(weight) * (2.0 / (1.0 + np.exp(-10.0 * p)) - 1.0)


def training_loss(model, batch: dict, noiser: DDPMNoiser, generator=None, net=None,
                  distill: Distillation | None = None,
                  adversary: SpeakerAdversary | None = None) -> dict:
    """DDPM loss (x0 + velocity) of ``model`` on a batch of chunk examples.

    With guidance distillation (``distill``: its ``parent``, guidance distillation, Meng et al. 2023, stage 1) the
    target is not the data but the parent's classifier-free-guided x0 prediction at the same
    noisy input, history and style, ``x0_u + g * (x0_c - x0_u)`` with the per-channel ``g``
    of :meth:`~model_core.runtime.inference.InferenceModel.guidance_scale`
    (:func:`guided_x0`); the student always hears the audio, so one unguided pass of it
    samples what two guided passes of the parent did. The parent sees the history the
    student trains on (``distill.history = "student"``), or the true one: ``"true"`` on every
    channel, ``"true_lips"`` on the jaw*/mouth* channels only (ARKit models; the upper face
    keeps the student's history, so the blinks the student starts are continued). A parent
    that sees the true history is a privileged expert, as in DAgger: from its own drifted or
    corrupted past the student learns what the guided parent does from the right one.

    Args:
        model: the :class:`~model_core.runtime.model.StreamTalkerModel` being trained.
        batch: ``feats`` [B, M, F], ``mel_offset`` [B], ``align_idx`` [B, K],
            ``align_w`` [B, K], ``history`` [B, H, D] and ``target`` [B, K, D] in data
            space, ``style`` [B] int64 (n_styles = unknown), optional ``mask`` [B, K],
            optional ``frame_closure`` [B, K] (1 on P/B/M frames: their lip channels'
            losses weigh ``closure_loss_weight`` times more), optional ``mel_visemes``
            [B, M] / ``frame_visemes`` [B, K] (:func:`viseme_loss`), optional
            ``rollout_*`` tensors (:func:`rollout_history`); as
            :class:`~model_core.training.batches.ChunkBatcher` makes it.
        noiser: the forward process; generator: CPU generator for noise, timesteps and
            condition dropout (its draws, in order: history corruption or rollout, style
            dropout, condition dropout, timesteps, noise); net: the module to call (e.g. a
            DistributedDataParallel wrapper of ``model.net``), default ``model.net``.
        distill: None (the data is the target), or the :class:`Distillation` parent and
            options (its history: above; its open floor: :func:`open_floor`).
        adversary: None, or a :class:`SpeakerAdversary` attached to ``model.net``; the
            batch then holds ``speaker`` int64 [B], and its cross-entropy is added to
            ``loss`` (its gradient reversed into the encoder).
    Returns:
        dict of scalar tensors: ``loss``, ``x0``, ``velocity``; with the auxiliary viseme
        heads also ``viseme`` and ``viseme_acc``; with the adversary ``speaker`` and
        ``speaker_acc``.
    Raises:
        ValueError: an unknown ``distill.history``, or ``"true_lips"`` for a model without
            ARKit channels; ``distill.open_floor``, ``open_ceiling`` or ``seal_floor`` without
            ``frame_closure`` in the batch, or
            for a model without the ARKit lip channels; ``adversary`` without the batch's
            ``speaker``.
    """
    cfg, dev = model.config, model.device
    net = net or model.net
    b = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
    B = b["target"].shape[0]
    x0 = model.normalize(b["target"])
    clean = model.normalize(b["history"])
    style = b["style"].clone()
    if "rollout_feats" in b:
        hist = rollout_history(model, b, style, generator)
    else:
        hist = corrupt_history(model, clean, generator)
    style[torch.rand(B, generator=generator).to(dev) < cfg.style_drop] = cfg.n_styles
    drop = torch.rand(B, generator=generator).to(dev) < cfg.cond_drop
    if distill is not None:
        drop = torch.zeros_like(drop)
    R = max(1, cfg.diffusion_repeats)
    x0r = x0.repeat(R, 1, 1)
    t = torch.randint(0, noiser.T, (R * B,), generator=generator).to(dev)
    noise = torch.randn(x0r.shape, generator=generator).to(dev)
    x_t = noiser.add_noise(x0r, noise, t)
    out = net(b["feats"], b["mel_offset"], b["align_idx"], b["align_w"], hist, style, drop,
              x_t, t)
    x0_pred = out[0] if isinstance(out, tuple) else out
    target = x0r if distill is None else guided_x0(
        distill.parent, b, _parent_history(model, distill.history, hist, clean), style, x_t, t,
        distill.scale)
    if distill is not None and (distill.open_floor or distill.open_ceiling
                                or distill.seal_floor):
        if "frame_closure" not in b:
            raise ValueError("distill_open_floor / distill_open_ceiling / distill_seal_floor "
                             "need the batch's frame_closure (closure_loss_weight != 1)")
        target = open_floor(model.channel_names, target, x0r, b["frame_closure"].repeat(R, 1),
                            distill.open_floor, distill.open_ceiling, distill.seal_floor)
    mask = b.get("mask")
    # the velocity loss anchors on the true last frame: the target continues the real
    # motion, not the corrupted history the network was shown
    losses = DDPMNoiser.loss(x0_pred.float(), target, clean[:, -1:].repeat(R, 1, 1),
                             cfg.velocity_weight, None if mask is None else mask.repeat(R, 1),
                             loss_channel_weights(model), closure_weights(model, b, R))
    if isinstance(out, tuple):
        losses.update(viseme_loss(out[1], out[2], b, drop))
        losses["loss"] = losses["loss"] + cfg.aux_viseme_weight * losses["viseme"]
    if adversary is not None:
        if "speaker" not in b:
            raise ValueError("[train] speaker_adversary needs the batch's speaker ids "
                             "(a CorpusStream given the corpus's voices)")
        losses.update(adversary.loss(b["speaker"]))
        losses["loss"] = losses["loss"] + losses["speaker"]
    return losses


#: The channels that seal the lips (the teacher's bilabial contact: ``mouthClose`` = contact x
#: jawOpen, with the lips pressed and rolled in); ``[train] distill_closure_guidance``.
CLOSURE_CHANNELS = ("mouthClose", "mouthPressLeft", "mouthPressRight", "mouthRollLower",
                    "mouthRollUpper")


#: The channels that part the lips (the jaw, and the lips raised and lowered off the teeth);
#: :func:`open_floor` keeps them at least as high as the data away from P/B/M.
OPENING_CHANNELS = ("jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
                    "mouthUpperUpRight")


def open_floor(channel_names, guided: torch.Tensor, data: torch.Tensor,
               frame_closure: torch.Tensor, strength: float = 1.0,
               ceiling: float = 0.0, seal: float = 0.0) -> torch.Tensor:
    """The distillation target moved toward the data on the lip channels: away from P/B/M,
    guidance that exaggerates the opening but never seals the lips where the data keeps
    them apart (``[train] distill_open_floor``), and optionally pulled back where it parts
    them further than the data (``[train] distill_open_ceiling``).

    A strong classifier-free guidance on the jaw (``x0_u + 7 (x0_c - x0_u)``) pushes the jaw
    of a consonant next to a vowel down to nearly shut (jawOpen 0.01-0.1 where the teacher
    holds 0.13-0.26): the guided parent, and a student distilled from it, seal the lips on a
    third of the vowels and lingual consonants (the false seals of
    :func:`model_core.evaluation.metrics.lip_gap_measures`). On the frames that are not
    P/B/M (nor one frame either side), this target moves the guided value ``strength`` of
    the way to the data value where the data parts the lips more: on
    :data:`OPENING_CHANNELS` where the data is higher, on :data:`CLOSURE_CHANNELS` where it
    is lower (``strength`` 1: the larger, resp. smaller, of the two). With ``ceiling`` and
    ``seal`` 0, P/B/M frames, every other channel and frames where the guidance parts the
    lips at least as far as the data keep the guided target, so the guidance still seals
    the bilabials and widens the vowels. ``ceiling`` does the same the other way: where the guided target
    parts the lips further than the data, it moves ``ceiling`` of the way to the data
    (``strength`` = ``ceiling`` = s: ``lerp(guided, data, s)`` on every opening and sealing
    channel away from P/B/M). ``seal`` is the floor's mirror on the P/B/M frames (widened
    by one frame, as ``frame_closure`` marks them): where the data seals the lips more than
    the guided target (the sealing channels higher, the opening channels lower), the
    target moves ``seal`` of the way to the data, so a short P/B/M the parent only touches
    is taught as the teacher shuts it (held shut for its length); where the guided target
    seals at least as much, it is kept. The other channels always keep the guided target.

    Args:
        channel_names: the model's D output channels (ARKit names).
        guided: float32 [N, K, D] the parent's guided x0 (normalized units);
        data: float32 [N, K, D] the true x0 (the teacher's curves, normalized the same way:
            a per-channel affine map with a positive scale, so max and min commute with it);
        frame_closure: [N, K], 1 on P/B/M frames (widened by one frame), else 0.
        strength: in [0, 1] (0: the guided target unchanged where the data opens more);
        ceiling: in [0, 1] (0: unchanged where the guided target opens more).
        seal: in [0, 1] (0: the P/B/M frames keep the guided target).
    Returns:
        float32 [N, K, D], the target.
    Raises:
        ValueError: a channel of :data:`OPENING_CHANNELS` or :data:`CLOSURE_CHANNELS`
            missing from ``channel_names``; ``strength``, ``ceiling`` or ``seal`` outside
            [0, 1].
    """
    check_open_floor(channel_names, strength)
    check_open_floor(channel_names, ceiling, "distill_open_ceiling")
    check_open_floor(channel_names, seal, "distill_seal_floor")
    up, down = _floor_masks(tuple(channel_names), str(guided.device))
    free = (frame_closure.to(guided.device).float() < 0.5)[..., None]   # [N, K, 1]
    toward = torch.lerp(guided, data, float(strength))   # exact at 0 and 1
    back = torch.lerp(guided, data, float(ceiling))
    # on the opening channels the data parts the lips more where it is higher, on the
    # sealing channels where it is lower
    data_opens = torch.where(up, data > guided, data < guided)
    # away from P/B/M: the floor where the data opens more, the ceiling elsewhere; on P/B/M
    # frames: the seal where the data seals more (where it is equal, lerp keeps guided)
    moved = torch.where(free, torch.where(data_opens, toward, back),
                        torch.where(data_opens, guided, torch.lerp(guided, data, float(seal))))
    return torch.where(up | down, moved, guided)


def check_open_floor(channel_names, strength: float, name: str = "distill_open_floor") -> None:
    """Refuse an open floor or ceiling (:func:`open_floor`) that cannot run; ``name`` is the
    setting's, for the message.

    Raises:
        ValueError: ``strength`` not a number in [0, 1], or a channel of
            :data:`OPENING_CHANNELS` or :data:`CLOSURE_CHANNELS` missing from
            ``channel_names``.
    """
    if isinstance(strength, bool) or not 0.0 <= strength <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1] (1: as far as the teacher), "
                         f"got {strength!r}")
    missing = [c for c in OPENING_CHANNELS + CLOSURE_CHANNELS if c not in channel_names]
    if missing:
        raise ValueError(f"{name} is for ARKit models: no {', '.join(missing)} channel(s)")


@lru_cache(maxsize=16)
def _floor_masks(channel_names: tuple, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """bool [D] masks of :data:`OPENING_CHANNELS` and :data:`CLOSURE_CHANNELS`, built once
    per (names, device): the loss asks for them every batch."""
    up = torch.tensor([n in OPENING_CHANNELS for n in channel_names], device=device)
    down = torch.tensor([n in CLOSURE_CHANNELS for n in channel_names], device=device)
    return up, down


def distill_scale(parent, closure_guidance: float) -> np.ndarray:
    """float32 [D]: the parent's own per-channel guidance scale
    (:meth:`~model_core.runtime.inference.InferenceModel.guidance_scale`) with
    ``closure_guidance`` on :data:`CLOSURE_CHANNELS`: a strong guidance that seals the lips
    on P/B/M beside a milder one on the jaw and the vowels' shapes.

    Raises:
        ValueError: ``closure_guidance`` < 1, or a parent without the ARKit closure channels.
    """
    if not closure_guidance >= 1.0:
        raise ValueError(f"the closure channels' guidance must be >= 1, got {closure_guidance}")
    names = list(parent.channel_names)
    missing = [c for c in CLOSURE_CHANNELS if c not in names]
    if missing:
        raise ValueError(f"the parent has no {', '.join(missing)} channel(s): closure guidance "
                         f"is for ARKit models")
    g = np.broadcast_to(np.asarray(parent.guidance_scale(parent.config.guidance), np.float32),
                        (len(names),)).copy()
    for c in CLOSURE_CHANNELS:
        g[names.index(c)] = closure_guidance
    return g


@torch.no_grad()
def guided_x0(parent, b: dict, hist: torch.Tensor, style: torch.Tensor, x_t: torch.Tensor,
              t: torch.Tensor, scale: np.ndarray | None = None) -> torch.Tensor:
    """The distillation parent's classifier-free-guided x0 prediction: the target of
    guidance distillation (:func:`training_loss` with ``parent``).

    Args:
        parent: a ``StreamTalkerModel``; its ``config.guidance`` applies on the channels
            ``config.guidance_channels`` names, unless ``scale`` is given.
        b: a training batch (on the parent's device): ``feats``, ``mel_offset``,
            ``align_idx``, ``align_w`` as in :func:`training_loss`; with ``feats_clean``
            (the windows without the VTLP warp, :class:`~.batches.ChunkBatcher`) the parent
            hears those instead of ``feats``.
        hist: float32 [B, H, D] normalized history; style: int64 [B];
        x_t: float32 [R*B, K, D] noisy chunks at timesteps ``t`` int64 [R*B].
        scale: None, or float32 [D]: one guidance scale per channel (:func:`distill_scale`).
    Returns:
        float32 [R*B, K, D], normalized: ``x0_u + g * (x0_c - x0_u)``.
    """
    g = scale if scale is not None else parent.guidance_scale(parent.config.guidance)
    g = torch.as_tensor(np.asarray(g, np.float32), device=x_t.device)
    B = hist.shape[0]
    args = (b.get("feats_clean", b["feats"]), b["mel_offset"], b["align_idx"], b["align_w"],
            hist, style)
    x0 = []
    for dropped in (False, True):
        out = parent.net(*args, torch.full((B,), dropped, device=x_t.device), x_t, t)
        x0.append((out[0] if isinstance(out, tuple) else out).float())
    return x0[1] + g * (x0[0] - x0[1])


@torch.no_grad()
def rollout_history(model, b: dict, style: torch.Tensor, generator=None) -> torch.Tensor:
    """The history window a rollout batch trains on (``ModelConfig.rollout_chunks``): the
    true history before the J chunks that precede each example, continued by J chunks the
    model samples itself, with no gradient, in eval mode, by the sessions' own path
    (:meth:`~model_core.runtime.model.StreamTalkerModel.chunk_denoiser` and
    :func:`~model_core.runtime.ddim.sample_ddim`, the config's DDIM steps, eta,
    lip_temperature and blink_temperature, no guidance: what a guidance-distilled model
    samples), so the example's chunk is learnt from the history the model will really give
    itself. The network's training mode is restored afterwards.

    Args:
        model: a ``StreamTalkerModel``.
        b: the batch (on the model's device) with the ``rollout_*`` tensors of
            :class:`~model_core.training.batches.ChunkBatcher`: ``rollout_history``
            [B, H, D] (data space), ``rollout_feats`` [B, J, M, F], ``rollout_mel_offset``
            [B, J], ``rollout_align_idx`` [B, J, K], ``rollout_align_w`` [B, J, K];
        style: int64 [B]; generator: CPU generator (seeds the sampling noise).
    Returns:
        float32 [B, H, D], normalized.
    """
    cfg = model.config
    hist = model.normalize(b["rollout_history"])
    B, J, K = b["rollout_align_idx"].shape
    scheduler = model.ddim_scheduler(cfg.sample_steps, cfg.eta)
    t_cache = model.timestep_cache(scheduler.timesteps)
    noise_scale = model.noise_scale(cfg.lip_temperature, cfg.blink_temperature)
    rng = NoiseGenerator(int(torch.randint(2 ** 62, (1,), generator=generator)))
    roll = {k: b[f"rollout_{k}"].cpu().numpy()
            for k in ("feats", "mel_offset", "align_idx", "align_w")}
    style_np, keep_audio = style.cpu().numpy(), np.zeros(B, bool)
    was_training = model.net.training
    model.net.eval()
    try:
        h = hist.float().cpu().numpy()
        for c in range(J):
            cond_in = {k: v[:, c] for k, v in roll.items()}
            denoise = model.chunk_denoiser({**cond_in, "history": h, "style": style_np},
                                           keep_audio, t_cache)
            x = sample_ddim(denoise, (B, K, cfg.dim), scheduler, rng, 1.0, noise_scale)
            h = np.concatenate([h[:, K:], x], axis=1)
    finally:
        model.net.train(was_training)
    return torch.from_numpy(h).to(hist.device)


def corrupt_history(model, hist: torch.Tensor, generator=None) -> torch.Tensor:
    """The training history window, made less trustworthy so that the model learns to follow
    the audio rather than continue the history (exposure bias: at inference the history is
    the model's own output). Per example: with probability ``history_drop`` the history
    becomes the rest pose (as at a stream start); otherwise it is shrunk towards the data
    mean by a factor drawn from U(0, ``history_shrink``) and given Gaussian noise of a std
    drawn from U(0, ``history_noise``) (normalized units). With ``history_corrupt = "lips"``
    only the jaw*/mouth* channels are corrupted (the upper face keeps its true history,
    which its blinks and gaze continue). The settings are ``model.config``'s.

    Args:
        model: a ``StreamTalkerModel``;
        hist: float32 [B, H, D] normalized history; generator: CPU generator.
    Returns:
        float32 [B, H, D].
    """
    cfg, dev = model.config, hist.device
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
        rest = model.rest_history(B).to(dev)
        drop = (torch.rand(B, 1, 1, generator=generator) < cfg.history_drop).to(dev)
        hist = torch.where(drop, rest, hist)
    if cfg.history_corrupt == "lips" and cfg.output_kind == "arkit":
        hist = torch.where(_lip_channels(model.channel_names, dev), hist, clean)
    return hist


#: which history the distillation parent may see (:func:`training_loss`; the trainer's
#: ``[train] distill_history``)
PARENT_HISTORIES = ("student", "true", "true_lips")


def check_parent_history(model, which: str, name: str = "Distillation.history") -> str:
    """``which`` if the distillation parent of ``model`` (the student) may see that history
    (:data:`PARENT_HISTORIES`; ``"true_lips"`` for ARKit models only).

    Raises:
        ValueError: anything else, naming the setting ``name``.
    """
    if which not in PARENT_HISTORIES or (
            which == "true_lips" and model.config.output_kind != "arkit"):
        raise SettingError(f"{name} must be one of {PARENT_HISTORIES} "
                         f"('true_lips' for ARKit models only), got {which!r}")
    return which


def _parent_history(model, which: str, student: torch.Tensor, true: torch.Tensor):
    """The history [B, H, D] the distillation parent sees (:func:`training_loss`): the
    student's ``student``, the true ``true`` (both float32 [B, H, D], normalized), or the
    true one on the lip channels and the student's elsewhere.

    Raises:
        ValueError: see :func:`check_parent_history`."""
    which = check_parent_history(model, which)
    if which == "student":
        return student
    if which == "true":
        return true
    return torch.where(_lip_channels(model.channel_names, true.device), true, student)


def _lip_channels(channel_names, device) -> torch.Tensor:
    """bool [D]: the jaw*/mouth* channels among ``channel_names``
    (:func:`model_core.face.is_lip_channel`), on ``device``; built once per (names,
    device): the loss asks for it every batch."""
    return _lip_mask(tuple(channel_names), str(device))


@lru_cache(maxsize=16)
def _lip_mask(channel_names: tuple, device: str) -> torch.Tensor:
    return torch.tensor([is_lip_channel(n) for n in channel_names], device=device)


def closure_weights(model, b: dict, R: int) -> torch.Tensor | None:
    """The factor [R*B, K, D] on the loss: ``closure_loss_weight`` on the lip channels of the
    frames ``b["frame_closure"]`` [B, K] marks (P/B/M), 1 elsewhere, repeated for the
    ``R`` diffusion repeats; None when the weight is 1, the batch has no marks, or the model
    is not ARKit."""
    w, fc = model.config.closure_loss_weight, b.get("frame_closure")
    if w == 1.0 or fc is None or model.config.output_kind != "arkit":
        return None
    extra = torch.from_numpy(lip_scale(model.channel_names, w) - 1.0).to(fc.device)
    return (1.0 + fc.float()[..., None] * extra).repeat(R, 1, 1)


def loss_channel_weights(model) -> torch.Tensor | None:
    """Per-channel weights float32 [D] of the x0/velocity loss: ``lip_loss_weight`` on the
    jaw*/mouth* channels of an ARKit model, 1 elsewhere; None when all are 1."""
    w = model.config.lip_loss_weight
    if w == 1.0 or model.config.output_kind != "arkit":
        return None
    return torch.from_numpy(lip_scale(model.channel_names, w))


def viseme_loss(audio_logits: torch.Tensor, cond_logits: torch.Tensor, b: dict,
                drop: torch.Tensor) -> dict:
    """Cross-entropy of the auxiliary viseme heads.

    Args:
        audio_logits: [B, M, V] the audio encoder's head, against ``b["mel_visemes"]``
            int64 [B, M]; cond_logits: [B, K, V] the condition's head, against
            ``b["frame_visemes"]`` int64 [B, K] (-1 = unknown, ignored);
        drop: bool [B], True where the audio was dropped (those rows' frame labels are
            ignored).
    Returns:
        ``viseme`` (the mean of both cross-entropies; 0 without labels) and ``viseme_acc``
        (accuracy at the known chunk frames), scalar tensors.
    """
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
