"""Model channel -> shape key matching, strengths and mapping presets. No ``bpy`` here.

Rigs spell the ARKit names differently: ``jawOpen`` (Apple), ``JawOpen`` (Live Link Face),
``jaw_open``, ``eyeBlink_L`` (Face Cap / three.js), ``eyeBlink.L``, ``L_eyeBlink``,
``EyeBlink_Left``, and often with a prefix such as ``blendShape1.`` or ``Face:``. The
matching rule is model_core's one name matcher (:func:`model_core.face.match_names`, the
same the capture readers use): a shape key matches a channel when its spelling equals the
channel's, or does after dropping a prefix; exact matches win over prefixed ones; each shape
key serves one channel. The strength regions are :func:`model_core.face.region_of`'s.

Face rigs: a mesh whose shape keys are visemes or vowels (Oculus/Meta ``viseme_PP``,
VRChat ``vrc.v_pp``, VRM ``aa``, VRoid ``Fcl_MTH_A``, MMD ``あ``) is driven through
:mod:`model_core.runtime.rigs`; its kind is told from the shape-key names
(:func:`detect_rig`, the same matcher) and its channels are the kind's
(:func:`rig_channels`).

Presets are JSON files (``rig``: the rig kind the channels are of; absent = ARKit)::

    {"format": "streamtalker-mapping", "version": 1, "rig": "arkit",
     "mapping": {"jawOpen": "JawOpen", "eyeBlinkLeft": "eyeBlink_L", ...}}
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path

from .core import face as _face
from .core import mc_light
from .errors import DataError

PRESET_FORMAT = "streamtalker-mapping"
PRESET_VERSION = 1


def strength_regions() -> tuple[str, ...]:
    """Regions whose strength the panel sets (``model_core.face.STRENGTH_REGIONS``)."""
    return tuple(_face().STRENGTH_REGIONS)


def match_channels(channels, shape_keys, rig: str = "arkit") -> dict[str, str]:
    """Match model channels to shape-key names (:func:`model_core.face.match_names`).

    Args:
        channels: model channel names (ARKit-52 ``eyeBlinkLeft`` style, or a rig kind's
            channels), any iterable of str.
        shape_keys: the mesh's shape-key names (the reference key ``Basis`` may be included:
            it matches nothing).
        rig: the rig kind the channels are of (:data:`model_core.face.RIG_KINDS`); other
            than ``"arkit"`` its spellings are accepted too (:func:`model_core.face.match_rig`).
    Returns:
        {channel: shape_key} for the matched channels only, in channel order. Unmatched
        channels are absent (see :func:`unmatched`).
    """
    return dict(_match_channels(tuple(channels), tuple(shape_keys), rig))


@functools.lru_cache(maxsize=32)
def _match_channels(channels: tuple, shape_keys: tuple, rig: str) -> dict[str, str]:
    # the panel asks on every redraw; the answer depends on the names only
    if rig == "arkit":
        return _face().match_names(channels, shape_keys)
    found = _face().match_rig(rig, shape_keys)
    return {c: found[c] for c in channels if c in found}


def detect_rig(shape_keys):
    """The rig kind of a mesh's shape-key names (:func:`model_core.face.detect_rig`):
    a ``RigMatch`` with ``kind``, ``mapping``, ``n_shapes``, ``n_matched`` (remembered per
    set of names, since the panel asks on every redraw; each call gets its own copy)."""
    found = _detect_rig(tuple(shape_keys))
    return dataclasses.replace(found, mapping=dict(found.mapping))


@functools.lru_cache(maxsize=32)
def _detect_rig(shape_keys: tuple):
    return _face().detect_rig(shape_keys)


def rig_channels(rig: str) -> list[str]:
    """The channels a rig kind's keys are driven by (``RigKind.channels``).

    Raises:
        ValueError: unknown kind.
    """
    return list(_face().rig_kind(rig).channels)


def rig_shapes(rig: str) -> list[str]:
    """A rig kind's mouth shapes (``RigKind.shapes``: ``viseme_sil`` ... ; ``aa`` ...)."""
    return list(_face().rig_kind(rig).shapes)


def mouth_shapes_missing(rig: str, mapped) -> tuple[list[str], int]:
    """The mouth shapes of rig kind ``rig`` that have no shape key in ``mapped`` (a
    {channel: shape key} dict or the mapped channels), in the kind's order, and how many
    mouth shapes the kind has: what the panel, Auto-Match and the plan report for viseme
    and vowel rigs (for ``"arkit"`` the count is over its mouth channels, which no caller
    reports).

    Raises:
        ValueError: unknown kind.
    """
    shapes = rig_shapes(rig)
    return [c for c in shapes if c not in mapped], len(shapes)


def rig_label(rig: str) -> str:
    """What the panel calls a rig kind (``"Oculus / Meta visemes (15)"``)."""
    return _face().rig_kind(rig).label


def unmatched(channels, mapping: dict[str, str]) -> list[str]:
    """Channels (in order) with no shape key in ``mapping``."""
    return [c for c in channels if not mapping.get(c)]


def apply_strength(values, channels, strengths: dict[str, float]):
    """Scale each channel by its region's strength and clip to [0, 1].

    Args:
        values: float32 [n, D] weights; channels: the D channel names;
        strengths: {region: factor >= 0}; missing regions are 1.
    Returns:
        float32 [n, D] (the same array object when every factor is 1).
    """
    import numpy as np

    region_of = _face().region_of
    factors = np.array([float(strengths.get(region_of(c), 1.0)) for c in channels], np.float32)
    if np.all(factors == 1.0):
        return values
    return np.clip(values * factors[None, :], 0.0, 1.0).astype(np.float32)


def save_preset(path: str | os.PathLike, mapping: dict[str, str], name: str = "",
                rig: str = "arkit") -> Path:
    """Write ``mapping`` ({channel: shape key}) as a JSON preset; returns the path.

    Args:
        rig: the rig kind the channels are of (stored as ``"rig"``).
    Raises:
        OSError: the file cannot be written.
    """
    p = Path(path)
    if p.suffix.lower() != ".json":
        p = p.with_suffix(".json")
    data = {"format": PRESET_FORMAT, "version": PRESET_VERSION, "name": name or p.stem,
            "rig": str(rig), "mapping": {str(c): str(k) for c, k in mapping.items() if k}}
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return _files().atomic_write(p, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def load_preset(path: str | os.PathLike) -> dict[str, str]:
    """Read a JSON preset written by :func:`save_preset`; returns {channel: shape key}
    (:func:`read_preset` gives its rig kind too).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a StreamTalker mapping preset (the message says what is wrong).
    """
    return read_preset(path)[0]


def _files():
    """``model_core.io.files`` (pure Python: it imports where model_core's dependencies are
    missing): the reader of StreamTalker's versioned JSON files."""
    return mc_light("io.files")


def read_preset(path: str | os.PathLike) -> tuple[dict[str, str], str]:
    """Read a JSON preset: ({channel: shape key}, rig kind); a preset without ``"rig"``
    (written before face rigs) is ARKit.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a StreamTalker mapping preset, or an unknown rig kind.
    """
    p = Path(path)
    data = _files().read_versioned_json(p, PRESET_FORMAT, PRESET_VERSION, "mapping preset")
    m = data.get("mapping")
    if not isinstance(m, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                          for k, v in m.items()):
        raise DataError(f"{p.name}: \"mapping\" must be an object of channel -> shape key names")
    rig = str(data.get("rig", "arkit"))
    try:
        _face().rig_kind(rig)
    except ValueError as e:
        raise DataError(f"{p.name}: {e}") from None
    return dict(m), rig
