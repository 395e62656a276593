"""One take: its audio and animation resampled onto the model's frame grid
(:func:`load_capture_pair`, :func:`resample_frames`)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ...face import sample_frames
from ...io.audio import MODEL_SAMPLE_RATE, load_audio
from .tables import _check_fps, read_arkit_table


#: Containers whose audio must be extracted with ffmpeg first.
VIDEO_EXTENSIONS = (".mov", ".mp4", ".m4v", ".m4a", ".aac", ".mkv", ".avi", ".webm", ".3gp")


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
    from ...errors import AudioError
    from ..batches import Utterance

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


def _ffmpeg_hint(video: Path) -> str:
    wav = video.with_suffix(".wav")
    return (f"{video}: audio inside a {video.suffix} file is not read directly; extract it to a "
            f"wav beside it first: ffmpeg -i \"{video}\" -vn -ac 1 \"{wav}\"")
