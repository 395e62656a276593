"""Audio front ends: bounded streaming state that yields the encoder window of each chunk.

Two kinds share one interface (``append``, ``window``, ``offline_windows``, ``state_sizes``):
- :class:`MelFrontend`: log-mel frames on the global 10 ms grid (:mod:`model_core.runtime.features`),
  computed incrementally; keeps the last M frames and less than one hop + window of samples.
- :class:`PretrainedFrontend`: a HuBERT / wav2vec 2.0 model from ``transformers``, loaded only
  from a local directory, run on a fixed window of raw audio ending at the chunk's audio end
  (no pass over the whole utterance); its 50 Hz features are linearly resampled to the mel
  grid of the window. Keeps ``context_s`` seconds of samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import ModelConfig
from .features import LogMel
from ..errors import InputNotFoundError


class MelFrontend:
    """Streaming log-mel front end. ``window(m_end)`` -> float32 [M, n_mels], mel frames
    ``m_end - M .. m_end - 1`` (frames before the stream start are silence)."""

    def __init__(self, cfg: ModelConfig):
        self.cfg = cfg
        self.logmel = LogMel(cfg.sample_rate, cfg.n_fft, cfg.win_length, cfg.hop_length,
                             cfg.n_mels, cfg.fmin, cfg.fmax)
        self.M = cfg.audio_context_frames
        self.feat_dim = cfg.n_mels
        half = cfg.win_length // 2
        self.buf = np.zeros(half, np.float32)     # samples from absolute index buf_start on
        self.buf_start = -half
        self.next_m = 0                           # next mel frame to compute
        self.ring = np.tile(self.logmel.silence_frame(), (self.M, 1))

    def append(self, samples: np.ndarray) -> None:
        """Add mono float32 16 kHz samples [N]."""
        self.buf = np.concatenate([self.buf, samples]) if len(self.buf) else samples.copy()

    def window(self, m_end: int, audio_end: int) -> np.ndarray:
        """Compute frames up to ``m_end`` (exclusive) and return the last M, [M, n_mels].

        ``audio_end`` (samples) is implied by ``m_end`` for log-mel and is not used."""
        if m_end > self.next_m:
            new = self.logmel.frames(self.buf, self.buf_start, self.next_m, m_end)
            self.next_m = m_end
            if len(new) >= self.M:
                self.ring = new[-self.M:].copy()
            else:
                self.ring = np.concatenate([self.ring[len(new):], new])
            drop = self.next_m * self.cfg.hop_length - self.cfg.win_length // 2 - self.buf_start
            if drop > 0:
                self.buf = self.buf[drop:].copy()
                self.buf_start += drop
        return self.ring

    def padded_whole(self, samples: np.ndarray, n_frames: int) -> np.ndarray:
        """Training: mel frames 0..n_frames-1 of a whole signal with M silence frames in
        front, [M + n_frames, n_mels]; the window of a chunk with mel end ``e`` is
        ``[e : e + M]``."""
        pad = np.tile(self.logmel.silence_frame(), (self.M, 1))
        return np.concatenate([pad, self.logmel.whole(samples, n_frames)])

    def offline_windows(self, samples: np.ndarray, m_ends: list[int], audio_ends: list[int]) -> np.ndarray:
        """Training: windows for many chunks of one whole signal, [len(m_ends), M, n_mels]."""
        mel = self.padded_whole(samples, max(m_ends))
        return np.stack([mel[e:e + self.M] for e in m_ends])

    def state_sizes(self) -> dict[str, int]:
        """Element counts of every buffer the front end holds."""
        return {"samples": int(self.buf.size), "mel_window": int(self.ring.size)}


class PretrainedFrontend:
    """HuBERT / wav2vec 2.0 features from a local ``transformers`` checkpoint directory.

    Config ``speech_encoder = {"type": "hubert"|"wav2vec2", "path": DIR, "layer": int|None,
    "context_s": float}``; ``layer`` picks a hidden state (None: last). The encoder is frozen.

    Raises:
        FileNotFoundError: the directory does not exist.
        ImportError: ``transformers`` is not installed (``pip install transformers``).
    """

    _cache: dict = {}

    def __init__(self, cfg: ModelConfig, device="cpu"):
        spec = cfg.speech_encoder
        self.cfg = cfg
        self.M = cfg.audio_context_frames
        self.layer = spec.get("layer")
        self.context = int(round(float(spec.get("context_s", 1.0)) * cfg.sample_rate))
        self.encoder = load_pretrained_encoder(spec["type"], spec["path"], device)
        self.device = device
        self.feat_dim = self.encoder.config.hidden_size
        self.buf = np.zeros(0, np.float32)
        self.buf_start = 0        # absolute index of buf[0]

    def append(self, samples: np.ndarray) -> None:
        """Add mono float32 16 kHz samples [N]."""
        self.buf = np.concatenate([self.buf, samples])

    def _features(self, raw: np.ndarray, first_mel: int, raw_start: int) -> np.ndarray:
        import torch    # here only: the log-mel front end (and the onnx backend) need no torch

        x = torch.from_numpy(np.ascontiguousarray(raw)).float().view(1, -1).to(self.device)
        with torch.inference_mode():
            out = self.encoder(x, output_hidden_states=self.layer is not None)
        h = out.hidden_states[self.layer] if self.layer is not None else out.last_hidden_state
        h = h[0].float().cpu().numpy()  # [T50, C]; frame j centred near raw_start + (j+.5)*320
        centres = raw_start + (np.arange(len(h)) + 0.5) * 320.0
        want = (first_mel + np.arange(self.M)) * float(self.cfg.hop_length)
        pos = np.interp(want, centres, np.arange(len(h), dtype=np.float64))
        i0 = np.floor(pos).astype(int)
        i1 = np.minimum(i0 + 1, len(h) - 1)
        w = (pos - i0)[:, None]
        return ((1 - w) * h[i0] + w * h[i1]).astype(np.float32)

    @staticmethod
    def _slice(signal: np.ndarray, signal_start: int, start: int, end: int) -> np.ndarray:
        raw = np.zeros(end - start, np.float32)
        lo, hi = max(start, signal_start), min(end, signal_start + len(signal))
        if hi > lo:
            raw[lo - start:hi - start] = signal[lo - signal_start:hi - signal_start]
        return raw

    def window(self, m_end: int, audio_end: int) -> np.ndarray:
        """Features [M, F] for mel frames ``m_end - M .. m_end - 1`` from samples
        ``audio_end - context .. audio_end - 1``."""
        start = audio_end - self.context
        raw = self._slice(self.buf, self.buf_start, start, audio_end)
        if start > self.buf_start:
            self.buf = self.buf[start - self.buf_start:].copy()
            self.buf_start = start
        return self._features(raw, m_end - self.M, start)

    def offline_windows(self, samples: np.ndarray, m_ends: list[int], audio_ends: list[int]) -> np.ndarray:
        """Training: the same windows computed from a whole signal, [B, M, F]."""
        return np.stack([self._features(self._slice(samples, 0, e - self.context, e), m - self.M,
                                        e - self.context) for m, e in zip(m_ends, audio_ends)])

    def state_sizes(self) -> dict[str, int]:
        return {"samples": int(self.buf.size)}


def load_pretrained_encoder(kind: str, path: str, device="cpu"):
    """Load a frozen HuBERT or wav2vec 2.0 model from a local directory (never a hub).

    Raises:
        FileNotFoundError: ``path`` is not an existing directory.
        ImportError: ``transformers`` is missing.
    """
    p = Path(path)
    if not p.is_dir():
        raise InputNotFoundError(f"speech encoder directory not found: {p} (give a local folder "
                                f"saved with save_pretrained; models are never downloaded)")
    key = (kind, str(p.resolve()), str(device))
    if key in PretrainedFrontend._cache:
        return PretrainedFrontend._cache[key]
    try:
        import transformers
    except ImportError as e:
        raise ImportError("speech_encoder needs the 'transformers' package: "
                          "pip install transformers") from e
    cls = transformers.HubertModel if kind == "hubert" else transformers.Wav2Vec2Model
    enc = cls.from_pretrained(str(p), local_files_only=True).to(device).eval()
    for prm in enc.parameters():
        prm.requires_grad_(False)
    PretrainedFrontend._cache[key] = enc
    return enc


def make_frontend(cfg: ModelConfig, device="cpu"):
    """The front end a config asks for (a fresh one per streaming session)."""
    return MelFrontend(cfg) if cfg.speech_encoder is None else PretrainedFrontend(cfg, device)


def frontend_feat_dim(cfg: ModelConfig) -> int:
    """Feature size F of the config's front end (loads the pretrained encoder's config)."""
    if cfg.speech_encoder is None:
        return cfg.n_mels
    import json
    p = Path(cfg.speech_encoder["path"]) / "config.json"
    if not p.exists():
        raise InputNotFoundError(f"speech encoder config not found: {p}")
    return int(json.loads(p.read_text())["hidden_size"])
