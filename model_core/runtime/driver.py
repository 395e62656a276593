"""The Session protocol and the one driver loop (docs/architecture.md, "The streaming
contract").

Every session type -- the ARKit streaming session, the resampled-output wrapper, the vertex
session and the vertex -> shape-key retarget session -- has the same five members
(:class:`Session`), and every way of running a model goes through :func:`run`: whole-file
generation (``StreamTalkerModel.generate``, ``VertexModel.generate``), the Blender add-on's
worker thread and live input (:class:`model_core.live.LiveEngine`).
"""

from __future__ import annotations

from typing import Callable, Iterable, Protocol, runtime_checkable

import numpy as np

from ..io.audio import MODEL_SAMPLE_RATE

__all__ = ["Cancelled", "Session", "run"]


@runtime_checkable
class Session(Protocol):
    """A stream of 16 kHz mono samples in, motion frames out, with bounded state.

    Members:
        push(samples) -> frames: feed float32 mono samples [N] at 16 kHz (any N >= 0);
            returns the frames that became ready.
        flush() -> frames: end of stream; returns the rest. Over the whole stream the
            session returns ``model_core.face.sample_frames(N, 16000, fps)`` frames, and
            the same audio in any chunking with the same seed gives the same frames.
        latency_ms: algorithmic latency (chunk length + audio look-ahead), milliseconds.
        channel_names: the D names of a frame's channels (frames float32 [n, D]), or None
            for vertex sessions (frames float32 [n, V, 3], mesh positions).
        fps: output frames per second.
    """

    fps: float

    def push(self, samples) -> np.ndarray: ...

    def flush(self) -> np.ndarray: ...

    @property
    def latency_ms(self) -> float: ...

    @property
    def channel_names(self) -> list[str] | None: ...


class Cancelled(Exception):
    """:func:`run` stopped because ``cancel`` was set; the session was not flushed."""


def _cancelled(cancel) -> bool:
    if cancel is None:
        return False
    return bool(cancel.is_set() if hasattr(cancel, "is_set") else cancel())


def run(session: Session, samples, block: int = MODEL_SAMPLE_RATE,
        on_frames: Callable[[np.ndarray], None] | None = None, cancel=None,
        on_progress: Callable[[float], None] | None = None, flush: bool = True):
    """Drive ``session`` over ``samples``: push them, then flush.

    Args:
        session: any :class:`Session`.
        samples: float32 mono samples [N] at 16 kHz (pushed ``block`` at a time), or an
            iterable of such arrays (each pushed as it comes: live input; the iterable may
            block while it waits for audio).
        block: samples per push for an array, >= 1. The frames do not depend on it.
        on_frames: called with every non-empty frame array as it becomes ready (in the
            calling thread); None collects them and returns them.
        cancel: None, a ``threading.Event`` or a callable returning True to stop; checked
            before every push.
        on_progress: called with the fraction of an array's samples pushed so far (0..1]
            after each push.
        flush: False leaves the session open when the samples end (live input: stopping
            discards the audio still buffered).
    Returns:
        with ``on_frames`` None, all frames concatenated (float32 [T, ...]); else None.
    Raises:
        Cancelled: ``cancel`` was set; nothing more was pushed and the session was not
            flushed.
        ValueError: ``block`` < 1; and whatever the session's push/flush raise.
    """
    if isinstance(block, bool) or int(block) < 1:
        raise ValueError(f"block must be a positive number of samples, got {block!r}")
    block = int(block)
    parts: list[np.ndarray] = []

    def emit(frames: np.ndarray) -> None:
        if on_frames is None:
            parts.append(frames)
        elif len(frames):
            on_frames(frames)

    if isinstance(samples, np.ndarray):
        n = len(samples)
        for i in range(0, n, block):
            if _cancelled(cancel):
                raise Cancelled()
            emit(session.push(samples[i:i + block]))
            if on_progress is not None:
                on_progress(min(1.0, (i + block) / n))
    else:
        for piece in samples:
            if _cancelled(cancel):
                raise Cancelled()
            emit(session.push(piece))
    if flush:
        if _cancelled(cancel):
            raise Cancelled()
        emit(session.flush())
    if on_frames is not None:
        return None
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)
