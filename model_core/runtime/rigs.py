"""Face rigs other than ARKit: the model's ARKit-52 frames as viseme or vowel weights.

The model always makes ARKit-52 weights. A rig with the 15 Oculus/Meta visemes, VRM or MMD
vowels (:data:`model_core.face.RIG_KINDS`) gets them converted frame by frame:

* **mouth shapes** (``viseme_sil`` ... ``viseme_U``; ``aa ih ou ee oh``; ``あ い う え お``):
  a fitted multinomial logistic map (a softmax of an affine function of the 52 weights),
  ``p = softmax(W x + b)``, shipped as data in ``model_core/weights/rig_maps.json``
  (:func:`load_rig_maps`). The weights of a frame's shapes sum to 1 for the visemes
  (``viseme_sil`` is the rest pose) and to at most 1 for the vowels (the remainder is the
  closed, neutral mouth, which a vowel rig has no key for). The map was fitted on the
  procedural teacher's own paired curves (ARKit curves and the phone classes they were
  made from); the fit, its error and why a softmax and not a non-negative linear map are
  in :mod:`model_core.training.rigmaps` and ``tools/fit_rig_maps.py``.
* **pass-through channels** (blinks, brows, eyes): the mean of the ARKit channels they come
  from (:attr:`model_core.face.RigKind.passthrough`).

Numpy only (no scipy, no torch): this runs inside Blender. :class:`RigSession` wraps any
ARKit :class:`~model_core.runtime.driver.Session` and :class:`RiggedModel` any ARKit model
(either backend), so Generate, Bake, Live, Record, ``streamtalker generate --rig`` and the
Python API drive a viseme or vowel rig through the same session and driver as an ARKit one::

    model = RiggedModel(model_core.load_model(), "oculus")
    frames = model.generate(audio, sample_rate)      # [T, len(model.channel_names)]
    session = model.stream(seed=0)                   # push / flush as any session
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..face import ARKIT_52, RigKind, rig_kind
from ..errors import DataError, InputNotFoundError, SettingError
from ..io.files import read_versioned_json

__all__ = ["RIG_MAPS_PATH", "RigMap", "RigConverter", "RigSession", "RiggedModel",
           "load_rig_maps"]

#: The fitted maps shipped with model_core (written by ``tools/fit_rig_maps.py``).
RIG_MAPS_PATH = Path(__file__).resolve().parents[1] / "weights" / "rig_maps.json"
RIG_MAPS_FORMAT = "streamtalker-rig-maps"
RIG_MAPS_VERSION = 1
_REFIT = "refit it with `python tools/fit_rig_maps.py --force`"


class RigMap:
    """One fitted shape set: ARKit-52 weights -> shape weights.

    ``p = softmax(x @ W.T + b)`` over the ``C`` classes (the shapes, plus a last "rest"
    class when ``rest``), and the shapes' columns of ``p`` are the output.

    Args:
        shapes: the S shape ids (``"sil"``, ``"PP"``, ... or ``"a"`` ... ``"o"``).
        weights: float [C, 52] (channels in :data:`model_core.face.ARKIT_52` order),
            C = S + 1 with ``rest`` else S; bias: float [C].
        rest: the last class is "no shape" (the neutral, closed mouth of a vowel rig).
    Raises:
        ValueError: shapes, non-finite values or wrong sizes.
    """

    def __init__(self, shapes, weights, bias, rest: bool = False):
        self.shapes = tuple(str(s) for s in shapes)
        self.rest = bool(rest)
        self.W = np.asarray(weights, np.float64)
        self.b = np.asarray(bias, np.float64).reshape(-1)
        C = len(self.shapes) + self.rest
        if not self.shapes or len(set(self.shapes)) != len(self.shapes):
            raise DataError(f"a rig map needs distinct shape ids, got {self.shapes}")
        if self.W.shape != (C, len(ARKIT_52)) or self.b.shape != (C,):
            raise DataError(f"a rig map of {len(self.shapes)} shapes{' + rest' * self.rest} "
                             f"needs weights [{C}, 52] and bias [{C}], got "
                             f"{self.W.shape} and {self.b.shape}")
        if not (np.all(np.isfinite(self.W)) and np.all(np.isfinite(self.b))):
            raise DataError("rig map weights and bias must be finite")

    @classmethod
    def from_dict(cls, d: dict) -> "RigMap":
        """From one ``"sets"`` entry of ``rig_maps.json`` (``shapes``, ``rest``,
        ``weights``, ``bias``)."""
        return cls(d["shapes"], d["weights"], d["bias"], d.get("rest", False))

    def probabilities(self, frames) -> np.ndarray:
        """float64 [n, C]: the softmax over all classes (rest included) of frames [n, 52]."""
        z = np.asarray(frames, np.float64) @ self.W.T + self.b
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def __call__(self, frames) -> np.ndarray:
        """float32 [n, S] shape weights in [0, 1] of ARKit-52 frames float [n, 52]."""
        return self.probabilities(frames)[:, :len(self.shapes)].astype(np.float32)


_CACHE: dict = {}
_LOCK = threading.Lock()


def load_rig_maps(path=None) -> dict[str, RigMap]:
    """The fitted maps by shape set (``{"visemes": RigMap, "vowels": RigMap}``), read once
    per path and modification time.

    Args:
        path: a ``rig_maps.json``; None for :data:`RIG_MAPS_PATH`.
    Raises:
        FileNotFoundError: no such file (the message says how to make it).
        ValueError: not a rig-maps file, a newer version, or a malformed map.
    """
    p = Path(path) if path is not None else RIG_MAPS_PATH
    if not p.is_file():
        raise InputNotFoundError(f"the face-rig maps {p} are missing; {_REFIT}")
    key = (str(p), p.stat().st_mtime_ns)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    data = read_versioned_json(p, RIG_MAPS_FORMAT, RIG_MAPS_VERSION, "rig-maps file", _REFIT)
    try:
        maps = {name: RigMap.from_dict(d) for name, d in data["sets"].items()}
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{p}: a malformed rig map ({e}); {_REFIT}") from None
    with _LOCK:
        _CACHE[key] = maps
    return maps


class RigConverter:
    """ARKit-52 frames -> a rig kind's channels (:attr:`channel_names`).

    Args:
        kind: a :data:`model_core.face.RIG_KINDS` name (or a :class:`RigKind`); ``"arkit"``
            converts nothing (the frames come back as they are).
        maps: the fitted maps (default :func:`load_rig_maps`).
    Raises:
        ValueError: unknown kind; maps without the kind's shape set or with other shapes.
        FileNotFoundError: the maps file is missing.
    """

    def __init__(self, kind, maps: dict | None = None):
        self.kind: RigKind = kind if isinstance(kind, RigKind) else rig_kind(kind)
        self.channel_names = list(self.kind.channels)
        self.map = None
        if self.kind.shape_set:
            maps = load_rig_maps() if maps is None else maps
            m = maps.get(self.kind.shape_set)
            if m is None:
                raise DataError(f"the face-rig maps have no {self.kind.shape_set!r} set for "
                                 f"{self.kind.label}; {_REFIT}")
            if m.shapes != self.kind.shape_ids:
                raise DataError(f"the {self.kind.shape_set!r} map has shapes {m.shapes}, "
                                 f"{self.kind.label} needs {self.kind.shape_ids}; {_REFIT}")
            self.map = m
        idx = {n: i for i, n in enumerate(ARKIT_52)}
        n_pass = len(self.kind.passthrough)
        self._pass = np.zeros((len(ARKIT_52), n_pass))    # mean of each channel's sources
        for j, (_c, src) in enumerate(self.kind.passthrough):
            for s in src:
                self._pass[idx[s], j] = 1.0 / len(src)

    def __call__(self, frames) -> np.ndarray:
        """float32 [n, len(channel_names)] of ARKit-52 frames float [n, 52] (ARKit order).

        Raises:
            ValueError: frames not [n, 52].
        """
        x = np.asarray(frames)
        if x.ndim != 2 or x.shape[1] != len(ARKIT_52):
            raise ValueError(f"frames must be ARKit-52 weights [n, 52], got shape {x.shape}")
        if self.map is None:
            return x
        out = np.empty((len(x), len(self.channel_names)), np.float32)
        S = len(self.kind.shapes)
        out[:, :S] = self.map(x)
        out[:, S:] = np.clip(np.asarray(x, np.float64) @ self._pass, 0.0, 1.0)
        return out


class RigSession:
    """An ARKit session whose frames come out as a rig kind's channels: a
    :class:`~model_core.runtime.driver.Session` (``push``, ``flush``, ``latency_ms``,
    ``fps``, ``channel_names``). Each frame is converted on its own, so chunking cannot
    change the result.

    Args:
        session: a session with the 52 ARKit channels (``channel_names == ARKIT_52``).
        kind: a rig kind name or :class:`RigConverter`.
    Raises:
        ValueError: the session does not make ARKit-52 frames; unknown kind.
    """

    def __init__(self, session, kind):
        if list(getattr(session, "channel_names", None) or []) != list(ARKIT_52):
            raise SettingError("a face rig other than ARKit needs a model that makes the 52 "
                             "ARKit weights (an ARKit checkpoint); this one makes other "
                             "channels")
        self.session = session
        self.converter = kind if isinstance(kind, RigConverter) else RigConverter(kind)
        self.channel_names = self.converter.channel_names
        self.fps = session.fps

    @property
    def latency_ms(self) -> float:
        return self.session.latency_ms

    @property
    def settings(self):
        """The wrapped session's resolved :class:`~model_core.runtime.settings.SamplerSettings`
        (None for a session without them)."""
        return getattr(self.session, "settings", None)

    def push(self, samples) -> np.ndarray:
        return self.converter(self.session.push(samples))

    def flush(self) -> np.ndarray:
        return self.converter(self.session.flush())


class RiggedModel:
    """An ARKit model seen through a rig kind: its sessions give the rig's channels, so
    whatever drives a model (a file, a sound strip, a live microphone) drives it the same
    way: ``stream(...)``, ``generate(...)``, ``fps``, ``sample_rate``, ``channel_names``,
    ``config``.

    Args:
        model: a loaded ARKit model (:func:`model_core.load_model`, either backend).
        kind: ``"oculus"``, ``"vrm"``, ``"mmd"`` (``"arkit"`` works and converts nothing).
    Raises:
        ValueError: unknown kind, or a model that does not make the 52 ARKit weights.
    """

    def __init__(self, model, kind):
        if list(model.channel_names) != list(ARKIT_52):
            raise SettingError(f"a viseme or vowel rig is driven from the 52 ARKit weights; this "
                             f"model makes {len(model.channel_names)} other channels: use an "
                             f"ARKit checkpoint")
        self.model = model
        self.converter = RigConverter(kind)
        self.kind = self.converter.kind
        self.channel_names = self.converter.channel_names
        self.fps, self.sample_rate = model.fps, model.sample_rate
        self.config = model.config

    @property
    def backend(self) -> str:
        return self.model.backend

    def stream(self, *args, **kwargs) -> RigSession:
        """A :class:`RigSession` over ``model.stream(*args, **kwargs)`` (the same settings:
        seed, style, steps, fps, blink_temperature, ...)."""
        return RigSession(self.model.stream(*args, **kwargs), self.converter)

    def generate(self, audio, sample_rate: int, seed: int = 0, **kwargs) -> np.ndarray:
        """Whole-file generation (``model.generate``), converted: float32
        [round(duration_s * fps), len(channel_names)]."""
        return self.converter(self.model.generate(audio, sample_rate, seed=seed, **kwargs))
