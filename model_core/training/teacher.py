"""Procedural ARKit-52 "teacher": phone timings (+ optional prosody) -> blendshape curves.

The curves are training targets for the diffusion model, so they follow how faces move in
speech and are deterministic given the phones, the prosody and a ``numpy.random.Generator``.

Public API::

    curves = teacher_curves(phones, duration_s, fps, rng, prosody=None)   # float32 [T, 52]
    prosody = prosody_from_audio(samples_16k, fps)   # {"f0": [T] Hz, "energy": [T] RMS}
    idx = channel_indices(["jawOpen", "mouthClose"])  # int64 indices into ARKIT_52

Models (all times in seconds, weights in [0, 1]):

* **Mouth and jaw** (channels in :data:`MOUTH_CHANNELS`; they never use ``rng``). Each phone
  maps to viseme classes (:mod:`.phonemes`); each viseme has an articulatory target over 15
  symmetric mouth parameters and a dominance per articulator group (jaw, lip aperture,
  lip rounding/spreading, tongue). Coarticulation blends the targets with the dominance
  functions of Cohen & Massaro (1993), "Modeling coarticulation in synthetic visual
  speech", in *Models and Techniques in Computer Animation*, Springer, pp. 139-156:
  ``D(t) = alpha * exp(-(tau / s)^c)`` with ``tau`` the time before the phone's start
  (anticipation scale ``s_ant``) or after its end (carry-over scale ``s_car``), ``c = 2``,
  and ``D = alpha`` inside the phone (a plateau variant, so long phones and pauses hold
  their target); the value is ``sum_i D_i T_i / sum_i D_i``. Scales (ant / carry-over):
  lip rounding 100 / 70 ms (anticipates longest), jaw 60 / 50 ms, lip aperture 55 / 45 ms,
  tongue 40 / 35 ms; so a phone's shape starts to build about 60-150 ms before it. Pauses
  and gaps of 30 ms or more are rest-pose segments, so silence relaxes to all zeros.
  Articulator dynamics: a critically damped second-order low-pass run forwards and
  backwards in time (zero phase, so the shapes stay in sync with the phone timing), 10-90 %
  rise time about 65 ms for the jaw and 50-60 ms for the lips. Bilabials are a contact
  constraint: a smooth window (1 inside every P/B/M, 35 ms raised-cosine flanks) caps the
  jaw at 0.12 and the lip-parting shapes and floors lip press and roll, before the
  dynamics (so the articulators move into the closure) and again after them (so the lips
  close on every bilabial whatever its length).
  ``mouthClose`` follows Apple's definition (lips closed independently of the jaw):
  ``mouthClose = contact window * jawOpen``. Stressed vowels open the jaw more (primary 1.0,
  secondary 0.92, unknown 0.95, unstressed 0.85), and with prosody louder syllables open it
  up to +-15 % (larger jaw displacement in louder speech: Schulman 1989, "Articulatory
  dynamics of loud and normal speech", JASA 85(1)).
* **Upper face** (channels in :data:`UPPER_FACE_CHANNELS`; drawn from ``rng``).
  Blinks: a renewal process with a 0.6 s refractory gap plus an exponential wait, at a
  per-clip rate drawn from 12-18 per minute (Bentivoglio et al. 1997, "Analysis of blink
  rate patterns in normal subjects", Movement Disorders 12(6), report about 17/min at rest
  and 26/min in conversation, with wide spread between people; we stay near the rest
  rate); durations log-normal, median 170-250 ms, clipped to 100-400 ms; the
  lid closes in about 30 % of the blink and reopens more slowly (down phase faster than up
  phase: Evinger, Manning & Sibony 1991, "Eyelid movements: mechanisms and normal data",
  IOVS 32(2)); both eyes together (right = left x (1 +- 1.5 %)). Gaze: fixations of
  log-normal duration (median 1 s) joined by 40 ms saccades, mostly near the listener;
  upper lids follow downward gaze. Idle: slow smooth noise on brows and squint.
  Brow raises with prosody: accents are peaks of a pitch (semitones) plus loudness (dB)
  prominence curve; each accent raises the brows (``browInnerUp``, ``browOuterUp*``, slight
  ``eyeWide*``) with a probability and amplitude growing with its prominence, after Cavé
  et al. 1996, "About the relationship between eyebrow movements and F0 variations",
  ICSLP, and Krahmer & Swerts 2007, J. Memory and Language 57(3).

Frame ``i`` of the output is the face at time ``i / fps``. Everything is computed on an
internal 200 Hz grid (independent of ``fps``) and sampled at the frame times, so the same
phones and seed give the same face at 25, 30 or 60 fps.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.ndimage import gaussian_filter1d
from scipy.signal import filtfilt, find_peaks

from ..face import (ARKIT_52, MOUTH_CHANNELS, UPPER_FACE_CHANNELS, VISEME_CLASSES, frame_count,
                    sample_frames)
from .phonemes import VOWEL_VISEMES, detect_alphabet, parse_phone

#: MOUTH_CHANNELS, UPPER_FACE_CHANNELS and VISEME_CLASSES are model_core.face's, re-exported
#: here because the teacher's rules are written in them.
__all__ = ["teacher_curves", "prosody_from_audio", "channel_indices", "MOUTH_CHANNELS",
           "UPPER_FACE_CHANNELS", "VISEME_TARGETS", "VISEME_CLASSES", "viseme_track"]

# --------------------------------------------------------------------------------------
# Channels
# --------------------------------------------------------------------------------------

_IDX = {n: i for i, n in enumerate(ARKIT_52)}


def channel_indices(names: Sequence[str]) -> np.ndarray:
    """Indices of ARKit-52 channel names in :data:`model_core.face.ARKIT_52` order.

    Args:
        names: channel names, exactly as in ``ARKIT_52`` (e.g. ``"jawOpen"``).

    Returns:
        int64 [len(names)].

    Raises:
        ValueError: a name is not an ARKit-52 channel (or ``names`` is a bare string).
    """
    if isinstance(names, str):
        raise ValueError("names must be a sequence of channel names, not a string")
    out = []
    for n in names:
        if n not in _IDX:
            raise ValueError(f"unknown ARKit-52 channel {n!r}")
        out.append(_IDX[n])
    return np.asarray(out, dtype=np.int64)


# --------------------------------------------------------------------------------------
# Articulatory tables
# --------------------------------------------------------------------------------------

# Symmetric mouth parameters and the ARKit channels each one drives.
_MP = ("jaw", "jawFwd", "press", "rollLower", "rollUpper", "shrugLower",
       "shrugUpper", "lowerDown", "upperUp", "funnel", "pucker", "stretch", "smile", "dimple",
       "tongue")
_MP_IDX = {n: i for i, n in enumerate(_MP)}
_MP_TO_ARKIT = {
    "jaw": ("jawOpen",), "jawFwd": ("jawForward",), "press": ("mouthPressLeft",
                                                              "mouthPressRight"),
    "rollLower": ("mouthRollLower",), "rollUpper": ("mouthRollUpper",),
    "shrugLower": ("mouthShrugLower",), "shrugUpper": ("mouthShrugUpper",),
    "lowerDown": ("mouthLowerDownLeft", "mouthLowerDownRight"),
    "upperUp": ("mouthUpperUpLeft", "mouthUpperUpRight"), "funnel": ("mouthFunnel",),
    "pucker": ("mouthPucker",), "stretch": ("mouthStretchLeft", "mouthStretchRight"),
    "smile": ("mouthSmileLeft", "mouthSmileRight"),
    "dimple": ("mouthDimpleLeft", "mouthDimpleRight"), "tongue": ("tongueOut",),
}  # mouthClose = bilabial contact window * jawOpen (see _mouth)

# Articulator groups: (parameters, anticipation scale s, carry-over scale s, smoothing tau s)
_GROUPS = (
    (("jaw", "jawFwd"), 0.060, 0.050, 0.014),
    (("press", "rollLower", "rollUpper", "shrugLower", "shrugUpper", "lowerDown",
      "upperUp"), 0.055, 0.045, 0.010),
    (("funnel", "pucker", "stretch", "smile", "dimple"), 0.100, 0.070, 0.012),
    (("tongue",), 0.040, 0.035, 0.010),
)
_DOMINANCE_C = 2.0  # Cohen & Massaro's shape exponent c
_TAIL_SCALES = 7.0 ** (1.0 / _DOMINANCE_C)  # evaluated while D > alpha * exp(-7) (0.1 %)

#: Viseme class -> (articulatory target {parameter: weight}, dominance alpha per group
#: (jaw, lip aperture, lip rounding/spreading, tongue)). Missing parameters are 0.
VISEME_TARGETS: dict[str, tuple[dict[str, float], tuple[float, float, float, float]]] = {
    "sil": ({}, (0.6, 0.6, 0.6, 0.6)),
    "NEU": ({"jaw": 0.20, "lowerDown": 0.05}, (0.2, 0.2, 0.2, 0.2)),
    "PP": ({"jaw": 0.10}, (0.6, 2.0, 0.3, 0.3)),  # lip shapes: _BILABIAL_FLOORS
    "FF": ({"jaw": 0.12, "rollLower": 0.55, "upperUp": 0.30, "shrugUpper": 0.05,
            "stretch": 0.10}, (0.6, 2.0, 0.4, 0.3)),
    "TH": ({"jaw": 0.18, "lowerDown": 0.10, "upperUp": 0.05, "tongue": 0.12},
           (0.7, 0.4, 0.2, 2.0)),
    "DD": ({"jaw": 0.15, "lowerDown": 0.05, "stretch": 0.05}, (0.6, 0.2, 0.15, 0.5)),
    "NN": ({"jaw": 0.15, "lowerDown": 0.05}, (0.5, 0.2, 0.15, 0.5)),
    "LL": ({"jaw": 0.25, "lowerDown": 0.10}, (0.4, 0.2, 0.2, 0.5)),
    "SS": ({"jaw": 0.06, "jawFwd": 0.05, "lowerDown": 0.15, "upperUp": 0.10, "stretch": 0.25,
            "smile": 0.05}, (1.5, 0.4, 0.3, 0.5)),
    "SH": ({"jaw": 0.10, "jawFwd": 0.05, "lowerDown": 0.15, "upperUp": 0.15,
            "shrugUpper": 0.30, "funnel": 0.45, "pucker": 0.20}, (1.2, 0.5, 1.2, 0.5)),
    "KK": ({"jaw": 0.22, "lowerDown": 0.05}, (0.4, 0.1, 0.1, 0.5)),
    "RR": ({"jaw": 0.15, "shrugUpper": 0.15, "funnel": 0.30, "pucker": 0.25},
           (0.5, 0.4, 0.9, 0.5)),
    "WW": ({"jaw": 0.08, "funnel": 0.35, "pucker": 0.75}, (0.8, 0.6, 2.0, 0.3)),
    "YY": ({"jaw": 0.10, "stretch": 0.30, "smile": 0.10}, (0.6, 0.3, 0.6, 0.3)),
    "HH": ({"jaw": 0.25}, (0.05, 0.05, 0.05, 0.05)),
    "AA": ({"jaw": 0.62, "lowerDown": 0.25, "funnel": 0.05, "stretch": 0.05},
           (1.0, 0.6, 0.5, 0.5)),
    "AE": ({"jaw": 0.55, "lowerDown": 0.35, "upperUp": 0.15, "stretch": 0.30, "smile": 0.05},
           (1.0, 0.6, 0.6, 0.5)),
    "AH": ({"jaw": 0.46, "lowerDown": 0.20, "stretch": 0.05}, (1.0, 0.5, 0.4, 0.5)),
    "AO": ({"jaw": 0.52, "lowerDown": 0.15, "funnel": 0.35, "pucker": 0.10},
           (1.0, 0.5, 0.8, 0.5)),
    "OH": ({"jaw": 0.35, "lowerDown": 0.10, "funnel": 0.45, "pucker": 0.25},
           (1.0, 0.5, 1.0, 0.5)),
    "EH": ({"jaw": 0.36, "lowerDown": 0.25, "upperUp": 0.05, "stretch": 0.25},
           (1.0, 0.5, 0.6, 0.5)),
    "IH": ({"jaw": 0.24, "lowerDown": 0.15, "stretch": 0.30, "smile": 0.05},
           (0.9, 0.5, 0.6, 0.5)),
    "IY": ({"jaw": 0.14, "lowerDown": 0.10, "upperUp": 0.10, "stretch": 0.45, "smile": 0.15,
            "dimple": 0.05}, (0.9, 0.5, 0.8, 0.5)),
    "UH": ({"jaw": 0.24, "funnel": 0.30, "pucker": 0.35}, (0.9, 0.5, 0.9, 0.5)),
    "UW": ({"jaw": 0.12, "funnel": 0.40, "pucker": 0.70}, (0.9, 0.5, 1.2, 0.5)),
    "ER": ({"jaw": 0.24, "shrugUpper": 0.15, "funnel": 0.35, "pucker": 0.20},
           (0.9, 0.5, 0.9, 0.5)),
    "AX": ({"jaw": 0.28, "lowerDown": 0.10}, (0.5, 0.3, 0.3, 0.3)),
    # shapes English lacks (IPA phones of other languages; see .phonemes.IPA_TO_VISEMES)
    "EE": ({"jaw": 0.32, "lowerDown": 0.22, "upperUp": 0.05, "stretch": 0.35, "smile": 0.05},
           (0.9, 0.5, 0.7, 0.5)),                     # close-mid front e: between IH and EH
    "UE": ({"jaw": 0.14, "lowerDown": 0.05, "funnel": 0.40, "pucker": 0.65},
           (0.9, 0.5, 1.2, 0.5)),                     # y ʏ ɥ: the jaw of IY, the lips of UW
    "OE": ({"jaw": 0.34, "lowerDown": 0.12, "funnel": 0.45, "pucker": 0.35},
           (1.0, 0.5, 1.0, 0.5)),                     # ø œ: the jaw of EH/EE, lips of OH
    "UI": ({"jaw": 0.16, "lowerDown": 0.08, "stretch": 0.15}, (0.9, 0.5, 0.6, 0.5)),
    "BF": ({"jaw": 0.08, "press": 0.10, "rollLower": 0.30, "rollUpper": 0.20},
           (0.6, 1.5, 0.4, 0.3)),                     # β ɸ: lips nearly closed, not sealed
    "RT": ({"jaw": 0.17, "lowerDown": 0.08}, (0.5, 0.2, 0.15, 0.5)),  # r ɾ: neutral lips
}
#: The viseme classes of :func:`viseme_track`, in index order (``"sil"`` is 0): the one list
#: in :data:`model_core.face.VISEME_CLASSES`, which the network's auxiliary heads use too.
_VIS_NAMES = VISEME_CLASSES
assert tuple(VISEME_TARGETS) == VISEME_CLASSES, "VISEME_TARGETS must follow face.VISEME_CLASSES"
_VIS_ID = {v: i for i, v in enumerate(_VIS_NAMES)}
_TARGETS = np.zeros((len(_VIS_NAMES), len(_MP)))
_ALPHA = np.zeros((len(_VIS_NAMES), len(_GROUPS)))
for _i, _v in enumerate(_VIS_NAMES):
    for _p, _w in VISEME_TARGETS[_v][0].items():
        _TARGETS[_i, _MP_IDX[_p]] = _w
    _ALPHA[_i] = VISEME_TARGETS[_v][1]
_SIL = _VIS_ID["sil"]

_SUBSEGMENT_FRACTIONS = {1: (1.0,), 2: (0.55, 0.45), 3: (0.45, 0.30, 0.25)}
_STRESS_GAIN = {1: 1.0, 2: 0.92, 0: 0.85, None: 0.95}
_MIN_GAP_S = 0.030  # shorter gaps between phones are alignment jitter, not pauses
# Bilabial contact constraint: window flank, caps (upper bounds) and floors (lower bounds)
_BILABIAL_RAMP_S = 0.035
_BILABIAL_CAPS = {"jaw": 0.12, "lowerDown": 0.04, "upperUp": 0.04, "funnel": 0.08,
                  "tongue": 0.0}
_BILABIAL_FLOORS = {"press": 0.35, "rollLower": 0.12, "rollUpper": 0.10, "shrugLower": 0.15}
_JAW_GAIN_PER_DB = 0.025
_JAW_GAIN_RANGE = (0.85, 1.15)

_ACCENT_MIN_HEIGHT = 0.4  # prominence (0.6 z(pitch) + 0.4 z(loudness)) of an accent

_RATE = 200.0  # internal grid, Hz
_PAD_S = 0.5   # grid margin before 0 and after the duration
_REACH_S = 1.0  # phones further than this outside the grid cannot influence it


# --------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------

def _check_common(duration_s, fps) -> tuple[float, float]:
    try:
        d, f = float(duration_s), float(fps)
    except (TypeError, ValueError):
        raise ValueError("duration_s and fps must be numbers") from None
    if not math.isfinite(d) or d < 0:
        raise ValueError(f"duration_s must be finite and >= 0, got {duration_s!r}")
    if not math.isfinite(f) or f <= 0:
        raise ValueError(f"fps must be finite and > 0, got {fps!r}")
    return d, f


def check_phones(phones) -> list[tuple[str, float, float]]:
    """Validate a phone list -> [(label str, start_s float, end_s float)].

    Raises:
        ValueError: not a list of (label, start, end), non-string label, non-finite times,
            or end < start (naming the phone's index).
    """
    if isinstance(phones, (str, bytes)) or not hasattr(phones, "__iter__"):
        raise ValueError("phones must be a list of (label, start_s, end_s)")
    out = []
    for k, item in enumerate(phones):
        try:
            label, start, end = item
        except (TypeError, ValueError):
            raise ValueError(f"phones[{k}] must be (label, start_s, end_s), got {item!r}") \
                from None
        if not isinstance(label, str):
            raise ValueError(f"phones[{k}]: label must be a string, got {label!r}")
        try:
            s, e = float(start), float(end)
        except (TypeError, ValueError):
            raise ValueError(f"phones[{k}]: start/end must be numbers") from None
        if not (math.isfinite(s) and math.isfinite(e)):
            raise ValueError(f"phones[{k}]: start/end must be finite, got {start!r}, {end!r}")
        if e < s:
            raise ValueError(f"phones[{k}] {label!r}: end {e} < start {s}")
        out.append((label, s, e))
    return out


def _check_prosody(prosody, n: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(prosody, Mapping) or "f0" not in prosody or "energy" not in prosody:
        raise ValueError('prosody must be a dict with "f0" and "energy" arrays')
    arrs = []
    for key in ("f0", "energy"):
        a = np.asarray(prosody[key], dtype=np.float64)
        if a.shape != (n,):
            raise ValueError(f'prosody["{key}"] must have shape ({n},), got {a.shape}')
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise ValueError(f'prosody["{key}"] must be finite and >= 0')
        arrs.append(a)
    return arrs[0], arrs[1]


# --------------------------------------------------------------------------------------
# Mouth
# --------------------------------------------------------------------------------------

def _segments(phones, alphabet: str, lo: float, hi: float):
    """Phones -> articulatory segments (start, end, viseme id, jaw gain), gaps as silence."""
    if alphabet == "auto":
        alphabet = detect_alphabet(p[0] for p in phones)
    order = sorted(range(len(phones)), key=lambda k: phones[k][1])
    seg_s, seg_e, seg_v, seg_g = [], [], [], []
    bilabials = []
    pending = None
    for k in order:
        label, s, e = phones[k]
        p = parse_phone(label, alphabet)
        if p.kind == "mark":
            if p.stress is not None:
                pending = p.stress
            continue
        stress = p.stress
        if p.visemes[0] in VOWEL_VISEMES:
            if stress is None:
                stress = pending
            pending = None
        if e < lo - _REACH_S or s > hi + _REACH_S:
            continue
        s_c, e_c = max(s, lo - _REACH_S), min(e, hi + _REACH_S)
        fr = _SUBSEGMENT_FRACTIONS[len(p.visemes)]
        t = s_c
        for v, f in zip(p.visemes, fr):
            t1 = t + f * (e_c - s_c)
            gain = _STRESS_GAIN[stress] if v in VOWEL_VISEMES else 1.0
            seg_s.append(t), seg_e.append(t1), seg_v.append(_VIS_ID[v]), seg_g.append(gain)
            if v == "PP":
                bilabials.append((t, t1))
            t = t1
    # gaps (and the margins) are rest-pose segments
    cover = sorted(zip(seg_s, seg_e))
    t = lo - _REACH_S
    gaps = []
    for s, e in cover:
        if s - t >= _MIN_GAP_S:
            gaps.append((t, s))
        t = max(t, e)
    if hi + _REACH_S - t > 0:
        gaps.append((t, hi + _REACH_S))
    for s, e in gaps:
        seg_s.append(s), seg_e.append(e), seg_v.append(_SIL), seg_g.append(1.0)
    return (np.asarray(seg_s), np.asarray(seg_e), np.asarray(seg_v, dtype=np.int64),
            np.asarray(seg_g), bilabials)


def _dominance_blend(seg_s, seg_e, seg_v, seg_g, t0: float, m: int) -> np.ndarray:
    """Cohen-Massaro blend of the segment targets on the grid t0 + j / _RATE -> [m, 16]."""
    ant = np.array([g[1] for g in _GROUPS])
    car = np.array([g[2] for g in _GROUPS])
    lo = np.ceil((seg_s - _TAIL_SCALES * ant.max() - t0) * _RATE).astype(np.int64)
    hi = np.floor((seg_e + _TAIL_SCALES * car.max() - t0) * _RATE).astype(np.int64)
    lo, hi = np.clip(lo, 0, m), np.clip(hi, -1, m - 1)
    lens = np.maximum(hi - lo + 1, 0)
    seg = np.repeat(np.arange(len(seg_s)), lens)
    j = lo[seg] + (np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens))
    t = t0 + j / _RATE
    before = np.maximum(seg_s[seg] - t, 0.0)
    after = np.maximum(t - seg_e[seg], 0.0)
    targets = _TARGETS[seg_v].copy()
    for name in ("jaw", "lowerDown"):
        targets[:, _MP_IDX[name]] *= seg_g
    out = np.zeros((m, len(_MP)))
    for g, (names, s_ant, s_car, _tau) in enumerate(_GROUPS):
        d = _ALPHA[seg_v[seg], g] * np.exp(-((before / s_ant) ** _DOMINANCE_C
                                             + (after / s_car) ** _DOMINANCE_C))
        den = np.bincount(j, weights=d, minlength=m)
        den = np.where(den > 0, den, 1.0)
        for name in names:
            c = _MP_IDX[name]
            out[:, c] = np.bincount(j, weights=d * targets[seg, c], minlength=m) / den
    return out


def _smooth(x: np.ndarray, tau: float) -> np.ndarray:
    """Zero-phase critically damped 2nd-order low-pass (time constant tau, s) along axis 0."""
    if len(x) < 16:
        return x
    a = math.exp(-1.0 / (_RATE * tau))
    return filtfilt([(1 - a) ** 2], [1.0, -2 * a, a * a], x, axis=0, padtype="constant")


def _bilabial_window(bilabials, t0: float, m: int) -> np.ndarray:
    """1 inside every bilabial, raised-cosine flanks of _BILABIAL_RAMP_S, max over phones."""
    w = np.zeros(m)
    r = _BILABIAL_RAMP_S
    for s, e in bilabials:
        j0 = max(int(math.floor((s - r - t0) * _RATE)), 0)
        j1 = min(int(math.ceil((e + r - t0) * _RATE)) + 1, m)
        if j1 <= j0:
            continue
        t = t0 + np.arange(j0, j1) / _RATE
        d = np.maximum(np.maximum(s - t, t - e), 0.0) / r
        v = np.where(d < 1.0, 0.5 + 0.5 * np.cos(np.pi * np.minimum(d, 1.0)), 0.0)
        np.maximum(w[j0:j1], v, out=w[j0:j1])
    return w


def _jaw_gain(energy: np.ndarray, fps: float, t_grid: np.ndarray) -> np.ndarray:
    """Loudness -> jaw gain on the grid (1 where no prosody)."""
    db = 20.0 * np.log10(energy + 1e-6)
    active = db > db.max() - 35.0
    if active.sum() < 3:
        return np.ones_like(t_grid)
    db = gaussian_filter1d(db, sigma=max(0.08 * fps, 0.5), mode="nearest")
    ref = np.median(db[active])
    gain = np.clip(1.0 + _JAW_GAIN_PER_DB * (db - ref), *_JAW_GAIN_RANGE)
    return np.interp(t_grid, np.arange(len(energy)) / fps, gain)


def _mouth(phones, t0: float, m: int, hi: float, alphabet: str,
           gain_grid) -> tuple[np.ndarray, np.ndarray]:
    """Mouth parameters [m, 15] on the grid (after coarticulation, dynamics and the bilabial
    constraint) and the lip-contact window [m]."""
    seg_s, seg_e, seg_v, seg_g, bilabials = _segments(phones, alphabet, t0, hi)
    x = _dominance_blend(seg_s, seg_e, seg_v, seg_g, t0, m)
    if gain_grid is not None:
        x[:, _MP_IDX["jaw"]] *= gain_grid
    w = _bilabial_window(bilabials, t0, m)
    _lip_contact(x, w)  # as a target, so the articulators move smoothly into the closure
    for names, _a, _c, tau in _GROUPS:
        cols = [_MP_IDX[n] for n in names]
        x[:, cols] = _smooth(x[:, cols], tau)
    _lip_contact(x, w)  # and as a guarantee, also for bilabials shorter than the dynamics
    return np.clip(x, 0.0, 1.0), w


def _lip_contact(x: np.ndarray, w: np.ndarray) -> None:
    """Blend the bilabial caps and floors into x [m, 15] in place, weighted by w [m]."""
    for name, cap in _BILABIAL_CAPS.items():
        c = _MP_IDX[name]
        x[:, c] -= w * np.maximum(x[:, c] - cap, 0.0)
    for name, floor in _BILABIAL_FLOORS.items():
        c = _MP_IDX[name]
        x[:, c] += w * np.maximum(floor - x[:, c], 0.0)


# --------------------------------------------------------------------------------------
# Upper face
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------

def teacher_curves(phones: Sequence[tuple[str, float, float]], duration_s: float, fps: float,
                   rng: np.random.Generator, prosody: Mapping[str, np.ndarray] | None = None,
                   *, alphabet: str = "auto") -> np.ndarray:
    """ARKit-52 blendshape curves for a phone alignment.

    Args:
        phones: list of ``(label, start_s, end_s)``, times in seconds from the clip start.
            Labels are ARPAbet (``"AA1"``, ``"M"``), espeak-ng mnemonics (``"aI"``,
            ``"_:"``, stress marks ``"'"`` ``","``), IPA (``"ˈaɪ"``, ``"yː"``, ``"ʁ"``:
            any language) or silence labels (``"SIL"``,
            ``"sp"``, ``"<sil>"``, ``"+NSN+"``); unknown labels give a neutral mouth.
            Any order; phones may overlap or reach outside ``[0, duration_s]`` (e.g. a
            window cut from a longer alignment). Uncovered gaps of 30 ms or more are silence.
        duration_s: clip length in seconds (>= 0).
        fps: output frame rate in frames per second (> 0; 25, 30, 60 ...).
        rng: ``numpy.random.Generator`` for the upper face (blinks, gaze, idle motion, which
            prosodic accents raise the brows). Mouth channels never use it.
        prosody: optional ``{"f0": Hz (0 = unvoiced), "energy": RMS}``, each a float array
            ``[T]`` sampled at ``fps`` (as from :func:`prosody_from_audio`). It adds brow
            raises on pitch accents and a loudness gain on the jaw. None: no prosody-driven
            brow raises (blinks, gaze and idle motion still run).
        alphabet: ``"auto"`` (detected over the whole sequence), ``"arpabet"``,
            ``"espeak"`` or ``"ipa"``; see :mod:`model_core.training.phonemes`.

    Returns:
        float32 ``[T, 52]``, ``T = round(duration_s * fps)`` (halves up), channels in
        :data:`model_core.face.ARKIT_52` order, weights in [0, 1]; row ``i`` is the face
        at time ``i / fps`` seconds.

    Raises:
        ValueError: negative / non-finite duration, fps <= 0, a malformed phone entry
            (not a 3-tuple, non-string label, non-finite time, ``end_s < start_s``), bad
            ``alphabet``, or prosody arrays that are missing, not of shape ``[T]``,
            non-finite or negative.
        TypeError: ``rng`` is not a ``numpy.random.Generator``.
    """
    d, f = _check_common(duration_s, fps)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if alphabet not in ("auto", "arpabet", "espeak", "ipa"):
        raise ValueError(f"alphabet must be 'auto', 'arpabet', 'espeak' or 'ipa', got "
                         f"{alphabet!r}")
    ph = check_phones(phones)
    n = frame_count(d, f)
    pros = _check_prosody(prosody, n) if prosody is not None else None

    t0 = -_PAD_S
    m = int(math.ceil((d + 2 * _PAD_S) * _RATE)) + 2
    t = t0 + np.arange(m) / _RATE
    grid = np.zeros((m, len(ARKIT_52)))

    gain = _jaw_gain(pros[1], f, t) if pros is not None and n > 0 else None
    mouth, contact = _mouth(ph, t0, m, d + _PAD_S, alphabet, gain)
    for p, names in _MP_TO_ARKIT.items():
        for name in names:
            grid[:, _IDX[name]] = mouth[:, _MP_IDX[p]]
    grid[:, _IDX["mouthClose"]] = contact * mouth[:, _MP_IDX["jaw"]]

    upper = _upper_face(rng, t, pros if n > 0 else None, f)
    for name, v in upper.items():
        grid[:, _IDX[name]] = v

    # sample the grid at the frame times i / fps (linear interpolation)
    pos = (np.arange(n) / f - t0) * _RATE
    j0 = np.clip(np.floor(pos).astype(np.int64), 0, m - 2)
    w = (pos - j0)[:, None]
    out = grid[j0] * (1.0 - w) + grid[j0 + 1] * w
    return np.clip(out, 0.0, 1.0).astype(np.float32)


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


def viseme_track(phones: Sequence[tuple[str, float, float]], times_s, *,
                 alphabet: str = "auto") -> np.ndarray:
    """The viseme class spoken at each time: the teacher's own segmentation of the phones
    (diphthongs and affricates split into sub-segments, gaps of 30 ms or more silence).

    The training labels of the auxiliary viseme loss (``ModelConfig.aux_viseme_weight``):
    they say *what* is being articulated at each instant, independent of coarticulation.

    Args:
        phones: ``[(label, start_s, end_s)]`` in any alphabet :func:`teacher_curves` reads.
        times_s: float ``[n]`` times in seconds (any order; outside the phones: silence).
        alphabet: as :func:`teacher_curves`.

    Returns:
        int64 ``[n]`` indices into :data:`VISEME_CLASSES`.

    Raises:
        ValueError: malformed phones (as :func:`teacher_curves`).
    """
    ph = check_phones(phones)
    t = np.asarray(times_s, dtype=np.float64).reshape(-1)
    out = np.full(t.shape, _SIL, dtype=np.int64)
    if not ph or t.size == 0:
        return out
    lo = min(min(p[1] for p in ph), float(t.min())) - 1.0
    hi = max(max(p[2] for p in ph), float(t.max())) + 1.0
    seg_s, seg_e, seg_v, _g, _b = _segments(ph, alphabet, lo + _REACH_S, hi - _REACH_S)
    order = np.argsort(seg_s, kind="stable")
    seg_s, seg_e, seg_v = seg_s[order], seg_e[order], seg_v[order]
    k = np.searchsorted(seg_s, t, side="right") - 1
    ok = (k >= 0) & (t < seg_e[np.clip(k, 0, None)])
    out[ok] = seg_v[k[ok]]
    return out
