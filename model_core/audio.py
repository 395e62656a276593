"""Audio input: decode files with soundfile, mix to mono, resample with soxr.

The same :class:`Resampler` (a ``soxr.ResampleStream``) serves whole files and live input,
so a file and the same audio arriving from a microphone are resampled identically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError

#: Sample rate every model in this project consumes, Hz.
MODEL_SAMPLE_RATE = 16000

SUPPORTED_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")


class Resampler:
    """Streaming sample-rate converter (soxr ``HQ``), mono float32.

    Args:
        in_rate: input sample rate in Hz (> 0).
        out_rate: output sample rate in Hz (> 0), 16000 for the model.

    ``process(x)`` takes float32 [N] and returns float32 [M] resampled samples; call it with
    ``last=True`` once at the end of the stream to drain the filter. When the rates are equal
    it is the identity (samples are returned unchanged, no delay).

    Raises:
        ValueError: if a rate is not a positive finite number.
    """

    def __init__(self, in_rate: float, out_rate: float = MODEL_SAMPLE_RATE):
        for name, rate in (("input sample rate", in_rate), ("output sample rate", out_rate)):
            if not (np.isfinite(rate) and rate > 0):
                raise ValueError(f"{name} must be a positive number of Hz, got {rate!r}")
        self.in_rate = float(in_rate)
        self.out_rate = float(out_rate)
        self._stream = None
        if self.in_rate != self.out_rate:
            self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32",
                                               quality="HQ")

    def process(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample a block of mono float32 samples [N] -> [M]; ``last`` drains the filter."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self._stream is None:
            return x
        return np.asarray(self._stream.resample_chunk(x, last=last), dtype=np.float32)


def to_mono_float32(samples, what: str = "audio") -> np.ndarray:
    """Validate and convert an array of samples to mono float32 [N] in [-1, 1] scale.

    Accepts float32/float64 (kept as is, float64 converted), int16 (/32768), int32
    (/2**31), uint8 (8-bit WAV convention, centred at 128); shapes [N], [N, C] and [C, N]
    with C <= 8 channels (averaged to mono).

    Raises:
        AudioError: empty input, non-finite samples (NaN/inf), unsupported dtype or shape.
    """
    a = np.asarray(samples)
    if a.dtype == np.int16:
        a = a.astype(np.float32) / 32768.0
    elif a.dtype == np.int32:
        a = a.astype(np.float32) / 2147483648.0
    elif a.dtype == np.uint8:
        a = (a.astype(np.float32) - 128.0) / 128.0
    elif a.dtype in (np.float32, np.float64, np.float16):
        a = a.astype(np.float32, copy=False)
    else:
        raise AudioError(f"{what}: unsupported sample dtype {a.dtype}; give float32 samples in "
                         f"[-1, 1] (or int16/int32 PCM)")
    if a.ndim == 2:
        if a.shape[1] <= 8 and a.shape[0] > a.shape[1]:
            a = a.mean(axis=1, dtype=np.float32)
        elif a.shape[0] <= 8:
            a = a.mean(axis=0, dtype=np.float32)
        else:
            raise AudioError(f"{what}: cannot tell channels from samples in shape {a.shape}; "
                             f"give [N] mono or [N, channels]")
    elif a.ndim != 1:
        raise AudioError(f"{what}: expected a 1-D array of mono samples, got shape {a.shape}")
    if a.size == 0:
        raise AudioError(f"{what}: no samples (zero-length audio)")
    if not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise AudioError(f"{what}: {bad} sample(s) are NaN or infinite; clean the audio first")
    return np.ascontiguousarray(a, dtype=np.float32)


def load_audio(path: str | os.PathLike, sample_rate: int = MODEL_SAMPLE_RATE) -> np.ndarray:
    """Read an audio file, mix to mono and resample to ``sample_rate``.

    Args:
        path: a wav/flac/ogg/mp3 (anything libsndfile decodes) file.
        sample_rate: output rate in Hz (16000 for the model).

    Returns:
        float32 [N] mono samples at ``sample_rate``, roughly in [-1, 1].

    Raises:
        FileNotFoundError: the file does not exist.
        IsADirectoryError: the path is a directory.
        AudioError: the file is not decodable audio, is empty, or holds NaN/inf samples.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"audio file not found: {p}")
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a directory; give an audio file "
                                f"({', '.join(SUPPORTED_EXTENSIONS)})")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(f"{p}: not a readable audio file ({e}); supported formats: "
                         f"{', '.join(SUPPORTED_EXTENSIONS)}") from None
    if data.shape[0] == 0:
        raise AudioError(f"{p}: the file holds no samples (zero-length audio)")
    mono = to_mono_float32(data if data.shape[1] > 1 else data[:, 0], what=str(p))
    out = Resampler(sr, sample_rate).process(mono, last=True)
    if out.size == 0:
        raise AudioError(f"{p}: too short to resample to {sample_rate} Hz")
    return out
