"""Fitting the maps from ARKit-52 weights to viseme and vowel rigs (layer 5).

The model makes ARKit-52 weights; a viseme or vowel rig (:data:`model_core.face.RIG_KINDS`)
needs the weight of each of its mouth shapes. The procedural teacher
(:mod:`.teacher`) knows both for the same instant: :func:`.teacher.teacher_curves` turns
phone timings into ARKit curves, and :func:`.teacher.viseme_track` says which viseme class
is articulated at each time. The maps are fitted on those pairs:

1. **Paired data** (:func:`paired_utterances`): English sentences of the training split
   (:func:`.corpus.sentence_pool`) spoken by eSpeak NG (its own phone mnemonics, exact
   timing, stop closures inside the stops as in ARPAbet labels) and Festival's voices
   (ARPAbet-style labels), the held-out voices of :mod:`.corpus` left out; the teacher's
   ARKit curves with the clip's prosody at 30 fps.
2. **Targets** (:func:`target_curves`): each teacher class maps to one shape of the set
   (:data:`CLASS_TO_SHAPE`: e.g. ``SH`` -> ``CH``, ``AX`` -> ``aa``; for vowels
   ``SH`` -> ``u``, ``DD`` -> no vowel). The shapes are blended with Cohen & Massaro's
   dominance functions as the teacher blends its articulators (``D = exp(-(tau/s)^2)``
   outside a segment, 1 inside; anticipation 55 ms, carry-over 45 ms, the teacher's lip
   aperture scales), every class with the same dominance, so each class holds its own
   segment; ``HH`` takes the class of the next segment (an /h/ is shaped by the vowel it
   precedes). Bilabials get the teacher's contact constraint: inside every P/B/M and over
   35 ms raised-cosine flanks, ``PP`` (for vowels: the rest class, a closed mouth) is raised
   to the window (the lips are sealed whatever the neighbours do). The targets of a frame sum to 1 (vowels: with a "rest" class for
   the consonants and pauses that have no vowel shape).
3. **The map** (:func:`fit_softmax`): multinomial logistic regression with soft labels,
   ``p = softmax(W x + b)``, minimising the mean cross-entropy ``-sum_c y_c log p_c`` plus
   ``lam * ||W||^2`` (L-BFGS-B, :func:`scipy.optimize.minimize`), on the mouth channels the
   teacher moves, left and right averaged (a viseme is symmetric; ``W`` stores half the
   weight on each side). ``lam`` is chosen from :data:`LAMBDAS` by the cross-entropy on
   the default model's own output for held-out utterances (the map's real input).

Why a softmax and not a non-negative linear map (:func:`fit_linear`, measured by
:func:`fit_rig_maps` and recorded with the map): a non-negative map cannot subtract, so
the vowels, which all open the jaw, are told apart only by what they add (funnel, pucker,
stretch); its held-out R^2 on ``O`` is 0.3 and on ``E`` 0.1, and on the real clips rounded
vowels come out as ``O``/``U`` on about a quarter of their frames. A signed linear map
fits better but needs clipping and extrapolates without bound. The softmax gives weights in
[0, 1] that sum to 1 by construction (a convex blend of the rig's shapes, like Oculus
Lipsync's own viseme probabilities) and the lowest held-out error.

:func:`fit_rig_maps` returns the JSON-ready maps with their fit error;
``tools/fit_rig_maps.py`` writes them to ``model_core/weights/rig_maps.json``, which
:mod:`model_core.runtime.rigs` reads (numpy only). :func:`shape_recipes` gives each shape
as ARKit weights (the teacher's own target for the class), for building test heads.
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np

from ..face import ARKIT_52, MOUTH_CHANNELS, RIG_KINDS, VISEME_CLASSES, frame_count
from ..runtime.rigs import RIG_MAPS_FORMAT, RIG_MAPS_VERSION, RigMap
from ..errors import DataError, SettingError

__all__ = ["CLASS_TO_SHAPE", "LAMBDAS", "SHAPE_SETS", "SHAPE_PHONES", "features",
           "feature_channels", "fit_linear", "fit_rig_maps", "fit_softmax",
           "paired_utterances", "shape_recipes", "target_curves"]

#: The shape sets (``RigKind.shape_set``): their shape ids, in the rig kinds' order, and
#: whether a "rest" class (no shape: the closed, neutral mouth) completes them.
SHAPE_SETS: dict[str, dict] = {
    "visemes": {"shapes": RIG_KINDS["oculus"].shape_ids, "rest": False},
    "vowels": {"shapes": RIG_KINDS["vrm"].shape_ids, "rest": True},
}

#: Teacher viseme class (:data:`model_core.face.VISEME_CLASSES`) -> shape of each set
#: (None: the rest class). Visemes follow the Oculus Lipsync viseme reference (``PP`` p b m,
#: ``FF`` f v, ``TH``, ``DD`` t d, ``kk`` k g ng, ``CH`` ch j sh zh, ``SS`` s z, ``nn`` n l,
#: ``RR`` r, ``aa`` ``E`` ``I`` ``O`` ``U``); w is rounded (``U``), y spread (``I``), the
#: r-coloured ER is ``RR``, the schwa AX and AH/AE open (``aa``). Vowels: the five of VRM
#: and MMD; the rounded consonants (w, r, sh, the r-coloured ER) round the lips as ``u``,
#: y and s spread them as ``i``; other consonants and pauses have no vowel shape.
CLASS_TO_SHAPE: dict[str, dict[str, str | None]] = {
    "visemes": {
        "sil": "sil", "NEU": "sil", "PP": "PP", "FF": "FF", "TH": "TH", "DD": "DD",
        "NN": "nn", "LL": "nn", "SS": "SS", "SH": "CH", "KK": "kk", "RR": "RR", "WW": "U",
        "YY": "I", "HH": "sil", "AA": "aa", "AE": "aa", "AH": "aa", "AO": "O", "OH": "O",
        "EH": "E", "IH": "I", "IY": "I", "UH": "U", "UW": "U", "ER": "RR", "AX": "aa"},
    "vowels": {
        "sil": None, "NEU": None, "PP": None, "FF": None, "TH": None, "DD": None,
        "NN": None, "LL": None, "SS": "i", "SH": "u", "KK": None, "RR": "u", "WW": "u",
        "YY": "i", "HH": None, "AA": "a", "AE": "a", "AH": "a", "AO": "o", "OH": "o",
        "EH": "e", "IH": "i", "IY": "i", "UH": "u", "UW": "u", "ER": "u", "AX": "a"},
}

#: Dominance scales (s) of the targets: the teacher's lip-aperture anticipation and
#: carry-over (:mod:`.teacher`, ``_GROUPS``).
S_ANT, S_CAR = 0.055, 0.045
#: Flank of the bilabial contact window (s), the teacher's ``_BILABIAL_RAMP_S``.
CONTACT_RAMP_S = 0.035
#: Candidate regularisation strengths of :func:`fit_softmax`.
LAMBDAS = (1e-3, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6)
_GRID_HZ = 200.0  # segment boundaries from viseme_track on a 5 ms grid


def _class_table(shape_set: str, used=()) -> tuple[list, dict]:
    """(shape ids, class -> shape table) of a set; every class in ``used`` must have a shape
    (classes the teacher may gain later only matter once a fitting utterance uses them)."""
    if shape_set not in SHAPE_SETS:
        raise SettingError(f"unknown shape set {shape_set!r}: choose one of {', '.join(SHAPE_SETS)}")
    table = CLASS_TO_SHAPE[shape_set]
    missing = sorted({c for c in used if c not in table})
    if missing:
        raise DataError(f"viseme class(es) {', '.join(missing)} have no {shape_set} shape: "
                         f"add them to model_core.training.rigmaps.CLASS_TO_SHAPE and refit "
                         f"(tools/fit_rig_maps.py)")
    return list(SHAPE_SETS[shape_set]["shapes"]), table


def target_curves(phones, duration_s: float, fps: float, shape_set: str, *,
                  alphabet: str = "auto") -> np.ndarray:
    """The shape weights a rig should show for a phone alignment (the module docstring, 2).

    Args:
        phones: ``[(label, start_s, end_s)]`` in any alphabet the teacher reads.
        duration_s: clip length, s (>= 0); fps: frames per second (> 0).
        shape_set: ``"visemes"`` or ``"vowels"``.
        alphabet: as :func:`.teacher.teacher_curves`.
    Returns:
        float32 ``[T, S + 1]``, ``T = round(duration_s * fps)``: the S shapes of the set
        (:data:`SHAPE_SETS` order) then the rest class (all zero for visemes); rows sum
        to 1; row ``i`` is the time ``i / fps``.
    Raises:
        ValueError: unknown set, a teacher class used by the phones without a shape
            (:data:`CLASS_TO_SHAPE`), malformed phones.
    """
    from .teacher import viseme_track

    shapes, table = _class_table(shape_set)
    n = frame_count(duration_s, fps)
    S = len(shapes)
    out = np.zeros((n, S + 1), np.float64)
    if n == 0:
        return out.astype(np.float32)
    lo = -1.0
    grid = lo + np.arange(int(math.ceil((float(duration_s) + 2.0) * _GRID_HZ)) + 1) / _GRID_HZ
    cls = viseme_track(phones, grid, alphabet=alphabet)
    cut = np.flatnonzero(np.diff(cls)) + 1
    first, last = np.r_[0, cut], np.r_[cut, len(cls)]
    seg_s, seg_e = grid[first], grid[last - 1] + 1.0 / _GRID_HZ
    names = [VISEME_CLASSES[c] for c in cls[first]]
    _class_table(shape_set, names)                    # each class used must have a shape
    for k in range(len(names) - 1, -1, -1):          # /h/ takes the next segment's shape
        if names[k] == "HH":
            names[k] = names[k + 1] if k + 1 < len(names) else "sil"
    col = {s: i for i, s in enumerate(shapes)}
    seg_col = np.array([S if table[c] is None else col[table[c]] for c in names])
    t = np.arange(n) / float(fps)
    before = np.maximum(seg_s[None, :] - t[:, None], 0.0)
    after = np.maximum(t[:, None] - seg_e[None, :], 0.0)
    dom = np.exp(-((before / S_ANT) ** 2 + (after / S_CAR) ** 2))
    for j in range(S + 1):
        out[:, j] = dom[:, seg_col == j].sum(axis=1)
    out /= out.sum(axis=1, keepdims=True)
    # the lips are sealed on P, B, M: PP, or for vowels the rest class (a closed mouth)
    sealed = col["PP"] if "PP" in col else S
    w = np.zeros(n)
    for k in (k for k, c in enumerate(names) if c == "PP"):
        d = np.maximum(np.maximum(seg_s[k] - t, t - seg_e[k]), 0.0) / CONTACT_RAMP_S
        w = np.maximum(w, np.where(d < 1.0, 0.5 + 0.5 * np.cos(np.pi * np.minimum(d, 1.0)), 0.0))
    out *= (1.0 - w)[:, None]
    out[:, sealed] += w
    return out.astype(np.float32)


# -- features ----------------------------------------------------------------------------

def _pairs() -> dict[str, list[int]]:
    """Mouth channels with Left/Right merged: {name without side: ARKit indices}."""
    out: dict[str, list[int]] = {}
    for n in MOUTH_CHANNELS:
        base = n[:-4] if n.endswith("Left") else n[:-5] if n.endswith("Right") else n
        out.setdefault(base, []).append(ARKIT_52.index(n))
    return out


def feature_channels() -> list[str]:
    """The feature names of :func:`features`: the mouth channels with left and right
    merged (``mouthSmile`` for ``mouthSmileLeft`` + ``mouthSmileRight``), 22 of them."""
    return list(_pairs())


def features(frames) -> np.ndarray:
    """float64 ``[T, 22]``: mean of each left/right pair of the mouth channels of ARKit-52
    frames ``[T, 52]`` (:func:`feature_channels` order)."""
    x = np.asarray(frames, np.float64)
    return np.stack([x[:, idx].mean(axis=1) for idx in _pairs().values()], axis=1)


def _expand(w_feat: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Feature weights [C, k_live] -> ARKit-52 weights [C, 52] (half on each side)."""
    out = np.zeros((w_feat.shape[0], len(ARKIT_52)))
    idx = [v for v, ok in zip(_pairs().values(), live) if ok]
    for j, chans in enumerate(idx):
        for c in chans:
            out[:, c] = w_feat[:, j] / len(chans)
    return out


# -- fitting -----------------------------------------------------------------------------

def fit_softmax(X, Y, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression with soft labels.

    Minimises ``mean_t(-sum_c Y[t, c] log softmax(X W^T + b)[t, c]) + lam * ||W||^2`` with
    L-BFGS-B (:func:`scipy.optimize.minimize`, analytic gradient), from zero.

    Args:
        X: float [n, k] features; Y: float [n, C] targets, rows summing to 1; lam >= 0.
    Returns:
        (W float64 [C, k], b float64 [C]).
    Raises:
        ValueError: shapes that do not match, or no rows.
    """
    from scipy.optimize import minimize

    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y) or not len(X):
        raise ValueError(f"X [n, k] and Y [n, C] with the same n >= 1, got {X.shape}, {Y.shape}")
    n, k = X.shape
    C = Y.shape[1]
    A = np.c_[X, np.ones(n)]

    def loss(w):
        W = w.reshape(k + 1, C)
        z = A @ W
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        g = A.T @ (np.exp(logp) - Y) / n
        g[:-1] += 2.0 * lam * W[:-1]
        return -(Y * logp).sum() / n + lam * (W[:-1] ** 2).sum(), g.ravel()

    r = minimize(loss, np.zeros((k + 1) * C), jac=True, method="L-BFGS-B",
                 options={"maxiter": 5000})
    W = r.x.reshape(k + 1, C)
    return W[:-1].T.copy(), W[-1].copy()


def fit_linear(X, Y, nonneg: bool, ridge: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The linear alternative, for the comparison recorded with the maps: per shape,
    bounded least squares ``y ~ X w + b`` (:func:`scipy.optimize.lsq_linear`), ``w >= 0``
    when ``nonneg`` (the bias free), with a ridge penalty ``ridge * n * ||w||^2``.
    Predictions are clipped to [0, 1].

    Returns:
        (W float64 [C, k], b float64 [C]).
    """
    from scipy.optimize import lsq_linear

    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    n, k = X.shape
    A = np.c_[X, np.ones(n)]
    if ridge:
        A = np.r_[A, np.c_[math.sqrt(ridge * n) * np.eye(k), np.zeros(k)]]
        Y = np.r_[Y, np.zeros((k, Y.shape[1]))]
    lb = np.full(k + 1, 0.0 if nonneg else -np.inf)
    lb[-1] = -np.inf
    sol = np.stack([lsq_linear(A, Y[:, j], bounds=(lb, np.inf)).x for j in range(Y.shape[1])])
    return sol[:, :-1], sol[:, -1]


def _errors(P: np.ndarray, Y: np.ndarray, shapes) -> dict:
    """RMSE (weight units) and R^2 per shape and overall of predictions P against targets Y
    (both [n, S], the shapes only)."""
    err = ((P - Y) ** 2)
    var = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
    r2 = 1.0 - err.sum(axis=0) / np.where(var > 0, var, np.nan)
    return {"rmse": float(np.sqrt(err.mean())),
            "r2_mean": float(np.nanmean(r2)),
            "rmse_per_shape": {s: round(float(v), 4) for s, v in
                               zip(shapes, np.sqrt(err.mean(axis=0)))},
            "r2_per_shape": {s: round(float(v), 4) for s, v in zip(shapes, r2)}}


def _cross_entropy(P: np.ndarray, Y: np.ndarray) -> float:
    return float(-(Y * np.log(np.clip(P, 1e-12, 1.0))).sum(axis=1).mean())


# -- data --------------------------------------------------------------------------------

def paired_utterances(n: int, seed: int = 0, fps: float = 30.0, progress=None) -> list[dict]:
    """``n`` synthetic English utterances with the teacher's curves (the module docstring,
    1): eSpeak NG and Festival alternately, training-split sentences, held-out voices left
    out, eSpeak at 120-260 words per minute.

    Returns:
        list of ``{"phones", "duration_s", "samples" (float32 16 kHz), "arkit" (float32
        [T, 52] teacher curves), "engine", "voice", "text"}``.
    Raises:
        FileNotFoundError / RuntimeError: no fortune files, eSpeak NG or Festival
            (the message says what to install).
    """
    from ..io.audio import Resampler
    from . import tts
    from .corpus import HELDOUT_ESPEAK, HELDOUT_FESTIVAL, sentence_pool
    from .teacher import prosody_from_audio, teacher_curves

    rng = np.random.default_rng(seed)
    sentences = sentence_pool(split="train")
    espeak = [v for v in tts.espeak_voices() if v.startswith("en") and v not in HELDOUT_ESPEAK]
    festival = [v for v in tts.festival_voices() if v not in HELDOUT_FESTIVAL]
    out = []
    for i in range(n):
        text = sentences[int(rng.integers(len(sentences)))]
        if i % 2 == 0 or not festival:
            voice = str(rng.choice(espeak))
            clip = tts.espeak_synthesize(text, voice=voice, rate=int(rng.integers(120, 260)),
                                         pitch=int(rng.integers(20, 80)), stop_closure=True)
        else:
            voice = str(rng.choice(festival))
            clip = tts.festival_synthesize_batch([text], voice=voice)[0]
        x = Resampler(clip.sample_rate, 16000).process(clip.samples, last=True)
        x = (x / (np.max(np.abs(x)) + 1e-9) * 0.9).astype(np.float32)
        dur = len(x) / 16000.0
        arkit = teacher_curves(clip.phones, dur, fps, np.random.default_rng([seed, i]),
                               prosody=prosody_from_audio(x, fps))
        out.append({"phones": clip.phones, "duration_s": dur, "samples": x, "arkit": arkit,
                    "engine": clip.engine, "voice": voice, "text": text})
        if progress:
            progress(i + 1, n)
    return out


# -- the whole fit -----------------------------------------------------------------------

def fit_rig_maps(utterances: Sequence[dict], heldout: float = 0.2, fps: float = 30.0,
                 model=None, lambdas: Sequence[float] = LAMBDAS) -> dict:
    """Fit every shape set (:data:`SHAPE_SETS`) on ``utterances`` and measure it.

    Args:
        utterances: from :func:`paired_utterances`; the last ``heldout`` share is held out
            (not fitted on) to measure the fit error.
        fps: their frame rate.
        model: an ARKit model (:func:`model_core.load_model`) whose output on the held-out
            utterances chooses ``lam`` (lowest cross-entropy) and measures the map on what
            it really gets; None: ``lam`` by the teacher's held-out curves.
        lambdas: the candidate ``lam`` of :func:`fit_softmax`.
    Returns:
        the JSON-ready content of ``rig_maps.json``: ``format``, ``version``, ``method``,
        ``data`` (utterances, frames, engines) and ``sets``: per set ``shapes``, ``rest``,
        ``weights`` [C][52], ``bias`` [C], ``classes`` (:data:`CLASS_TO_SHAPE`), ``lam``,
        ``features`` (the ARKit channels used), ``fit`` (held-out error: RMSE and R^2 per
        shape, cross-entropy, on the teacher's curves and, with ``model``, on the model's
        output), ``lambda_search`` and ``comparison`` (the same errors of a non-negative and a
        signed ridge linear map).
    Raises:
        ValueError: fewer than 5 utterances, ``heldout`` outside (0, 1).
    """
    utts = list(utterances)
    if len(utts) < 5:
        raise ValueError(f"at least 5 utterances are needed, got {len(utts)}")
    if not 0.0 < heldout < 1.0:
        raise ValueError(f"heldout must be in (0, 1), got {heldout}")
    n_test = max(1, int(round(len(utts) * heldout)))
    train, test = utts[:-n_test], utts[-n_test:]
    F_tr = np.concatenate([features(u["arkit"]) for u in train])
    F_te = np.concatenate([features(u["arkit"]) for u in test])
    F_mo = None
    if model is not None:
        F_mo = np.concatenate([features(model.generate(u["samples"], 16000, seed=k % 3))
                               for k, u in enumerate(test)])
    live = F_tr.std(axis=0) > 1e-6
    feats = [f for f, ok in zip(feature_channels(), live) if ok]
    sets = {}
    for name, spec in SHAPE_SETS.items():
        shapes, rest = list(spec["shapes"]), spec["rest"]
        C = len(shapes) + rest
        Y_tr = np.concatenate([target_curves(u["phones"], u["duration_s"], fps, name)
                               for u in train])[:, :C]
        Y_te = np.concatenate([target_curves(u["phones"], u["duration_s"], fps, name)
                               for u in test])[:, :C]

        def probs(W, b, F):
            z = F[:, live] @ W.T + b
            z -= z.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)

        search, best = [], None
        for lam in lambdas:
            W, b = fit_softmax(F_tr[:, live], Y_tr, lam)
            row = {"lam": lam, "cross_entropy_teacher": _cross_entropy(probs(W, b, F_te), Y_te)}
            if F_mo is not None:
                row["cross_entropy_model"] = _cross_entropy(probs(W, b, F_mo), Y_te)
            search.append(row)
            score = row.get("cross_entropy_model", row["cross_entropy_teacher"])
            if best is None or score < best[0]:
                best = (score, lam, W, b)
        _, lam, W, b = best
        S = len(shapes)
        fit = {"teacher": {**_errors(probs(W, b, F_te)[:, :S], Y_te[:, :S], shapes),
                           "cross_entropy": _cross_entropy(probs(W, b, F_te), Y_te)}}
        if F_mo is not None:
            fit["model"] = {**_errors(probs(W, b, F_mo)[:, :S], Y_te[:, :S], shapes),
                            "cross_entropy": _cross_entropy(probs(W, b, F_mo), Y_te)}
        comparison = {}
        for label, nonneg, ridge in (("linear, non-negative", True, 0.0),
                                     ("linear, signed, ridge 1e-4", False, 1e-4)):
            Wl, bl = fit_linear(F_tr[:, live], Y_tr[:, :S], nonneg, ridge)
            comparison[label] = {"teacher": _errors(
                np.clip(F_te[:, live] @ Wl.T + bl, 0, 1), Y_te[:, :S], shapes)}
            if F_mo is not None:
                comparison[label]["model"] = _errors(
                    np.clip(F_mo[:, live] @ Wl.T + bl, 0, 1), Y_te[:, :S], shapes)
        comparison["softmax (shipped)"] = {k: {kk: vv for kk, vv in v.items()
                                               if kk != "cross_entropy"} for k, v in fit.items()}
        W52 = _expand(W, live)
        RigMap(shapes, W52, b, rest)      # the runtime accepts it (raises if not)
        sets[name] = {
            "shapes": shapes, "rest": rest,
            "weights": [[round(float(v), 7) for v in row] for row in W52],
            "bias": [round(float(v), 7) for v in b],
            "classes": dict(CLASS_TO_SHAPE[name]), "lam": lam, "features": feats,
            "fit": fit, "lambda_search": search, "comparison": comparison,
        }
    engines: dict[str, int] = {}
    for u in utts:
        engines[u["engine"]] = engines.get(u["engine"], 0) + 1
    return {
        "format": RIG_MAPS_FORMAT, "version": RIG_MAPS_VERSION,
        "method": "softmax(W x + b) over the shapes (+ rest), W on the ARKit-52 weights x; "
                  "multinomial logistic regression with soft targets fitted on the teacher's "
                  "paired curves (model_core.training.rigmaps)",
        "data": {"utterances": len(utts), "train": len(train), "heldout": len(test),
                 "frames_train": int(len(F_tr)), "frames_heldout": int(len(F_te)),
                 "fps": fps, "engines": engines,
                 "lambda_chosen_on": "model output" if F_mo is not None else "teacher curves",
                 "date": time.strftime("%Y-%m-%d")},
        "sets": sets,
    }


# -- the shapes as ARKit weights ---------------------------------------------------------

#: eSpeak NG phones whose teacher class is each shape ("'": primary stress, so a vowel
#: opens fully); ``sil`` is a pause.
SHAPE_PHONES: dict[str, str] = {
    "sil": "_", "PP": "p", "FF": "f", "TH": "T", "DD": "t", "kk": "k", "CH": "S", "SS": "s",
    "nn": "n", "RR": "r", "aa": "'A:", "E": "'E", "I": "'I", "O": "'o:", "U": "'u:",
    "a": "'A:", "i": "'i:", "u": "'u:", "e": "'E", "o": "'o:",
}


def shape_recipes(shape_set: str) -> dict[str, np.ndarray]:
    """Each shape of a set as ARKit-52 weights: the mouth the teacher holds in the middle of
    a one-second phone of that class (:data:`SHAPE_PHONES`; its articulatory target,
    ``teacher.VISEME_TARGETS``, with the bilabial contact for ``PP``). Upper-face channels
    are 0. Used to build viseme and vowel test heads from an ARKit head's shape keys.

    Returns:
        {shape id: float32 [52]} in :data:`SHAPE_SETS` order.
    Raises:
        ValueError: unknown set.
    """
    from .teacher import teacher_curves

    shapes, _ = _class_table(shape_set)
    mouth = np.array([n in MOUTH_CHANNELS for n in ARKIT_52])
    out = {}
    for s in shapes:
        phones = [("_", 0.0, 0.5), (SHAPE_PHONES[s], 0.5, 1.5), ("_", 1.5, 2.0)]
        x = teacher_curves(phones, 2.0, 100.0, np.random.default_rng(0), alphabet="espeak")
        out[s] = np.where(mouth, x[100], 0.0).astype(np.float32)
    return out
