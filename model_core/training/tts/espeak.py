"""eSpeak NG speech with exact phone timing: :func:`espeak_synthesize`, its voices and
languages. Every synthesis runs in a child of the helper process (:mod:`.helper`); phone
onsets are the engine's own phoneme events (exact output sample indices), optionally with
each stop's closure moved into the stop (:func:`_stop_closures`)."""

from __future__ import annotations

import functools
import os
import re
import tempfile

import numpy as np

from .clip import SpeechClip, _clean_phones
from .espeak_binding import _ENDPAUSE, _PHONEMES
from .espeak_ipa import espeak_ipa_name
from .helper import _espeak_call

#: eSpeak NG's native output rate, Hz (what ``espeak_Initialize`` reports).
ESPEAK_SAMPLE_RATE = 22050
#: Label given to every eSpeak pause phoneme (``_``, ``_:``, ``_!`` ...).
ESPEAK_PAUSE = "_"


_STOP_RE = re.compile(r"(p|b|t|d|k|g|tS|dZ)[0-9]?")
#: The same stops and affricates as IPA names (eSpeak's IPA phoneme events, any language).
_IPA_STOP_RE = re.compile(r"[ˈˌ]?(p|b|t|d|k|ɡ|g|c|ɟ|q|ʈ|ɖ|tʃ|dʒ|ts|dz|tɕ|dʑ|pf)ː?")


def _is_pause(label: str) -> bool:
    """eSpeak's pauses: ``_``-prefixed mnemonics, or an empty IPA name."""
    return not label or label.startswith("_")


def _distinct_onsets(events: list) -> list:
    """Phoneme events sorted by onset; of several at one sample only the last is kept
    (the others would be zero-length phones)."""
    events = sorted(events, key=lambda e: e[0])  # stable: keeps same-sample order
    return [e for k, e in enumerate(events) if k + 1 == len(events) or events[k + 1][0] != e[0]]


def _stop_closures(pcm: np.ndarray, events: list, stop_re=_STOP_RE) -> dict:
    """Closure lengths (samples) of eSpeak's oral stops, keyed by event index.

    eSpeak emits a stop's phoneme event at its release (burst); the closure before it is
    digital silence (int16 |x| <= 1) generated at the end of the preceding phone. For each
    stop/affricate event not preceded by a pause, returns the length of that silent run.
    """
    silent = np.abs(pcm.astype(np.int32)) <= 1
    out = {}
    for i, (onset, label) in enumerate(events):
        if i == 0 or not stop_re.fullmatch(label) or _is_pause(events[i - 1][1]):
            continue
        lo = events[i - 1][0] + 1  # the previous phone keeps at least one sample
        if onset <= lo:
            continue
        voiced = np.flatnonzero(~silent[lo:onset])
        run = (onset - lo) if len(voiced) == 0 else (onset - lo - 1 - int(voiced[-1]))
        if run > 0:
            out[i] = run
    return out


def language_switches(text: str, voice: str) -> list[str]:
    """The language switches eSpeak NG makes reading ``text`` with ``voice``.

    eSpeak reads a word it takes for another language in that language (English words in
    Hindi text, a Japanese character its dictionary lacks, spelled out in English as
    "Japanese letter") and marks the switch with a phoneme event named ``"(en)"``, then
    back with ``"(hi)"``. A text with switches is not in the voice's language throughout.
    For an MBROLA voice only the phone data is made, nothing is rendered; the answer is the
    same in every run (about 25 ms).

    Args:
        text: the text; voice: an eSpeak voice or language (``"hi"``, ``"de"``) or an
            MBROLA voice as eSpeak names it (``"mb-in2"``).
    Returns:
        the switch events' names, sorted (``["(en)", "(hi)"]``); ``[]`` when eSpeak reads
        the whole text in the voice's language.
    Raises:
        ValueError: eSpeak has no voice ``voice``; RuntimeError: eSpeak failed.
    """
    with tempfile.TemporaryDirectory(prefix="streamtalker-espeak-") as tmp:
        job = (voice, 160, 50, 50, _ENDPAUSE, text)
        if voice.startswith("mb-"):     # trace the phone data only: mbrola is not run
            job += (os.path.join(tmp, "trace.pho"),)
        ((_pcm, events, *_pho),), _sr = _espeak_call("synth", [job], ipa=True)
    return _switch_names(events)


def _switch_names(events: list) -> list[str]:
    """The language-switch events' names among eSpeak's phoneme events ``[(onset sample,
    name), ...]`` (IPA names; ``"(en)"``, ``"(hi)"``), sorted; ``[]`` for none."""
    return sorted({name for _, name in events if name.startswith("(") and name.endswith(")")})


def espeak_synthesize(text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50,
                      pitch_range: int = 50, variant: str | None = None, *,
                      lead_silence_s: float = 0.1, end_pause: bool = True,
                      stop_closure: bool = False, phoneme_input: bool = False,
                      ipa: bool = False) -> SpeechClip:
    """Synthesize ``text`` with eSpeak NG and return the audio with exact phone timing.

    Args:
        text: UTF-8 text (non-empty). Several sentences are fine.
        voice: eSpeak voice name, e.g. ``"en-us"``, ``"en-gb-x-rp"``; may carry a variant
            as ``"en-us+f3"`` (see :func:`espeak_voices`).
        rate: speaking rate in words per minute, 80-450 (eSpeak's default 175).
        pitch: base pitch, 0-100 (default 50), relative to the voice/variant's own range.
        pitch_range: pitch range (intonation), 0-100 (default 50; 0 = monotone).
        variant: variant name (e.g. ``"f3"``, ``"m2"``, ``"klatt"``), appended to ``voice``
            as ``voice+variant``; None for the voice alone.
        lead_silence_s: seconds of digital silence (zeros) put before the speech, labelled
            ``"_"`` (eSpeak starts speaking at sample 0). 0 for none.
        end_pause: ask eSpeak for its end-of-text pause (``espeakENDPAUSE``, about 0.3 s at
            rate 175), so the audio ends in a pause phone.
        stop_closure: eSpeak's phoneme event for an oral stop (p b t d k g tS dZ) marks its
            *release*; the closure silence before it (about 40-50 ms at rate 175) belongs
            to the preceding phone. With True, each stop's start is moved back over that
            closure (as in ARPAbet/TIMIT-style and Festival labels, where "p" contains its
            closure). The closure is found exactly as the run of digital silence before the
            release; for variants whose echo fills the silence (e.g. f3, f4, Alicia) the
            closure lengths are taken from the same text synthesized without the variant
            (closures are pauses of fixed length, identical across variants).
            Default False: phones exactly as the events report them.
        phoneme_input: allow eSpeak phoneme mnemonics in ``[[ ]]`` inside ``text``
            (``espeakPHONEMES``), e.g. ``"[[m'A:mA:]]"``.
        ipa: label the phones with eSpeak's IPA names (``"m"``, ``"ˈaɪ"``, ``"yː"``; any
            language: :func:`espeak_languages`) instead of its ASCII mnemonics (which differ
            from language to language), where eSpeak NG 1.51 misnames a phone corrected
            (:func:`.espeak_ipa.espeak_ipa_name`: Brazilian Portuguese ``y`` is /ɪ/). The
            teacher reads them with ``alphabet="ipa"``.

    Returns:
        :class:`SpeechClip` with ``samples`` float32 [N] at 22050 Hz, ``phones`` built from
        the phoneme events' exact sample positions (each phone ends where the next starts,
        the last at N; pauses labelled ``"_"``; zero-length phones dropped), ``engine
        "espeak-ng"``, ``voice`` the full voice string used, ``settings["alphabet"]``
        ``"ipa"`` or ``"espeak"``.

    Raises:
        FileNotFoundError: libespeak-ng is not installed (Debian ``libespeak-ng1``).
        RuntimeError: eSpeak failed to initialise (no ``espeak-ng-data``) or to synthesize.
        ValueError: empty text, unknown voice/variant, parameter out of range.

    Thread-safe: the call holds a module lock (eSpeak NG is a global singleton).
    Deterministic: the same arguments give bit-identical samples and phones, whatever was
    synthesized before (each synthesis runs in a freshly forked helper; module docstring).
    Cost: about 10-20 ms per sentence.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    for name, value, lo, hi in (("rate", rate, 80, 450), ("pitch", pitch, 0, 100),
                                ("pitch_range", pitch_range, 0, 100)):
        if isinstance(value, bool) or not (isinstance(value, (int, np.integer)) and lo <= value <= hi):
            raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    if not (np.isfinite(lead_silence_s) and lead_silence_s >= 0):
        raise ValueError(f"lead_silence_s must be >= 0, got {lead_silence_s!r}")
    full_voice = f"{voice}+{variant}" if variant else voice
    flags = (_ENDPAUSE if end_pause else 0) | (_PHONEMES if phoneme_input else 0)
    jobs = [(full_voice, int(rate), int(pitch), int(pitch_range), flags, text)]
    if stop_closure and "+" in full_voice:  # reference without the variant (no echo)
        jobs.append((full_voice.split("+", 1)[0],) + jobs[0][1:])
    results, sr = _espeak_call("synth", jobs, ipa=ipa)
    pcm, events = np.frombuffer(results[0][0], dtype="<i2"), results[0][1]
    ref = None
    if len(results) > 1:
        ref = np.frombuffer(results[1][0], dtype="<i2"), results[1][1]
    if len(pcm) == 0:
        raise RuntimeError(f"eSpeak NG produced no audio for {text!r} with voice {full_voice!r}")
    events = _distinct_onsets(events)
    starts = [s for s, _ in events]
    if stop_closure:
        stop_re = _IPA_STOP_RE if ipa else _STOP_RE
        closures = _stop_closures(pcm, events, stop_re)
        if ref is not None:
            ref_events = _distinct_onsets(ref[1])
            if [lab for _, lab in ref_events] == [lab for _, lab in events]:
                ref_closures = _stop_closures(ref[0], ref_events, stop_re)
                for i, run in ref_closures.items():
                    if closures.get(i, 0) < run:
                        closures[i] = run
        for i, run in closures.items():
            starts[i] = max(starts[i] - run, events[i - 1][0] + 1)
    lead = int(round(lead_silence_s * sr))
    samples = np.concatenate([np.zeros(lead, np.float32),
                              pcm.astype(np.float32) * np.float32(1.0 / 32768.0)])
    starts = [lead + s for s in starts]
    labels = [ESPEAK_PAUSE if _is_pause(lab) else espeak_ipa_name(lab, voice) if ipa else lab
              for _, lab in events]
    phones = _clean_phones(starts, labels, len(samples), sr, ESPEAK_PAUSE)
    return SpeechClip(samples=samples, sample_rate=sr, phones=phones, text=text,
                     voice=full_voice, engine="espeak-ng",
                     settings={"rate": int(rate), "pitch": int(pitch),
                               "pitch_range": int(pitch_range),
                               "stop_closure": bool(stop_closure),
                               "alphabet": "ipa" if ipa else "espeak"})


@functools.lru_cache(maxsize=1)
def _espeak_voices_cached() -> tuple:
    (base, variants), _ = _espeak_call("voices", None)
    return tuple(base), tuple(variants)


def espeak_voices(variants: bool = True) -> list:
    """English eSpeak NG voices usable with :func:`espeak_synthesize`.

    Returns the base voices by language name (``"en-029"``, ``"en-gb"``,
    ``"en-gb-scotland"``, ``"en-gb-x-gbclan"``, ``"en-gb-x-gbcwmd"``, ``"en-gb-x-rp"``,
    ``"en-us"``, ``"en-us-nyc"`` on Debian 12), then, when ``variants``, every installed
    variant applied to ``en-us`` (``"en-us+f3"``, ``"en-us+m2"``, ``"en-us+klatt"`` ...; any
    of them also works on the other base voices). MBROLA voices are left out (they need
    the separate mbrola program and voice data).

    Raises:
        FileNotFoundError / RuntimeError: as :func:`espeak_synthesize`.
    """
    base, names = _espeak_voices_cached()
    return list(base) + ([f"en-us+{n}" for n in names] if variants and "en-us" in base else [])


@functools.lru_cache(maxsize=1)
def espeak_languages() -> tuple:
    """Every language eSpeak NG speaks with its own (formant) voices, by the language code
    of its voices (``"af"``, ``"de"``, ``"en-us"``, ``"fr-fr"``, ``"ja"``, ``"pl"`` ...;
    about 130 on Debian 12). Synthesize with ``espeak_synthesize(text, voice=code,
    ipa=True)`` for IPA phone names. MBROLA voices are :mod:`.mbrola`'s.

    Raises:
        FileNotFoundError / RuntimeError: as :func:`espeak_synthesize`.
    """
    return tuple(_espeak_call("languages", None)[0])
