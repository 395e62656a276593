"""Model configuration (architecture, rates, output channels) and the chunk geometry.

The geometry functions are the single definition of which audio and which past frames a
chunk sees; the streaming session and the training data pipeline both call them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ..face import ARKIT_52, check_fps, fps_fraction, sample_frames
from ..errors import ConfigError

#: Checkpoint/config format version this code reads and writes.
FORMAT_VERSION = 1

#: Largest classifier-free guidance scale a model or a session accepts.
MAX_GUIDANCE = 20.0
#: Largest initial-noise temperature (lips, blinks): the one bound, for model configs, the
#: sampler settings (:mod:`.settings` re-exports it) and the add-on's Blink Rate
#: (:func:`.settings.scale_temperature`, :func:`.settings.max_temperature_factor`).
MAX_TEMPERATURE = 2.0


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; saved as the checkpoint's JSON config.

    Rates and sizes:
        fps: motion frames per second of the model (25, 30 and 60 are tested).
        sample_rate: audio rate in Hz the model consumes (16000).
        channel_names: names of the D output channels (ARKit-52 by default).
        output_kind: ``"arkit"`` (weights in [0, 1]) or ``"latent"`` (unbounded codec latent).
        chunk_frames: K, motion frames produced per step (default for sessions).
        max_chunk_frames: largest K a session may ask for (sessions may use 1..this).
        history_frames: H, past motion frames in the history window.
        lookahead_ms: audio look-ahead past the chunk's last frame, milliseconds: the
            default of sessions and the largest they may ask for.
        min_lookahead_ms: the smallest look-ahead a session may ask for (None: only
            ``lookahead_ms``). A model trained with ``min_lookahead_ms`` set saw every
            look-ahead in that range (each training batch draws one: the future audio
            beyond it is simply not in the encoder window), so a short one is something it
            learned, not a cut it never saw.
        live_chunk_frames, live_lookahead_ms: the low-latency setting the model recommends
            for live input (None: the defaults above), which ``streamtalker live`` and the
            add-on's Live use unless told otherwise.
        audio_context_frames: M, log-mel frames (10 ms each) in the encoder window; a
            multiple of ``audio_pool``.
    Audio front end (log-mel): n_fft, win_length, hop_length (samples), n_mels, fmin, fmax (Hz).
    Network: d_model, n_heads, predictor_layers and predictor_ff (condition
        predictor depth and MLP size), history_pool (history frames per history token), head_dim, head_layers and
        head_ff (width, depth and MLP size of the diffusion head), encoder_channels and
        encoder_dilations (width of the log-mel encoder, and the dilation of each of its
        residual kernel-5 convolutions), audio_pool (mel frames per audio token),
        history_prefix (clean history frames shown to the diffusion head), n_styles
        (training identities; one extra learned "unknown" style is added), dropout.
    Diffusion: train_timesteps (DDPM steps), schedule (``"cosine"`` or ``"linear"``),
        sample_steps and eta (DDIM defaults), guidance (classifier-free guidance scale on
        the audio condition; 1.0 = off), guidance_channels (``"all"``, or ``"lips"``: only the
        jaw*/mouth* channels of an ARKit model are guided, the upper face is not),
        lip_temperature (scale of the initial DDIM noise on
        the jaw*/mouth* channels of ARKit models: below 1 the lips follow the audio more and the
        seed less, while the upper face keeps its full randomness), blink_temperature (scale of
        the initial DDIM noise on eyeBlinkLeft/Right of ARKit models: the blink rate rises
        with it; the other channels change only through the network, the lips barely),
        live_blink_temperature (the same at the ``"live"`` preset, None: blink_temperature;
        1-frame chunks start the blink channels from fresh noise three times as often as
        3-frame ones, so they blink more at the same temperature),
        cond_drop (probability of dropping the audio
        condition in training), style_drop, velocity_weight (weight of the velocity loss), diffusion_repeats
        (noise levels drawn per training example: the condition is computed once and the
        small head is trained on several noised copies),
        history_noise (std of noise added to the training history, normalized units; with
        history_drop or history_shrink set, the largest std, drawn per example),
        history_drop (probability that a training example's history is the rest pose) and
        history_shrink (largest factor by which a training history is pulled towards the
        data mean): both teach the model to follow the audio when its own history drifts,
        history_corrupt ("all" channels, or only the jaw*/mouth* "lips" of an ARKit model,
        so that the upper face keeps continuing its true history),
        rollout_chunks and rollout_fraction (exposure bias met head on, after "scheduled
        sampling", Bengio et al. 2015, and Self Forcing, Huang et al. 2025: in a fraction
        ``rollout_fraction`` of the training batches the last ``rollout_chunks`` chunks of
        each example's history are not the data but the model's own samples, drawn with no
        gradient by its own DDIM sampler from the true history before them; those
        histories are not corrupted further; 0 = off),
        lip_loss_weight (weight of the jaw*/mouth* channels in the x0 and velocity losses,
        the other channels weigh 1), closure_loss_weight (a further factor on the lip
        channels' losses at the frames of P/B/M phones, widened by one frame on each side
        as the closure measure counts them; needs phone timings in the corpus; 1 = off),
        aux_viseme_weight (weight of an auxiliary
        cross-entropy that classifies the viseme spoken at every encoder frame and at every
        chunk frame from the audio features and the condition; 0 = no auxiliary heads.
        Training-only: the heads are not used when sampling).
    speech_encoder: ``None`` for the built-in log-mel encoder, or a dict
        ``{"type": "hubert" | "wav2vec2", "path": LOCAL_DIR, "layer": int | None,
        "context_s": float}`` for a pretrained ``transformers`` encoder read from a local
        directory only.
    training: free-form record of how the weights were made (data, steps, hardware).
    """

    fps: float = 30.0                          # model frames per second
    sample_rate: int = 16000                   # audio rate, Hz
    channel_names: list[str] = field(default_factory=lambda: list(ARKIT_52))
    output_kind: str = "arkit"                 # "arkit" | "latent"
    chunk_frames: int = 4                      # K, frames per step
    max_chunk_frames: int = 8                  # largest K a session accepts
    history_frames: int = 60                   # H, past frames conditioned on
    lookahead_ms: float = 60.0                 # audio past the chunk's last frame
    min_lookahead_ms: float | None = None      # smallest look-ahead sessions may ask for
    live_chunk_frames: int | None = None       # low-latency setting for live input
    live_lookahead_ms: float | None = None
    audio_context_frames: int = 64             # M, mel frames in the encoder window
    n_fft: int = 512                           # STFT size, samples
    win_length: int = 400                      # analysis window, samples
    hop_length: int = 160                      # mel hop, samples (10 ms)
    n_mels: int = 80                           # mel bands
    fmin: float = 20.0                         # lowest mel edge, Hz
    fmax: float = 7600.0                       # highest mel edge, Hz
    d_model: int = 192                         # condition predictor width
    n_heads: int = 4                           # attention heads
    predictor_layers: int = 2                  # condition predictor depth
    predictor_ff: int = 384                    # its feed-forward width
    history_pool: int = 4                      # history frames per token
    head_dim: int = 128                        # diffusion head width
    head_layers: int = 2                       # diffusion head depth
    head_ff: int = 256                         # its feed-forward width
    encoder_channels: int = 128                # audio encoder channels
    encoder_dilations: list[int] = field(default_factory=lambda: [1, 1])
    audio_pool: int = 4                        # mel frames per audio token
    history_prefix: int = 2                    # raw history frames kept unpooled
    n_styles: int = 8                          # training identities
    dropout: float = 0.0                       # network dropout
    train_timesteps: int = 1000                # DDPM steps
    schedule: str = "cosine"                   # "cosine" | "linear"
    sample_steps: int = 10                     # DDIM steps
    eta: float = 0.0                           # DDIM eta (0: deterministic)
    guidance: float = 1.0                      # classifier-free guidance (1: off)
    guidance_channels: str = "all"             # channels guided: "all" | "lips"
    lip_temperature: float = 1.0               # initial-noise scale on the lips
    blink_temperature: float = 1.0             # initial-noise scale on eyeBlinkLeft/Right
    live_blink_temperature: float | None = None  # the same at the live preset (None: above)
    cond_drop: float = 0.1                     # audio dropped in training (for CFG)
    style_drop: float = 0.1                    # style dropped in training
    velocity_weight: float = 1.0               # velocity loss weight
    diffusion_repeats: int = 4                 # noise draws per example
    history_noise: float = 0.05                # noise on the history (exposure bias)
    history_drop: float = 0.0                  # P(history -> rest pose) in training
    history_shrink: float = 0.0                # history shrunk by U(0, this) in training
    history_corrupt: str = "all"               # channels corrupted: "all" | "lips"
    rollout_chunks: int = 0                    # own-sample chunks ending a training history
    rollout_fraction: float = 0.0              # of the training batches
    lip_loss_weight: float = 1.0               # loss weight of the lip channels
    closure_loss_weight: float = 1.0           # and its factor on P/B/M frames
    aux_viseme_weight: float = 0.0             # auxiliary viseme heads (0: none)
    speech_encoder: dict | None = None         # pretrained encoder, see above
    format_version: int = FORMAT_VERSION       # checkpoint format
    training: dict = field(default_factory=dict)

    def __post_init__(self):
        self.validate()

    @property
    def dim(self) -> int:
        """D, the number of output channels."""
        return len(self.channel_names)

    def validate(self) -> None:
        """Raise ValueError naming the setting when a value is out of range."""
        def need(cond, msg):
            if not cond:
                raise ConfigError(f"model config: {msg}")
        try:
            check_fps(self.fps)
        except ValueError as e:
            need(False, str(e))
        need(self.sample_rate == 16000, f"sample_rate must be 16000, got {self.sample_rate}")
        need(isinstance(self.dropout, (int, float)) and not isinstance(self.dropout, bool)
             and 0.0 <= self.dropout < 1.0,
             f"dropout must be a number in [0, 1), got {self.dropout!r}")
        need(len(self.channel_names) > 0, "channel_names is empty")
        need(len(set(self.channel_names)) == len(self.channel_names), "channel_names repeat")
        need(self.output_kind in ("arkit", "latent"),
             f"output_kind must be 'arkit' or 'latent', got {self.output_kind!r}")
        need(1 <= self.chunk_frames <= self.max_chunk_frames,
             f"chunk_frames must be in 1..max_chunk_frames={self.max_chunk_frames}, "
             f"got {self.chunk_frames}")
        need(self.history_frames >= self.history_prefix >= 1,
             "history_frames must be >= history_prefix >= 1")
        need(self.history_frames % self.history_pool == 0,
             "history_frames must be a multiple of history_pool")
        need(0 <= self.lookahead_ms < math.inf, f"lookahead_ms must be >= 0, got {self.lookahead_ms}")
        lo, hi = self.lookahead_range()
        need(0 <= lo <= hi, f"min_lookahead_ms must be in [0, lookahead_ms={hi:g}], got "
                            f"{self.min_lookahead_ms}")
        need(self.live_chunk_frames is None or 1 <= self.live_chunk_frames <= self.max_chunk_frames,
             f"live_chunk_frames must be in 1..max_chunk_frames={self.max_chunk_frames}, got "
             f"{self.live_chunk_frames}")
        need(self.live_lookahead_ms is None or lo <= self.live_lookahead_ms <= hi,
             f"live_lookahead_ms must be in [{lo:g}, {hi:g}] (min_lookahead_ms..lookahead_ms), "
             f"got {self.live_lookahead_ms}")
        need(self.audio_context_frames % self.audio_pool == 0,
             "audio_context_frames must be a multiple of audio_pool")
        need(self.d_model % self.n_heads == 0 and self.head_dim % self.n_heads == 0,
             "d_model and head_dim must be divisible by n_heads")
        need(self.schedule in ("cosine", "linear"), f"unknown schedule {self.schedule!r}")
        need(1 <= self.sample_steps <= self.train_timesteps,
             f"sample_steps must be in 1..{self.train_timesteps}")
        need(math.isfinite(self.eta) and 0 <= self.eta <= 1,
             f"eta must be a number in [0, 1], got {self.eta}")
        need(math.isfinite(self.guidance) and 0 <= self.guidance <= MAX_GUIDANCE,
             f"guidance must be a number in [0, {MAX_GUIDANCE:g}], got {self.guidance}")
        need(self.guidance_channels in ("all", "lips"),
             f"guidance_channels must be 'all' or 'lips', got {self.guidance_channels!r}")
        for name in ("lip_temperature", "blink_temperature"):
            need(0 <= getattr(self, name) <= MAX_TEMPERATURE,
                 f"{name} must be in [0, {MAX_TEMPERATURE:g}]")
        need(self.live_blink_temperature is None
             or 0 <= self.live_blink_temperature <= MAX_TEMPERATURE,
             f"live_blink_temperature must be None or in [0, {MAX_TEMPERATURE:g}], got "
             f"{self.live_blink_temperature}")
        need(len(self.encoder_dilations) >= 1 and all(
            isinstance(d, int) and 1 <= d <= 16 for d in self.encoder_dilations),
            f"encoder_dilations must be a non-empty list of integers in 1..16, got "
            f"{self.encoder_dilations}")
        need(self.lip_loss_weight > 0, f"lip_loss_weight must be > 0, got {self.lip_loss_weight}")
        need(self.closure_loss_weight >= 1,
             f"closure_loss_weight must be >= 1 (1 = off), got {self.closure_loss_weight}")
        need(0 <= self.history_drop <= 1 and 0 <= self.history_shrink <= 1,
             "history_drop and history_shrink must be in [0, 1]")
        need(self.history_corrupt in ("all", "lips"),
             f"history_corrupt must be 'all' or 'lips', got {self.history_corrupt!r}")
        need(isinstance(self.rollout_chunks, int) and 0 <= self.rollout_chunks <= 8
             and 0 <= self.rollout_fraction <= 1,
             f"rollout_chunks must be an integer in 0..8 and rollout_fraction in [0, 1], got "
             f"{self.rollout_chunks!r} and {self.rollout_fraction!r}")
        need(self.aux_viseme_weight >= 0,
             f"aux_viseme_weight must be >= 0, got {self.aux_viseme_weight}")
        chunk_s = self.max_chunk_frames / self.fps + self.lookahead_ms / 1000
        need(self.audio_context_frames * self.hop_length / self.sample_rate >= chunk_s,
             "audio_context_frames must cover max_chunk_frames plus the look-ahead")
        if self.speech_encoder is not None:
            need(self.speech_encoder.get("type") in ("hubert", "wav2vec2"),
                 "speech_encoder.type must be 'hubert' or 'wav2vec2'")
            need(bool(self.speech_encoder.get("path")), "speech_encoder.path is required")

    def chunk_frames_range(self) -> tuple[int, int]:
        """(smallest, largest) chunk size K in frames a session may ask for: 1 ..
        min(max_chunk_frames, history_frames)."""
        return 1, min(self.max_chunk_frames, self.history_frames)

    def preset_blink_temperature(self, preset: str) -> float:
        """The default blink temperature of a preset: ``live_blink_temperature`` for
        ``"live"`` when the model declares one, else ``blink_temperature`` (a unitless
        initial-noise scale in [0, 2])."""
        if preset == "live" and self.live_blink_temperature is not None:
            return float(self.live_blink_temperature)
        return float(self.blink_temperature)

    def lookahead_range(self) -> tuple[float, float]:
        """(smallest, largest) look-ahead in ms a session may ask for."""
        hi = float(self.lookahead_ms)
        return (hi if self.min_lookahead_ms is None else float(self.min_lookahead_ms)), hi

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """Build from a dict; unknown keys raise ValueError naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"model config: unknown setting(s) {unknown}")
        return cls(**d)


class ChunkGeometry:
    """Which samples, mel frames and times a chunk of motion frames uses.

    Motion frame ``i`` is the face at time ``i / fps`` seconds. A chunk of K frames starting
    at frame ``n`` may be computed once the audio up to
    ``E = ceil((n + K - 0.5) * sr / fps) + lookahead_samples`` samples has arrived (the half
    frame makes the number of frames emitted before end of stream never exceed
    ``round(duration * fps)``). Its encoder window is the M mel frames ending at the last
    mel frame computable from E samples. All times fed to the network are relative to the
    chunk's last frame, in seconds. ``lookahead_ms`` (default: the config's) is a session's
    or a training batch's own look-ahead (within :meth:`ModelConfig.lookahead_range`).
    """

    def __init__(self, cfg: ModelConfig, lookahead_ms: float | None = None):
        self.cfg = cfg
        self.sr = cfg.sample_rate
        self.fps = fps_fraction(cfg.fps)
        self.samples_per_frame = Fraction(cfg.sample_rate) / self.fps
        #: the look-ahead of this geometry, ms (default: the config's)
        self.lookahead_ms = float(cfg.lookahead_ms if lookahead_ms is None else lookahead_ms)
        self.lookahead_samples = int(round(self.lookahead_ms * cfg.sample_rate / 1000))
        self.hop, self.half_win, self.M = cfg.hop_length, cfg.win_length // 2, cfg.audio_context_frames

    def audio_end(self, n: int, k: int) -> int:
        """E: samples needed for the chunk of k frames starting at frame n."""
        return math.ceil((n + k - Fraction(1, 2)) * self.samples_per_frame) + self.lookahead_samples

    def mel_end(self, n: int, k: int) -> int:
        """Exclusive end index of the chunk's mel window (last computable frame + 1)."""
        return (self.audio_end(n, k) - self.half_win) // self.hop + 1

    def mel_offset_s(self, n: int, k: int) -> float:
        """Time of the window's first mel frame relative to the chunk's last frame, seconds."""
        first = self.mel_end(n, k) - self.M
        return float(first * self.hop / self.sr - (n + k - 1) / self.fps)

    def frame_mel_pos(self, n: int, k: int) -> list[float]:
        """Fractional positions (in mel frames, within the window) of the chunk's k frames."""
        first = self.mel_end(n, k) - self.M
        return [float((n + j) / self.fps * self.sr / self.hop - first) for j in range(k)]

    def n_frames(self, n_samples: int) -> int:
        """Frames in ``n_samples`` of audio: round(duration * fps), halves rounded up."""
        return sample_frames(n_samples, self.sr, self.cfg.fps)

    def latency_ms(self, k: int) -> float:
        """Algorithmic latency of a K-frame chunk: chunk length + look-ahead, milliseconds."""
        return 1000.0 * k / self.cfg.fps + self.lookahead_ms
