"""Speech synthesis with exact phone timing, for building a training corpus.

Two engines, both offline Debian packages (see ``tools/apt-packages.txt``):

* **eSpeak NG** through its C API (``libespeak-ng.so.1`` via :mod:`ctypes`): formant speech,
  many voices and variants, rate/pitch controls. Phone timing comes from the engine's own
  phoneme events (``espeakEVENT_PHONEME``), each carrying the exact output *sample index*
  at which the phoneme starts, so the timings are exact by construction (no alignment).
* **Festival** in a subprocess, with the Debian voices built from real recordings
  (``festvox-us-slt-hts``: US English female, HTS; ``festvox-kallpc16k`` /
  ``festvox-kdlpc16k``: US English male, diphone). Phone timing is Festival's own
  ``Segment`` relation (each segment's ``end`` in seconds), the timing the waveform was
  generated from.

Both return a :class:`SpeechClip`: float32 mono samples at the engine's native rate, plus a
phone list ``[(label, start_s, end_s), ...]`` that starts at 0.0, is contiguous
(``phones[i][2] == phones[i + 1][1]``) and ends at ``len(samples) / sample_rate``.
Labels are the engine's own phone names, returned as-is (a later mapping normalises them):

* eSpeak: its ASCII phoneme mnemonics (``"m"``, ``"A:"``, ``"a#"``, ``"oU"``, ``"@"`` ...);
  every pause (``"_"``, ``"_:"``, ``"_!"`` ...) becomes ``"_"``.
* Festival: its ``radio`` phone set (``"pau"``, ``"aa"``, ``"m"``, ``"b"``, ``"hh"`` ...);
  the non-English voices (Czech, Russian, Catalan, Hindi, Marathi, Telugu:
  :data:`FESTIVAL_ML_VOICES`) in IPA, from their phone sets (:mod:`.festival_ipa`).

Public API (one module per job: :mod:`.espeak` (with the C binding :mod:`.espeak_binding`
and the helper process :mod:`.helper`), :mod:`.festival`, :mod:`.piper`; :mod:`.clip` holds
:class:`SpeechClip`)::

    utt = espeak_synthesize("mama papa", voice="en-us", variant="f3", rate=175)
    utt.samples       # float32 [N], 22050 Hz
    utt.phones        # [("_", 0.0, 0.1), ("m", 0.1, 0.184), ...]
    espeak_voices()   # ["en-029", "en-gb", ..., "en-us+f3", ...]
    utt = festival_synthesize("mama papa", voice="cmu_us_slt_arctic_hts")
    utts = festival_synthesize_batch(["one.", "two."], voice="kal_diphone")  # one process
    festival_voices() # ["cmu_us_slt_arctic_hts", "kal_diphone", "ked_diphone"]

eSpeak NG is a process-wide singleton with state that carries from one synthesis to the
next (its pitch-flutter phase), so the same call would not give the same samples twice.
Here each eSpeak synthesis runs in a child forked from a small helper process that has
initialised eSpeak but never synthesized: output depends only on the arguments
(bit-identical), and a crash inside eSpeak cannot take the caller down. All eSpeak calls
hold one module lock, so the functions may be called from any thread (calls are
serialised; about 10 ms overhead each). Festival runs in its own subprocess per call.
"""

from __future__ import annotations

from .clip import SpeechClip
from .espeak import (ESPEAK_PAUSE, ESPEAK_SAMPLE_RATE, espeak_languages, espeak_synthesize,
                     espeak_voices, language_switches)
from .festival import (FESTIVAL_VOICES, festival_ml_voices, festival_synthesize,
                       festival_synthesize_batch, festival_voices)
from .festival_ipa import FESTIVAL_ML_VOICES
from .piper import PIPER_VOICES, piper_synthesize, piper_voices
# the eSpeak internals that model_core.training.mbrola and tools/mbrola_ipa_table.py use
from .espeak import _distinct_onsets, _switch_names  # noqa: F401
from .espeak_binding import _ENDPAUSE  # noqa: F401
from .helper import _espeak_call  # noqa: F401

__all__ = [
    "SpeechClip",
    "espeak_synthesize",
    "espeak_voices",
    "espeak_languages",
    "language_switches",
    "festival_synthesize",
    "festival_synthesize_batch",
    "festival_voices",
    "festival_ml_voices",
    "piper_synthesize",
    "piper_voices",
    "ESPEAK_SAMPLE_RATE",
    "ESPEAK_PAUSE",
    "FESTIVAL_VOICES",
    "FESTIVAL_ML_VOICES",
    "PIPER_VOICES",
]
