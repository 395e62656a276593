"""Point caches that Blender's Mesh Cache modifier reads: MDD and PC2.

Both store absolute vertex positions per frame, in the mesh's local coordinates, written
as given (no axis conversion); data in another axis convention (e.g. FLAME / VOCASET, Y up)
can be converted with the modifier's *Forward / Up axis* settings. The vertex order must be
the mesh's. Written to a temporary name and renamed; an existing
file is replaced only with ``overwrite=True``.

PC2 (little-endian; Blender ``MOD_meshcache_pc2.cc``, 3ds Max "Point Cache 2")::

    char[12]  b"POINTCACHE2\\0"
    int32     version = 1
    int32     n_points (V)
    float32   start frame          (the first sample's frame number)
    float32   sample rate          (frames between samples; 1.0 = every frame)
    int32     n_samples (T)
    float32   xyz[T][V][3]

MDD (big-endian; LightWave / Blender ``MOD_meshcache_mdd.cc``)::

    int32     frame count (T)
    int32     point count (V)
    float32   times[T]             (seconds: frame i at i / fps)
    float32   xyz[T][V][3]

(Blender's own MDD exporter adds an extra rest frame; this writer does not: frame i of the
file is frame i of the sequence.)
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..face import check_fps
from .files import atomic_write
from ..errors import DataError, OutputExistsError, SettingError

__all__ = ["write_pc2", "write_mdd", "read_pc2", "read_mdd", "write_point_cache"]

PC2_SIGNATURE = b"POINTCACHE2\0"


def _frames(vertices) -> np.ndarray:
    a = np.asarray(vertices, np.float32)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(f"vertices must be [T, V, 3] with T, V >= 1, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise DataError("vertices contain NaN or infinite values")
    return a


def _write(path, chunks, overwrite: bool) -> Path:
    p = Path(path)
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p} already exists (pass overwrite=True / --force)")
    def write(tmp):
        with open(tmp, "wb") as f:
            for c in chunks:
                f.write(c)
    return atomic_write(p, write, overwrite=overwrite)


def write_pc2(path, vertices, start_frame: float = 0.0, sample_rate: float = 1.0,
              overwrite: bool = False) -> Path:
    """Write float [T, V, 3] positions as PC2 (layout in the module docstring).

    Args:
        start_frame: scene frame of the first sample; sample_rate: frames per sample step.
    Returns: the path. Raises: ValueError (bad array), FileExistsError.
    """
    a = _frames(vertices)
    head = PC2_SIGNATURE + struct.pack("<iiffi", 1, a.shape[1], float(start_frame),
                                       float(sample_rate), a.shape[0])
    return _write(path, [head, a.astype("<f4").tobytes()], overwrite)


def write_mdd(path, vertices, fps: float, overwrite: bool = False) -> Path:
    """Write float [T, V, 3] positions as MDD with frame times ``i / fps`` seconds.

    Raises: ValueError (bad array or fps), FileExistsError.
    """
    a = _frames(vertices)
    fps = check_fps(fps)
    T, V = a.shape[:2]
    times = (np.arange(T) / float(fps)).astype(">f4")
    return _write(path, [struct.pack(">ii", T, V), times.tobytes(), a.astype(">f4").tobytes()],
                  overwrite)


def write_point_cache(path, vertices, fps: float, overwrite: bool = False) -> Path:
    """Pick the format from the suffix (``.pc2`` / ``.mdd``). Raises ValueError otherwise."""
    suf = Path(path).suffix.lower()
    if suf == ".pc2":
        return write_pc2(path, vertices, overwrite=overwrite)
    if suf == ".mdd":
        return write_mdd(path, vertices, fps, overwrite=overwrite)
    raise SettingError(f"{path}: point cache must end in .pc2 or .mdd")


def read_pc2(path) -> tuple[np.ndarray, float, float]:
    """Read a PC2 file -> (float32 [T, V, 3], start_frame, sample_rate).

    Raises: ValueError on a bad signature or a truncated file.
    """
    data = Path(path).read_bytes()
    if len(data) < 32 or data[:12] != PC2_SIGNATURE:
        raise DataError(f"{path}: not a PC2 file")
    _, V, start, rate, T = struct.unpack("<iiffi", data[12:32])
    if len(data) != 32 + T * V * 12:
        raise DataError(f"{path}: truncated PC2 ({len(data)} bytes for {T} x {V})")
    return np.frombuffer(data[32:], "<f4").reshape(T, V, 3).astype(np.float32), start, rate


def read_mdd(path) -> tuple[np.ndarray, np.ndarray]:
    """Read an MDD file -> (float32 [T, V, 3], times float32 [T] seconds).

    Raises: ValueError on a truncated file.
    """
    data = Path(path).read_bytes()
    if len(data) < 8:
        raise DataError(f"{path}: not an MDD file")
    T, V = struct.unpack(">ii", data[:8])
    if T < 0 or V < 0 or len(data) != 8 + 4 * T + T * V * 12:
        raise DataError(f"{path}: truncated or malformed MDD")
    times = np.frombuffer(data[8:8 + 4 * T], ">f4").astype(np.float32)
    return np.frombuffer(data[8 + 4 * T:], ">f4").reshape(T, V, 3).astype(np.float32), times
