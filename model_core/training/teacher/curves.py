"""The teacher's curves (:func:`teacher_curves`): the mouth and the upper face rendered on
the internal grid, sampled at the frame times."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from ...face import ARKIT_52, frame_count
from .common import _IDX, _PAD_S, _RATE, _check_common, _check_prosody, check_phones
from .mouth import _MP_IDX, _MP_TO_ARKIT, _jaw_gain, _mouth
from .upper import _upper_face


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
