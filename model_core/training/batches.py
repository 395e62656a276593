"""Training on (speech, motion) pairs: chunk examples with the streaming geometry, and a
simple optimisation loop.

Every example is one chunk exactly as the streaming session sees it (same
:class:`~model_core.runtime.config.ChunkGeometry`, same front end): the encoder window ending at the
chunk's look-ahead, the history window of the H ground-truth frames before the chunk
(rest pose before the utterance start, plus small noise against exposure bias) and the K
target frames. Training therefore matches inference by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..runtime.config import ChunkGeometry
from ..runtime.frontend import make_frontend
from .objective import DDPMNoiser, training_loss
from .phonemes import bilabial_frame_mask


@dataclass
class Utterance:
    """One training pair.

    samples: float32 [N] mono 16 kHz speech; frames: float32 [T, D] targets in data space
    (ARKit weights in [0, 1]) at the model fps, T = round(N / 16000 * fps);
    style: training identity index (0..n_styles-1; n_styles = the learned unknown style);
    phones: optional ``[(label, start_s, end_s)]`` timing of the speech (any alphabet the
    teacher reads), the labels of the auxiliary viseme loss; None for data without phones;
    alphabet: how to read the phone labels (``"auto"``, ``"arpabet"``, ``"espeak"``,
    ``"ipa"``: :func:`model_core.training.phonemes.parse_phone`);
    speaker: the training voice's id for the speaker-adversarial loss (-1 = unknown;
    :func:`model_core.training.corpus.speaker_key`).
    """

    samples: np.ndarray
    frames: np.ndarray
    style: int = 0
    phones: list | None = None
    alphabet: str = "auto"
    speaker: int = -1


class ChunkBatcher:
    """Builds batches of chunk examples from utterances.

    Args:
        model: the :class:`~model_core.runtime.model.StreamTalkerModel` being trained.
        utterances: list of :class:`Utterance`.
        seed: numpy seed for example positions and chunk sizes.
        vtlp: largest vocal-tract-length perturbation of the features (0 = off; see
            :func:`vtlp_logmel`).
        live_pairing: see below.
        clean_features: with ``vtlp`` > 0 (log-mel front end), each batch also holds
            ``feats_clean`` float32 [B, M, F], the same windows without the warp: what a
            guidance-distillation parent hears (``[train] distill_from``), so the network
            learns to give a warped voice the parent's answer for the voice as recorded.
        speaker_labels: each batch also holds ``speaker`` int64 [B], the utterances'
            :attr:`Utterance.speaker` (the speaker-adversarial loss,
            :class:`~model_core.training.objective.SpeakerAdversary`).
    ``batch(batch_size, K=None)`` returns a dict of tensors for
    :func:`~.objective.training_loss`; K is drawn from 1..max_chunk_frames when None
    (half of the batches use the default K, or, for a model with ``live_chunk_frames``, a
    quarter the default and a quarter the live K); the batch's look-ahead is the config's
    ``lookahead_ms``, or for a model with ``min_lookahead_ms`` set, in half of the batches
    a multiple of 10 ms drawn from that range (or ``batch(..., lookahead_ms=L)``); with
    ``live_pairing`` p > 0, a batch of the live K takes the live look-ahead
    (``live_lookahead_ms``) with probability p, so the live setting itself is trained on
    (:meth:`draw_lookahead`); with ``closure_loss_weight != 1`` it also holds
    ``frame_closure`` float32 [B, K] (1 on P/B/M frames). A rollout batch
    (``ModelConfig.rollout_chunks``, J, in a fraction ``rollout_fraction`` of the batches)
    draws chunks with at least J*K frames before them and also holds, for the J chunks
    before each one (oldest first), ``rollout_feats`` [B, J, M, F], ``rollout_mel_offset``
    [B, J], ``rollout_align_idx`` int64 [B, J, K], ``rollout_align_w`` [B, J, K], and
    ``rollout_history`` [B, H, D], the true history before the first of them (data space).
    """

    def __init__(self, model, utterances: list[Utterance], seed: int = 0, vtlp: float = 0.0,
                 live_pairing: float = 0.0, clean_features: bool = False,
                 speaker_labels: bool = False):
        if not 0.0 <= live_pairing <= 1.0:
            raise ValueError(f"[train] live_pairing must be in [0, 1], got {live_pairing!r}")
        if live_pairing and (model.config.live_chunk_frames is None
                             or model.config.live_lookahead_ms is None):
            raise ValueError("[train] live_pairing needs the model's live setting ([model] "
                             "live_chunk_frames and live_lookahead_ms)")
        self.model = model
        #: share of the live-K batches (K = ``live_chunk_frames``) whose look-ahead is the
        #: live one (``live_lookahead_ms``) rather than drawn (0 = drawn as for any K)
        self.live_pairing = float(live_pairing)
        #: largest VTLP warp: each utterance's features are computed with a warp factor
        #: drawn log-uniformly from [1 / (1 + vtlp), 1 + vtlp] (:func:`vtlp_logmel`; 0 = off)
        self.vtlp = float(vtlp)
        self._vtlp_cache: dict = {}
        #: whether the features are warped (VTLP on, log-mel front end)
        self.warps = self.vtlp > 0 and model.config.speech_encoder is None
        #: with the warp, each batch also holds ``feats_clean``: the same windows without
        #: it, for a distillation parent that hears the voice as it is while the network
        #: trained hears it warped
        self.clean_features = bool(clean_features) and self.warps
        self._clean_cache: dict[int, np.ndarray] = {}
        self.speaker_labels = bool(speaker_labels)
        self.cfg = model.config
        self.geo = ChunkGeometry(self.cfg)
        self.frontend = make_frontend(self.cfg, model.device)
        self.utts = utterances
        self.rng = np.random.default_rng(seed)
        rest = model.net.rest_pose.detach().cpu().numpy()
        self.rest = rest.astype(np.float32)
        self._feat_cache: dict[int, np.ndarray] = {}    # warped features (VTLP)
        self._label_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._closure_cache: dict[int, np.ndarray] = {}
        #: frames per utterance, int64 [U]
        self.lengths = np.array([len(u.frames) for u in utterances], np.int64)
        if len(utterances) == 0 or self.lengths.sum() == 0:
            raise ValueError("no training frames: give at least one utterance with frames")
        for i, u in enumerate(utterances):
            want = self.geo.n_frames(len(u.samples))
            if abs(len(u.frames) - want) > 1:
                raise ValueError(f"utterance {i}: {len(u.frames)} frames for "
                                 f"{len(u.samples) / self.cfg.sample_rate:.3f} s of audio, "
                                 f"expected {want} at {self.cfg.fps} fps")
        self.p = self.lengths / self.lengths.sum()

    def replace(self, i: int, utt: Utterance) -> None:
        """Swap utterance ``i`` for another (streaming from files); sampling stays uniform
        over frames of the utterances currently held."""
        self.utts[i] = utt
        self._feat_cache.pop(i, None)
        self._clean_cache.pop(i, None)
        self._label_cache.pop(i, None)
        self._closure_cache.pop(i, None)
        self.lengths[i] = len(utt.frames)
        self.p = self.lengths / self.lengths.sum()

    def _labels(self, i: int):
        """(viseme per padded mel frame [M + n_mel], per motion frame [T + K_max]) of
        utterance i, or None without phones (see ModelConfig.aux_viseme_weight)."""
        u = self.utts[i]
        if u.phones is None or self.cfg.aux_viseme_weight <= 0:
            return None
        if i not in self._label_cache:
            from .teacher import viseme_track
            cfg = self.cfg
            n_mel = len(self._mel(i)) if cfg.speech_encoder is None else \
                self.geo.mel_end(len(u.frames) + cfg.max_chunk_frames, 0) + 1 + self.cfg.audio_context_frames
            mel_t = (np.arange(n_mel) - cfg.audio_context_frames) * cfg.hop_length / cfg.sample_rate
            fr_t = np.arange(len(u.frames) + cfg.max_chunk_frames) / cfg.fps
            self._label_cache[i] = (viseme_track(u.phones, mel_t, alphabet=u.alphabet),
                                    viseme_track(u.phones, fr_t, alphabet=u.alphabet))
        return self._label_cache[i]

    def _closure(self, i: int) -> np.ndarray:
        """float32 [T + K_max]: 1 at the frames of utterance i's P/B/M phones (widened by one
        frame each side), else 0; all 0 without phones (ModelConfig.closure_loss_weight)."""
        if i not in self._closure_cache:
            u = self.utts[i]
            n = len(u.frames) + self.cfg.max_chunk_frames
            self._closure_cache[i] = np.zeros(n, np.float32) if u.phones is None else \
                bilabial_frame_mask(u.phones, self.cfg.fps, n,
                                    alphabet=u.alphabet).astype(np.float32)
        return self._closure_cache[i]

    def _n_mel(self, i: int) -> int:
        """Mel frames of utterance i's whole features (past its last chunk's window)."""
        return self.geo.mel_end(len(self.utts[i].frames) + self.cfg.max_chunk_frames, 0) + 1

    def _mel(self, i: int) -> np.ndarray:
        """Whole-utterance features with M silence frames in front (mel front end), warped
        by a VTLP factor drawn once per utterance when :attr:`warps`."""
        if not self.warps:
            return self._mel_clean(i)
        if i not in self._feat_cache:
            r = math.log1p(self.vtlp)
            alpha = round(math.exp(self.rng.uniform(-r, r)), 2)   # cached per 0.01
            if alpha not in self._vtlp_cache:
                self._vtlp_cache[alpha] = vtlp_logmel(self.frontend.logmel, alpha)
            lm = self._vtlp_cache[alpha]
            pad = np.tile(lm.silence_frame(), (self.cfg.audio_context_frames, 1))
            self._feat_cache[i] = np.concatenate([pad, lm.whole(self.utts[i].samples,
                                                                 self._n_mel(i))])
        return self._feat_cache[i]

    def _mel_clean(self, i: int) -> np.ndarray:
        """:meth:`_mel` without the VTLP warp (the front end as inference runs it)."""
        if i not in self._clean_cache:
            self._clean_cache[i] = self.frontend.padded_whole(self.utts[i].samples,
                                                              self._n_mel(i))
        return self._clean_cache[i]

    def draw_lookahead(self, K: int) -> float:
        """The look-ahead (ms) of a batch of chunk size ``K``: with ``live_pairing`` p, the
        live look-ahead for the live K with probability p; otherwise the model's
        ``lookahead_ms``, or for a model with a range, in half of the draws a multiple of
        10 ms from ``min_lookahead_ms`` .. ``lookahead_ms``."""
        cfg = self.cfg
        if self.live_pairing and K == cfg.live_chunk_frames \
                and self.rng.random() < self.live_pairing:
            return float(cfg.live_lookahead_ms)
        lo, hi = cfg.lookahead_range()
        if lo < hi and self.rng.random() < 0.5:
            choices = np.arange(lo, hi + 1e-6, 10.0)
            return float(choices[int(self.rng.integers(len(choices)))])
        return hi

    def batch(self, batch_size: int, K: int | None = None,
              lookahead_ms: float | None = None) -> dict[str, torch.Tensor]:
        cfg, M, H = self.cfg, self.cfg.audio_context_frames, self.cfg.history_frames
        if K is None:
            u = self.rng.random()
            if cfg.live_chunk_frames is not None and u < 0.25:
                K = cfg.live_chunk_frames
            elif u < 0.5:
                K = cfg.chunk_frames
            else:
                K = int(self.rng.integers(1, cfg.max_chunk_frames + 1))
        if lookahead_ms is None:
            lookahead_ms = self.draw_lookahead(K)
        geo = self.geo if lookahead_ms == self.geo.lookahead_ms else \
            ChunkGeometry(cfg, lookahead_ms)
        feats, offs, idxs, ws, hists, tgts, masks, styles = [], [], [], [], [], [], [], []
        mel_labs, frame_labs, closure, clean = [], [], [], []
        aux = cfg.aux_viseme_weight > 0
        weigh_closure = cfg.closure_loss_weight != 1.0
        J = cfg.rollout_chunks if cfg.rollout_chunks and \
            self.rng.random() < cfg.rollout_fraction else 0
        roll = {k: [] for k in ("feats", "mel_offset", "align_idx", "align_w", "history")}
        p = self.p
        if J:   # the chunk must have J chunks of speech before it
            long = self.lengths > J * K
            if long.any():
                p = np.where(long, p, 0.0) / p[long].sum()
            else:
                J = 0
        utt_ids = self.rng.choice(len(self.utts), size=batch_size, p=p)
        for ui in utt_ids:
            u = self.utts[ui]
            T = len(u.frames)
            n = int(self.rng.integers(J * K, T))
            for dst, v in zip((feats, offs, idxs, ws), self._window(ui, n, K, geo)):
                dst.append(v)
            hists.append(self._history(u, n))
            if self.clean_features:
                e = geo.mel_end(n, K)
                clean.append(self._mel_clean(ui)[e:e + M])
            if J:
                wins = [self._window(ui, n - (J - c) * K, K, geo) for c in range(J)]
                for key, v in zip(("feats", "mel_offset", "align_idx", "align_w"), zip(*wins)):
                    roll[key].append(np.stack(v))
                roll["history"].append(self._history(u, n - J * K))
            t = np.tile(u.frames[-1], (K, 1))
            m = np.zeros(K, np.float32)
            hi = min(T, n + K)
            t[:hi - n] = u.frames[n:hi]
            m[:hi - n] = 1
            tgts.append(t)
            masks.append(m)
            styles.append(u.style)
            if weigh_closure:
                closure.append(self._closure(ui)[n:n + K] * m)
            if aux:
                lab = self._labels(ui)
                if lab is None:
                    mel_labs.append(np.full(M, -1, np.int64))
                    frame_labs.append(np.full(K, -1, np.int64))
                else:
                    e = geo.mel_end(n, K)
                    mel_labs.append(lab[0][e:e + M])
                    frame_labs.append(np.where(m > 0, lab[1][n:n + K], -1))
        return {
            "feats": torch.from_numpy(np.stack(feats).astype(np.float32)),
            "mel_offset": torch.tensor(offs, dtype=torch.float32),
            "align_idx": torch.from_numpy(np.stack(idxs)),
            "align_w": torch.from_numpy(np.stack(ws)),
            "history": torch.from_numpy(np.stack(hists).astype(np.float32)),
            "target": torch.from_numpy(np.stack(tgts).astype(np.float32)),
            "mask": torch.from_numpy(np.stack(masks)),
            "style": torch.tensor(styles, dtype=torch.int64),
            **({"speaker": torch.tensor([self.utts[i].speaker for i in utt_ids],
                                        dtype=torch.int64)} if self.speaker_labels else {}),
            **({"mel_visemes": torch.from_numpy(np.stack(mel_labs)),
                "frame_visemes": torch.from_numpy(np.stack(frame_labs))} if aux else {}),
            **({"frame_closure": torch.from_numpy(np.stack(closure))} if weigh_closure else {}),
            **({"feats_clean": torch.from_numpy(np.stack(clean).astype(np.float32))}
               if clean else {}),
            **({f"rollout_{k}": torch.from_numpy(np.stack(v).astype(
                np.int64 if k == "align_idx" else np.float32)) for k, v in roll.items()}
               if J else {}),
        }

    def _window(self, ui: int, n: int, K: int, geo: ChunkGeometry | None = None):
        """The encoder input of the K-frame chunk at frame n of utterance ui (``geo``: the
        batch's geometry, default the config's): (features float32 [M, F], mel_offset s,
        align_idx int64 [K], align_w float32 [K])."""
        geo, M = geo or self.geo, self.cfg.audio_context_frames
        if self.cfg.speech_encoder is not None:
            u = self.utts[ui]
            f = self.frontend.offline_windows(u.samples, [geo.mel_end(n, K)],
                                              [geo.audio_end(n, K)])[0]
        else:
            e = geo.mel_end(n, K)
            f = self._mel(ui)[e:e + M]
        pos = np.asarray(geo.frame_mel_pos(n, K))
        return (f, geo.mel_offset_s(n, K), np.floor(pos).astype(np.int64),
                (pos - np.floor(pos)).astype(np.float32))

    def _history(self, u: Utterance, n: int) -> np.ndarray:
        """The true history window before frame n, float32 [H, D] (rest pose before the start)."""
        H = self.cfg.history_frames
        h = np.tile(self.rest, (H, 1))
        lo = max(0, n - H)
        if n > 0:
            h[H - (n - lo):] = u.frames[lo:n]
        return h


def vtlp_logmel(logmel, alpha: float, f_hi: float = 4800.0):
    """A copy of a :class:`~model_core.runtime.features.LogMel` whose filterbank hears the
    speech as a speaker with a vocal tract ``1 / alpha`` times as long: vocal-tract-length
    perturbation (VTLP; Jaitly & Hinton 2013, "Vocal tract length perturbation (VTLP)
    improves speech recognition", ICML workshop on deep learning for audio, speech and
    language). The frequency axis is warped piecewise linearly, ``f' = alpha f`` up to
    ``f_hi * min(alpha, 1) / alpha`` and then linearly to the Nyquist frequency, which stays
    in place; the triangular mel filters are evaluated on the warped frequencies. Training
    only: the model hears the same phones from more speakers.

    Args:
        logmel: the front end's LogMel; alpha: warp factor (about 0.9-1.1; 1 = none);
        f_hi: the boundary frequency of the warp, Hz.
    Returns:
        a new LogMel (the original is unchanged).
    """
    import copy
    from ..runtime.features import hz_to_mel, mel_to_hz
    lm = copy.copy(logmel)
    sr, n_fft = logmel.sample_rate, logmel.n_fft
    nyq = sr / 2
    f = np.linspace(0, nyq, n_fft // 2 + 1)
    b = f_hi * min(alpha, 1.0) / alpha
    warped = np.where(f <= b, alpha * f, nyq - (nyq - alpha * b) / (nyq - b) * (nyq - f))
    m = hz_to_mel(warped)
    n_mels = logmel.fbank.shape[0]
    # the band edges of the original filterbank (HTK mel, equally spaced)
    lo_hz = float(f[np.argmax(logmel.fbank[0] > 0)]) if logmel.fbank[0].any() else 0.0
    edges = np.linspace(hz_to_mel(getattr(logmel, "fmin", lo_hz)),
                        hz_to_mel(getattr(logmel, "fmax", nyq)), n_mels + 2)
    lo, ce, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fh = mel_to_hz(m)[None]
    lo_h, ce_h, hi_h = mel_to_hz(lo), mel_to_hz(ce), mel_to_hz(hi)
    up = (fh - lo_h) / (ce_h - lo_h)
    down = (hi_h - fh) / (hi_h - ce_h)
    lm.fbank = np.maximum(0.0, np.minimum(up, down)).astype(np.float32)
    return lm


def fit_normalization(model, utterances: list[Utterance], std_floor: float = 0.02) -> None:
    """Set the model's output normalization (per-channel mean/std of the targets, std at
    least ``std_floor``) and, for the log-mel encoder, the per-band feature mean/std."""
    frames = np.concatenate([u.frames for u in utterances]).astype(np.float64)
    net = model.net
    net.data_mean.copy_(torch.from_numpy(frames.mean(0)).float())
    net.data_std.copy_(torch.from_numpy(np.maximum(frames.std(0), std_floor)).float())
    if net.encoder is not None:
        fe = make_frontend(model.config)
        mels = np.concatenate([fe.logmel.whole(u.samples, max(1, len(u.samples) // model.config.hop_length))
                               for u in utterances])
        net.encoder.mel_mean.copy_(torch.from_numpy(mels.mean(0)).float())
        net.encoder.mel_std.copy_(torch.from_numpy(np.maximum(mels.std(0), 1e-3)).float())


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Learning rate at ``step`` (0-based) of ``steps``: linear warm-up over ``warmup`` steps
    times a cosine decay from ``lr`` to 0 (Loshchilov & Hutter, SGDR, 2017)."""
    return lr * min(1.0, (step + 1) / max(1, warmup)) * \
        0.5 * (1 + math.cos(math.pi * step / max(1, steps)))


def optimizer_step(model, batch: dict, opt: torch.optim.Optimizer, noiser: DDPMNoiser,
                   generator: torch.Generator, lr: float, net=None, amp: bool = False,
                   distill=None, adversary=None) -> dict:
    """One optimisation step of the DDPM loss: set ``lr`` on every parameter group, compute
    :func:`~model_core.training.objective.training_loss` on ``batch`` (through ``net``, e.g. a
    DistributedDataParallel wrapper, when given; bfloat16 autocast on CUDA when ``amp``),
    back-propagate, clip the gradient norm at 1.0 and step. Returns the losses as floats
    (``loss``, ``x0``, ``velocity``). The one step both :func:`train_steps` and
    ``streamtalker train`` take. ``distill``: None, or guidance distillation's parent and
    options (:class:`~model_core.training.objective.Distillation`); ``adversary``: None, or
    a :class:`~model_core.training.objective.SpeakerAdversary` whose parameters are in
    ``opt`` (and clipped with the network's)."""
    for g in opt.param_groups:
        g["lr"] = lr
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
        losses = training_loss(model, batch, noiser, generator, net=net, distill=distill,
                               adversary=adversary)
    opt.zero_grad(set_to_none=True)
    losses["loss"].backward()
    torch.nn.utils.clip_grad_norm_(model.net.parameters(), 1.0)
    if adversary is not None:
        torch.nn.utils.clip_grad_norm_(adversary.parameters(), 1.0)
    opt.step()
    return {k: float(v.detach()) for k, v in losses.items()}


def train_steps(model, batcher: ChunkBatcher, steps: int, batch_size: int = 64, lr: float = 1e-3,
                weight_decay: float = 0.01, warmup: int = 100, seed: int = 0,
                optimizer: torch.optim.Optimizer | None = None, progress: bool = False) -> list[dict]:
    """Optimise the DDPM loss in memory for ``steps`` steps (AdamW, linear warm-up, cosine
    decay, gradient clipping at 1.0; :func:`optimizer_step`), for small models built in code
    (the tests' toy checkpoint). Runs from files, with checkpoints, resume and DDP, are
    ``streamtalker train`` (:func:`model_core.training.trainer.run_training`). Returns one dict of
    floats per step (``loss``, ``x0``, ``velocity``, ``lr``). The model is left in eval mode."""
    from tqdm import tqdm

    cfg = model.config
    noiser = DDPMNoiser(cfg.schedule, cfg.train_timesteps)
    net = model.net.train()
    opt = optimizer or torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    history = []
    bar = tqdm(range(steps), disable=not progress, desc="train", unit="step")
    for step in bar:
        step_lr = lr_at(step, steps, lr, warmup)
        rec = optimizer_step(model, batcher.batch(batch_size), opt, noiser, gen, step_lr)
        rec["lr"] = step_lr
        history.append(rec)
        bar.set_postfix(loss=f"{rec['loss']:.4f}")
    net.eval()
    return history
