"""Log-mel features on a fixed global frame grid, computed identically in streaming and batch.

Mel frame ``m`` is centred on absolute sample ``m * hop`` and covers samples
``[m*hop - win/2, m*hop + win/2)``; samples before the stream start are zeros (silence).
Frame ``m`` can therefore be computed as soon as ``m*hop + win/2`` samples have arrived.
Because a frame depends only on those samples, features are the same whatever sizes the
audio arrives in.
"""

from __future__ import annotations

import numpy as np

from .device import exact_matmul


def hz_to_mel(f):
    """HTK mel scale: ``2595 * log10(1 + f / 700)`` (O'Shaughnessy 1987)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular HTK-mel filterbank, float32 [n_mels, n_fft // 2 + 1], unit peak per filter.

    Raises:
        ValueError: if ``0 <= fmin < fmax <= sample_rate / 2`` does not hold.
    """
    if not (0 <= fmin < fmax <= sample_rate / 2):
        raise ValueError(f"mel band edges must satisfy 0 <= fmin < fmax <= {sample_rate / 2}, "
                         f"got fmin={fmin}, fmax={fmax}")
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lo, ce, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (ce - lo)
    down = (hi - freqs[None]) / (hi - ce)
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


class LogMel:
    """Log-mel spectrogram frames on the global grid described in the module docstring.

    Args:
        sample_rate: Hz (16000).
        n_fft: FFT size in samples (>= win_length).
        win_length: analysis window in samples (even), Hann.
        hop_length: hop in samples (160 = 10 ms at 16 kHz, i.e. 100 frames per second).
        n_mels: number of mel bands.
        fmin, fmax: band edges in Hz.

    ``frames(buf, buf_start, m0, m1)`` returns float32 [m1 - m0, n_mels] natural-log mel
    energies (floor 1e-6) for frames ``m0 .. m1-1`` from a buffer whose first sample has the
    absolute index ``buf_start`` (may be negative: zeros before the stream start).
    """

    def __init__(self, sample_rate=16000, n_fft=512, win_length=400, hop_length=160,
                 n_mels=80, fmin=20.0, fmax=7600.0):
        if win_length % 2 or win_length > n_fft:
            raise ValueError(f"win_length must be even and <= n_fft, got {win_length}, {n_fft}")
        self.sample_rate, self.n_fft, self.win, self.hop = sample_rate, n_fft, win_length, hop_length
        self.n_mels, self.fmin, self.fmax = n_mels, fmin, fmax
        self.window = np.hanning(win_length + 1)[:-1].astype(np.float32)  # periodic Hann
        self.fbank = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)

    @property
    def frame_rate(self) -> float:
        """Mel frames per second."""
        return self.sample_rate / self.hop

    def samples_needed(self, m: int) -> int:
        """Absolute sample count that must have arrived before frame ``m`` can be computed."""
        return m * self.hop + self.win // 2

    def last_frame_for(self, n_samples: int) -> int:
        """Index of the last mel frame computable from the first ``n_samples`` samples."""
        return (n_samples - self.win // 2) // self.hop

    def frames(self, buf: np.ndarray, buf_start: int, m0: int, m1: int) -> np.ndarray:
        """Compute frames m0..m1-1 from ``buf`` (float32 [N], buf[0] is sample ``buf_start``)."""
        n = m1 - m0
        if n <= 0:
            return np.zeros((0, self.n_mels), np.float32)
        first = m0 * self.hop - self.win // 2 - buf_start
        if first < 0 or first + (n - 1) * self.hop + self.win > len(buf):
            raise RuntimeError("log-mel frames requested outside the sample buffer")
        idx = first + np.arange(n)[:, None] * self.hop + np.arange(self.win)[None, :]
        spec = np.fft.rfft(buf[idx] * self.window, n=self.n_fft, axis=-1)
        power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
        mel = exact_matmul(power, self.fbank.T)   # the same bits in every process
        return np.log(np.maximum(mel, 1e-6)).astype(np.float32)

    def silence_frame(self) -> np.ndarray:
        """The log-mel of digital silence, float32 [n_mels] (every band at log(1e-6))."""
        return np.full(self.n_mels, np.log(1e-6), np.float32)

    def whole(self, samples: np.ndarray, n_frames: int) -> np.ndarray:
        """Frames 0..n_frames-1 of a whole signal, zero-padded past its end, [n_frames, n_mels].

        Used for training; equal (to float rounding) to the streaming frames.
        """
        pad_left = self.win // 2
        need = (n_frames - 1) * self.hop + self.win
        buf = np.zeros(max(need, pad_left + len(samples)), np.float32)
        buf[pad_left:pad_left + len(samples)] = samples
        return self.frames(buf, -pad_left, 0, n_frames)
