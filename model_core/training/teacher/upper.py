"""The upper face, drawn from an rng: blinks (a renewal process), gaze fixations and
saccades, idle brow and squint motion, brow raises on prosodic accents."""

from __future__ import annotations

import math

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from .common import _RATE


_ACCENT_MIN_HEIGHT = 0.4  # prominence (0.6 z(pitch) + 0.4 z(loudness)) of an accent


def _smoothstep(u):
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _render_events(t, start, attack, hold, release, amp):
    """Sum of bumps (smoothstep attack, hold, smoothstep release) on grid times t."""
    out = np.zeros_like(t)
    if len(start) == 0:
        return out
    t0, dt = t[0], 1.0 / _RATE
    end = start + attack + hold + release
    lo = np.clip(np.floor((start - t0) / dt).astype(np.int64), 0, len(t))
    hi = np.clip(np.ceil((end - t0) / dt).astype(np.int64) + 1, 0, len(t))
    lens = np.maximum(hi - lo, 0)
    ev = np.repeat(np.arange(len(start)), lens)
    j = lo[ev] + (np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens))
    tau = t[j] - start[ev]
    up = _smoothstep(tau / attack[ev])
    down = 1.0 - _smoothstep((tau - attack[ev] - hold[ev]) / release[ev])
    np.add.at(out, j, amp[ev] * np.minimum(up, down))
    return out


def _slow_noise(rng: np.random.Generator, t: np.ndarray, knot_s: float, k: int) -> np.ndarray:
    """k smooth random series [len(t), k] (cubic spline through N(0,1) knots every knot_s)."""
    n_knots = int(math.ceil((t[-1] - t[0]) / knot_s)) + 2
    knots = rng.standard_normal((n_knots, k))
    tk = t[0] + knot_s * np.arange(n_knots)
    return CubicSpline(tk, knots, axis=0)(t)


def _blinks(rng, t):
    """Eyelid closure (left, right) [len(t)] x2 from a refractory renewal process."""
    span = t[-1] - t[0]
    rate = rng.uniform(12.0, 18.0)                   # blinks per minute
    median_dur = rng.uniform(0.17, 0.25)             # s
    refractory = 0.6                                 # s, longer than any blink
    mean_ibi = 60.0 / rate
    n_max = int(span / refractory) + 2
    gaps = refractory + rng.exponential(mean_ibi - refractory, n_max)
    first = rng.uniform(0.0, mean_ibi)
    dur = np.clip(median_dur * np.exp(0.25 * rng.standard_normal(n_max)), 0.10, 0.40)
    amp = rng.uniform(0.85, 1.0, n_max)
    close_frac = rng.uniform(0.25, 0.35, n_max)
    asym = 1.0 + 0.015 * rng.standard_normal(n_max)
    start = t[0] + first + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
    keep = start < t[-1]
    start, dur, amp, close_frac, asym = (a[keep] for a in (start, dur, amp, close_frac, asym))
    attack, hold = close_frac * dur, 0.1 * dur
    release = dur - attack - hold
    left = _render_events(t, start, attack, hold, release, amp)
    right = _render_events(t, start, attack, hold, release, amp * asym)
    return left, right


def _gaze(rng, t, spread: float):
    """Gaze yaw (+ = subject's left) and pitch (+ = up), blendshape units, [len(t)] x2."""
    span = t[-1] - t[0]
    n = int(span / 0.25) + 8
    dur = np.clip(np.exp(np.log(1.0) + 0.5 * rng.standard_normal(n)), 0.25, 4.0)
    near = rng.random(n) < 0.6                           # back to the listener
    yaw = np.where(near, 0.02, spread) * rng.standard_normal(n)
    pitch = np.where(near, 0.015, 0.6 * spread) * rng.standard_normal(n) - 0.02
    onset = t[0] + np.concatenate([[-1.0], np.cumsum(dur[:-1])])
    k = np.clip(np.searchsorted(onset, t, side="right") - 1, 0, n - 1)
    u = _smoothstep((t - onset[k]) / 0.04)               # 40 ms saccade
    prev = np.maximum(k - 1, 0)
    y = yaw[prev] + (yaw[k] - yaw[prev]) * u
    p = pitch[prev] + (pitch[k] - pitch[prev]) * u
    drift = 0.008 * _slow_noise(rng, t, 0.7, 2)
    return np.clip(y + drift[:, 0], -0.5, 0.5), np.clip(p + drift[:, 1], -0.5, 0.5)


def _accents(f0: np.ndarray, energy: np.ndarray, fps: float):
    """Pitch-accent candidates from prosody: (times s, prominence heights, pitch z [n])."""
    n = len(f0)
    tf = np.arange(n) / fps
    voiced = f0 > 0
    zp = np.zeros(n)
    if voiced.sum() >= 3:
        st = 12.0 * np.log2(f0[voiced] / np.median(f0[voiced]))
        zp = np.interp(tf, tf[voiced], st) / max(float(np.std(st)), 1.5)
    db = 20.0 * np.log10(energy + 1e-6)
    active = db > db.max() - 35.0
    if active.sum() < 3:
        return np.zeros(0), np.zeros(0), np.zeros(n)
    ze = (db - np.median(db[active])) / 6.0
    c = np.where(active, 0.6 * zp + 0.4 * ze, -3.0)
    c = gaussian_filter1d(c, sigma=max(0.06 * fps, 0.5), mode="nearest")
    zp = np.where(active, zp, 0.0)
    peaks, props = find_peaks(c, height=_ACCENT_MIN_HEIGHT, prominence=0.5,
                              distance=max(1, int(0.4 * fps)))
    return tf[peaks], props["peak_heights"], zp


def _upper_face(rng, t, prosody, fps) -> dict[str, np.ndarray]:
    """Upper-face ARKit channels on the grid, drawn from rng (fixed order of draws)."""
    spread = rng.uniform(0.06, 0.12)
    brow_expr = rng.uniform(0.7, 1.3)
    brow_base = rng.uniform(0.02, 0.08)
    squint_base = rng.uniform(0.02, 0.07)
    blink_l, blink_r = _blinks(rng, t)
    yaw, pitch = _gaze(rng, t, spread)
    nz = _slow_noise(rng, t, 1.2, 6)

    raise_ = np.zeros_like(t)
    inner_cont = np.zeros_like(t)
    if prosody is not None:
        f0, energy = prosody
        times, heights, zp = _accents(f0, energy, fps)
        k = len(times)
        u = rng.random(k)
        jitter = rng.uniform(0.8, 1.2, k)
        lead = rng.uniform(0.05, 0.15, k)
        hold = rng.uniform(0.05, 0.25, k)
        excess = heights - _ACCENT_MIN_HEIGHT
        on = u < np.clip(0.3 + 0.5 * excess, 0.3, 0.85)            # P(raise | accent)
        amp = brow_expr * np.clip(0.12 + 0.08 * excess, 0.12, 0.35) * jitter
        attack = np.full(k, 0.15)
        raise_ = _render_events(t, (times - lead - 0.15)[on], attack[on], hold[on],
                                np.full(k, 0.35)[on], amp[on])
        zp_grid = np.interp(t, np.arange(len(f0)) / fps, zp)
        inner_cont = 0.03 * brow_expr * np.clip(gaussian_filter1d(zp_grid, 0.15 * _RATE),
                                                0.0, 2.0)

    down = np.maximum(-pitch, 0.0)
    up = np.maximum(pitch, 0.0)
    ch = {
        "eyeBlinkLeft": blink_l + 0.3 * down * (1.0 - blink_l),
        "eyeBlinkRight": blink_r + 0.3 * down * (1.0 - blink_r),
        "eyeLookUpLeft": up, "eyeLookUpRight": up,
        "eyeLookDownLeft": down + 0.08 * blink_l, "eyeLookDownRight": down + 0.08 * blink_r,
        "eyeLookOutLeft": np.maximum(yaw, 0.0), "eyeLookInRight": np.maximum(yaw, 0.0),
        "eyeLookInLeft": np.maximum(-yaw, 0.0), "eyeLookOutRight": np.maximum(-yaw, 0.0),
        "eyeSquintLeft": squint_base + 0.02 * (nz[:, 0] + 0.2 * nz[:, 1]) + 0.1 * blink_l,
        "eyeSquintRight": squint_base + 0.02 * (nz[:, 0] - 0.2 * nz[:, 1]) + 0.1 * blink_r,
        "eyeWideLeft": 0.3 * raise_ + 0.2 * up, "eyeWideRight": 0.3 * raise_ + 0.2 * up,
        "browInnerUp": brow_base + 0.03 * nz[:, 2] + raise_ + inner_cont,
        "browOuterUpLeft": 0.7 * brow_base + 0.025 * (nz[:, 3] + 0.2 * nz[:, 4])
        + 0.8 * raise_ + 0.5 * inner_cont,
        "browOuterUpRight": 0.7 * brow_base + 0.025 * (nz[:, 3] - 0.2 * nz[:, 4])
        + 0.8 * raise_ + 0.5 * inner_cont,
        "browDownLeft": 0.03 * np.maximum(nz[:, 5], 0.0),
        "browDownRight": 0.03 * np.maximum(nz[:, 5], 0.0),
    }
    return ch
