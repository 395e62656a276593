"""Writing generated frames: ``.npz``, Live Link Face ``.csv`` and ``.json``.

Files are written to a temporary name beside the target and renamed into place; an existing
file is never overwritten unless ``overwrite=True`` (and even then not in place).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import numpy as np

from .arkit import ARKIT_52, LIVE_LINK_FACE_ROTATIONS, LIVE_LINK_FACE_SHAPES
from .fileio import atomic_write

FORMATS = (".npz", ".csv", ".json")


def live_link_timecode(frame: int, fps: float) -> str:
    """Live Link Face style timecode ``HH:MM:SS:FF.mmm`` for frame ``frame`` at ``fps``
    (FF = frame within the second, mmm = thousandths of a frame, always 000 here)."""
    per_s = max(1, int(round(fps)))
    secs, ff = divmod(frame, per_s)
    hh, rem = divmod(secs, 3600)
    mm, ss = divmod(rem, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}.000"


def _atomic_write(path: Path, write_fn, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; choose another name or pass --force")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give a file name ending in "
                                f"{', '.join(FORMATS)}")
    atomic_write(path, write_fn)


def live_link_csv_text(frames: np.ndarray, names: list[str], fps: float) -> str:
    """Frames [T, D] (ARKit weights) as Live Link Face CSV text: ``Timecode,
    BlendShapeCount`` then 52 shapes and 9 rotations (zeros), one row per frame.

    Raises:
        ValueError: ``names`` holds none of the ARKit-52 names.
    """
    index = {n: i for i, n in enumerate(names)}
    cols = [index.get(n) for n in ARKIT_52]
    if all(c is None for c in cols):
        raise ValueError("the Live Link Face CSV layout needs ARKit blendshape channels; "
                         "this model outputs other channels: write .npz or .json instead")
    by_arkit = {n: c for n, c in zip(ARKIT_52, cols)}
    order = [by_arkit[s[0].lower() + s[1:]] for s in LIVE_LINK_FACE_SHAPES]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["Timecode", "BlendShapeCount", *LIVE_LINK_FACE_SHAPES, *LIVE_LINK_FACE_ROTATIONS])
    n_cols = len(LIVE_LINK_FACE_SHAPES) + len(LIVE_LINK_FACE_ROTATIONS)
    for i, row in enumerate(frames):
        vals = [f"{row[c]:.6f}" if c is not None else "0" for c in order]
        w.writerow([live_link_timecode(i, fps), n_cols, *vals, *["0"] * len(LIVE_LINK_FACE_ROTATIONS)])
    return buf.getvalue()


def write_frames(path: str | os.PathLike, frames: np.ndarray, names: list[str], fps: float,
                 kind: str = "arkit", meta: dict | None = None, overwrite: bool = False) -> Path:
    """Write frames float32 [T, D] to ``path``; the extension picks the format.

    - ``.npz``: ``weights`` float32 [T, D] (ARKit weights in [0, 1], or latent values),
      ``names`` [D] str, ``fps`` float, ``kind`` str.
    - ``.csv``: Live Link Face layout (ARKit models only).
    - ``.json``: ``{"fps", "names", "kind", "frames": [[...] * D] * T, "meta"}``.

    Raises:
        ValueError: unknown extension, shape/name mismatch, non-finite fps.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in FORMATS:
        raise ValueError(f"{p}: unknown output format {ext!r}; use one of {', '.join(FORMATS)}")
    frames = np.asarray(frames, np.float32)
    if frames.ndim != 2 or frames.shape[1] != len(names):
        raise ValueError(f"frames must be [T, {len(names)}], got {frames.shape}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be positive, got {fps}")
    if ext == ".npz":
        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, weights=frames, names=np.array(names), fps=np.float64(fps),
                         kind=np.array(kind))
    elif ext == ".csv":
        text = live_link_csv_text(frames, names, fps)

        def write(tmp):
            tmp.write_text(text)
    else:
        doc = {"fps": fps, "names": list(names), "kind": kind, "meta": meta or {},
               "frames": [[round(float(v), 6) for v in row] for row in frames]}

        def write(tmp):
            tmp.write_text(json.dumps(doc))
    _atomic_write(p, write, overwrite)
    return p
