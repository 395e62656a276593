"""Evaluation metrics: the field's vertex metrics and lip-sync measures on ARKit-52 curves.

Two families (docs/architecture.md, "Metrics"):

* **Vertex metrics** on meshes ``[T, V, 3]`` (VOCASET, BIWI), defined exactly as the
  evaluation scripts of FaceFormer (Fan et al., CVPR 2022) and CodeTalker (Xing et al.,
  CVPR 2023) compute them: :func:`lve`, :func:`fdd`, :func:`mve`. The lip and upper-face
  vertex lists are dataset files (BIWI ``regions/lve.txt`` / ``fdd.txt``, VOCASET
  ``FLAME_masks.pkl``) that the caller loads; none ship with this project.
* **Blendshape metrics** on ARKit-52 weights ``[T, 52]`` in [0, 1] (channels in
  :data:`model_core.face.ARKIT_52` order), at ``fps`` frames per second, with frame ``i``
  the face at time ``i / fps`` seconds (the teacher's and the model's convention), and a
  phone alignment ``[(label, start_s, end_s)]`` (:func:`model_core.training.align.align_phones`):
  :func:`channel_mae`, :func:`bilabial_closure_rate` (:func:`bilabial_closures` for the
  counts), :func:`open_vowel_jaw`, :func:`jaw_correlation`, :func:`blink_rate`
  (:func:`count_blinks`), :func:`seed_diversity`.
* **Lip-gap measures** on a real head's geometry (:func:`lip_gap_measures`, with the gap
  from :meth:`model_core.evaluation.arkit_head.ArkitHead.lip_gap`): closure on P/B/M, the open/closed
  gap ratio, openness correlation and lip rounding. These see lip shape (``mouthClose``,
  ``mouthPress``, ``mouthFunnel`` ...), not only the jaw, so a model that follows loudness
  instead of phonetics fails them.

Frame membership (used by every phone-based measure): frame ``i`` lies in a phone
``(label, s, e)`` when ``s <= i / fps < e`` (half-open, the convention of
``tests/test_teacher.py``). A phone label is read as ARPAbet, case-insensitively, with any
stress digit dropped (``"AA1"`` -> ``"AA"``); a phone is *speech* unless
:func:`model_core.training.phonemes.parse_phone` calls it silence or a stress mark
(``"SIL"``, ``"sp"``, ``"<sil>"``, ``"+NSN+"`` ...).
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np

from ..face import ARKIT_52, LIP_CHANNELS, UPPER_CHANNELS
from ..face import check_fps  # noqa: F401  (metrics.check_fps: the one frame-rate check)
from ..training.phonemes import BILABIALS_ARPABET, OPEN_VOWELS_ARPABET, parse_phone, phone_frames

__all__ = [
    "BILABIAL_MIN_DURATION_S", "BLINK_HIGH", "BLINK_LOW", "BLINK_MIN_FRAMES",
    "CLOSURE_FRACTION", "LIP_CHANNELS", "MIN_OPEN_LEVEL", "OPEN_LEVEL_PERCENTILE",
    "UPPER_CHANNELS",
    "lve", "fdd", "mve", "ratio_of",
    "channel_mae", "bilabial_closures", "bilabial_closure_rate", "open_vowel_jaw",
    "jaw_correlation", "count_blinks", "blink_rate", "seed_diversity", "phone_frames",
    "LIP_CLOSURE_FRACTION", "LIP_GAP_PERCENTILE", "OPENNESS_TARGETS", "ROUNDED_ARPABET",
    "SPREAD_ARPABET", "lip_gap_measures", "pool_lip_gap_measures", "phone_measure_class",
    "OPENNESS_TARGETS_IPA", "ROUNDED_IPA", "SPREAD_IPA", "FRONT_ROUNDED_IPA",
]

# --------------------------------------------------------------------------------------
# Constants (the exact rules; see the functions' docstrings)
# --------------------------------------------------------------------------------------

# LIP_CHANNELS (jaw*, mouth*: 27) and UPPER_CHANNELS (brow*, eye*: 19) are model_core.face's.

#: Bilabials shorter than this (seconds) are not scored (too short to show a closure).
BILABIAL_MIN_DURATION_S = 0.030
#: A bilabial is closed when its min jawOpen <= CLOSURE_FRACTION x the open level.
CLOSURE_FRACTION = 0.5
#: The open level is this percentile of jawOpen over the open-vowel frames.
OPEN_LEVEL_PERCENTILE = 90.0
#: Below this open level the mouth never opens: no bilabial counts as closed.
MIN_OPEN_LEVEL = 0.05
#: Blink detection on the mean of eyeBlinkLeft/Right: above BLINK_HIGH for at least
#: BLINK_MIN_FRAMES frames; two blinks must be separated by a dip below BLINK_LOW.
BLINK_HIGH = 0.5
BLINK_LOW = 0.3
BLINK_MIN_FRAMES = 2

_IDX = {n: i for i, n in enumerate(ARKIT_52)}
_JAW = _IDX["jawOpen"]
_LIP_IDX = np.array([_IDX[n] for n in LIP_CHANNELS], dtype=np.int64)
_UPPER_IDX = np.array([_IDX[n] for n in UPPER_CHANNELS], dtype=np.int64)
_BLINK_IDX = (_IDX["eyeBlinkLeft"], _IDX["eyeBlinkRight"])
_STRESS = re.compile(r"[0-2]$")


# --------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------

def _vertices(x, what: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a numeric array [T, V, 3]") from None
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"{what} must have shape [T, V, 3], got {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{what} is empty (shape {a.shape})")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return a


def _pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    p, g = _vertices(pred, "pred"), _vertices(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt shapes differ: {p.shape} vs {g.shape}")
    return p, g


def ratio_of(a: float, b: float) -> float:
    """``a / b`` for the open/closed and open-vowel ratios: NaN when either is NaN (nothing to
    measure), inf for a positive ``a`` over ``b <= 0``, NaN for ``a <= 0`` over ``b <= 0``."""
    if math.isnan(a) or math.isnan(b):
        return float("nan")
    if b <= 0:
        return float("inf") if a > 0 else float("nan")
    return a / b


def _indices(idx, n_vertices: int, what: str) -> np.ndarray:
    """Vertex indices (int sequence, or a bool mask of length V) -> int64 [k], k >= 1."""
    if isinstance(idx, (str, bytes)):
        raise ValueError(f"{what} must be a sequence of vertex indices, not a string")
    a = np.asarray(idx)
    if a.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {a.shape}")
    if a.dtype == bool:
        if a.shape[0] != n_vertices:
            raise ValueError(f"{what} as a boolean mask must have length {n_vertices}, "
                             f"got {a.shape[0]}")
        a = np.flatnonzero(a)
    elif a.size and not np.issubdtype(a.dtype, np.integer):
        if not (np.issubdtype(a.dtype, np.floating) and np.all(a == np.round(a))):
            raise ValueError(f"{what} must hold integer vertex indices, got dtype {a.dtype}")
        a = a.astype(np.int64)
    if a.size == 0:
        raise ValueError(f"{what} is empty: at least one vertex index is needed")
    a = a.astype(np.int64)
    if a.min() < 0 or a.max() >= n_vertices:
        raise ValueError(f"{what} holds indices outside 0..{n_vertices - 1} "
                         f"(min {a.min()}, max {a.max()})")
    return a


def _curves(x, what: str, allow_empty: bool = False) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a numeric array [T, 52]") from None
    if a.ndim != 2 or a.shape[1] != len(ARKIT_52):
        raise ValueError(f"{what} must have shape [T, {len(ARKIT_52)}] (ARKit-52 order), "
                         f"got {a.shape}")
    if a.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{what} has no frames")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return a


def _phones(phones) -> list[tuple[str, float, float]]:
    from ..training.teacher import check_phones
    return check_phones(phones)


def _base(label: str) -> str:
    """ARPAbet base symbol: upper case, stress digit dropped (``"aa1"`` -> ``"AA"``)."""
    return _STRESS.sub("", label.strip().upper())


def _is_speech(label: str) -> bool:
    return parse_phone(label).kind == "phone"


def _frame_mask(phones, keep, fps: float, n: int) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    for label, s, e in phones:
        if keep(label):
            m[phone_frames(s, e, fps, n)] = True
    return m


# --------------------------------------------------------------------------------------
# Vertex metrics
# --------------------------------------------------------------------------------------

def lve(pred, gt, lip_idx) -> float:
    """Lip vertex error (LVE) of one sequence.

    For each frame, the maximum over the lip vertices of the squared L2 (Euclidean) error
    ``||p_v - g_v||^2``; LVE is the mean of that over frames. This is the code of the
    FaceFormer and CodeTalker evaluation scripts (``np.square`` of the difference summed
    over xyz, ``np.max`` over ``mouth_map``, ``np.mean`` over frames). Over a test set
    those scripts pool all frames of all sequences before the mean (frame-weighted): see
    :func:`model_core.evaluation.evaluate.evaluate_vertices`.

    Args:
        pred, gt: vertex positions, float ``[T, V, 3]`` (any float dtype; computed in
            float64), same shape, in the dataset's native units (metres for VOCASET,
            millimetres for BIWI).
        lip_idx: lip vertex indices (int sequence, or a bool mask of length V), e.g. BIWI
            ``regions/lve.txt``.

    Returns:
        float, in **squared native units** (m^2 for VOCASET; BIWI papers report mm^2 x 1e-4,
        i.e. this value divided by 1e-4).

    Raises:
        ValueError: shapes not ``[T, V, 3]``, different shapes, empty arrays, non-finite
            values, or empty / out-of-range / non-integer indices.
    """
    p, g = _pair(pred, gt)
    idx = _indices(lip_idx, p.shape[1], "lip_idx")
    err = np.sum(np.square(p[:, idx, :] - g[:, idx, :]), axis=2)  # [T, k]
    return float(np.mean(np.max(err, axis=1)))


def _upper_motion_std(x: np.ndarray, template: np.ndarray, idx: np.ndarray) -> float:
    """Mean over the upper vertices of std over time of ||v - template||^2."""
    motion = x[:, idx, :] - template[None, idx, :]
    sq = np.sum(np.square(motion), axis=2)        # [T, k] squared motion norm
    return float(np.mean(np.std(sq, axis=0)))     # population std (ddof=0), as np.std


def fdd(pred, gt, template, upper_idx) -> float:
    """Upper-face dynamics deviation (FDD) of one sequence.

    For each upper-face vertex, the standard deviation over time (population std, ddof=0,
    as ``np.std``) of the squared norm of its motion ``||v_t - template||^2``; averaged
    over the upper vertices this gives ``std_G`` for the ground truth and ``std_P`` for the
    prediction, and ``FDD = std_G - std_P``. Positive when the prediction's upper face moves
    less than the ground truth's, negative when it moves more (the sign of CodeTalker's
    ``motion_std_difference.append(gt_motion_std - pred_motion_std)``). Over a test set the
    scripts average the per-sequence values (sequence-weighted): see
    :func:`model_core.evaluation.evaluate.evaluate_vertices`.

    Args:
        pred, gt: vertex positions, float ``[T, V, 3]``, same shape, native units.
        template: the speaker's neutral mesh, float ``[V, 3]``.
        upper_idx: upper-face vertex indices (int sequence or bool mask of length V), e.g.
            BIWI ``regions/fdd.txt``.

    Returns:
        float, in **squared native units** (the std of a squared distance).

    Raises:
        ValueError: bad shapes (template not ``[V, 3]`` with the same V), empty arrays,
            non-finite values, or bad indices.
    """
    p, g = _pair(pred, gt)
    try:
        tpl = np.asarray(template, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("template must be a numeric array [V, 3]") from None
    if tpl.shape != p.shape[1:]:
        raise ValueError(f"template must have shape {p.shape[1:]} ([V, 3]), got {tpl.shape}")
    if not np.all(np.isfinite(tpl)):
        raise ValueError("template contains NaN or infinite values")
    idx = _indices(upper_idx, p.shape[1], "upper_idx")
    return _upper_motion_std(g, tpl, idx) - _upper_motion_std(p, tpl, idx)


def mve(pred, gt) -> float:
    """Mean vertex error (MVE) of one sequence: the Euclidean distance ``||p_v - g_v||``
    averaged over all vertices and all frames.

    Args:
        pred, gt: vertex positions, float ``[T, V, 3]``, same shape, native units.

    Returns:
        float, in **native units** (not squared).

    Raises:
        ValueError: bad or different shapes, empty arrays, non-finite values.
    """
    p, g = _pair(pred, gt)
    return float(np.mean(np.linalg.norm(p - g, axis=2)))


# --------------------------------------------------------------------------------------
# Blendshape metrics
# --------------------------------------------------------------------------------------

def channel_mae(pred, ref, names: Sequence[str] = ARKIT_52) -> dict:
    """Mean absolute error per ARKit channel against a reference.

    Args:
        pred, ref: float ``[T, 52]`` weights in ARKit-52 order, same shape.
        names: channel names (default :data:`model_core.face.ARKIT_52`).

    Returns:
        ``{"per_channel": {name: MAE}, "mean": mean over the 52 channels,
        "mouth_mean": mean over :data:`LIP_CHANNELS` (jaw*, mouth*)}``; weight units
        (fraction of full activation).

    Raises:
        ValueError: bad or different shapes, no frames, non-finite values, or ``names`` not
            52 long.
    """
    p, r = _curves(pred, "pred"), _curves(ref, "ref")
    if p.shape != r.shape:
        raise ValueError(f"pred and ref shapes differ: {p.shape} vs {r.shape}")
    names = list(names)
    if len(names) != p.shape[1]:
        raise ValueError(f"names must have {p.shape[1]} entries, got {len(names)}")
    per = np.mean(np.abs(p - r), axis=0)
    return {"per_channel": {n: float(v) for n, v in zip(names, per)},
            "mean": float(per.mean()), "mouth_mean": float(per[_LIP_IDX].mean())}


def _open_and_speech_masks(phones, fps, n):
    open_m = _frame_mask(phones, lambda lab: _base(lab) in OPEN_VOWELS_ARPABET, fps, n)
    speech_m = _frame_mask(phones, _is_speech, fps, n)
    return open_m, speech_m


def bilabial_closures(pred, phones, fps, *, min_open_level: float = MIN_OPEN_LEVEL) -> dict:
    """Per-utterance detail of the bilabial closure measure (see
    :func:`bilabial_closure_rate` for the rule).

    Returns:
        dict with ``rate`` (float; NaN when no bilabial is eligible), ``n_eligible``,
        ``n_closed`` (ints), ``open_level`` and ``threshold`` (jawOpen weights; NaN when the
        utterance has no speech frames), ``open_level_from`` (``"open_vowels"``,
        ``"speech"`` or ``"none"``) and ``phones``: one ``{"label", "start_s", "end_s",
        "min_jaw", "closed"}`` per eligible bilabial.

    Raises:
        ValueError: as :func:`bilabial_closure_rate`.
    """
    x = _curves(pred, "pred")
    f = check_fps(fps)
    ph = _phones(phones)
    n = x.shape[0]
    jaw = x[:, _JAW]
    open_m, speech_m = _open_and_speech_masks(ph, f, n)
    if open_m.any():
        level, src = float(np.percentile(jaw[open_m], OPEN_LEVEL_PERCENTILE)), "open_vowels"
    elif speech_m.any():
        level, src = float(np.percentile(jaw[speech_m], OPEN_LEVEL_PERCENTILE)), "speech"
    else:
        level, src = float("nan"), "none"
    threshold = CLOSURE_FRACTION * level
    details, closed = [], 0
    for label, s, e in ph:
        if _base(label) not in BILABIALS_ARPABET or (e - s) < BILABIAL_MIN_DURATION_S - 1e-9:
            continue
        fr = phone_frames(s, e, f, n, widen=1)
        if fr.size == 0:
            continue  # the phone lies outside the frames
        m = float(jaw[fr].min())
        ok = bool(math.isfinite(level) and level >= min_open_level and m <= threshold)
        closed += ok
        details.append({"label": label, "start_s": s, "end_s": e, "min_jaw": m,
                        "closed": ok})
    k = len(details)
    return {"rate": closed / k if k else float("nan"), "n_eligible": k, "n_closed": closed,
            "open_level": level, "threshold": threshold, "open_level_from": src,
            "phones": details}


def bilabial_closure_rate(pred, phones, fps, *, min_open_level: float = MIN_OPEN_LEVEL
                          ) -> float:
    """Fraction of bilabials on which the mouth closes well below its open level.

    The exact rule:

    1. Eligible phones: bilabials (ARPAbet ``P``, ``B``, ``M``, any case, stress digit
       ignored) lasting at least :data:`BILABIAL_MIN_DURATION_S` (30 ms) and overlapping
       the frames.
    2. Open level of the utterance: the 90th percentile (``np.percentile``, linear) of
       jawOpen over its open-vowel frames (``AA AE AH AO AW AY``; frame ``i`` belongs to a
       phone when ``start <= i / fps < end``); if it has none, over all its speech frames
       (every phone but silence).
    3. A bilabial is closed when the minimum of jawOpen over its frames widened by one frame
       on each side (``ceil(start * fps) - 1 ... ceil(end * fps)``, clipped to the clip)
       is ``<= 0.5 x open level`` (:data:`CLOSURE_FRACTION`).
    4. Guard against a frozen face: if the open level is below ``min_open_level``
       (default :data:`MIN_OPEN_LEVEL` = 0.05; the jaw never opens) no bilabial counts as
       closed, so a still mouth scores 0, not 1. Pass ``min_open_level=0`` to drop it.

    The rate is closed / eligible. Pool counts over utterances with
    :func:`bilabial_closures` rather than averaging rates.

    Args:
        pred: float ``[T, 52]`` ARKit-52 weights at ``fps``.
        phones: ``[(label, start_s, end_s)]`` ARPAbet phones with times in seconds.
        fps: frames per second of ``pred`` (> 0).
        min_open_level: see rule 4.

    Returns:
        float in [0, 1], NaN when no bilabial is eligible.

    Raises:
        ValueError: ``pred`` not ``[T, 52]`` / empty / non-finite; bad fps; malformed
            phones (not 3-tuples, non-string labels, non-finite times, end < start).
    """
    return bilabial_closures(pred, phones, fps, min_open_level=min_open_level)["rate"]


def open_vowel_jaw(pred, phones, fps) -> dict:
    """Jaw opening on open vowels against the rest of speech.

    Open-vowel frames: frames in ARPAbet ``AA AE AH AO AW AY`` phones (stress digit
    ignored; frame ``i`` in a phone when ``start <= i / fps < end``). Other speech frames:
    frames in any other non-silence phone that are not open-vowel frames.

    Args:
        pred: float ``[T, 52]`` ARKit-52 weights at ``fps``.
        phones: ``[(label, start_s, end_s)]`` ARPAbet phones, seconds.
        fps: frames per second (> 0).

    Returns:
        ``{"open": mean jawOpen on open-vowel frames, "other": mean jawOpen on other speech
        frames, "ratio": open / other, "n_open": frames, "n_other": frames}``; means NaN
        when there are no such frames; ratio NaN when either mean is NaN, ``inf`` when
        ``other`` is 0 and ``open`` > 0.

    Raises:
        ValueError: as :func:`bilabial_closure_rate`.
    """
    x = _curves(pred, "pred")
    f = check_fps(fps)
    ph = _phones(phones)
    jaw = x[:, _JAW]
    open_m, speech_m = _open_and_speech_masks(ph, f, x.shape[0])
    other_m = speech_m & ~open_m
    o = float(jaw[open_m].mean()) if open_m.any() else float("nan")
    r = float(jaw[other_m].mean()) if other_m.any() else float("nan")
    return {"open": o, "other": r, "ratio": ratio_of(o, r), "n_open": int(open_m.sum()),
            "n_other": int(other_m.sum())}


def _jaw_series(x, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 2:
        a = _curves(a, what)[:, _JAW]
    elif a.ndim != 1:
        raise ValueError(f"{what} must be [T, 52] ARKit weights or a [T] jawOpen series, "
                         f"got shape {a.shape}")
    if a.shape[0] < 2:
        raise ValueError(f"{what}: a correlation needs at least 2 frames, got {a.shape[0]}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return a


def jaw_correlation(pred, ref) -> float:
    """Pearson correlation of jawOpen between a prediction and a reference.

    Args:
        pred, ref: float ``[T, 52]`` ARKit-52 weights (or ``[T]`` jawOpen series), same T
            (>= 2).

    Returns:
        float in [-1, 1]; NaN when either series is constant (correlation undefined).

    Raises:
        ValueError: bad shapes, different lengths, fewer than 2 frames, non-finite values.
    """
    p, r = _jaw_series(pred, "pred"), _jaw_series(ref, "ref")
    if p.shape != r.shape:
        raise ValueError(f"pred and ref lengths differ: {p.shape[0]} vs {r.shape[0]} frames")
    if np.ptp(p) == 0.0 or np.ptp(r) == 0.0:
        return float("nan")  # a constant series: the correlation is undefined
    p, r = p - p.mean(), r - r.mean()
    den = math.sqrt(float(np.dot(p, p)) * float(np.dot(r, r)))
    if den == 0.0:
        return float("nan")
    return float(np.clip(np.dot(p, r) / den, -1.0, 1.0))


def count_blinks(pred) -> int:
    """Number of blinks in ARKit-52 curves (rule in :func:`blink_rate`).

    Args:
        pred: float ``[T, 52]`` ARKit-52 weights (T may be 0).

    Returns:
        int >= 0.

    Raises:
        ValueError: ``pred`` not ``[T, 52]`` or non-finite.
    """
    x = _curves(pred, "pred", allow_empty=True)
    b = 0.5 * (x[:, _BLINK_IDX[0]] + x[:, _BLINK_IDX[1]])
    above = b > BLINK_HIGH
    # runs of frames above the high threshold: [start, end)
    d = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    count, last_end = 0, None
    for s, e in zip(starts, ends):
        if e - s < BLINK_MIN_FRAMES:
            continue
        if last_end is None or (b[last_end:s] < BLINK_LOW).any():
            count += 1          # a new blink
        last_end = e            # (else: the same blink continues after a shallow dip)
    return count


def blink_rate(pred, fps) -> float:
    """Blinks per minute from eyeBlinkLeft / eyeBlinkRight.

    The rule: ``b = (eyeBlinkLeft + eyeBlinkRight) / 2`` per frame. A blink is a run of
    consecutive frames with ``b > 0.5`` (:data:`BLINK_HIGH`) lasting at least 2 frames
    (:data:`BLINK_MIN_FRAMES`); two such runs count as separate blinks only if ``b`` dips
    below 0.3 (:data:`BLINK_LOW`) somewhere between them, otherwise they are one blink
    (hysteresis against a lid that wavers while closed). Runs of a single frame are
    ignored. Rate = blinks / (T / fps / 60).

    Args:
        pred: float ``[T, 52]`` ARKit-52 weights, T >= 1. For short clips, concatenate
            several along time first (a blink at a seam may merge or split).
        fps: frames per second (> 0).

    Returns:
        float, blinks per minute.

    Raises:
        ValueError: ``pred`` not ``[T, 52]``, empty or non-finite; bad fps.
    """
    x = _curves(pred, "pred")
    f = check_fps(fps)
    return count_blinks(x) / (x.shape[0] / f / 60.0)


def seed_diversity(preds_by_seed) -> dict:
    """How much the output varies across sampling seeds, lips against upper face.

    For each frame and channel, the population standard deviation (ddof=0) across the
    seeds; averaged over frames and over the channels of a group.

    Args:
        preds_by_seed: ``S >= 2`` predictions of the same audio with different seeds: a
            sequence of float ``[T, 52]`` arrays (same shape) or one array ``[S, T, 52]``.

    Returns:
        ``{"lips": mean std over :data:`LIP_CHANNELS` (jaw*, mouth*), "upper": mean std
        over :data:`UPPER_CHANNELS` (brow*, eye*)}``, in weight units. A model whose lips
        follow the audio varies less on the lips than on the free upper face.

    Raises:
        ValueError: fewer than 2 seeds, shapes not ``[T, 52]`` or differing, no frames,
            non-finite values.
    """
    if isinstance(preds_by_seed, np.ndarray):
        seq = list(preds_by_seed) if preds_by_seed.ndim == 3 else [preds_by_seed]
    else:
        try:
            seq = list(preds_by_seed)
        except TypeError:
            raise ValueError("preds_by_seed must be a sequence of [T, 52] arrays") from None
    if len(seq) < 2:
        raise ValueError(f"seed diversity needs predictions from at least 2 seeds, "
                         f"got {len(seq)}")
    arrs = [_curves(a, f"preds_by_seed[{k}]") for k, a in enumerate(seq)]
    if any(a.shape != arrs[0].shape for a in arrs):
        raise ValueError("predictions for different seeds must have the same shape, got "
                         + ", ".join(str(a.shape) for a in arrs))
    sd = np.std(np.stack(arrs), axis=0)           # [T, 52]
    return {"lips": float(sd[:, _LIP_IDX].mean()), "upper": float(sd[:, _UPPER_IDX].mean())}


# --------------------------------------------------------------------------------------
# Lip-gap measures (on a real head's geometry)
# --------------------------------------------------------------------------------------

#: A bilabial is closed when its minimum lip gap is at most this fraction of the clip's
#: :data:`LIP_GAP_PERCENTILE` th percentile lip gap over speech.
LIP_CLOSURE_FRACTION = 0.15
#: Percentile of the lip gap over speech frames that sets a clip's open level.
LIP_GAP_PERCENTILE = 90.0
#: Per-phone openness targets for the openness correlation (ARPAbet, stress ignored).
OPENNESS_TARGETS: dict[str, float] = {
    **{p: 1.0 for p in ("AA", "AE", "AH", "AO", "AW", "AY")},
    **{p: 0.6 for p in ("EH", "ER", "EY", "OW", "OY")},
    **{p: 0.35 for p in ("IH", "IY", "UH", "UW")},
    **{p: 0.0 for p in ("P", "B", "M")},
}
#: Rounded phones (lips funnel / pucker) and spread phones, for the rounding measure.
ROUNDED_ARPABET: frozenset[str] = frozenset({"UW", "OW", "UH", "W", "OY"})
SPREAD_ARPABET: frozenset[str] = frozenset({"IY", "IH", "EY", "AE", "EH"})
_ROUND_IDX = np.array([_IDX["mouthFunnel"], _IDX["mouthPucker"]], dtype=np.int64)


#: IPA phones (any language): the same measures by viseme class
#: (:func:`model_core.training.phonemes.parse_phone` with ``alphabet="ipa"``, first part of
#: a diphthong). Open vowels a ɑ æ ɐ ʌ ɔ ɒ; bilabials p b m (not β ɸ: not sealed); schwa
#: ə has no openness target (as ARPAbet's reduced AH0), which is also "without AH".
OPENNESS_TARGETS_IPA: dict[str, float] = {
    **{v: 1.0 for v in ("AA", "AE", "AH", "AO")},
    **{v: 0.6 for v in ("EH", "ER", "OH", "OE", "EE")},
    **{v: 0.35 for v in ("IH", "IY", "UH", "UW", "UE", "UI")},
    "PP": 0.0,
}
ROUNDED_IPA: frozenset[str] = frozenset({"UW", "OH", "UH", "WW", "UE", "OE"})
SPREAD_IPA: frozenset[str] = frozenset({"IY", "IH", "EH", "AE", "EE"})
#: Front rounded vowels (y ʏ ø œ ɶ ɥ: the jaw of i/e with the lips of u/o).
FRONT_ROUNDED_IPA: frozenset[str] = frozenset({"UE", "OE"})


def phone_measure_class(label: str, alphabet: str = "arpabet") -> dict:
    """How the lip-gap measures count one phone (the one rule for every alphabet).

    Args:
        label: a phone label; alphabet: ``"arpabet"`` (the pocketsphinx alignments: the
            label's upper-case base symbol, stress digit dropped, in the ARPAbet sets) or
            ``"ipa"`` (by viseme class, :data:`OPENNESS_TARGETS_IPA` and friends).
    Returns:
        ``{"bilabial", "open", "rounded", "spread", "front_rounded", "is_ah", "seal_free"}``
        booleans and ``"target"``: the openness target, or None. ``seal_free``: a phone the
        lips do not seal on (a vowel or a lingual consonant; not P/B/M, F/V, β/ɸ, W,
        silence or an unknown symbol): :data:`SEAL_FREE_EXCLUDED`.
    Raises:
        ValueError: unknown alphabet.
    """
    if alphabet == "arpabet":
        b = _base(label)
        return {"bilabial": b in BILABIALS_ARPABET, "open": b in OPEN_VOWELS_ARPABET,
                "rounded": b in ROUNDED_ARPABET, "spread": b in SPREAD_ARPABET,
                "front_rounded": False, "is_ah": b == "AH", "target": OPENNESS_TARGETS.get(b),
                "seal_free": _seal_free(parse_phone(label, "arpabet"))}
    if alphabet != "ipa":
        raise ValueError(f"alphabet must be 'arpabet' or 'ipa', got {alphabet!r}")
    p = parse_phone(label, "ipa")
    v = p.visemes[0] if p.kind == "phone" and p.visemes else ""
    return {"bilabial": v == "PP", "open": v in ("AA", "AE", "AH", "AO"),
            "rounded": v in ROUNDED_IPA, "spread": v in SPREAD_IPA,
            "front_rounded": v in FRONT_ROUNDED_IPA, "is_ah": False,
            "target": OPENNESS_TARGETS_IPA.get(v), "seal_free": _seal_free(p)}


#: Viseme classes whose lips may close or nearly close, left out of the false-seal count
#: (:func:`lip_gap_measures`): bilabials, labiodentals, bilabial fricatives, W, and
#: unknown symbols (NEU).
SEAL_FREE_EXCLUDED: frozenset[str] = frozenset({"PP", "FF", "BF", "WW", "NEU"})


def _seal_free(p) -> bool:
    return p.kind == "phone" and bool(p.visemes) and p.visemes[0] not in SEAL_FREE_EXCLUDED


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.ptp(x) < 1e-9 or np.ptp(y) < 1e-9:   # a constant: undefined
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def lip_gap_measures(gap, weights, phones, fps, alphabet: str = "arpabet") -> dict:
    """Lip-sync measures of one clip from its lip gap (docs/architecture.md, "Metrics").

    The exact rules (frame ``i`` lies in a phone ``(label, s, e)`` when ``s <= i / fps < e``;
    labels are ARPAbet, stress digits ignored):

    1. **Closure**: the open level is the :data:`LIP_GAP_PERCENTILE` (90th) percentile of
       the gap over speech frames (every phone but silence). A P/B/M phone is closed when
       the minimum gap over its frames widened by one frame on each side is
       ``<= 0.15 x open level`` (:data:`LIP_CLOSURE_FRACTION`). Every P/B/M whose widened
       frames overlap the clip counts. A mouth that never opens (open level 0) closes
       nothing.
    2. **Open/closed ratio**: mean gap on open-vowel frames (``AA AE AH AO AW AY``) / mean
       gap on P/B/M frames.
    3. **Openness r**: Pearson correlation between the gap and :data:`OPENNESS_TARGETS`
       (1.0 open vowels; 0.6 ``EH ER EY OW OY``; 0.35 ``IH IY UH UW``; 0 ``P B M``) over the
       frames of those phones.
    4. **Rounding**: mean of ``mouthFunnel + mouthPucker`` on rounded frames
       (``UW OW UH W OY``, :data:`ROUNDED_ARPABET`) minus the same on spread frames
       (``IY IH EY AE EH``, :data:`SPREAD_ARPABET`), in weight units; **front-rounded
       rounding** the same on the front rounded vowels (IPA only: y ʏ ø œ).
    5. **Openness r without AH**: openness r leaving out ARPAbet AH (both /ʌ/ and schwa
       in pocketsphinx's alignments); for IPA phones the same as openness r (schwa has no
       target).
    6. **False seals**: of the phones the lips do not seal on (vowels and lingual
       consonants, ``seal_free`` in :func:`phone_measure_class`) whose neighbours are not
       P/B/M, the fraction whose minimum gap over their own frames (not widened) is
       ``<= 0.15 x open level``, as a closure: lips pressed shut on an L or a schwa. Lower
       is better; the teacher's own rate beside it is the floor.
    7. **Openness r among vowels**: openness r over the vowels' frames only (targets
       above 0: the P/B/M frames left out), whether the opening follows the vowel
       whatever the bilabials do; openness r falls below it where the lips do not
       stay shut through a P/B/M or the vowels spread toward a closure.

    IPA phones (``alphabet="ipa"``, any language) are counted by their viseme class:
    :func:`phone_measure_class`.

    Args:
        gap: float ``[T]`` lip gap per frame, millimetres
            (:meth:`model_core.evaluation.arkit_head.ArkitHead.lip_gap`).
        weights: float ``[T, 52]`` the ARKit-52 weights the gap came from (for rounding).
        phones: ``[(label, start_s, end_s)]`` ARPAbet phones, seconds.
        fps: frames per second (> 0).
        alphabet: ``"arpabet"`` or ``"ipa"`` (:func:`phone_measure_class`).

    Returns:
        dict: ``closure`` (rate, NaN without bilabials), ``n_closed``, ``n_bilabials``,
        ``false_seals`` (rate, NaN without eligible phones), ``n_false_seals``,
        ``n_seal_free``, ``open_level`` (mm), ``open_closed_ratio`` (NaN when a mean is
        missing, inf when the P/B/M mean is 0), ``openness_r``, ``openness_r_no_ah`` and
        ``openness_r_vowels`` (NaN when undefined),
        ``rounding`` and ``front_rounding`` (NaN when a group is missing), and the sums
        behind them for pooling over clips and seeds (``open_sum``, ``open_n``,
        ``closed_sum``, ``closed_n``, ``round_sum``, ``round_n``, ``spread_sum``,
        ``spread_n``, ``front_round_sum``, ``front_round_n``, ``openness_x``,
        ``openness_y``), plus ``bilabials``:
        one ``{"label", "start_s", "end_s", "min_gap", "closed"}`` each.

    Raises:
        ValueError: ``gap`` not ``[T]`` matching ``weights`` ``[T, 52]``, non-finite values,
            bad fps, malformed phones.
    """
    w = _curves(weights, "weights")
    g = np.asarray(gap, dtype=np.float64)
    if g.shape != (w.shape[0],):
        raise ValueError(f"gap must have shape [{w.shape[0]}] (one value per frame of "
                         f"weights), got {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError("gap contains NaN or infinite values")
    f = check_fps(fps)
    ph = _phones(phones)
    n = len(g)
    cls = {lab: phone_measure_class(lab, alphabet) for lab in {p[0] for p in ph}}
    speech = _frame_mask(ph, _is_speech, f, n)
    level = float(np.percentile(g[speech], LIP_GAP_PERCENTILE)) if speech.any() else 0.0

    def shut(frames) -> bool:   # the closure rule (1.), for P/B/M and for false seals (6.)
        return bool(level > 0 and g[frames].min() <= LIP_CLOSURE_FRACTION * level)

    details = []
    for label, s, e in ph:
        if not cls[label]["bilabial"]:
            continue
        fr = phone_frames(s, e, f, n, widen=1)
        if fr.size == 0:
            continue
        details.append({"label": label, "start_s": s, "end_s": e,
                        "min_gap": float(g[fr].min()), "closed": shut(fr)})
    n_closed = sum(d["closed"] for d in details)
    n_free = n_false = 0
    for i, (label, s, e) in enumerate(ph):
        near = [ph[j][0] for j in (i - 1, i + 1) if 0 <= j < len(ph)]
        if not cls[label]["seal_free"] or any(cls[lab]["bilabial"] for lab in near):
            continue
        fr = phone_frames(s, e, f, n)
        if fr.size == 0:
            continue
        n_free += 1
        n_false += shut(fr)
    open_m = _frame_mask(ph, lambda lab: cls[lab]["open"], f, n)
    closed_m = _frame_mask(ph, lambda lab: cls[lab]["bilabial"], f, n)
    target = np.full(n, np.nan)
    no_ah = np.zeros(n, dtype=bool)
    for label, s, e in ph:
        t = cls[label]["target"]
        if t is not None:
            fr = phone_frames(s, e, f, n)
            target[fr] = t
            no_ah[fr] = not cls[label]["is_ah"]
    has_t = np.isfinite(target)
    keep = has_t & no_ah
    rnd = w[:, _ROUND_IDX].sum(axis=1)
    round_m = _frame_mask(ph, lambda lab: cls[lab]["rounded"], f, n)
    spread_m = _frame_mask(ph, lambda lab: cls[lab]["spread"], f, n)
    front_m = _frame_mask(ph, lambda lab: cls[lab]["front_rounded"], f, n)
    out = {
        "n_bilabials": len(details), "n_closed": int(n_closed), "open_level": level,
        "n_seal_free": n_free, "n_false_seals": n_false,
        "open_sum": float(g[open_m].sum()), "open_n": int(open_m.sum()),
        "closed_sum": float(g[closed_m].sum()), "closed_n": int(closed_m.sum()),
        "round_sum": float(rnd[round_m].sum()), "round_n": int(round_m.sum()),
        "spread_sum": float(rnd[spread_m].sum()), "spread_n": int(spread_m.sum()),
        "front_round_sum": float(rnd[front_m].sum()), "front_round_n": int(front_m.sum()),
        "openness_x": g[has_t].tolist(), "openness_y": target[has_t].tolist(),
        "bilabials": details,
    }
    out.update(_lip_gap_rates(out))
    out["openness_r"] = _pearson(g[has_t], target[has_t])
    out["openness_r_no_ah"] = _pearson(g[keep], target[keep])
    vowels = has_t & (np.nan_to_num(target) > 0)
    out["openness_r_vowels"] = _pearson(g[vowels], target[vowels])
    return out


def _lip_gap_rates(t: dict) -> dict:
    def mean(a, b):
        return t[a] / t[b] if t[b] else float("nan")
    o, c = mean("open_sum", "open_n"), mean("closed_sum", "closed_n")
    ratio = ratio_of(o, c)
    return {"closure": t["n_closed"] / t["n_bilabials"] if t["n_bilabials"] else float("nan"),
            "false_seals": (t["n_false_seals"] / t["n_seal_free"] if t.get("n_seal_free")
                            else float("nan")),
            "open_gap": o, "closed_gap": c, "open_closed_ratio": ratio,
            "rounding": mean("round_sum", "round_n") - mean("spread_sum", "spread_n"),
            "front_rounding": (mean("front_round_sum", "front_round_n")
                               - mean("spread_sum", "spread_n")
                               if t.get("front_round_n") else float("nan"))}


def pool_lip_gap_measures(parts) -> dict:
    """Pool :func:`lip_gap_measures` results over clips and seeds.

    Closure pools the bilabial counts; the open/closed ratio and rounding pool frames
    (sums over frames / frame counts); openness r is the mean of the parts' correlations
    (each clip and seed its own r; undefined ones skipped), so one loud clip does not
    dominate it.

    Args:
        parts: non-empty sequence of dicts from :func:`lip_gap_measures`.

    Returns:
        dict with ``closure``, ``n_closed``, ``n_bilabials``, ``false_seals``,
        ``n_false_seals``, ``n_seal_free``, ``open_gap``, ``closed_gap``
        (mm), ``open_closed_ratio``, ``openness_r``, ``openness_r_no_ah``,
        ``openness_r_vowels``, ``rounding``,
        ``front_rounding`` (NaN where undefined), and
        ``openness_classes``: for each value of :data:`OPENNESS_TARGETS` present, ``{"n":
        frames, "mean", "sd"}`` of the gap as a fraction of its clip's open level, pooled
        over the parts with an open level > 0 -- where openness r is lost: r is high when
        the class means rise with the target and the spread inside each class is small.

    Raises:
        ValueError: ``parts`` is empty.
    """
    parts = list(parts)
    if not parts:
        raise ValueError("nothing to pool: no lip-gap measures")
    keys = ("n_bilabials", "n_closed", "open_sum", "open_n", "closed_sum", "closed_n",
            "round_sum", "round_n", "spread_sum", "spread_n", "front_round_sum",
            "front_round_n", "n_seal_free", "n_false_seals")
    tot = {k: sum(p.get(k, 0) for p in parts) for k in keys}
    out = {"n_bilabials": int(tot["n_bilabials"]), "n_closed": int(tot["n_closed"]),
           "n_seal_free": int(tot["n_seal_free"]), "n_false_seals": int(tot["n_false_seals"])}
    out.update(_lip_gap_rates(tot))
    for key in ("openness_r", "openness_r_no_ah", "openness_r_vowels"):
        rs = [p[key] for p in parts if math.isfinite(p.get(key, float("nan")))]
        out[key] = float(np.mean(rs)) if rs else float("nan")
    out["openness_classes"] = _openness_classes(parts)
    return out


def _openness_classes(parts) -> dict:
    """{target: {"n", "mean", "sd"}} of gap / open level over the parts' openness frames."""
    xs, ys = [], []
    for p in parts:
        if p.get("open_level", 0.0) > 0 and p["openness_x"]:
            xs.append(np.asarray(p["openness_x"], np.float64) / p["open_level"])
            ys.append(np.asarray(p["openness_y"], np.float64))
    if not xs:
        return {}
    x, y = np.concatenate(xs), np.concatenate(ys)
    return {float(t): {"n": int((y == t).sum()), "mean": float(x[y == t].mean()),
                       "sd": float(x[y == t].std())} for t in sorted(set(y.tolist()))}
