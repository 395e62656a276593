"""Sampler settings: how a session samples, as one validated object.

:class:`SamplerSettings` holds the settings every way of running a model shares -- DDIM
steps and eta, classifier-free guidance and the channels it applies to, the initial-noise
temperatures of the lips and the blinks, the chunk size K and the audio look-ahead -- and is
passed whole through ``model.stream`` / ``model.generate``, the CLI (``generate``, ``live``,
``evaluate``), :class:`~model_core.live.engine.LiveEngine` and the Blender add-on's
settings. It is checked twice, each time naming the setting:

* when built: the types and the ranges that hold for every model (steps >= 1, eta in
  [0, 1], guidance in [0, 20], temperatures in [0, 2], chunk_frames >= 1, look-ahead >= 0);
* by :meth:`SamplerSettings.resolve` against a model's :class:`ModelConfig`: None filled
  with the model's default, chunk_frames and lookahead_ms within what the model declares
  (:meth:`ModelConfig.chunk_frames_range`, :meth:`ModelConfig.lookahead_range`), steps
  within its training timesteps. A session resolves its settings once, when it opens.

Chunk size and look-ahead come in two declared pairs per model (``preset``): ``"quality"``,
the model's ``chunk_frames`` / ``lookahead_ms`` (Generate and Bake), and ``"live"``, its
low-latency ``live_chunk_frames`` / ``live_lookahead_ms`` (live input; a model that declares
none falls back to the quality pair). An explicit ``chunk_frames`` / ``lookahead_ms`` wins
over the preset. numpy-free, torch-free, bpy-free.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

from ..errors import SettingError
from .config import MAX_GUIDANCE, MAX_TEMPERATURE, ModelConfig

__all__ = ["GUIDANCE_CHANNELS", "MAX_GUIDANCE", "MAX_TEMPERATURE", "PRESETS",
           "SamplerSettings", "check_int", "check_number", "max_temperature_factor",
           "scale_temperature"]

#: What ``guidance_channels`` may be: every channel, or only the jaw*/mouth* ones.
GUIDANCE_CHANNELS = ("all", "lips")
#: The chunk / look-ahead pairs a model declares (see the module docstring).
PRESETS = ("quality", "live")


def check_int(value, name: str, lo: int, hi: int | None = None) -> int:
    """Validate a whole-number setting (not a bool, not a float) in ``lo..hi`` (``hi``
    None: no upper bound). Returns it as an int.

    Raises:
        SettingError (a ValueError): naming ``name`` and the range.
    """
    rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SettingError(f"{name} must be an integer {'in ' if hi is not None else ''}{rng}, "
                         f"got {value!r}")
    if not (lo <= int(value) and (hi is None or int(value) <= hi)):
        raise SettingError(f"{name} must be {'in ' if hi is not None else ''}{rng}, got {value}")
    return int(value)


def check_number(value, name: str, lo: float, hi: float, hint: str = "") -> float:
    """Validate a real-number setting: finite (a NaN is not a number the user meant), not a
    bool, in ``[lo, hi]``. Returns it as a float.

    Raises:
        SettingError (a ValueError): naming ``name``, the range and ``hint``.
    """
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if ok:
        v = float(value)
        ok = math.isfinite(v) and lo <= v <= hi
    if not ok:
        raise SettingError(f"{name} must be a number in [{lo:g}, {hi:g}]{hint}, got {value!r}")
    return v


def scale_temperature(factor: float, default: float) -> float:
    """A factor on a model's default temperature (the add-on's Blink Rate), at most
    :data:`MAX_TEMPERATURE`."""
    return min(MAX_TEMPERATURE, float(factor) * float(default))


def max_temperature_factor(default: float) -> float:
    """The largest factor on a default temperature ``default`` that stays within
    :data:`MAX_TEMPERATURE`, rounded down to 0.1 (the Blink Rate slider's end: 1.8 for the
    bundled model's 1.1); :data:`MAX_TEMPERATURE` for a default of 0 or less."""
    if not default > 0:
        return MAX_TEMPERATURE
    return math.floor(MAX_TEMPERATURE / float(default) * 10 + 1e-9) / 10


_ETA_HINT = " (0 = deterministic DDIM, 1 = DDPM-like noise)"
_GUIDANCE_HINT = " (1 = off; 1.5-5 is usual)"
_LOOKAHEAD_HINT = " (a model trained for one look-ahead takes only that one)"


@dataclass(frozen=True)
class SamplerSettings:
    """How a session samples; None = the model's default (see the module docstring).

    Attributes:
        steps: DDIM steps, >= 1 (at most the model's ``train_timesteps``).
        eta: DDIM eta in [0, 1] (0 = deterministic).
        guidance: classifier-free guidance scale on the audio in [0, 20] (1 = off).
        guidance_channels: ``"all"`` or ``"lips"`` (jaw*/mouth* only, ARKit models): which
            channels ``guidance`` applies to.
        lip_temperature: initial-noise scale on the jaw*/mouth* channels, [0, 2].
        blink_temperature: initial-noise scale on eyeBlinkLeft/Right, [0, 2] (higher
            blinks more).
        chunk_frames: K, frames per chunk, >= 1 (within the model's
            :meth:`~model_core.runtime.config.ModelConfig.chunk_frames_range`).
        lookahead_ms: audio look-ahead in ms, >= 0 (within the model's
            :meth:`~model_core.runtime.config.ModelConfig.lookahead_range`).
        preset: ``"quality"`` or ``"live"``: the model's declared chunk / look-ahead pair
            that fills ``chunk_frames`` and ``lookahead_ms`` when they are None (and, for
            ``"live"``, its ``live_blink_temperature`` that fills ``blink_temperature``).

    Raises (on creation):
        ValueError: a value of the wrong type or out of the ranges above, naming it.
    """

    steps: int | None = None
    eta: float | None = None
    guidance: float | None = None
    guidance_channels: str | None = None
    lip_temperature: float | None = None
    blink_temperature: float | None = None
    chunk_frames: int | None = None
    lookahead_ms: float | None = None
    preset: str = "quality"

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        if self.steps is not None:
            put("steps", check_int(self.steps, "steps (DDIM steps)", 1))
        if self.eta is not None:
            put("eta", check_number(self.eta, "eta (DDIM)", 0.0, 1.0, _ETA_HINT))
        if self.guidance is not None:
            put("guidance", check_number(self.guidance, "guidance", 0.0, MAX_GUIDANCE,
                                         _GUIDANCE_HINT))
        if self.guidance_channels is not None and self.guidance_channels not in GUIDANCE_CHANNELS:
            raise SettingError(f"guidance_channels must be one of {', '.join(GUIDANCE_CHANNELS)}, "
                             f"got {self.guidance_channels!r}")
        for name in ("lip_temperature", "blink_temperature"):
            v = getattr(self, name)
            if v is not None:
                put(name, check_number(v, name, 0.0, MAX_TEMPERATURE))
        if self.chunk_frames is not None:
            put("chunk_frames", check_int(self.chunk_frames, "chunk_frames (frames per chunk)", 1))
        if self.lookahead_ms is not None:
            put("lookahead_ms", check_number(self.lookahead_ms, "lookahead_ms (audio "
                                             "look-ahead, ms)", 0.0, 10_000.0))
        if self.preset not in PRESETS:
            raise SettingError(f"preset must be one of {', '.join(PRESETS)} (the model's "
                             f"best-quality or low-latency chunk and look-ahead), got "
                             f"{self.preset!r}")

    # -- building -------------------------------------------------------------------------
    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The field names, in order (what ``model.stream`` also takes as keywords)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def of(cls, settings: "SamplerSettings | None" = None, **kwargs) -> "SamplerSettings":
        """``settings`` (default: all the model's defaults) with the keywords that are not
        None put in: how ``model.stream(settings=..., steps=...)`` and the keyword API meet.

        Raises:
            TypeError: ``settings`` is not a SamplerSettings, or an unknown keyword (named).
            ValueError: a bad value (named).
        """
        if settings is not None and not isinstance(settings, SamplerSettings):
            raise TypeError(f"settings must be a SamplerSettings, got {type(settings).__name__}")
        unknown = sorted(set(kwargs) - set(cls.names()))
        if unknown:
            raise TypeError(f"unknown sampler setting(s) {', '.join(unknown)}; the settings "
                            f"are {', '.join(cls.names())}")
        given = {k: v for k, v in kwargs.items() if v is not None}
        if settings is None:
            return cls(**given)
        return dataclasses.replace(settings, **given) if given else settings

    def replace(self, **changes) -> "SamplerSettings":
        """A copy with ``changes`` (None sets a field back to the model's default); checked.

        Raises:
            TypeError / ValueError: as :meth:`of` / the constructor.
        """
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            raise TypeError(f"unknown sampler setting(s) {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    # -- against a model --------------------------------------------------------------------
    def resolve(self, config: ModelConfig) -> "SamplerSettings":
        """Every setting filled in for the model of ``config`` and checked against what it
        supports: a SamplerSettings with no None (``preset`` kept, for the record).

        Raises:
            ValueError: chunk_frames outside ``config.chunk_frames_range()``, lookahead_ms
                outside ``config.lookahead_range()``, steps above ``config.train_timesteps``;
                each naming the setting and the model's range.
        """
        cfg = config
        k = self.chunk_frames
        la = self.lookahead_ms
        if self.preset == "live":
            k = cfg.live_chunk_frames if k is None else k
            la = cfg.live_lookahead_ms if la is None else la
        lo_k, hi_k = cfg.chunk_frames_range()
        k = cfg.chunk_frames if k is None else check_int(
            k, "chunk_frames (frames per chunk for this model)", lo_k, hi_k)
        lo, hi = cfg.lookahead_range()
        la = float(cfg.lookahead_ms) if la is None else check_number(
            la, "lookahead_ms (audio look-ahead of this model, ms)", lo, hi, _LOOKAHEAD_HINT)
        steps = cfg.sample_steps if self.steps is None else check_int(
            self.steps, "steps (DDIM steps)", 1, cfg.train_timesteps)
        pick = lambda mine, default: default if mine is None else mine  # noqa: E731
        return SamplerSettings(
            steps=steps, eta=pick(self.eta, cfg.eta),
            guidance=pick(self.guidance, cfg.guidance),
            guidance_channels=pick(self.guidance_channels, cfg.guidance_channels),
            lip_temperature=pick(self.lip_temperature, cfg.lip_temperature),
            blink_temperature=pick(self.blink_temperature,
                                   cfg.preset_blink_temperature(self.preset)),
            chunk_frames=k, lookahead_ms=la, preset=self.preset)

    def latency_ms(self, config: ModelConfig) -> float:
        """Algorithmic latency of these settings on the model of ``config``: chunk length
        + look-ahead, ms (the most a frame waits for its audio; a frame of a K-frame chunk
        waits (K - 1/2) / fps + look-ahead on average less).

        Raises:
            ValueError: as :meth:`resolve`.
        """
        r = self.resolve(config)
        return 1000.0 * r.chunk_frames / config.fps + r.lookahead_ms

    def to_dict(self, only_set: bool = True) -> dict:
        """The settings as a JSON-ready dict (``only_set``: without the None ones)."""
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if v is not None} if only_set else d

    def describe(self) -> str:
        """One line for tables and logs, e.g. ``"live: chunk 1, look-ahead 20 ms"`` (the
        fields that are set)."""
        parts = [self.preset]
        if self.chunk_frames is not None:
            parts.append(f"chunk {self.chunk_frames}")
        if self.lookahead_ms is not None:
            parts.append(f"look-ahead {self.lookahead_ms:g} ms")
        for name in ("steps", "eta", "guidance", "guidance_channels", "lip_temperature",
                     "blink_temperature"):
            v = getattr(self, name)
            if v is not None:
                parts.append(f"{name} {v:g}" if isinstance(v, float) else f"{name} {v}")
        return parts[0] + (": " + ", ".join(parts[1:]) if len(parts) > 1 else "")
