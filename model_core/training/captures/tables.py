"""ARKit-52 animation from any supported file (:func:`read_arkit_table`): a Live Link Face
CSV, a generic CSV with a time or frame column or none, or the ``.npz`` / ``.json`` that
``streamtalker generate`` writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ...face import ARKIT_52, check_fps
from .channels import _LLF_NON_SHAPES, _column_map, _norm, _report_columns, _shape_columns
from .csvrows import _numeric, _read_csv, _to_arkit
from .livelink import _live_link_rows


#: Animation files :func:`read_arkit_table` reads.
ANIMATION_EXTENSIONS = (".csv", ".tsv", ".npz", ".json")

_TIME_S = {"time", "times", "t", "timesec", "timesecs", "timeseconds", "seconds", "second",
           "sec", "secs", "timestamp", "timestamps", "timestampsec", "timestampseconds"}
_TIME_MS = {"timems", "timestampms", "ms", "millis", "milliseconds", "timemillis",
            "timemilliseconds", "tms"}
_FRAME = {"frame", "frames", "frameindex", "framenumber", "frameno", "framenum", "framenr",
          "frameid", "index", "idx", "f"}


def _check_fps(fps, what="fps") -> float:
    """A capture's frame rate: :func:`model_core.face.check_fps`."""
    return check_fps(fps, what)


def _frames_from_named(path: Path, weights, names) -> np.ndarray:
    w = np.asarray(weights)
    if w.ndim != 2 or w.shape[0] == 0:
        raise ValueError(f"{path}: 'weights' must be [T, channels] with T >= 1, got shape {w.shape}")
    try:
        w = w.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: 'weights' are not numbers (dtype {w.dtype})") from None
    if not np.isfinite(w).all():
        i = int(np.argwhere(~np.isfinite(w))[0][0])
        raise ValueError(f"{path}: frame {i} holds NaN or infinite weights; clean the file")
    if names is None:
        if w.shape[1] != len(ARKIT_52):
            raise ValueError(f"{path}: {w.shape[1]} channels and no 'names'; without names the "
                             f"weights must be the 52 ARKit channels in ARKIT_52 order")
        return np.clip(w, 0.0, 1.0).astype(np.float32)
    names = [str(n) for n in names]
    if len(names) != w.shape[1]:
        raise ValueError(f"{path}: {len(names)} names for {w.shape[1]} weight columns")
    pairs, _, _ = _column_map(names)
    if not pairs:
        raise ValueError(f"{path}: none of its channel names ({', '.join(names[:6])}…) is an "
                         f"ARKit-52 blendshape; this is not ARKit animation")
    return _to_arkit(w, pairs, list(range(w.shape[1])))


def _named_frames(path: Path, weights, names, times, file_fps, fps, report):
    """The common tail of the .npz and .json readers: weights [T, D] with optional channel
    names -> (frames [T, 52], fps or times [T] from 0 s); the file's ``times``, else its
    ``fps``, else the caller's ``fps``.

    Raises:
        ValueError: names/weights mismatch, ``times`` of the wrong length, no rate at all.
    """
    frames = _frames_from_named(path, weights, names)
    if names is not None and report is not None:
        names = [str(n) for n in names]
        pairs, unknown, dups = _column_map(names)
        _report_columns(report, path, names, pairs, unknown, dups)
    if times is not None:
        t = np.asarray(times, np.float64).reshape(-1)
        if t.shape[0] != frames.shape[0]:
            raise ValueError(f"{path}: 'times' has {t.shape[0]} entries for {frames.shape[0]} frames")
        return frames, t - t[0]
    if file_fps is not None:
        return frames, _check_fps(file_fps, f"{path}: fps")
    if fps is None:
        raise ValueError(f"{path}: no 'fps' or 'times' in the file; pass fps= (the capture rate)")
    return frames, _check_fps(fps)


def _read_npz(path: Path, fps, report):
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npz ({e}); expected the layout "
                         f"`streamtalker generate -o x.npz` writes") from None
    if "weights" not in data:
        raise ValueError(f"{path}: no 'weights' array (found: {', '.join(sorted(data)) or 'none'}); "
                         f"expected weights [T, 52] plus names and fps")
    kind = str(data["kind"]) if "kind" in data else "arkit"
    if kind != "arkit":
        raise ValueError(f"{path}: holds {kind!r} channels, not ARKit blendshape weights")
    names = [str(n) for n in data["names"].reshape(-1)] if "names" in data else None
    file_fps = np.asarray(data["fps"]).reshape(-1)[0] if "fps" in data else None
    return _named_frames(path, data["weights"], names, data.get("times"), file_fps, fps, report)


def _read_json(path: Path, fps, report):
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or "frames" not in doc:
        raise ValueError(f"{path}: expected an object with 'frames' [[...] * D] * T, 'names' "
                         f"and 'fps' (the layout `streamtalker generate -o x.json` writes)")
    kind = str(doc.get("kind", "arkit"))
    if kind != "arkit":
        raise ValueError(f"{path}: holds {kind!r} channels, not ARKit blendshape weights")
    try:
        w = np.asarray(doc["frames"], np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: 'frames' is not a rectangular array of numbers") from None
    return _named_frames(path, w, doc.get("names"), doc.get("times"), doc.get("fps"), fps, report)


def read_arkit_table(path: str | os.PathLike, fps: float | None = None,
                     report: list[str] | None = None) -> tuple[np.ndarray, float | np.ndarray]:
    """Read ARKit-52 animation from a CSV, ``.npz`` or ``.json`` file.

    Args:
        path: ``.csv``/``.tsv`` — a Live Link Face CSV (has a ``Timecode`` column; see
            :func:`read_live_link_csv`) or a generic table with a time column (``time``,
            ``t``, ``seconds``, ``timestamp``: seconds; ``time_ms``, ``timestamp_ms``, ``ms``:
            milliseconds), a frame column (``frame``, ``frame_index``, ``index``) or neither,
            plus ARKit-named columns in any spelling; ``.npz`` — ``weights`` [T, D], optional
            ``names`` [D], ``fps`` or ``times`` [T] (``streamtalker generate -o x.npz``);
            ``.json`` — ``{"frames", "names", "fps"}`` (``streamtalker generate -o x.json``).
        fps: capture rate for files that carry no timing (a frame column, or one row per
            frame); ignored when the file has times or its own fps.
        report: if a list, messages about ignored and missing columns are appended.

    Returns:
        ``(frames, timing)``: frames float32 [T, 52] in ``ARKIT_52`` order, clipped to
        [0, 1]; timing is a float (frames evenly spaced at that many frames per second,
        frame ``i`` at ``i / fps`` s) for npz/json files with ``fps`` and for tables without
        a time column, else float64 [T] seconds since the first frame.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unknown extension, no ARKit channels, no timing and no ``fps``, malformed
            rows or values (naming the file and line), times going backwards.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in ANIMATION_EXTENSIONS:
        raise ValueError(f"{p}: unknown animation format {ext!r}; use a Live Link Face or "
                         f"ARKit-named .csv, or the .npz / .json that streamtalker writes")
    if not p.exists():
        raise FileNotFoundError(f"animation file not found: {p}")
    if ext == ".npz":
        return _read_npz(p, fps, report)
    if ext == ".json":
        return _read_json(p, fps, report)
    hline, header, line_nos, rows = _read_csv(p)
    normed = [_norm(h) for h in header]
    if "timecode" in normed:
        return _live_link_rows(p, hline, header, line_nos, rows, fps=None, report=report)
    time_col = next((i for i, n in enumerate(normed) if n in _TIME_S), None)
    ms_col = next((i for i, n in enumerate(normed) if n in _TIME_MS), None)
    frame_col = next((i for i, n in enumerate(normed) if n in _FRAME), None)
    skip = {c for c in (time_col, ms_col, frame_col) if c is not None}
    skip |= {i for i, n in enumerate(normed) if n in _LLF_NON_SHAPES}
    pairs, cols = _shape_columns(
        p, hline, header, skip, report, f"in the header ({', '.join(header[:8])}"
        f"{' …' if len(header) > 8 else ''}); name the columns after the ARKit shapes "
        f"(eyeBlinkLeft, jawOpen, …)")
    frames = _to_arkit(_numeric(p, header, line_nos, rows, cols), pairs, cols)

    tcol, scale = (time_col, 1.0) if time_col is not None else (ms_col, 1e-3)
    if tcol is not None:
        t = _numeric(p, header, line_nos, rows, [tcol])[:, 0] * scale
        d = np.diff(t)
        back = np.flatnonzero(d < 0)
        if back.size:
            i = int(back[0]) + 1
            raise ValueError(f"{p}, line {line_nos[i]}: time {rows[i][tcol]!r} is earlier than "
                             f"the row before; rows must be in time order")
        if d.size and scale == 1.0 and np.median(d) > 1.0:
            raise ValueError(f"{p}: column {header[tcol]!r} advances {np.median(d):g} per row; "
                             f"read as seconds that is under 1 fps — if it is milliseconds, "
                             f"name the column time_ms")
        return frames, t - t[0]
    if fps is None:
        what = f"frame column {header[frame_col]!r}" if frame_col is not None else "no time column"
        raise ValueError(f"{p}: {what} and no fps given; pass fps= (the capture rate) or add a "
                         f"'time' column in seconds")
    rate = _check_fps(fps)
    if frame_col is not None:
        fr = _numeric(p, header, line_nos, rows, [frame_col])[:, 0]
        t = (fr - fr[0]) / rate
        back = np.flatnonzero(np.diff(t) < 0)
        if back.size:
            i = int(back[0]) + 1
            raise ValueError(f"{p}, line {line_nos[i]}: frame {rows[i][frame_col]!r} comes "
                             f"before the row above; rows must be in frame order")
        if np.allclose(np.diff(fr), 1.0):
            return frames, rate
        return frames, t
    return frames, rate
