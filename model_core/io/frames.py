"""Writing generated frames: ``.npz``, Live Link Face ``.csv`` and ``.json``.

Files are written to a temporary name beside the target and renamed into place; an existing
file is never overwritten unless ``overwrite=True`` (and even then not in place).
:class:`FrameWriter` takes frames as they are made (memory does not grow with the length;
a take interrupted part-way can still be saved, or saved to a recovery file).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from ..face import ARKIT_52, LIVE_LINK_FACE_ROTATIONS, LIVE_LINK_FACE_SHAPES, check_fps
from .files import atomic_write, check_writable, write_error, write_new_file
from ..errors import FileWriteError, OutputExistsError, SettingError

FORMATS = (".npz", ".csv", ".json")


def live_link_timecode(frame: int, fps: float) -> str:
    """Live Link Face style timecode ``HH:MM:SS:FF.mmm`` for frame ``frame`` at ``fps``
    (FF = frame within the second, mmm = thousandths of a frame, always 000 here)."""
    per_s = max(1, int(round(fps)))
    secs, ff = divmod(frame, per_s)
    hh, rem = divmod(secs, 3600)
    mm, ss = divmod(rem, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}.000"


def _live_link_columns(names: list[str]) -> list[int | None]:
    """Indices into ``names`` of the Live Link Face shape columns (None: not in the model).

    Raises:
        ValueError: ``names`` holds none of the ARKit-52 names.
    """
    index = {n: i for i, n in enumerate(names)}
    cols = [index.get(n) for n in ARKIT_52]
    if all(c is None for c in cols):
        raise SettingError("the Live Link Face CSV layout needs ARKit blendshape channels; "
                         "this model outputs other channels: write .npz or .json instead")
    by_arkit = {n: c for n, c in zip(ARKIT_52, cols)}
    return [by_arkit[s[0].lower() + s[1:]] for s in LIVE_LINK_FACE_SHAPES]


def _live_link_header() -> list[str]:
    return ["Timecode", "BlendShapeCount", *LIVE_LINK_FACE_SHAPES, *LIVE_LINK_FACE_ROTATIONS]


def _live_link_rows(w, frames: np.ndarray, order: list[int | None], fps: float, first: int) -> None:
    n_cols = len(LIVE_LINK_FACE_SHAPES) + len(LIVE_LINK_FACE_ROTATIONS)
    for i, row in enumerate(frames, start=first):
        vals = [f"{row[c]:.6f}" if c is not None else "0" for c in order]
        w.writerow([live_link_timecode(i, fps), n_cols, *vals, *["0"] * len(LIVE_LINK_FACE_ROTATIONS)])


def live_link_csv_text(frames: np.ndarray, names: list[str], fps: float) -> str:
    """Frames [T, D] (ARKit weights) as Live Link Face CSV text: ``Timecode,
    BlendShapeCount`` then 52 shapes and 9 rotations (zeros), one row per frame.

    Raises:
        ValueError: ``names`` holds none of the ARKit-52 names.
    """
    order = _live_link_columns(names)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_live_link_header())
    _live_link_rows(w, frames, order, fps, 0)
    return buf.getvalue()


def _csv_text(rows) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


def _copy(src, dst, n: int) -> None:
    """Copy the first ``n`` bytes of ``src`` (at its start) to ``dst``."""
    left = n
    while left > 0:
        block = src.read(min(left, 1 << 20))
        if not block:
            break
        dst.write(block)
        left -= len(block)


def _buffer_error(e: OSError) -> OSError:
    """The OSError of the temporary file frames are kept in, naming its folder: a
    :class:`~model_core.errors.FileWriteError` of ``e``'s type (:func:`.files.write_error`),
    so the CLI and the add-on show its one line."""
    folder = tempfile.gettempdir()
    msg = (f"cannot keep the frames in a temporary file in {folder} ({e.strerror or e}); "
           f"free space there or set TMPDIR to another folder")
    return write_error(type(e))(e.errno, msg) if e.errno else FileWriteError(msg)


class FrameWriter:
    """Write frames to ``.npz``, ``.csv`` (Live Link Face) or ``.json`` as they are made.

    The frames go to an anonymous temporary file (system temp folder) as they come, so
    memory does not grow with the length; :meth:`commit` writes ``path`` (a temporary file
    beside it, renamed into place). A writer can commit after a failure elsewhere (e.g. a
    device lost mid-take), and :meth:`save_recovery` writes the same content to another
    name when ``path`` cannot be written. The files are the same as :func:`write_frames`
    makes (which is this writer given all frames at once).

    Args:
        path: the output; its extension picks the format.
        names: the D channel names; fps: frames per second (finite, > 0);
        kind: ``"arkit"`` or ``"latent"`` (stored in .npz/.json); meta: dict stored in .json;
        overwrite: replace an existing ``path``.
    Attributes:
        path (Path), n_frames (frames written so far), committed (the path written, or None).
    Raises (on creation, before any frame is made):
        ValueError: unknown extension, fps outside [1, 240], CSV for non-ARKit channels.
        FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError, OSError:
            ``path`` cannot be written (see :func:`model_core.io.files.check_writable`).
    """

    def __init__(self, path: str | os.PathLike, names: list[str], fps: float,
                 kind: str = "arkit", meta: dict | None = None, overwrite: bool = False):
        p = Path(path)
        ext = p.suffix.lower()
        if ext not in FORMATS:
            raise SettingError(f"{p}: unknown output format {ext!r}; use one of {', '.join(FORMATS)}")
        self.path, self.ext = p, ext
        self.names, self.fps, self.kind = list(names), check_fps(fps), kind
        self.meta = meta or {}
        self.overwrite = overwrite
        self._order = _live_link_columns(self.names) if ext == ".csv" else None
        check_writable(p, overwrite)
        # unbuffered: what write() reports as written is in the file (a full temporary
        # folder fails that write() and the frames before it stay exact)
        try:
            self._body = tempfile.TemporaryFile(prefix="streamtalker-", suffix=ext,
                                                buffering=0)
        except OSError as e:
            raise _buffer_error(e) from None
        self._good = 0          # bytes of the body holding whole frames
        self.n_frames = 0
        self.committed: Path | None = None
        if ext == ".csv":
            self._append(_csv_text([_live_link_header()]))
        elif ext == ".json":
            head = json.dumps({"fps": fps, "names": self.names, "kind": kind, "meta": self.meta})
            self._append((head[:-1] + ', "frames": [').encode())

    def _append(self, data: bytes) -> None:
        """Add ``data`` to the body, all or nothing.

        Raises:
            OSError: the temporary folder is full (or failing), naming it; the body is cut
                back to the frames before.
        """
        body = self._body
        try:
            view = memoryview(data)
            while view:
                n = body.write(view)
                view = view[n:]
        except OSError as e:
            try:
                body.seek(self._good)
                body.truncate(self._good)
            except OSError:
                pass
            raise _buffer_error(e) from None
        self._good += len(data)

    def write(self, frames: np.ndarray) -> None:
        """Append frames float32 [n, D] (n may be 0).

        Raises:
            ValueError: wrong shape; RuntimeError: the writer was closed; OSError: the
                temporary folder is full (named): these frames are not kept, the earlier
                ones are, and :meth:`commit` still writes them (``n_frames`` counts them).
        """
        if self._body is None:
            raise RuntimeError(f"{self.path}: this FrameWriter was closed")
        frames = np.asarray(frames, np.float32)
        if frames.ndim != 2 or frames.shape[1] != len(self.names):
            raise ValueError(f"frames must be [T, {len(self.names)}], got {frames.shape}")
        if not len(frames):
            return
        if self.ext == ".csv":
            buf = io.StringIO()
            _live_link_rows(csv.writer(buf, lineterminator="\n"), frames, self._order, self.fps,
                            self.n_frames)
            data = buf.getvalue().encode()
        elif self.ext == ".json":
            rows = ", ".join(json.dumps([round(float(v), 6) for v in row]) for row in frames)
            data = (rows if self.n_frames == 0 else ", " + rows).encode()
        else:
            data = np.ascontiguousarray(frames, "<f4").tobytes()
        self._append(data)
        self.n_frames += len(frames)

    def _finish_into(self, target: Path) -> None:
        """Write the complete file to ``target`` from the body."""
        self._body.seek(0)
        with open(target, "wb") as f:
            if self.ext == ".npz":
                with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                    with zf.open("weights.npy", "w", force_zip64=True) as w:
                        np.lib.format.write_array_header_1_0(
                            w, {"descr": "<f4", "fortran_order": False,
                                "shape": (self.n_frames, len(self.names))})
                        _copy(self._body, w, self._good)
                    for key, arr in (("names", np.array(self.names)), ("fps", np.float64(self.fps)),
                                     ("kind", np.array(self.kind))):
                        with zf.open(f"{key}.npy", "w") as w:
                            np.lib.format.write_array(w, np.asanyarray(arr), allow_pickle=False)
            else:
                _copy(self._body, f, self._good)
                if self.ext == ".json":
                    f.write(b"]}")
        self._body.seek(0, os.SEEK_END)

    def commit(self) -> Path:
        """Write ``path`` with every frame written so far and close the writer.

        Raises:
            FileExistsError: ``path`` appeared meanwhile and ``overwrite`` is False (checked
                when it is written: a file made by another program is never replaced).
            OSError: ``path`` cannot be written (named); the writer stays open, so
                :meth:`save_recovery` can still save the frames elsewhere.
        """
        if self.committed is not None:
            return self.committed
        if self.path.exists() and not self.overwrite:
            raise OutputExistsError(f"{self.path} already exists; choose another name or pass --force")
        atomic_write(self.path, self._finish_into, overwrite=self.overwrite)
        self.committed = self.path
        self.close()
        return self.path

    def save_recovery(self) -> Path:
        """Write the frames so far to a new recovery file, ``STEM.recovered-DATE-TIME.EXT``
        beside ``path``, else in the current or the temporary folder
        (:func:`model_core.io.files.write_new_file`: a folder that is full or read-only is
        passed over), and close the writer. Returns the file written.

        Raises:
            OSError: no folder accepts the recovery file either.
        """
        dest = write_new_file(self.path, self._finish_into,
                              f"recovered-{time.strftime('%Y%m%d-%H%M%S')}")
        self.committed = dest
        self.close()
        return dest

    def close(self) -> None:
        """Discard what was not committed; idempotent."""
        body, self._body = self._body, None
        if body is not None:
            try:
                body.close()
            except (OSError, ValueError):
                pass

    def __enter__(self) -> "FrameWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        self.close()


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
        raise SettingError(f"{p}: unknown output format {ext!r}; use one of {', '.join(FORMATS)}")
    frames = np.asarray(frames, np.float32)
    if frames.ndim != 2 or frames.shape[1] != len(names):
        raise ValueError(f"frames must be [T, {len(names)}], got {frames.shape}")
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p} already exists; choose another name or pass --force")
    if p.is_dir():
        from .files import write_error
        raise write_error(IsADirectoryError)(f"{p} is a directory; give a file name ending "
                                             f"in {', '.join(FORMATS)}")
    with FrameWriter(p, names, fps, kind, meta, overwrite) as w:
        w.write(frames)
    return p
