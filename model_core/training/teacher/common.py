"""What the teacher's parts share: ARKit channel indices, the internal 200 Hz grid and the
input checks (phones, duration and fps, prosody)."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from ...face import ARKIT_52


_IDX = {n: i for i, n in enumerate(ARKIT_52)}


def channel_indices(names: Sequence[str]) -> np.ndarray:
    """Indices of ARKit-52 channel names in :data:`model_core.face.ARKIT_52` order.

    Args:
        names: channel names, exactly as in ``ARKIT_52`` (e.g. ``"jawOpen"``).

    Returns:
        int64 [len(names)].

    Raises:
        ValueError: a name is not an ARKit-52 channel (or ``names`` is a bare string).
    """
    if isinstance(names, str):
        raise ValueError("names must be a sequence of channel names, not a string")
    out = []
    for n in names:
        if n not in _IDX:
            raise ValueError(f"unknown ARKit-52 channel {n!r}")
        out.append(_IDX[n])
    return np.asarray(out, dtype=np.int64)


_RATE = 200.0  # internal grid, Hz
_PAD_S = 0.5   # grid margin before 0 and after the duration
_REACH_S = 1.0  # phones further than this outside the grid cannot influence it


def _check_common(duration_s, fps) -> tuple[float, float]:
    try:
        d, f = float(duration_s), float(fps)
    except (TypeError, ValueError):
        raise ValueError("duration_s and fps must be numbers") from None
    if not math.isfinite(d) or d < 0:
        raise ValueError(f"duration_s must be finite and >= 0, got {duration_s!r}")
    if not math.isfinite(f) or f <= 0:
        raise ValueError(f"fps must be finite and > 0, got {fps!r}")
    return d, f


def check_phones(phones) -> list[tuple[str, float, float]]:
    """Validate a phone list -> [(label str, start_s float, end_s float)].

    Raises:
        ValueError: not a list of (label, start, end), non-string label, non-finite times,
            or end < start (naming the phone's index).
    """
    if isinstance(phones, (str, bytes)) or not hasattr(phones, "__iter__"):
        raise ValueError("phones must be a list of (label, start_s, end_s)")
    out = []
    for k, item in enumerate(phones):
        try:
            label, start, end = item
        except (TypeError, ValueError):
            raise ValueError(f"phones[{k}] must be (label, start_s, end_s), got {item!r}") \
                from None
        if not isinstance(label, str):
            raise ValueError(f"phones[{k}]: label must be a string, got {label!r}")
        try:
            s, e = float(start), float(end)
        except (TypeError, ValueError):
            raise ValueError(f"phones[{k}]: start/end must be numbers") from None
        if not (math.isfinite(s) and math.isfinite(e)):
            raise ValueError(f"phones[{k}]: start/end must be finite, got {start!r}, {end!r}")
        if e < s:
            raise ValueError(f"phones[{k}] {label!r}: end {e} < start {s}")
        out.append((label, s, e))
    return out


def _check_prosody(prosody, n: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(prosody, Mapping) or "f0" not in prosody or "energy" not in prosody:
        raise ValueError('prosody must be a dict with "f0" and "energy" arrays')
    arrs = []
    for key in ("f0", "energy"):
        a = np.asarray(prosody[key], dtype=np.float64)
        if a.shape != (n,):
            raise ValueError(f'prosody["{key}"] must have shape ({n},), got {a.shape}')
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise ValueError(f'prosody["{key}"] must be finite and >= 0')
        arrs.append(a)
    return arrs[0], arrs[1]
