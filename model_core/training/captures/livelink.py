"""Live Link Face CSV takes (Epic Games' iOS app, *Export take -> CSV*): timecodes
``HH:MM:SS:FF.fff`` at the capture's rate, ARKit columns (:func:`read_live_link_csv`)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from ...face import check_fps
from .channels import _LLF_NON_SHAPES, _norm, _shape_columns
from .csvrows import _numeric, _read_csv, _to_arkit


#: Frame rates a timecode's frame field may count at (the smallest that fits is taken).
_TIMECODE_RATES = (24, 25, 30, 48, 50, 60, 72, 90, 100, 120, 240)
#: Live Link Face's default capture rate, assumed when a take is too short to tell.
_LLF_DEFAULT_RATE = 60

_TIMECODE = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2})[:;](\d+)(\.\d*)?$")


def _parse_timecodes(path: Path, cells: list[str], line_nos: list[int],
                     fps: float | None) -> tuple[np.ndarray, float]:
    n = len(cells)
    secs = np.empty(n, np.int64)
    ff = np.empty(n, np.float64)
    for i, (cell, ln) in enumerate(zip(cells, line_nos)):
        m = _TIMECODE.match(cell.strip())
        if m is None:
            raise ValueError(f"{path}, line {ln}: timecode {cell!r} is not HH:MM:SS:FF or "
                             f"HH:MM:SS:FF.fff (Live Link Face layout)")
        h, mi, s, f = (int(g) for g in m.groups()[:4])
        if mi >= 60 or s >= 60:
            raise ValueError(f"{path}, line {ln}: timecode {cell!r} has minutes or seconds >= 60")
        secs[i] = h * 3600 + mi * 60 + s
        frac = m.group(5)
        ff[i] = f + (float("0" + frac) if frac and frac != "." else 0.0)
    max_ff = int(np.floor(ff.max()))
    if fps is None:
        fitting = [r for r in _TIMECODE_RATES if r > max_ff]
        if not fitting:
            raise ValueError(f"{path}: timecode frame numbers reach {max_ff}, more than any "
                             f"common frame rate; pass fps= (the capture rate)")
        rate = float(fitting[0])
        if not np.any(np.diff(secs) != 0):
            # Shorter than a second: the frame numbers cannot tell 30 from 60 fps.
            rate = float(max(fitting[0], _LLF_DEFAULT_RATE))
    else:
        rate = check_fps(fps)
        if max_ff >= math.ceil(rate):
            i = int(np.argmax(ff))
            raise ValueError(f"{path}, line {line_nos[i]}: timecode frame {max_ff} does not "
                             f"exist at {rate:g} fps; leave fps=None to infer the rate")
    t = secs.astype(np.float64) + ff / rate
    d = np.diff(t)
    wrap = d < -43200.0                                  # past midnight: 23:59:59 -> 00:00:00
    if wrap.any():
        t[1:] += 86400.0 * np.cumsum(wrap)
        d = np.diff(t)
    back = np.flatnonzero(d < 0)
    if back.size:
        i = int(back[0]) + 1
        raise ValueError(f"{path}, line {line_nos[i]}: timecode {cells[i].strip()!r} is earlier "
                         f"than the row before ({cells[i - 1].strip()!r}); rows must be in time "
                         f"order (several takes pasted into one file?)")
    return t - t[0], rate


def read_live_link_csv(path: str | os.PathLike, fps: float | None = None,
                       report: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a Live Link Face CSV take.

    Args:
        path: a CSV with a ``Timecode`` column (``HH:MM:SS:FF`` or ``HH:MM:SS:FF.fff``, ``FF``
            the frame within the second, ``.fff`` the fraction of a frame; ``;`` before ``FF``
            (drop-frame) accepted) and ARKit blendshape columns in any spelling
            (``EyeBlinkLeft`` …); ``BlendShapeCount``, the 9 rotation columns and other
            extra columns are ignored.
        fps: the rate the timecode's frames count at; None infers it: the smallest common
            rate (24, 25, 30, 48, 50, 60, …) above every frame number seen — 60 for Live Link
            Face's default, 30 for its 30 fps setting and for our own 30 fps exports. A take
            shorter than one second (no change of the seconds field) is read as 60 fps
            unless its frame numbers need more.
        report: if a list, messages about ignored (non-ARKit) and missing columns are
            appended to it.

    Returns:
        ``(frames, times_s)``: frames float32 [T, 52] in ``ARKIT_52`` order, clipped to
        [0, 1], missing channels 0; times_s float64 [T], seconds since the first row
        (non-decreasing; a timecode passing midnight is unwrapped).

    Raises:
        FileNotFoundError: no such file.
        ValueError: no ``Timecode`` column, no ARKit columns, no rows, a row with the wrong
            number of fields, a malformed timecode, a non-numeric or non-finite weight, or
            timecodes going backwards — each naming the file and line.
    """
    p = Path(path)
    return _live_link_rows(p, *_read_csv(p), fps=fps, report=report)


def _live_link_rows(p: Path, hline, header, line_nos, rows, fps, report):
    lower = [_norm(h) for h in header]
    if "timecode" not in lower:
        raise ValueError(f"{p}, line {hline}: no 'Timecode' column, so this is not a Live Link "
                         f"Face CSV (header starts {', '.join(header[:4])}); use "
                         f"read_arkit_table for CSVs with a time or frame column")
    tc = lower.index("timecode")
    skip = [i for i, h in enumerate(lower) if h in _LLF_NON_SHAPES]
    pairs, cols = _shape_columns(
        p, hline, header, skip, report, f"(EyeBlinkLeft, JawOpen, …) in the header; found: "
        f"{', '.join(header[:8])}{' …' if len(header) > 8 else ''}")
    times, _ = _parse_timecodes(p, [r[tc] for r in rows], line_nos, fps)
    values = _numeric(p, header, line_nos, rows, cols)
    return _to_arkit(values, pairs, cols), times
