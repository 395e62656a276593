"""The mouth and jaw: phones -> viseme segments -> articulatory targets blended with Cohen &
Massaro dominance functions, articulator dynamics, the bilabial contact constraint, the
loudness gain on the jaw; and :func:`viseme_track` (the same segmentation as labels)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import filtfilt

from ...face import VISEME_CLASSES
from ..phonemes import VOWEL_VISEMES, detect_alphabet, parse_phone
from .common import _REACH_S, _RATE, check_phones


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
