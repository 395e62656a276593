"""Model channel -> shape key matching, strengths and mapping presets. No ``bpy`` here.

Rigs spell the ARKit names differently: ``jawOpen`` (Apple), ``JawOpen`` (Live Link Face),
``jaw_open``, ``eyeBlink_L`` (Face Cap / three.js), ``eyeBlink.L``, ``L_eyeBlink``,
``EyeBlink_Left``, and often with a prefix such as ``blendShape1.`` or ``Face:``. The
matching rule is model_core's one name matcher (:func:`model_core.face.match_names`, the
same the capture readers use): a shape key matches a channel when its spelling equals the
channel's, or does after dropping a prefix; exact matches win over prefixed ones; each shape
key serves one channel. The strength regions are :func:`model_core.face.region_of`'s.

Presets are JSON files::

    {"format": "streamtalker-mapping", "version": 1,
     "mapping": {"jawOpen": "JawOpen", "eyeBlinkLeft": "eyeBlink_L", ...}}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .core import face as _face

PRESET_FORMAT = "streamtalker-mapping"
PRESET_VERSION = 1


def strength_regions() -> tuple[str, ...]:
    """Regions whose strength the panel sets (``model_core.face.STRENGTH_REGIONS``)."""
    return tuple(_face().STRENGTH_REGIONS)


def match_channels(channels, shape_keys) -> dict[str, str]:
    """Match model channels to shape-key names (:func:`model_core.face.match_names`).

    Args:
        channels: model channel names (ARKit-52 ``eyeBlinkLeft`` style), any iterable of str.
        shape_keys: the mesh's shape-key names (the reference key ``Basis`` may be included:
            it matches nothing).
    Returns:
        {channel: shape_key} for the matched channels only, in channel order. Unmatched
        channels are absent (see :func:`unmatched`).
    """
    return _face().match_names(channels, shape_keys)


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


def save_preset(path: str | os.PathLike, mapping: dict[str, str], name: str = "") -> Path:
    """Write ``mapping`` ({channel: shape key}) as a JSON preset; returns the path.

    Raises:
        OSError: the file cannot be written.
    """
    p = Path(path)
    if p.suffix.lower() != ".json":
        p = p.with_suffix(".json")
    p.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": PRESET_FORMAT, "version": PRESET_VERSION, "name": name or p.stem,
            "mapping": {str(c): str(k) for c, k in mapping.items() if k}}
    tmp = p.with_name(p.name + ".part")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(p)
    return p


def load_preset(path: str | os.PathLike) -> dict[str, str]:
    """Read a JSON preset written by :func:`save_preset`; returns {channel: shape key}.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a StreamTalker mapping preset (the message says what is wrong).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"mapping preset not found: {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{p.name} is not a JSON mapping preset: {e}") from None
    if not isinstance(data, dict) or data.get("format") != PRESET_FORMAT:
        raise ValueError(f"{p.name} is not a StreamTalker mapping preset "
                         f"(expected \"format\": \"{PRESET_FORMAT}\")")
    if int(data.get("version", 0)) > PRESET_VERSION:
        raise ValueError(f"{p.name} was written by a newer StreamTalker "
                         f"(preset version {data.get('version')})")
    m = data.get("mapping")
    if not isinstance(m, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                          for k, v in m.items()):
        raise ValueError(f"{p.name}: \"mapping\" must be an object of channel -> shape key names")
    return dict(m)
