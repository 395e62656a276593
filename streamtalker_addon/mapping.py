"""Model channel -> shape key matching, regions and mapping presets. No ``bpy`` here.

Rigs spell the ARKit names differently (DESIGN.md §3): ``jawOpen`` (Apple), ``JawOpen``
(Live Link Face), ``jaw_open``, ``eyeBlink_L`` (Face Cap / three.js), ``eyeBlink.L``,
``EyeBlink_Left``, and often with a prefix such as ``blendShape1.`` or ``Face:``. Matching
works on *tokens*: a name is split at separators (``_ . : | - /`` and spaces) and at
camelCase boundaries, lowercased, and a final ``l``/``r`` token is read as ``left``/``right``.
A shape key matches a channel when its tokens equal the channel's, or end with them after a
prefix (``blendShape1.jawOpen`` -> ``[blend, shape, 1, jaw, open]`` ends with
``[jaw, open]``). Exact matches win over prefixed ones; each shape key serves one channel.

Presets are JSON files::

    {"format": "streamtalker-mapping", "version": 1,
     "mapping": {"jawOpen": "JawOpen", "eyeBlinkLeft": "eyeBlink_L", ...}}
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

PRESET_FORMAT = "streamtalker-mapping"
PRESET_VERSION = 1

_TOKEN = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_SIDES = {"l": "left", "left": "left", "r": "right", "right": "right"}

#: Regions whose strength the panel sets, and the channel-name prefixes in each.
REGIONS = ("lips", "brows", "eyes", "blinks")


def tokens(name: str) -> tuple[str, ...]:
    """Lowercase tokens of a shape-key or channel name, sides normalised.

    >>> tokens("eyeBlink_L"), tokens("EyeBlinkLeft"), tokens("blendShape1.jaw_open")
    (('eye', 'blink', 'left'), ('eye', 'blink', 'left'), ('blend', 'shape', '1', 'jaw', 'open'))
    """
    toks = [t.lower() for t in _TOKEN.findall(name)]
    if toks and toks[-1] in _SIDES:
        toks[-1] = _SIDES[toks[-1]]
    return tuple(toks)


def region_of(channel: str) -> str:
    """Region of an ARKit channel: ``blinks`` (eyeBlink*), ``eyes`` (other eye*),
    ``brows`` (brow*), else ``lips`` (jaw, mouth, cheek, nose, tongue)."""
    t = tokens(channel)
    if t[:2] == ("eye", "blink"):
        return "blinks"
    if t[:1] == ("eye",):
        return "eyes"
    if t[:1] == ("brow",):
        return "brows"
    return "lips"


def match_channels(channels, shape_keys) -> dict[str, str]:
    """Match model channels to shape-key names.

    Args:
        channels: model channel names (ARKit-52 ``eyeBlinkLeft`` style), any iterable of str.
        shape_keys: the mesh's shape-key names (the reference key ``Basis`` may be included:
            it matches nothing).
    Returns:
        {channel: shape_key} for the matched channels only, in channel order. Unmatched
        channels are absent (see :func:`unmatched`).
    """
    chans = list(channels)
    keys = [k for k in shape_keys]
    ctoks = {c: tokens(c) for c in chans}
    ktoks = [(k, tokens(k)) for k in keys]
    used: set[str] = set()
    out: dict[str, str] = {}
    # pass 1: exact token matches; pass 2: a prefix before the channel's tokens
    for exact in (True, False):
        for c in chans:
            if c in out:
                continue
            ct = ctoks[c]
            best = None
            for k, kt in ktoks:
                if k in used or not ct:
                    continue
                if exact:
                    ok = kt == ct
                else:
                    ok = len(kt) > len(ct) and kt[-len(ct):] == ct and not _longer_channel(kt, ct, ctoks)
                if ok and (best is None or len(k) < len(best)):
                    best = k
            if best is not None:
                out[c] = best
                used.add(best)
    return {c: out[c] for c in chans if c in out}


def _longer_channel(kt, ct, ctoks) -> bool:
    """True when another channel's tokens are a longer suffix of ``kt`` than ``ct``
    (``xx.mouthSmileLeft`` must not serve ``mouthLeft``; it cannot, suffixes differ, but a
    rig's ``eyeLookInLeft`` must not serve a hypothetical ``lookInLeft``)."""
    for other in ctoks.values():
        if len(other) > len(ct) and len(kt) >= len(other) and kt[-len(other):] == other:
            return True
    return False


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
