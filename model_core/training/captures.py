"""Fine-tuning data from an animator's own face captures: (speech, ARKit-52 curves) pairs.

An animator records themself with Live Link Face (or any ARKit face tracker, or exports
curves from their rig) and gets a folder of takes. This module turns each take into a
:class:`model_core.training.batches.Utterance` — 16 kHz mono speech plus ARKit-52 weights on the
model's frame grid — so the model can be fine-tuned on that face.

Supported layouts
-----------------

Animation files (any of these, chosen by extension / header):

- **Live Link Face CSV** (Epic Games' iOS app, *Export take → CSV*): header
  ``Timecode, BlendShapeCount, EyeBlinkLeft, …, TongueOut, HeadYaw, …, RightEyeRoll``; one row
  per captured frame, timecode ``HH:MM:SS:FF.fff`` (``FF`` frame within the second at the
  app's rate, usually 60 fps, sometimes 30; ``.fff`` the fraction of a frame). Our own
  ``streamtalker generate -o x.csv`` writes the same layout. Read by
  :func:`read_live_link_csv`.
- **Generic CSV** (``,`` ``;`` or tab separated) with a time column (``time``, ``t``,
  ``seconds``, ``timestamp`` in seconds; ``time_ms``, ``timestamp_ms``, ``ms`` in
  milliseconds) or a frame column (``frame``, ``frame_index``, ``index`` — needs ``fps``),
  or neither (one row per frame — needs ``fps``), plus ARKit-named columns in any common
  spelling (see :func:`arkit_channel_index`).
- **npz** as written by ``streamtalker generate -o x.npz``: ``weights`` float [T, D], optional
  ``names`` [D] (else D must be 52 in ARKit order), ``fps`` (or ``times`` [T] in seconds).
- **json** as written by ``streamtalker generate -o x.json``: ``{"fps", "names", "frames"}``.

Audio: anything :func:`model_core.load_audio` reads (wav, flac, ogg, mp3, aiff). Video
containers (``.mov``, ``.mp4``) and ``.m4a`` are not decoded: extract the audio first with
``ffmpeg -i take.mov -vn -ac 1 take.wav``.

Folders (:func:`load_capture_folder`): pairs are matched by file stem, searched recursively:
``take01.wav`` + ``take01.csv`` side by side, Live Link Face's export layout (one folder per
take holding ``<name>.csv`` and ``<name>.mov`` — extract ``<name>.wav`` beside it; the app's
``frame_log.csv``, ``take.json`` and ``thumbnail.jpg`` are ignored), or audio and animation
in separate folders (``audio/take01.wav`` + ``anim/take01.csv``) when the stem is unique.

Conventions: weights float32 in [0, 1] (values outside are clipped), columns in
``model_core.face.ARKIT_52`` order, missing channels 0; times float64 seconds relative to
the capture's first frame; the model grid puts frame ``i`` at ``i / fps`` seconds of audio.
All errors are ``ValueError`` (or ``FileNotFoundError`` / :class:`model_core.AudioError`)
whose message names the file, the line where relevant, and what to do.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..face import ARKIT_52, LIVE_LINK_FACE_ROTATIONS, arkit_name, sample_frames
from ..io.audio import MODEL_SAMPLE_RATE, SUPPORTED_EXTENSIONS, load_audio

__all__ = [
    "ANIMATION_EXTENSIONS",
    "AUDIO_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "CaptureList",
    "ChannelIndex",
    "arkit_channel_index",
    "arkit_name",
    "load_capture_folder",
    "load_capture_pair",
    "read_arkit_table",
    "read_live_link_csv",
    "resample_frames",
]

#: Animation files :func:`read_arkit_table` reads.
ANIMATION_EXTENSIONS = (".csv", ".tsv", ".npz", ".json")
#: Audio files paired by :func:`load_capture_folder` (what :func:`model_core.load_audio` decodes).
AUDIO_EXTENSIONS = tuple(SUPPORTED_EXTENSIONS)
#: Containers whose audio must be extracted with ffmpeg first.
VIDEO_EXTENSIONS = (".mov", ".mp4", ".m4v", ".m4a", ".aac", ".mkv", ".avi", ".webm", ".3gp")
#: Side files of a Live Link Face take folder, never animation.
_LLF_SIDE_FILES = {"frame_log.csv", "take.json", "thumbnail.jpg", "video_metadata.json",
                   "audio_metadata.json"}

#: Frame rates a timecode's frame field may count at (the smallest that fits is taken).
_TIMECODE_RATES = (24, 25, 30, 48, 50, 60, 72, 90, 100, 120, 240)
#: Live Link Face's default capture rate, assumed when a take is too short to tell.
_LLF_DEFAULT_RATE = 60

# --------------------------------------------------------------------------------------
# Channel names
# --------------------------------------------------------------------------------------

#: Columns of a Live Link Face CSV that are known and not blendshapes (never reported).
_LLF_NON_SHAPES = {"timecode", "blendshapecount", *(r.lower() for r in LIVE_LINK_FACE_ROTATIONS)}


class ChannelIndex(dict):
    """``{column name: index into ARKIT_52}`` for the names that are ARKit channels.

    Attributes:
        unknown: names that are no ARKit-52 channel (ignored), in input order.
        duplicates: names that map to a channel an earlier name already took (ignored).
        missing: ARKit-52 names no column maps to (property).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.unknown: list[str] = []
        self.duplicates: list[str] = []

    @property
    def missing(self) -> list[str]:
        have = set(self.values())
        return [n for i, n in enumerate(ARKIT_52) if i not in have]


def _column_map(names: Sequence[str], skip: Iterable[int] = ()
                ) -> tuple[list[tuple[int, int]], list[str], list[str]]:
    """[(position in names, ARKit index)], unknown names, duplicate names."""
    skip = set(skip)
    pairs, unknown, dups, taken = [], [], [], set()
    for pos, n in enumerate(names):
        if pos in skip:
            continue
        a = arkit_name(n)
        if a is None:
            unknown.append(str(n))
            continue
        ai = ARKIT_52.index(a)
        if ai in taken:
            dups.append(str(n))
            continue
        taken.add(ai)
        pairs.append((pos, ai))
    return pairs, unknown, dups


def arkit_channel_index(names: Iterable[str]) -> ChannelIndex:
    """Map column / shape-key names in any common spelling to ARKit-52 channels.

    Args:
        names: column names (a CSV header, npz ``names``, a rig's shape keys).

    Returns:
        :class:`ChannelIndex`, a ``dict[str, int]`` from each recognised name (as given) to
        its index in ``model_core.face.ARKIT_52``; unknown names are left out and listed in
        ``.unknown``, later names for an already-mapped channel in ``.duplicates``, unmapped
        ARKit channels in ``.missing``. Spellings: see :func:`arkit_name`.
    """
    names = [str(n) for n in names]
    pairs, unknown, dups = _column_map(names)
    out = ChannelIndex((names[p], a) for p, a in pairs)
    out.unknown, out.duplicates = unknown, dups
    return out


def _shape_columns(path: Path, hline: int, header, skip, report, missing: str):
    """The header's ARKit columns, reported (:func:`_report_columns`): ``(pairs, cols)``,
    pairs ``(column, ARKit index)`` and cols their column positions.

    Raises:
        ValueError: no ARKit column, naming the file, the header line and ``missing`` (what
            the user should do).
    """
    pairs, unknown, dups = _column_map(header, skip=skip)
    if not pairs:
        raise ValueError(f"{path}, line {hline}: no ARKit blendshape columns {missing}")
    _report_columns(report, path, header, pairs, unknown, dups)
    return pairs, [pos for pos, _ in pairs]


def _report_columns(report, path, header, pairs, unknown, dups) -> None:
    if report is None:
        return
    unk = [u for u in unknown if u.strip()]
    if unk:
        report.append(f"{path}: ignored {len(unk)} column(s) that are not ARKit-52 "
                      f"blendshapes: {', '.join(unk)}")
    if dups:
        report.append(f"{path}: ignored duplicate column(s) for channels already read: "
                      f"{', '.join(dups)}")
    have = {a for _, a in pairs}
    miss = [n for i, n in enumerate(ARKIT_52) if i not in have]
    if miss:
        report.append(f"{path}: {len(miss)} ARKit channel(s) missing, set to 0: {', '.join(miss)}")


# --------------------------------------------------------------------------------------
# CSV plumbing
# --------------------------------------------------------------------------------------

def _read_csv(path: Path) -> tuple[int, list[str], list[int], list[list[str]]]:
    """(header line number, header, row line numbers, rows); blank lines skipped; every row
    checked to have the header's number of fields."""
    if not path.exists():
        raise FileNotFoundError(f"animation file not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give a .csv / .npz / .json file")
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise ValueError(f"{path}: binary data, not a CSV text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e}); save the CSV as UTF-8") from None
    lines = text.splitlines()
    hline = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if hline is None:
        raise ValueError(f"{path}: the file is empty; expected a header row and one row per frame")
    first = lines[hline]
    delim = "," if "," in first else ";" if ";" in first else "\t" if "\t" in first else ","
    reader = csv.reader(io.StringIO(text), delimiter=delim, skipinitialspace=True)
    header, line_nos, rows = None, [], []
    try:
        for fields in reader:
            ln = reader.line_num
            if not fields or all(not f.strip() for f in fields):
                continue
            if header is None:
                header = [f.strip() for f in fields]
                while header and not header[-1]:
                    header.pop()
                continue
            if len(fields) > len(header) and all(not f.strip() for f in fields[len(header):]):
                fields = fields[:len(header)]               # trailing separators
            if len(fields) != len(header):
                raise ValueError(f"{path}, line {ln}: {len(fields)} fields but the header has "
                                 f"{len(header)} columns (a truncated or corrupt row? delete "
                                 f"or fix that line)")
            line_nos.append(ln)
            rows.append(fields)
    except csv.Error as e:
        raise ValueError(f"{path}, line {reader.line_num}: unreadable CSV ({e})") from None
    if not rows:
        raise ValueError(f"{path}: a header but no data rows; expected one row per frame")
    return hline + 1, header, line_nos, rows


def _numeric(path: Path, header, line_nos, rows, cols: Sequence[int]) -> np.ndarray:
    """float64 [T, len(cols)] from the given columns; errors name line and column."""
    if not cols:
        return np.zeros((len(rows), 0))
    try:
        out = np.array([[r[c] for c in cols] for r in rows], dtype=str).astype(np.float64)
    except ValueError:
        for ln, r in zip(line_nos, rows):
            for c in cols:
                try:
                    float(r[c])
                except ValueError:
                    raise ValueError(f"{path}, line {ln}: column {header[c]!r} holds "
                                     f"{r[c]!r}, not a number") from None
        raise
    bad = ~np.isfinite(out)
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        raise ValueError(f"{path}, line {line_nos[i]}: column {header[cols[j]]!r} is "
                         f"{rows[i][cols[j]]!r}; weights must be finite numbers")
    return out


def _to_arkit(values: np.ndarray, pairs: list[tuple[int, int]], cols: Sequence[int]) -> np.ndarray:
    """Columns of ``values`` (positions ``cols``) placed into [T, 52] ARKit order, clipped."""
    frames = np.zeros((values.shape[0], len(ARKIT_52)), np.float32)
    where = {c: j for j, c in enumerate(cols)}
    for pos, ai in pairs:
        frames[:, ai] = values[:, where[pos]]
    return np.clip(frames, 0.0, 1.0)


# --------------------------------------------------------------------------------------
# Live Link Face CSV
# --------------------------------------------------------------------------------------

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
        rate = float(fps)
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
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


# --------------------------------------------------------------------------------------
# Generic tables (CSV / npz / json)
# --------------------------------------------------------------------------------------

def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.strip().lower())


_TIME_S = {"time", "times", "t", "timesec", "timesecs", "timeseconds", "seconds", "second",
           "sec", "secs", "timestamp", "timestamps", "timestampsec", "timestampseconds"}
_TIME_MS = {"timems", "timestampms", "ms", "millis", "milliseconds", "timemillis",
            "timemilliseconds", "tms"}
_FRAME = {"frame", "frames", "frameindex", "framenumber", "frameno", "framenum", "framenr",
          "frameid", "index", "idx", "f"}


def _check_fps(fps, what="fps") -> float:
    try:
        f = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a positive number, got {fps!r}") from None
    if not (math.isfinite(f) and f > 0):
        raise ValueError(f"{what} must be a positive number, got {fps!r}")
    return f


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


# --------------------------------------------------------------------------------------
# Resampling and pairs
# --------------------------------------------------------------------------------------

def resample_frames(frames: np.ndarray, times_s, fps: float, n_frames: int) -> np.ndarray:
    """Linearly interpolate frames captured at (irregular) times onto the model grid.

    Args:
        frames: float [T, D] (T >= 1), e.g. ARKit weights in [0, 1].
        times_s: float [T] capture times in seconds on the target time line,
            non-decreasing (equal times are averaged).
        fps: model frame rate; output frame ``i`` is the face at ``i / fps`` seconds.
        n_frames: number of output frames (>= 0).

    Returns:
        float32 [n_frames, D]; before the first and after the last capture time the first
        and last frames are held.

    Raises:
        ValueError: shapes disagree, empty input, non-finite values, times decreasing,
            fps <= 0 or n_frames < 0.
    """
    f = np.asarray(frames, np.float64)
    t = np.asarray(times_s, np.float64).reshape(-1)
    rate = _check_fps(fps)
    n = int(n_frames)
    if n < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    if f.ndim != 2 or f.shape[0] == 0:
        raise ValueError(f"frames must be [T, D] with T >= 1, got shape {f.shape}")
    if t.shape[0] != f.shape[0]:
        raise ValueError(f"times_s has {t.shape[0]} entries for {f.shape[0]} frames")
    if not (np.isfinite(f).all() and np.isfinite(t).all()):
        raise ValueError("frames and times_s must be finite")
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        raise ValueError(f"times_s must be non-decreasing; entry {int(back[0]) + 1} "
                         f"({t[back[0] + 1]:.6f} s) is earlier than the one before")
    uniq, inv = np.unique(t, return_inverse=True)
    if uniq.shape[0] != t.shape[0]:
        sums = np.zeros((uniq.shape[0], f.shape[1]))
        np.add.at(sums, inv, f)
        f = sums / np.bincount(inv, minlength=uniq.shape[0])[:, None]
    grid = np.arange(n, dtype=np.float64) / rate
    if uniq.shape[0] == 1:
        return np.repeat(f[:1], n, axis=0).astype(np.float32)
    j = np.clip(np.searchsorted(uniq, grid, side="right") - 1, 0, uniq.shape[0] - 2)
    w = np.clip((grid - uniq[j]) / (uniq[j + 1] - uniq[j]), 0.0, 1.0)[:, None]
    return ((1.0 - w) * f[j] + w * f[j + 1]).astype(np.float32)


def load_capture_pair(audio_path: str | os.PathLike, anim_path: str | os.PathLike, fps: float,
                      style: int = 0, offset_s: float = 0.0, anim_fps: float | None = None,
                      max_mismatch_s: float = 1.0, report: list[str] | None = None):
    """One take -> a training :class:`~model_core.training.batches.Utterance`.

    Args:
        audio_path: the take's speech (wav/flac/ogg/mp3/aiff), read with
            :func:`model_core.load_audio` (mono, 16 kHz). For a ``.mov`` extract it first:
            ``ffmpeg -i take.mov -vn -ac 1 take.wav``.
        anim_path: the take's animation (Live Link Face / ARKit CSV, npz, json; see
            :func:`read_arkit_table`).
        fps: the model's frame rate (``model.fps``); output frame ``i`` is at ``i / fps`` s.
        style: training identity index (>= 0) stored in the utterance.
        offset_s: where the animation's first frame lies on the audio's time line, seconds
            (positive: the animation starts after the audio, e.g. the face recorder started
            late; negative: drop the first ``-offset_s`` s of animation). 0 = both start
            together, as in a Live Link Face take.
        anim_fps: capture rate, only for animation files that carry no timing.
        max_mismatch_s: the longest stretch of audio the animation may leave uncovered
            (before its start plus after its end), and the most animation allowed past the
            audio's end, seconds; more suggests a wrong pairing or offset. ``math.inf`` off.
        report: if a list, notes about ignored / missing columns are appended.

    Returns:
        Utterance(samples float32 [N] mono 16 kHz, frames float32 [T, 52] ARKit weights in
        [0, 1] in ``ARKIT_52`` order with T = round(N / 16000 * fps), style).

    Raises:
        FileNotFoundError: a file is missing.
        model_core.AudioError: the audio cannot be decoded (e.g. a .mov).
        ValueError: the animation cannot be read (see the readers), or it and the audio
            disagree in length by more than ``max_mismatch_s``.
    """
    from ..errors import AudioError
    from .batches import Utterance

    rate = _check_fps(fps)
    if not isinstance(style, (int, np.integer)) or isinstance(style, bool) or style < 0:
        raise ValueError(f"style must be an integer >= 0, got {style!r}")
    offset = float(offset_s)
    if not math.isfinite(offset):
        raise ValueError(f"offset_s must be a finite number of seconds, got {offset_s!r}")
    ap, mp = Path(audio_path), Path(anim_path)
    if ap.suffix.lower() in VIDEO_EXTENSIONS:
        raise AudioError(_ffmpeg_hint(ap))
    frames, timing = read_arkit_table(mp, fps=anim_fps, report=report)
    samples = load_audio(ap)
    if isinstance(timing, float):
        times = np.arange(frames.shape[0], dtype=np.float64) / timing
        step = 1.0 / timing
    else:
        times = np.asarray(timing, np.float64) - float(timing[0])
        d = np.diff(times)
        step = float(np.median(d[d > 0])) if np.any(d > 0) else 0.0
    times = times + offset
    duration = samples.shape[0] / MODEL_SAMPLE_RATE
    start, end = float(times[0]), float(times[-1]) + step
    uncovered = max(0.0, start) + max(0.0, duration - end)
    excess = max(0.0, end - duration)
    if uncovered > max_mismatch_s or excess > max_mismatch_s:
        raise ValueError(
            f"{mp} spans {start:.2f}-{end:.2f} s on the audio's time line but {ap} lasts "
            f"{duration:.2f} s ({uncovered:.2f} s of audio without animation, {excess:.2f} s of "
            f"animation past the audio's end): check the two files belong to the same take, "
            f"trim them, set offset_s, or raise max_mismatch_s")
    n = sample_frames(samples.shape[0], MODEL_SAMPLE_RATE, rate)
    out = np.clip(resample_frames(frames, times, rate, n), 0.0, 1.0).astype(np.float32)
    return Utterance(samples=samples, frames=out, style=int(style))


# --------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------

class CaptureList(list):
    """The utterances of a capture folder (a ``list[Utterance]``), with

    Attributes:
        warnings: human-readable notes: unpaired files that were skipped, ignored or missing
            columns.
        pairs: ``(audio_path, anim_path)`` for each utterance, in the same order.
    """

    def __init__(self, items=(), warnings=None, pairs=None):
        super().__init__(items)
        self.warnings: list[str] = list(warnings or [])
        self.pairs: list[tuple[Path, Path]] = list(pairs or [])


def _ffmpeg_hint(video: Path) -> str:
    wav = video.with_suffix(".wav")
    return (f"{video}: audio inside a {video.suffix} file is not read directly; extract it to a "
            f"wav beside it first: ffmpeg -i \"{video}\" -vn -ac 1 \"{wav}\"")


def load_capture_folder(folder: str | os.PathLike, fps: float, style: int = 0,
                        offset_s: float = 0.0, anim_fps: float | None = None,
                        max_mismatch_s: float = 1.0) -> CaptureList:
    """All (audio, animation) takes under ``folder`` as training utterances.

    Files are searched recursively (hidden files skipped) and paired by stem,
    case-insensitively: first within one folder (``take01.wav`` + ``take01.csv``; a Live
    Link Face take folder ``<name>.csv`` + ``<name>.wav``), then across folders when a stem
    occurs once on each side (``audio/take01.wav`` + ``anim/take01.csv``). Animation:
    .csv/.tsv/.npz/.json; audio: wav/flac/ogg/mp3/aiff. Live Link Face side files
    (``frame_log.csv``, ``take.json``, ``thumbnail.jpg``) are ignored.

    Args:
        folder: directory of takes.
        fps: model frame rate; style, offset_s, anim_fps, max_mismatch_s: as in
            :func:`load_capture_pair`, for every take.

    Returns:
        :class:`CaptureList` — a list of Utterance sorted by animation path, with
        ``.warnings`` (unpaired files that were skipped; ignored / missing columns) and
        ``.pairs`` (the (audio, animation) paths used).

    Raises:
        FileNotFoundError / NotADirectoryError: ``folder`` is missing or a file.
        ValueError: nothing pairs (listing what was found and the expected layout); an
            animation whose only audio is a video (.mov/.mp4/.m4a) — with the ffmpeg command
            that extracts it; two audio or two animation files with one stem; or any error of
            :func:`load_capture_pair`, naming the file.
    """
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"capture folder not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is a file; give the folder that holds the takes")
    anims, audios, videos = defaultdict(list), defaultdict(list), defaultdict(list)
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).parts
        if not p.is_file() or any(part.startswith(".") for part in rel):
            continue
        name, ext = p.name.lower(), p.suffix.lower()
        if name in _LLF_SIDE_FILES or name.endswith(".mha.json"):
            continue
        key = (p.parent, p.stem.lower())
        if ext in ANIMATION_EXTENSIONS:
            anims[key].append(p)
        elif ext in AUDIO_EXTENSIONS:
            audios[key].append(p)
        elif ext in VIDEO_EXTENSIONS:
            videos[key].append(p)
    for group, what in ((anims, "animation"), (audios, "audio")):
        for key, ps in group.items():
            if len(ps) > 1:
                raise ValueError(f"{key[0]}: {len(ps)} {what} files named {ps[0].stem!r} "
                                 f"({', '.join(q.name for q in ps)}); keep one, or rename so "
                                 f"each take has one audio and one animation file")
    pairs: dict[tuple, Path] = {}
    for key in anims:
        if key in audios:
            pairs[key] = audios[key][0]
    # Across folders: a stem that is left over exactly once on each side.
    left_anim = defaultdict(list)
    for key in anims:
        if key not in pairs:
            left_anim[key[1]].append(key)
    used_audio = {pairs[k] for k in pairs}
    left_audio = defaultdict(list)
    for key, ps in audios.items():
        if ps[0] not in used_audio and key not in anims:
            left_audio[key[1]].append(ps[0])
    for stem, keys in left_anim.items():
        if len(keys) == 1 and len(left_audio.get(stem, ())) == 1:
            pairs[keys[0]] = left_audio[stem][0]
            used_audio.add(left_audio[stem][0])

    video_only = [videos[k][0] for k in anims if k not in pairs and k in videos]
    if video_only:
        raise ValueError("no decodable audio for "
                         + "; ".join(f"{anims[(v.parent, v.stem.lower())][0]} (only {v.name}): "
                                     f"run ffmpeg -i \"{v}\" -vn -ac 1 \"{v.with_suffix('.wav')}\""
                                     for v in video_only)
                         + " — then load the folder again (wav, flac, ogg and mp3 are read)")

    warnings = []
    for key, ps in anims.items():
        if key not in pairs:
            warnings.append(f"{ps[0]}: no audio file named {ps[0].stem}.wav/.flac/.ogg/.mp3 "
                            f"beside it; skipped")
    for key, ps in audios.items():
        if ps[0] not in used_audio:
            warnings.append(f"{ps[0]}: no animation file named {ps[0].stem}.csv/.npz/.json "
                            f"beside it; skipped")
    for key, ps in videos.items():
        if key not in anims:
            warnings.append(f"{ps[0]}: video without a matching animation file; ignored")
    if not pairs:
        found = [str(p.relative_to(root)) for g in (anims, audios, videos)
                 for ps in g.values() for p in ps]
        raise ValueError(
            f"{root}: found no (audio, animation) pairs. Put each take's audio and animation "
            f"side by side with the same name (take01.wav + take01.csv, or a Live Link Face "
            f"take folder with <name>.csv and <name>.wav extracted from <name>.mov). Found: "
            f"{', '.join(found[:20]) or 'no audio or animation files'}"
            f"{' …' if len(found) > 20 else ''}")

    utts, used = [], []
    for key in sorted(pairs, key=lambda k: str(anims[k][0])):
        anim, audio = anims[key][0], pairs[key]
        utts.append(load_capture_pair(audio, anim, fps, style=style, offset_s=offset_s,
                                      anim_fps=anim_fps, max_mismatch_s=max_mismatch_s,
                                      report=warnings))
        used.append((audio, anim))
    return CaptureList(utts, warnings=warnings, pairs=used)
