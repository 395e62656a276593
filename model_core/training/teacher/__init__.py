"""Procedural ARKit-52 "teacher": phone timings (+ optional prosody) -> blendshape curves.

The curves are training targets for the diffusion model, so they follow how faces move in
speech and are deterministic given the phones, the prosody and a ``numpy.random.Generator``.

By job: :mod:`.mouth` (mouth and jaw; :func:`viseme_track`), :mod:`.upper` (upper face),
:mod:`.prosody` (pitch and loudness of speech), :mod:`.curves` (the two on one grid),
:mod:`.common` (channel indices, grid, input checks).

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

from ...face import MOUTH_CHANNELS, UPPER_FACE_CHANNELS, VISEME_CLASSES
from .common import channel_indices, check_phones
from .curves import teacher_curves
from .mouth import VISEME_TARGETS, viseme_track
from .prosody import prosody_from_audio

#: MOUTH_CHANNELS, UPPER_FACE_CHANNELS and VISEME_CLASSES are model_core.face's, re-exported
#: here because the teacher's rules are written in them.
__all__ = ["teacher_curves", "prosody_from_audio", "channel_indices", "check_phones",
           "MOUTH_CHANNELS", "UPPER_FACE_CHANNELS", "VISEME_TARGETS", "VISEME_CLASSES",
           "viseme_track"]
