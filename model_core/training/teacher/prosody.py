"""Frame-level pitch and loudness of speech (:func:`prosody_from_audio`): the prosody the
teacher's brow raises and jaw gain follow."""

from __future__ import annotations

import math

import numpy as np

from ...face import sample_frames
from .common import _check_common


def prosody_from_audio(samples_16k: np.ndarray, fps: float) -> dict[str, np.ndarray]:
    """Frame-level loudness and pitch of 16 kHz mono speech, for :func:`teacher_curves`.

    Frame ``i`` is centred on time ``i / fps``. ``energy`` is the RMS of the samples in a
    window of max(30 ms, 1/fps) around it. ``f0`` comes from the normalised autocorrelation
    of a 50 ms Hann-windowed frame divided by the window's own autocorrelation (Boersma
    1993, "Accurate short-term analysis of the fundamental frequency and the
    harmonics-to-noise ratio of a sampled sound", IFA Proceedings 17), searched over
    60-400 Hz with parabolic peak interpolation and Boersma's octave cost (0.01 per octave,
    favouring the higher candidate); a frame is voiced when its peak is >= 0.45 and its
    amplitude reaches 3 % of the file's peak (Praat's default voicing and silence
    thresholds), else ``f0 = 0``; a voiced frame more than 0.6 octave from the median of its
    voiced neighbours (+-2 frames), or more than an octave from the median of the whole
    signal, is an octave error and is unvoiced too.

    Args:
        samples_16k: float [N] mono samples at 16 kHz (any float dtype; finite).
        fps: frame rate in frames per second (> 0).

    Returns:
        ``{"f0": float32 [T] Hz, "energy": float32 [T] RMS (sample units)}`` with
        ``T = round(N / 16000 * fps)`` (halves up).

    Raises:
        ValueError: samples not 1-D, not finite or not numeric; fps not finite and > 0.
    """
    sr = 16000
    try:
        x = np.asarray(samples_16k, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("samples_16k must be a 1-D float array") from None
    if x.ndim != 1:
        raise ValueError(f"samples_16k must be 1-D, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples_16k contains non-finite values")
    _check_common(0.0, fps)
    n = sample_frames(len(x), sr, fps)
    if n == 0:
        return {"f0": np.zeros(0, np.float32), "energy": np.zeros(0, np.float32)}
    hop = sr / float(fps)
    win_len = max(800, int(math.ceil(hop)))
    e_len = min(max(480, int(round(hop))), win_len)
    half = win_len // 2
    xp = np.pad(x, (half, half + 1))
    centres = np.rint(np.arange(n) * hop).astype(np.int64)
    centres = np.clip(centres, 0, len(x))
    view = np.lib.stride_tricks.sliding_window_view(xp, win_len)

    kmin, kmax = int(math.floor(sr / 400.0)), int(math.ceil(sr / 60.0))
    nfft = 1 << int(math.ceil(math.log2(2 * win_len)))
    window = np.hanning(win_len + 2)[1:-1]
    rw = np.fft.irfft(np.abs(np.fft.rfft(window, nfft)) ** 2, nfft)[: kmax + 2]
    rw = rw / rw[0]
    lags = np.arange(kmin, kmax + 1)
    cost = 0.01 * np.log2(60.0 * lags / sr)
    peak_amp = float(np.max(np.abs(x))) if len(x) else 0.0

    f0 = np.zeros(n)
    energy = np.zeros(n)
    e0 = half - e_len // 2
    for b in range(0, n, 1024):
        fr = view[centres[b:b + 1024]]
        energy[b:b + len(fr)] = np.sqrt(np.mean(fr[:, e0:e0 + e_len] ** 2, axis=1))
        xf = (fr - fr.mean(axis=1, keepdims=True)) * window
        r = np.fft.irfft(np.abs(np.fft.rfft(xf, nfft, axis=1)) ** 2, nfft, axis=1)
        r = r[:, : kmax + 2]
        r0 = r[:, :1]
        rn = np.where(r0 > 0, r / np.where(r0 > 0, r0, 1.0), 0.0) / rw
        mid = rn[:, kmin:kmax + 1]
        is_max = (mid > rn[:, kmin - 1:kmax]) & (mid >= rn[:, kmin + 1:kmax + 2])
        score = np.where(is_max & (mid >= 0.45), mid - cost, -np.inf)
        best = np.argmax(score, axis=1)
        rows = np.arange(len(fr))
        ok = np.isfinite(score[rows, best])
        ok &= np.max(np.abs(fr), axis=1) >= 0.03 * peak_amp
        k = lags[best]
        ym, y0, yp = rn[rows, k - 1], rn[rows, k], rn[rows, k + 1]
        denom = ym - 2 * y0 + yp
        delta = np.where(np.abs(denom) > 1e-12, 0.5 * (ym - yp) / np.where(
            np.abs(denom) > 1e-12, denom, 1.0), 0.0)
        lag = k + np.clip(delta, -0.5, 0.5)
        f = np.where(ok, sr / lag, 0.0)
        f0[b:b + len(fr)] = np.where((f >= 60.0) & (f <= 400.0), f, 0.0)
    if peak_amp == 0.0:
        f0[:] = 0.0
    return {"f0": _drop_octave_jumps(f0).astype(np.float32),
            "energy": energy.astype(np.float32)}


def _drop_octave_jumps(f0: np.ndarray, radius: int = 2, max_octaves: float = 0.6) -> np.ndarray:
    """Unvoice frames whose f0 is over max_octaves from the median of the voiced frames
    within +-radius frames, or over an octave from the median of all voiced frames (octave
    errors at voicing edges)."""
    if len(f0) < 2:
        return f0
    lf = np.where(f0 > 0, np.log2(np.where(f0 > 0, f0, 1.0)), np.nan)
    win = np.lib.stride_tricks.sliding_window_view(
        np.pad(lf, radius, constant_values=np.nan), 2 * radius + 1)
    voiced = f0 > 0
    med = np.full(len(f0), np.nan)
    med[voiced] = np.nanmedian(win[voiced], axis=1)
    bad = voiced & (np.abs(lf - med) > max_octaves)
    if voiced.sum() >= 5:  # and more than an octave from the speaker's median
        bad |= voiced & (np.abs(lf - np.median(lf[voiced])) > 1.0)
    return np.where(bad, 0.0, f0)
