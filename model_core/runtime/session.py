"""The streaming sessions: push audio, get motion frames, with bounded state. Both implement
:class:`model_core.runtime.driver.Session`.

Contract (docs/architecture.md, "The streaming contract"): the session keeps only the last H motion frames (history window),
the encoder's audio context and fewer samples than one chunk plus one analysis window; its
cost per chunk does not depend on how much audio came before. ``push`` accepts any number of
samples and returns the frames that became ready; ``flush`` pads the end with silence and
returns the rest, so the total is ``round(duration_s * fps)`` frames. Every chunk is computed
from the same inputs whatever the push sizes, so the frames are identical for any chunking.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..errors import AudioError, SettingError
from ..face import check_fps, fps_fraction, sample_frames
from ..io.audio import MODEL_SAMPLE_RATE, _mono_float32, warn_clipped
from .config import ChunkGeometry
from .ddim import NoiseGenerator
from .frontend import make_frontend
from .settings import MAX_GUIDANCE, SamplerSettings, check_int  # noqa: F401

#: Seeds are unsigned 64-bit integers (what torch's generator holds; only the low 32 bits seed
#: its Mersenne Twister, and :class:`~model_core.runtime.ddim.NoiseGenerator`'s).
MAX_SEED = 2 ** 64 - 1


def check_seed(seed, what: str = "seed") -> int:
    """Validate a sampling seed: an integer in 0..2**64-1. Returns it as an int.

    Raises:
        ValueError: a bool, a non-integer (floats included) or a value out of range, naming
            ``what`` and the valid range.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise SettingError(f"{what} must be an integer in 0..{MAX_SEED} (2**64 - 1), got {seed!r}")
    if not 0 <= int(seed) <= MAX_SEED:
        raise SettingError(f"{what} must be in 0..{MAX_SEED} (2**64 - 1), got {seed}")
    return int(seed)


class MotionResampler:
    """Linear resampling of a frame stream from ``fps_in`` to ``fps_out`` (streaming).

    Output frame j is the face at time j / fps_out, interpolated between the two input
    frames around it. ``push(frames, n_samples)`` returns the output frames that can be
    interpolated and lie within the audio received so far (``n_samples``, 16 kHz), so the
    count never exceeds ``round(duration * fps_out)``; with ``final=True`` it returns the
    rest, holding the last input frame.
    """

    def __init__(self, fps_in: float, fps_out: float, sample_rate: int):
        self.r = fps_fraction(fps_in) / fps_fraction(fps_out)
        self.fps_out, self.sample_rate = fps_out, sample_rate
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
        limit = sample_frames(n_samples, self.sample_rate, self.fps_out)
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
    """A stream of audio in, motion frames out. Create with ``model.stream()`` (any backend:
    :class:`~model_core.runtime.inference.InferenceModel`). numpy only: the backend computes
    the network's predictions (``model.sample_chunk``); the noise comes from
    :class:`~model_core.runtime.ddim.NoiseGenerator` (torch's CPU normal stream for the seed,
    in numpy) whatever the backend.

    No NaN or inf ever leaves a session or enters its history window: pushed samples must be
    finite (else :class:`AudioError`) and are clipped to ``±audio.SAMPLE_LIMIT`` (an
    :class:`~model_core.io.audio.AudioWarning` the first time, counted in ``clipped_samples``);
    every setting is validated by name; and should a chunk still come out non-finite (a
    broken checkpoint), its bad values are replaced by the last good frame, with a
    RuntimeWarning the first time, counted in ``nonfinite_chunks``.

    Attributes:
        fps: output frames per second; chunk_frames: K; latency_ms: algorithmic latency
        (chunk length + audio look-ahead), milliseconds; dim: D channels;
        settings: the :class:`~model_core.runtime.settings.SamplerSettings` it samples with,
        resolved (no None);
        clipped_samples, nonfinite_chunks: counters (see above).

    Args:
        model: the :class:`~model_core.runtime.inference.InferenceModel`;
        seed: 0..2**64-1; style: as :meth:`InferenceModel.check_style`;
        settings: a :class:`SamplerSettings` (None: the model's defaults);
        steps, eta, guidance, lip_temperature, blink_temperature, chunk_frames,
            lookahead_ms, guidance_channels: the same settings as keywords (the keyword
            API), put into ``settings`` where not None.

    Raises (on creation):
        ValueError: a setting out of range or of the wrong type (seed 0..2**64-1, chunk_frames
        1..max_chunk_frames, steps 1..train_timesteps, eta [0, 1], guidance [0, 20], fps
        [1, 240], lip_temperature and blink_temperature [0, 2], style, lookahead_ms in the
        model's :meth:`~model_core.runtime.config.ModelConfig.lookahead_range`), naming it.
    """

    def __init__(self, model, seed: int = 0, style: int | None = None,
                 chunk_frames: int | None = None, steps: int | None = None,
                 eta: float | None = None, guidance: float | None = None,
                 lip_temperature: float | None = None,
                 blink_temperature: float | None = None,
                 lookahead_ms: float | None = None, *,
                 settings: SamplerSettings | None = None,
                 guidance_channels: str | None = None):
        cfg = model.config
        self.model = model
        #: the resolved sampler settings (every field set), checked against the model
        self.settings = st = SamplerSettings.of(
            settings, steps=steps, eta=eta, guidance=guidance,
            guidance_channels=guidance_channels, lip_temperature=lip_temperature,
            blink_temperature=blink_temperature, chunk_frames=chunk_frames,
            lookahead_ms=lookahead_ms).resolve(cfg)
        self.K = st.chunk_frames
        self.style = model.check_style(style)
        self.guidance = st.guidance
        self.geo = ChunkGeometry(cfg, st.lookahead_ms)
        self._norm = model.normalization
        self.scheduler = model.ddim_scheduler(st.steps, st.eta)
        self.frontend = make_frontend(cfg, model.device)
        self.rng = NoiseGenerator(check_seed(seed))
        self.history = self._norm.rest_history(cfg.history_frames)   # [1, H, D] normalized
        self.n = 0                  # index of the next model frame
        self.n_samples = 0          # samples received (real audio)
        self.n_buffered = 0         # samples given to the front end (real + end padding)
        self.closed = False
        self.fps = cfg.fps
        self.dim = cfg.dim
        self._noise_scale = model.noise_scale(st.lip_temperature, st.blink_temperature)
        # per channel, once
        self._guidance = model.guidance_scale(self.guidance, st.guidance_channels)
        #: samples clipped to ±SAMPLE_LIMIT so far (absurdly loud input; warned once)
        self.clipped_samples = 0
        #: chunks whose sampled motion held NaN/inf, replaced by the last good frame (warned once)
        self.nonfinite_chunks = 0
        self._style = np.array([self.style], np.int64)
        self._t_cache = model.timestep_cache(self.scheduler.timesteps)

    @property
    def chunk_frames(self) -> int:
        return self.K

    @property
    def lookahead_ms(self) -> float:
        """This session's audio look-ahead, milliseconds."""
        return self.geo.lookahead_ms

    @property
    def channel_names(self) -> list[str]:
        """The D channel names of the frames (the model's)."""
        return list(self.model.channel_names)

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency: chunk length + audio look-ahead, in milliseconds."""
        return self.geo.latency_ms(self.K)

    def state_sizes(self) -> dict[str, int]:
        """Element counts of every buffer the session holds (for the bounded-state check)."""
        sizes = {"history": int(self.history.size)}
        sizes.update(self.frontend.state_sizes())
        return sizes

    def push(self, samples) -> np.ndarray:
        """Feed 16 kHz samples: [N] mono or [N, C] (C <= ``MAX_CHANNELS`` channels, channels
        last, averaged to mono: one row is one sample, however the stream is cut into
        pushes); float32, int16 / float64 converted. Returns the frames that became ready,
        float32 [n_new, D] (weights in [0, 1] for ARKit models), always finite. Samples
        beyond ``±SAMPLE_LIMIT`` are clipped (see the class docstring).

        Raises:
            AudioError: non-finite samples, another shape (3-D, [C, N] with more than
                ``MAX_CHANNELS`` columns), unsupported dtype.
            RuntimeError: the session was already flushed.
        """
        if self.closed:
            raise RuntimeError("this session was flushed; start a new one with model.stream()")
        a = np.asarray(samples)
        if a.ndim not in (1, 2):
            raise AudioError(f"push() takes samples [N] (mono) or [N, channels]; got shape "
                             f"{a.shape}")
        if a.size == 0:
            return np.zeros((0, self.dim), np.float32)
        # [N, C] is always N samples of C channels (one stereo sample [1, 2] is one sample),
        # mixed to mono here; never guessed from the shape, so any chunking gives the same
        x, clipped = _mono_float32(a, what="pushed samples", warn=False, channels_last=True)
        if clipped:
            if not self.clipped_samples:
                warn_clipped("pushed samples", clipped)
            self.clipped_samples += clipped
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
        return np.concatenate(frames) if frames else np.zeros((0, self.dim), np.float32)

    def _step(self) -> np.ndarray:
        model, geo, K, n = self.model, self.geo, self.K, self.n
        feats = self.frontend.window(geo.mel_end(n, K), geo.audio_end(n, K))
        pos = np.asarray(geo.frame_mel_pos(n, K))
        idx = np.floor(pos)
        cond_in = dict(
            feats=np.ascontiguousarray(feats, np.float32)[None],
            mel_offset=np.array([geo.mel_offset_s(n, K)], np.float32),
            align_idx=idx.astype(np.int64)[None],
            align_w=(pos - idx).astype(np.float32)[None],
            history=self.history, style=self._style,
        )
        x = np.asarray(model.sample_chunk(cond_in, K, self.scheduler, self.rng, self._guidance,
                                          self._t_cache, self._noise_scale), np.float32)
        if not np.isfinite(x).all():
            x = self._repair(x)
        self.history = np.concatenate([self.history[:, K:], x], axis=1)
        self.n += K
        return self._norm.denormalize(x)[0]

    def _repair(self, x: np.ndarray) -> np.ndarray:
        """Replace NaN/inf in a sampled chunk float32 [1, K, D] by the last history frame
        (finite)."""
        if not self.nonfinite_chunks:
            warnings.warn(RuntimeWarning(
                f"the model produced NaN/inf motion at frame {self.n}; those values were "
                f"replaced by the previous frame (is the checkpoint damaged?)"), stacklevel=4)
        self.nonfinite_chunks += 1
        return np.where(np.isfinite(x), x, self.history[:, -1:]).astype(np.float32)


class ResampledSession:
    """A session whose frames come out at another frame rate: the inner session's frames
    linearly interpolated (:class:`MotionResampler`) to ``fps``. Implements
    :class:`~model_core.runtime.driver.Session`; other attributes (``chunk_frames``,
    ``clipped_samples``, ``state_sizes()``, ...) are the inner session's.

    Args:
        session: a session with ``n_samples`` (16 kHz samples received) and ``fps``, e.g.
            a :class:`StreamingSession`.
        fps: output frames per second, in [1, 240] (:func:`model_core.face.check_fps`).
    Raises:
        ValueError: ``fps`` out of range or not a number.
    """

    def __init__(self, session, fps: float):
        self.fps = check_fps(fps, "fps (output frame rate)")
        self.session = session
        self.resampler = MotionResampler(session.fps, self.fps, MODEL_SAMPLE_RATE)

    def __getattr__(self, name):
        if name == "session":          # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.session, name)

    @property
    def latency_ms(self) -> float:
        return self.session.latency_ms

    @property
    def channel_names(self):
        return self.session.channel_names

    def push(self, samples) -> np.ndarray:
        """As the inner session's ``push``; frames float32 [n_new, D] at ``fps``."""
        return self.resampler.push(self.session.push(samples), self.session.n_samples)

    def flush(self) -> np.ndarray:
        """As the inner session's ``flush``; the rest at ``fps`` (the last input frame held)."""
        return self.resampler.push(self.session.flush(), self.session.n_samples, final=True)
