"""What every inference backend shares (numpy only, never torch): the output normalization,
the settings checks, the DDIM loop of a chunk, ``stream`` and ``generate``.

A backend's model (:class:`~model_core.runtime.model.StreamTalkerModel` for torch,
:class:`~model_core.runtime.onnx_backend.OnnxModel` for onnxruntime) derives from
:class:`InferenceModel` and supplies three things: :attr:`InferenceModel.normalization`,
:meth:`InferenceModel.timestep_cache` and :meth:`InferenceModel.chunk_denoiser` (the
condition predictor once per chunk, then the diffusion head per DDIM step). The session
(:class:`~model_core.runtime.session.StreamingSession`), the scheduler and sampling loop
(:mod:`model_core.runtime.ddim`), the front end and the driver are the same code for both.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..face import is_lip_channel, region_of
from ..io.audio import to_model_rate
from .config import ChunkGeometry, ModelConfig
from .ddim import DDIMScheduler, NoiseGenerator, sample_ddim
from .driver import run
from .session import ResampledSession, StreamingSession
from .settings import SamplerSettings
from ..errors import SettingError


class Normalization:
    """The output channels' normalization (data space <-> model space) and rest pose.

    Args:
        mean, std, rest: float32 [D] per-channel mean, standard deviation and rest pose (data
            space); clip01: True for ARKit weights (data space bounded to [0, 1]).
    """

    def __init__(self, mean, std, rest, clip01: bool):
        self.mean = np.asarray(mean, np.float32).reshape(-1)
        self.std = np.asarray(std, np.float32).reshape(-1)
        self.rest = np.asarray(rest, np.float32).reshape(-1)
        self.clip01 = bool(clip01)

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """Data space float32 [..., D] -> model space."""
        return ((x - self.mean) / self.std).astype(np.float32, copy=False)

    def denormalize(self, x: np.ndarray) -> np.ndarray:
        """Model space float32 [..., D] -> data space; ARKit weights clipped to [0, 1]."""
        y = x * self.std + self.mean
        return np.clip(y, 0.0, 1.0) if self.clip01 else y

    def x0_bounds(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(min, max) float32 [D] of x0 in model space: the image of [0, 1] for ARKit, else
        (None, None)."""
        if not self.clip01:
            return None, None
        return (np.float32(0.0) - self.mean) / self.std, (np.float32(1.0) - self.mean) / self.std

    def rest_history(self, frames: int) -> np.ndarray:
        """A history window filled with the rest pose, model space, float32 [1, frames, D]."""
        rest = self.normalize(self.rest)
        return np.ascontiguousarray(np.broadcast_to(rest, (1, frames, len(rest))))


def lip_scale(channel_names, value: float) -> np.ndarray:
    """float32 [D]: ``value`` on the lip channels (:func:`model_core.face.is_lip_channel`),
    1 elsewhere."""
    return np.array([value if is_lip_channel(n) else 1.0 for n in channel_names], np.float32)


class InferenceModel:
    """The backend-independent part of a loaded model (ARKit or latent frames).

    Attributes:
        config: the :class:`ModelConfig`; geometry: its :class:`ChunkGeometry`;
        backend: ``"torch"`` or ``"onnx"``; device: what the front end runs on (``"cpu"``
        for onnx; a torch.device for torch).
    """

    backend = ""
    device = "cpu"

    def __init__(self, config: ModelConfig):
        self.config = config
        self.geometry = ChunkGeometry(config)

    # -- what a backend supplies ---------------------------------------------------------
    @property
    def normalization(self) -> Normalization:
        """The output :class:`Normalization` (read when a session opens)."""
        raise NotImplementedError

    def ddim_scheduler(self, steps: int, eta: float) -> DDIMScheduler:
        """The model's DDIM sampler (its noise schedule; x0 kept in the ARKit range, see
        :meth:`Normalization.x0_bounds`) set to ``steps`` steps, ``eta`` in [0, 1]; what a
        session and a training rollout sample with."""
        cfg = self.config
        scheduler = DDIMScheduler(cfg.schedule, cfg.train_timesteps, eta,
                                  *self.normalization.x0_bounds())
        scheduler.set_timesteps(steps)
        return scheduler

    def timestep_cache(self, timesteps: list[int]) -> dict:
        """Per-timestep values the backend's denoiser reuses across chunks (a session builds
        it once and passes it to :meth:`sample_chunk`); empty by default."""
        return {}

    def chunk_denoiser(self, cond_in: dict, drop_audio: np.ndarray,
                       t_cache: dict) -> Callable[[np.ndarray, int], np.ndarray]:
        """Run the condition predictor for one chunk and return its denoiser.

        Args:
            cond_in: numpy inputs of the condition predictor, batch B: ``feats`` float32
                [1, M, F] (shared by the B rows), ``mel_offset`` float32 [B] (s),
                ``align_idx`` int64 [B, K], ``align_w`` float32 [B, K], ``history``
                float32 [B, H, D] (model space), ``style`` int64 [B];
            drop_audio: bool [B], True where the audio is replaced by the null condition;
            t_cache: :meth:`timestep_cache`'s dict, holding every timestep the DDIM loop
                will ask for (KeyError otherwise).
        Returns:
            ``denoise(x_t float32 [1, K, D], t int) -> x0 float32 [B, K, D]``.
        """
        raise NotImplementedError

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

    def latency_ms(self, chunk_frames: int | None = None,
                   lookahead_ms: float | None = None, *,
                   settings: SamplerSettings | None = None) -> float:
        """Algorithmic latency (chunk + look-ahead) in milliseconds of a ``chunk_frames``
        chunk with ``lookahead_ms`` of look-ahead (None: the config's), or of ``settings``
        (:meth:`SamplerSettings.latency_ms`; the keywords win where given).

        Raises:
            ValueError: a setting this model does not support (named)."""
        if settings is not None:
            return SamplerSettings.of(settings, chunk_frames=chunk_frames,
                                      lookahead_ms=lookahead_ms).latency_ms(self.config)
        geo = self.geometry if lookahead_ms is None else ChunkGeometry(self.config, lookahead_ms)
        return geo.latency_ms(self.config.chunk_frames if chunk_frames is None
                              else chunk_frames)

    def check_style(self, style) -> int:
        """Style index for the network: None -> the learned 'unknown' style.

        Raises:
            ValueError: style outside 0..n_styles-1.
        """
        n = self.config.n_styles
        if style is None:
            return n
        if isinstance(style, bool) or not isinstance(style, (int, np.integer)) or not 0 <= style < n:
            raise SettingError(f"style must be None or an integer in 0..{n - 1} "
                             f"(this model was trained on {n} identities), got {style!r}")
        return int(style)

    # -- sampling ------------------------------------------------------------------------
    def noise_scale(self, lip_temperature: float,
                    blink_temperature: float = 1.0) -> np.ndarray | None:
        """Per-channel scale of the initial DDIM noise, float32 [D], or None when all are 1:
        ``lip_temperature`` on the jaw*/mouth* channels and ``blink_temperature`` on
        eyeBlinkLeft/Right (:func:`model_core.face.region_of` ``"blinks"``) of an ARKit model.
        A blink is a rare event in a 3-frame chunk, which a few deterministic DDIM steps
        mostly sample away; more initial noise on the blink channels brings the rate back
        (MODEL_CARD.md measures it), while fewer on the lips makes them follow the audio."""
        if (lip_temperature == 1.0 and blink_temperature == 1.0) \
                or self.config.output_kind != "arkit":
            return None
        scale = lip_scale(self.channel_names, lip_temperature)
        scale[[region_of(n) == "blinks" for n in self.channel_names]] = blink_temperature
        return scale

    def sample_chunk(self, cond_in: dict, K: int, scheduler: DDIMScheduler,
                     rng: NoiseGenerator, guidance: float | np.ndarray = 1.0,
                     t_cache: dict | None = None,
                     noise_scale: np.ndarray | None = None) -> np.ndarray:
        """Run the condition predictor once and the DDIM loop for one chunk.

        Args:
            cond_in: inputs of :meth:`chunk_denoiser` for batch 1 (no ``drop_audio``).
            K: chunk frames; scheduler: a DDIM scheduler with timesteps set;
            rng: the generator of the initial noise (and eta noise);
            guidance: classifier-free guidance scale on audio (1 = off), or the float32 [D]
                per-channel scale of :meth:`guidance_scale`;
            t_cache: :meth:`timestep_cache`'s dict (None: built here);
            noise_scale: optional per-channel scale float32 [D] of the initial noise (see
                :meth:`noise_scale`).
        Returns:
            the sampled chunk x0, model space, float32 [1, K, D].
        """
        if np.any(np.asarray(guidance) != 1.0):
            # both rows hear the same audio: the encoder runs on one row of feats
            cond_in = {k: v if k == "feats" else np.concatenate([v, v])
                       for k, v in cond_in.items()}
            drop = np.array([False, True])
        else:
            drop = np.array([False])
        if t_cache is None:
            t_cache = self.timestep_cache(scheduler.timesteps)
        denoise = self.chunk_denoiser(cond_in, drop, t_cache)
        return sample_ddim(denoise, (1, K, self.dim), scheduler, rng, guidance, noise_scale)

    def guidance_scale(self, guidance: float,
                       channels: str | None = None) -> float | np.ndarray:
        """The classifier-free guidance scale per channel: ``guidance`` everywhere, or with
        ``channels = "lips"`` (default: the config's ``guidance_channels``; an ARKit model)
        float32 [D] with ``guidance`` on the jaw*/mouth* channels and 1 (unguided) on the
        upper face, whose blinks and gaze do not follow the audio."""
        channels = self.config.guidance_channels if channels is None else channels
        if guidance == 1.0 or channels == "all" \
                or self.config.output_kind != "arkit":
            return guidance
        return lip_scale(self.channel_names, guidance)

    def stream(self, seed: int = 0, style: int | None = None, chunk_frames: int | None = None,
               steps: int | None = None, eta: float | None = None, guidance: float | None = None,
               fps: float | None = None, lip_temperature: float | None = None,
               blink_temperature: float | None = None, lookahead_ms: float | None = None, *,
               settings: SamplerSettings | None = None, guidance_channels: str | None = None):
        """Open a streaming session: a :class:`~model_core.runtime.session.StreamingSession`,
        wrapped in a :class:`~model_core.runtime.session.ResampledSession` when ``fps``
        differs from the model's. Both are :class:`~model_core.runtime.driver.Session` s.

        Args:
            seed: sampling seed, 0..2**64-1 (same seed + same audio -> same frames, and the
                same noise in every backend: :class:`~model_core.runtime.ddim.NoiseGenerator`).
            style: training identity 0..n_styles-1, or None for the learned unknown style.
            fps: output frame rate (default: the model's); other rates are interpolated.
            settings: the :class:`~model_core.runtime.settings.SamplerSettings` (None: the
                model's defaults), resolved against this model once
                (``session.settings``); e.g. ``SamplerSettings(preset="live")`` for the
                model's low-latency chunk and look-ahead.
            chunk_frames, steps, eta, guidance, guidance_channels, lip_temperature,
                blink_temperature, lookahead_ms: the same settings as keywords; those not
                None replace ``settings``' (chunk_frames: K, frames per step, in
                ``config.chunk_frames_range()``; lookahead_ms: audio look-ahead, ms, in
                ``config.lookahead_range()``, shorter is less latency for live input;
                temperatures: initial-noise scales on the jaw/mouth and blink channels,
                [0, 2]).
        Raises:
            ValueError: a setting out of range, or one this model does not support (named).
            TypeError: ``settings`` is not a SamplerSettings.
        """
        session = StreamingSession(self, seed=seed, style=style, chunk_frames=chunk_frames,
                                   steps=steps, eta=eta, guidance=guidance,
                                   lip_temperature=lip_temperature,
                                   blink_temperature=blink_temperature,
                                   lookahead_ms=lookahead_ms, settings=settings,
                                   guidance_channels=guidance_channels)
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
            seed: sampling seed, 0..2**64-1; progress: show a tqdm bar; other keywords
                (``settings``, ``style``, ``fps``, each sampler setting) go to
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
        if not progress:
            return run(session, x, block)
        from tqdm import tqdm
        with tqdm(total=math.ceil(len(x) / block), unit="s", desc="generate",
                  leave=False) as bar:
            return run(session, x, block, on_progress=lambda _: bar.update(1))
