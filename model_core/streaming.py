"""The streaming session: push audio, get motion frames, with bounded state.

Contract (DESIGN.md §5): the session keeps only the last H motion frames (history window),
the encoder's audio context and fewer samples than one chunk plus one analysis window; its
cost per chunk does not depend on how much audio came before. ``push`` accepts any number of
samples and returns the frames that became ready; ``flush`` pads the end with silence and
returns the rest, so the total is ``round(duration_s * fps)`` frames. Every chunk is computed
from the same inputs whatever the push sizes, so the frames are identical for any chunking.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import math
from fractions import Fraction

import numpy as np
import torch

from .audio import to_mono_float32
from .config import ChunkGeometry
from .diffusion import DDIMScheduler
from .errors import AudioError
from .frontend import make_frontend

if TYPE_CHECKING:
    from .model import StreamTalkerModel


class MotionResampler:
    """Linear resampling of a frame stream from ``fps_in`` to ``fps_out`` (streaming).

    Output frame j is the face at time j / fps_out, interpolated between the two input
    frames around it. ``push(frames, n_samples)`` returns the output frames that can be
    interpolated and lie within the audio received so far (``n_samples``, 16 kHz), so the
    count never exceeds ``round(duration * fps_out)``; with ``final=True`` it returns the
    rest, holding the last input frame.
    """

    def __init__(self, fps_in: float, fps_out: float, sample_rate: int):
        self.r = Fraction(fps_in).limit_denominator(1001) / Fraction(fps_out).limit_denominator(1001)
        self.spf_out = Fraction(sample_rate) / Fraction(fps_out).limit_denominator(1001)
        self.tail: np.ndarray | None = None   # input frames still needed, from tail_first
        self.tail_first = 0
        self.n_out = 0

    def push(self, frames: np.ndarray, n_samples: int, final: bool = False) -> np.ndarray:
        """Feed input frames float32 [n, D]; return output frames float32 [m, D]."""
        D = frames.shape[1]
        buf = frames if self.tail is None else np.concatenate([self.tail, frames])
        first = self.tail_first
        if len(buf) == 0:
            return np.zeros((0, D), np.float32)
        limit = int(math.floor(Fraction(n_samples) / self.spf_out + Fraction(1, 2)))
        last = first + len(buf) - 1
        out = []
        while self.n_out < limit:
            p = self.n_out * self.r
            i0 = math.floor(p)
            w = float(p - i0)
            i1 = i0 + 1 if w > 0 else i0
            if i1 > last:
                if not final:
                    break
                i0, i1, w = min(i0, last), last, (w if i0 < last else 0.0)
            out.append((1 - w) * buf[i0 - first] + w * buf[i1 - first])
            self.n_out += 1
        keep = min(math.floor(self.n_out * self.r), last)
        self.tail, self.tail_first = buf[keep - first:].copy(), keep
        return np.asarray(out, np.float32).reshape(-1, D)


class StreamingSession:
    """A stream of audio in, motion frames out. Create with :meth:`StreamTalkerModel.stream`.

    Attributes:
        fps: output frames per second; chunk_frames: K; latency_ms: algorithmic latency
        (chunk length + audio look-ahead), milliseconds; dim: D channels.
    """

    def __init__(self, model: "StreamTalkerModel", seed: int = 0, style: int | None = None,
                 chunk_frames: int | None = None, steps: int | None = None,
                 eta: float | None = None, guidance: float | None = None,
                 fps: float | None = None, lip_temperature: float | None = None):
        cfg = model.config
        self.model = model
        self.K = int(chunk_frames or cfg.chunk_frames)
        if not 1 <= self.K <= min(cfg.max_chunk_frames, cfg.history_frames):
            raise ValueError(f"chunk_frames must be in 1..{cfg.max_chunk_frames} for this "
                             f"model, got {chunk_frames}")
        self.style = model.check_style(style)
        self.guidance = float(cfg.guidance if guidance is None else guidance)
        if not math.isfinite(self.guidance) or self.guidance < 0:
            raise ValueError(f"guidance must be a finite number >= 0, got {guidance}")
        self.geo = ChunkGeometry(cfg)
        self.scheduler = DDIMScheduler(cfg.schedule, cfg.train_timesteps,
                                       cfg.eta if eta is None else eta,
                                       *model.x0_bounds())
        self.scheduler.set_timesteps(cfg.sample_steps if steps is None else steps)
        self.frontend = make_frontend(cfg, model.device)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.history = model.rest_history().to(model.device)   # [1, H, D] normalized
        self.n = 0                  # index of the next model frame
        self.n_samples = 0          # samples received (real audio)
        self.n_buffered = 0         # samples given to the front end (real + end padding)
        self.closed = False
        self.fps = float(fps) if fps is not None else cfg.fps
        if not (math.isfinite(self.fps) and 1 <= self.fps <= 240):
            raise ValueError(f"fps must be between 1 and 240, got {fps}")
        self.resampler = None if self.fps == cfg.fps else MotionResampler(cfg.fps, self.fps, cfg.sample_rate)
        self.dim = cfg.dim
        tau = cfg.lip_temperature if lip_temperature is None else float(lip_temperature)
        if not (math.isfinite(tau) and 0 <= tau <= 2):
            raise ValueError(f"lip_temperature must be in [0, 2], got {lip_temperature}")
        self._noise_scale = model.noise_scale(tau)
        dev = model.device
        self._style_t = torch.tensor([self.style], device=dev)
        with torch.inference_mode():
            self._t_cache = {t: model.net.timestep_embedding(torch.tensor([t], device=dev))
                             for t in self.scheduler.timesteps}

    @property
    def chunk_frames(self) -> int:
        return self.K

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency: chunk length + audio look-ahead, in milliseconds."""
        return self.geo.latency_ms(self.K)

    def state_sizes(self) -> dict[str, int]:
        """Element counts of every buffer the session holds (for the bounded-state check)."""
        sizes = {"history": int(self.history.numel())}
        sizes.update(self.frontend.state_sizes())
        return sizes

    def push(self, samples) -> np.ndarray:
        """Feed mono 16 kHz samples (float32 [N]; int16/float64 converted); return the frames
        that became ready, float32 [n_new, D] (weights in [0, 1] for ARKit models).

        Raises:
            AudioError: non-finite samples, more than one channel, unsupported dtype.
            RuntimeError: the session was already flushed.
        """
        if self.closed:
            raise RuntimeError("this session was flushed; start a new one with model.stream()")
        a = np.asarray(samples)
        if a.ndim == 2 and min(a.shape) > 1:
            raise AudioError(f"push() takes mono samples; got shape {a.shape}. Mix to mono "
                             f"first (samples.mean(axis=1)) or use model.generate()")
        if a.size == 0:
            return np.zeros((0, self.dim), np.float32)
        x = to_mono_float32(a.reshape(-1), what="pushed samples")
        self.n_samples += len(x)
        self.n_buffered += len(x)
        self.frontend.append(x)
        frames = []
        while self.geo.audio_end(self.n, self.K) <= self.n_buffered:
            frames.append(self._step())
        return self._output(frames, final=False)

    def flush(self) -> np.ndarray:
        """End of stream: pad with silence, return the remaining frames [n, D]; the session
        is closed afterwards. Total frames over the stream = round(duration_s * fps)."""
        if self.closed:
            raise RuntimeError("this session was already flushed")
        total = self.geo.n_frames(self.n_samples)
        frames = []
        while self.n < total:
            need = self.geo.audio_end(self.n, self.K) - self.n_buffered
            if need > 0:
                self.frontend.append(np.zeros(need, np.float32))
                self.n_buffered += need
            frames.append(self._step())
        if frames:
            over = self.n - total
            if over > 0:
                frames[-1] = frames[-1][:len(frames[-1]) - over]
        self.closed = True
        return self._output(frames, final=True)

    def _output(self, frames: list[np.ndarray], final: bool) -> np.ndarray:
        out = np.concatenate(frames) if frames else np.zeros((0, self.dim), np.float32)
        if self.resampler is not None:
            out = self.resampler.push(out, self.n_samples, final=final)
        return out

    @torch.inference_mode()
    def _step(self) -> np.ndarray:
        model, geo, K, n = self.model, self.geo, self.K, self.n
        dev = model.device
        feats = self.frontend.window(geo.mel_end(n, K), geo.audio_end(n, K))
        pos = np.asarray(geo.frame_mel_pos(n, K))
        idx = np.floor(pos)
        cond_in = dict(
            feats=torch.from_numpy(feats).to(dev).unsqueeze(0),
            mel_offset=torch.tensor([geo.mel_offset_s(n, K)], dtype=torch.float32, device=dev),
            align_idx=torch.from_numpy(idx.astype(np.int64)).to(dev).unsqueeze(0),
            align_w=torch.from_numpy((pos - idx).astype(np.float32)).to(dev).unsqueeze(0),
            history=self.history, style=self._style_t,
        )
        x = model.sample_chunk(cond_in, K, self.scheduler, self.generator, self.guidance,
                               self._t_cache, self._noise_scale)
        self.history = torch.cat([self.history[:, K:], x], dim=1)
        self.n += K
        return model.denormalize(x)[0].float().cpu().numpy()
