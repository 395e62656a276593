"""MBROLA diphone voices (made from recordings of people, ~35 languages) with exact IPA
phone timing, driven by eSpeak NG.

eSpeak NG turns the text into phones, durations and pitch (for an ``mb-XX`` voice it writes
them as MBROLA phone data, a ``.pho`` file: one line per phone, ``SYMBOL DURATION_MS
[POSITION_% PITCH_HZ]...``); the ``mbrola`` program renders that file with the voice's
diphones, so every phone lasts exactly as long as the file says. One eSpeak synthesis gives
the ``.pho`` data (``espeak_SetPhonemeTrace``; eSpeak does not render while tracing) and
the same synthesis again gives the IPA name of every phone (its phoneme events, on the same
time line as long as the two agree), so each MBROLA phone gets the IPA name of the exact
allophone eSpeak spoke; where the time lines part, a per-voice table learned from those
events (``mbrola_ipa.json``, ``tools/mbrola_ipa_table.py``) or the symbol's X-SAMPA
reading names it (:func:`pair_ipa`).

eSpeak NG 1.51 makes MBROLA vowels too short: 0.5-0.9x the length of the consonants, where
speech has vowels about 1.5-2x as long. :func:`rebalance_durations` lengthens the vowels
and shortens the consonants so that their mean ratio is a chosen value while the utterance
keeps its length; the pitch points are percentages of each phone and move with it.

eSpeak NG 1.51 also writes some voices symbols they never recorded (vz1's ``o/``, jp1's
``r``), and mbrola renders a missing diphone as silence: :func:`repair_diphones` gives the
voice a name it has, or a short pause between two phones it never recorded together, and
counts what is left (``settings["missing_diphones"]``).

Debian: ``apt-get install mbrola mbrola-de4 ...`` (the voices are in Debian's ``non-free``
section: add ``contrib non-free`` to the apt sources; ``tools/setup_corpus.sh`` does). Which
voices the project trains on is :data:`model_core.training.corpus.TRAIN_MBROLA`.

Public API::

    mbrola_voices()                       # {"de4": "de", "fr2": "fr-fr", ...} installed
    clip = mbrola_synthesize("Im Mai blühen die Blumen.", "de4", rate=160, pitch=50)
    clip.phones                           # [("_", 0.0, 0.029), ("ɪ", 0.029, 0.12), ...]
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .phonemes import VOWEL_VISEMES, parse_phone
from .tts import ESPEAK_PAUSE, SpeechClip, _distinct_onsets, _espeak_call, _ENDPAUSE
from .tts import language_switches as _language_switches
from .tts.espeak_ipa import espeak_ipa_name

__all__ = ["MBROLA_DIRS", "PhoLine", "XSAMPA", "mbrola_voices", "mbrola_synthesize",
           "parse_pho", "format_pho", "event_names", "ipa_table_digest", "language_switches",
           "pair_ipa", "rebalance_durations", "steady_events", "voice_agreement",
           "voice_ipa_table", "xsampa_to_ipa", "repair_diphones", "BRIDGE_MS",
           "REPAIR_VERSION", "phone_naming"]

#: Where Debian installs MBROLA voices (``/usr/share/mbrola/XX/XX``) and eSpeak NG's
#: voice files for them (``.../espeak-ng-data/voices/mb/mb-XX``).
MBROLA_DIRS = (Path("/usr/share/mbrola"), Path("/usr/lib/mbrola"))
_ESPEAK_MB_DIRS = (Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/mb"),
                   Path("/usr/lib/aarch64-linux-gnu/espeak-ng-data/voices/mb"),
                   Path("/usr/share/espeak-ng-data/voices/mb"))
_INSTALL = ("add 'contrib non-free' to the Debian apt sources, then apt-get install mbrola "
            "mbrola-XX (tools/setup_corpus.sh does both)")


@dataclass
class PhoLine:
    """One phone of MBROLA phone data: ``symbol`` (the voice's own name, e.g. ``"y:"``),
    ``dur_ms`` (milliseconds, > 0), ``pitch`` ((position % of the phone, Hz) pairs) and
    ``ipa`` (its IPA name from eSpeak's phoneme events; ``""`` for a pause)."""
    symbol: str
    dur_ms: float
    pitch: list
    ipa: str = ""


def parse_pho(text: str) -> list[PhoLine]:
    """Parse MBROLA phone data (``SYMBOL DURATION [POS PITCH]...`` per line; blank lines and
    ``;`` comments skipped).

    Raises:
        ValueError: a line with no duration or a non-numeric field, naming the line.
    """
    out = []
    for k, line in enumerate(text.splitlines(), 1):
        line = line.split(";", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            nums = [float(x) for x in parts[1:]]
        except ValueError:
            raise ValueError(f"MBROLA phone data line {k}: non-numeric field in {line!r}") \
                from None
        if not nums or len(nums) % 2 != 1:
            raise ValueError(f"MBROLA phone data line {k}: expected 'SYMBOL DURATION "
                             f"[POS PITCH]...', got {line!r}")
        out.append(PhoLine(parts[0], nums[0], list(zip(nums[1::2], nums[2::2]))))
    return out


def format_pho(lines: list[PhoLine]) -> str:
    """MBROLA phone data for ``lines`` (durations rounded to whole ms, at least 1)."""
    rows = []
    for ln in lines:
        pitch = "".join(f" {p:g} {f:g}" for p, f in ln.pitch)
        rows.append(f"{ln.symbol}\t{max(1, int(round(ln.dur_ms)))}{pitch}")
    return "\n".join(rows) + "\n"


#: X-SAMPA -> IPA for the symbols MBROLA voices use (most of them write their phones in
#: SAMPA, which is X-SAMPA for these), the reading of a symbol neither the eSpeak events of
#: the synthesis nor the learned table (:data:`IPA_TABLE`) name.
XSAMPA: dict[str, str] = {
    "a": "a", "A": "ɑ", "6": "ɐ", "@": "ə", "E": "ɛ", "e": "e", "I": "ɪ", "i": "i",
    "O": "ɔ", "o": "o", "U": "ʊ", "u": "u", "Y": "ʏ", "y": "y", "2": "ø", "9": "œ",
    "{": "æ", "V": "ʌ", "Q": "ɒ", "1": "ɨ", "}": "ʉ", "M": "ɯ", "3": "ɜ", "&": "ɶ",
    "8": "ɵ", "7": "ɤ", "p": "p", "b": "b", "t": "t", "d": "d", "k": "k", "g": "ɡ",
    "f": "f", "v": "v", "s": "s", "z": "z", "h": "h", "m": "m", "n": "n", "l": "l",
    "r": "r", "j": "j", "w": "w", "x": "x", "c": "c", "q": "q", "T": "θ", "D": "ð",
    "S": "ʃ", "Z": "ʒ", "C": "ç", "X": "χ", "G": "ɣ", "R": "ʁ", "N": "ŋ", "J": "ɲ",
    "L": "ʎ", "H": "ɥ", "4": "ɾ", "?": "ʔ", "B": "β", "F": "ɱ", "W": "ʍ", "K": "ɬ",
    "P": "ʋ", "tS": "tʃ", "dZ": "dʒ", "ts": "ts", "dz": "dz", "pf": "pf", "rr": "r",
    "ng": "ŋ", "nh": "ɲ", "lh": "ʎ", "sh": "ʃ", "ch": "tʃ",
}
_XSAMPA_KEYS = sorted(XSAMPA, key=len, reverse=True)


def xsampa_to_ipa(symbol: str) -> str:
    """Read an MBROLA phone symbol as X-SAMPA: ``"y:"`` -> ``"yː"``, ``"a~"`` -> ``"ã"``,
    ``"aI"`` -> ``"aɪ"``, ``"t'"`` -> ``"tʲ"``; a doubled lowercase vowel (``"aa"``) is
    long; digits after a letter (``"E2"``) and ``/ # . ^ * "`` variant marks are dropped
    (a symbol that starts with a digit is X-SAMPA: ``"2:"`` is ``"øː"``); ``"_"`` is a pause
    (``""``)."""
    if symbol.strip("_") == "":
        return ""
    base = symbol.translate({ord(c): None for c in "/#.^*\""}) or symbol
    if len(base) > 1 and not base[0].isdigit():      # "E2", "A2", "u0": variant numbers
        base = "".join(c for c in base if not c.isdigit()) or base
    out, k = [], 0
    while k < len(base):
        ch = base[k]
        if ch == ":":
            out.append("ː")
            k += 1
            continue
        if ch == "~":
            out.append("\u0303")
            k += 1
            continue
        if ch == "'":
            out.append("ʲ")
            k += 1
            continue
        if k + 1 < len(base) and base[k] == base[k + 1] and base[k] in "aeiouy":
            out.append(XSAMPA[base[k]] + "ː")
            k += 2
            continue
        for key in _XSAMPA_KEYS:
            if base.startswith(key, k):
                out.append(XSAMPA[key])
                k += len(key)
                break
        else:
            out.append(base[k])
            k += 1
    import unicodedata
    return unicodedata.normalize("NFC", "".join(out))


#: The learned MBROLA phone names (``tools/mbrola_ipa_table.py`` writes it).
_IPA_TABLE_FILE = Path(__file__).with_name("mbrola_ipa.json")


@functools.lru_cache(maxsize=1)
def _ipa_table() -> dict:
    import json
    f = _IPA_TABLE_FILE
    return json.loads(f.read_text(encoding="utf-8")) if f.exists() else {}


def ipa_table_digest() -> str:
    """The first 12 hex digits of the SHA-256 of ``mbrola_ipa.json`` (the learned names
    :func:`pair_ipa` falls back to where it pairs no event), which a corpus's
    ``request.json`` / ``corpus.json`` and a held-out set's ``heldout.json`` record: two
    builds name their MBROLA phones alike only under the same table. ``""`` without one."""
    import hashlib
    f = _IPA_TABLE_FILE
    return hashlib.sha256(f.read_bytes()).hexdigest()[:12] if f.exists() else ""


def voice_ipa_table(voice: str) -> dict:
    """The learned ``{symbol: IPA}`` of a voice (``model_core/training/mbrola_ipa.json``,
    made by ``tools/mbrola_ipa_table.py`` from eSpeak's own events; {} when it has none)."""
    return dict(_ipa_table().get(voice, {}).get("ipa", {}))


def voice_agreement(voice: str) -> float:
    """How consistently eSpeak's events name the voice's symbols (0-1; NaN when unknown):
    the table's ``agreement``. Voices below 0.8 are not trained on."""
    return float(_ipa_table().get(voice, {}).get("agreement", float("nan")))


def event_names(lines: list[PhoLine], events: list, sample_rate: int,
                tolerance_ms: float = 3.0, resync_ms: float = 500.0) -> list[str | None]:
    """The name of the eSpeak event that spoke each MBROLA phone, where one did.

    The phone data and the eSpeak events describe the same phones on one time line (the
    first event is time 0 of the phone data), up to an offset: eSpeak reads the audio of
    an MBROLA voice back from the mbrola process through a pipe, and where a piece of it
    goes missing (:func:`steady_events`) the events after that point land tens of ms
    earlier; the first phone's event may also be shorter than the phone. The phones are
    walked in order with the current offset (0 at the start); a phone takes the name of
    the event that starts and ends within ``tolerance_ms`` of it. Where none does, the
    offset is found again: among the events after the last match, a new offset within
    ``resync_ms`` of the old under which this phone and the next two (or what is left of
    them, at least one) all start and end within ``tolerance_ms`` of an event, the one
    nearest the old (durations repeat in a language of regular syllables: Japanese "dZ o
    u" and "h o u" last 70, 39 and 25 ms alike, a syllable apart). Where there is none the
    events part only there (eSpeak writes a long consonant as two MBROLA phones, or a pause
    a few ms differently) and the walk goes on.

    Args:
        lines: the parsed phone data; events: ``[(sample, ipa_name)]`` from eSpeak;
        sample_rate: the events' rate (the voice's, Hz); tolerance_ms, resync_ms:
        milliseconds.
    Returns:
        one entry per line: the event's IPA name, or None (a pause, or no event spoke it).
    """
    ev = _distinct_onsets(events)
    t_ev = [(s - ev[0][0]) * 1000.0 / sample_rate for s, _ in ev] if ev else []
    spans, t = [], 0.0
    for ln in lines:
        spans.append((t, t + ln.dur_ms))
        t += ln.dur_ms
    speech = [i for i, ln in enumerate(lines) if ln.symbol.strip("_") != ""]
    names: list[str | None] = [None] * len(lines)

    def event_at(i: int, offset: float, j: int) -> int | None:
        """The named event from index ``j`` on that starts and ends with phone ``i``."""
        a, b = spans[i][0] + offset, spans[i][1] + offset
        while j < len(ev) and t_ev[j] < a - tolerance_ms:
            j += 1
        if j + 1 < len(ev) and abs(t_ev[j] - a) < tolerance_ms and \
                abs(t_ev[j + 1] - b) < tolerance_ms and ev[j][1]:
            return j
        return None

    offset, j = 0.0, 0
    for n, i in enumerate(speech):
        k = event_at(i, offset, j)
        if k is None and n + 1 < len(speech):
            best = None
            for cand in range(j, len(ev) - 1):
                shift = t_ev[cand] - spans[i][0]
                if shift > offset + resync_ms:
                    break
                if abs(shift - offset) > resync_ms or event_at(i, shift, cand) != cand or \
                        (best is not None and abs(shift - offset) >= abs(best[0] - offset)):
                    continue
                nxt, found = cand, 1
                for later in speech[n + 1:n + 3]:
                    nxt = event_at(later, shift, nxt + 1)
                    if nxt is None:
                        break
                    found += 1
                if found == min(3, len(speech) - n):
                    best = (shift, cand)
            if best is not None:
                offset, k = best
        if k is not None:
            names[i] = ev[k][1]
            j = k + 1
    return names


def pair_ipa(lines: list[PhoLine], events: list, sample_rate: int,
             table: dict | None = None, tolerance_ms: float = 3.0,
             resync_ms: float = 500.0) -> list[PhoLine]:
    """Give every MBROLA phone its IPA name: the name of the eSpeak event that spoke it
    (:func:`event_names`: the exact allophone, e.g. Spanish [β] or [b] for one symbol);
    without one, the voice's learned table entry; else its X-SAMPA reading
    (:func:`xsampa_to_ipa`). Pauses (``_``) are always ``""``.

    Args:
        lines: the parsed phone data; events: ``[(sample, ipa_name)]`` from eSpeak;
        sample_rate: the events' rate (the voice's, Hz); table: ``{symbol: IPA}``;
        tolerance_ms, resync_ms: as :func:`event_names`.
    Returns:
        ``lines`` with ``ipa`` set (the same objects).
    """
    table = table or {}
    for ln, name in zip(lines, event_names(lines, events, sample_rate, tolerance_ms,
                                           resync_ms)):
        if ln.symbol.strip("_") == "":
            ln.ipa = ""
        else:
            ln.ipa = name or table.get(ln.symbol) or xsampa_to_ipa(ln.symbol)
    return lines


def _is_vowel(ipa: str) -> bool:
    p = parse_phone(ipa, "ipa") if ipa else None
    return p is not None and p.kind == "phone" and p.visemes[0] in VOWEL_VISEMES


def rebalance_durations(lines: list[PhoLine], ratio: float,
                        min_consonant_ms: float = 35.0) -> list[PhoLine]:
    """Lengthen vowels and shorten consonants so that mean vowel / mean consonant duration
    is ``ratio``, keeping the total length of the speech (pauses untouched).

    With V and C the summed vowel and consonant durations, ``nv`` and ``nc`` their counts,
    vowels are scaled by ``a`` and consonants by ``b`` with ``a * V/nv = ratio * b * C/nc``
    and ``a V + b C = V + C``. Nothing changes when the vowels are already that long
    relative to the consonants, or when either group is empty. Consonants are not made
    shorter than ``min_consonant_ms`` (a bilabial closure stays visible).

    Args:
        lines: phone data with ``ipa`` set (:func:`pair_ipa`).
        ratio: wanted mean vowel / mean consonant duration (> 0; speech: about 1.3-2).
    Returns:
        new :class:`PhoLine` objects.
    """
    vow = [_is_vowel(ln.ipa) for ln in lines]
    pause = [not ln.ipa or parse_phone(ln.ipa, "ipa").kind != "phone" for ln in lines]
    V = sum(ln.dur_ms for ln, v in zip(lines, vow) if v)
    C = sum(ln.dur_ms for ln, v, p in zip(lines, vow, pause) if not v and not p)
    nv = sum(vow)
    nc = sum(1 for v, p in zip(vow, pause) if not v and not p)
    out = [PhoLine(ln.symbol, ln.dur_ms, list(ln.pitch), ln.ipa) for ln in lines]
    if nv == 0 or nc == 0 or V <= 0 or C <= 0 or (V / nv) >= ratio * (C / nc):
        return out
    b = (V + C) / (ratio * (C / nc) * nv + C)
    a = ratio * b * (C / nc) / (V / nv)
    for ln, v, p in zip(out, vow, pause):
        if p:
            continue
        ln.dur_ms = ln.dur_ms * a if v else max(ln.dur_ms * b, min(ln.dur_ms, min_consonant_ms))
    return out


#: Which :func:`repair_diphones` rendered a corpus or held-out set (recorded with it; a
#: stopped build goes on only under the same).
REPAIR_VERSION = 2

def phone_naming() -> dict:
    """What names and renders a build's IPA phones, as corpora (``request.json``) and
    held-out sets (``heldout.json``) record it: ``{"mbrola_ipa": ipa_table_digest(),
    "espeak_ipa": espeak_ipa_digest(), "mbrola_repair": REPAIR_VERSION}``."""
    from .tts.espeak_ipa import espeak_ipa_digest
    return {"mbrola_ipa": ipa_table_digest(), "espeak_ipa": espeak_ipa_digest(),
            "mbrola_repair": REPAIR_VERSION}


#: Milliseconds of pause put between two phones whose diphone the voice lacks (taken
#: from the first, at most 30 % of it): :func:`repair_diphones`.
BRIDGE_MS = 15.0

#: Diphones probed so far, per voice: ``{voice: {(a, b): present}}`` (this process).
_DIPHONES: dict[str, dict[tuple[str, str], bool]] = {}


def _probe_diphones(voice: str, pairs) -> dict[tuple[str, str], bool]:
    """Which of ``pairs`` (two MBROLA symbols each) the voice has a diphone for: one
    ``mbrola -e`` run over ``_ a b _ c d _ ...``, whose warnings name the missing ones
    (mbrola renders a missing diphone as silence). Results are kept per voice."""
    known = _DIPHONES.setdefault(voice, {})
    todo = [p for p in dict.fromkeys(pairs) if p not in known]
    if todo:
        seq = ["_"]
        for a, b in todo:
            seq += [a, b, "_"]
        with tempfile.TemporaryDirectory(prefix="streamtalker-mbrola-") as tmp:
            pho, wav = os.path.join(tmp, "probe.pho"), os.path.join(tmp, "probe.wav")
            Path(pho).write_text("".join(f"{x}\t40\n" for x in seq), encoding="utf-8")
            r = subprocess.run(["mbrola", "-e", str(_voice_file(voice)), pho, wav],
                               capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"mbrola failed probing voice {voice}'s diphones "
                               f"({r.returncode}): {(r.stderr or r.stdout).strip()[-300:]}")
        warned = {ln.split()[1] for ln in (r.stdout + r.stderr).splitlines()
                  if "unknown" in ln and len(ln.split()) > 1}
        for a, b in zip(seq, seq[1:]):
            known[(a, b)] = f"{a}-{b}" not in warned
    return {p: known[p] for p in pairs}


@functools.lru_cache(maxsize=1)
def _xsampa_readings() -> tuple:
    """``(symbol, IPA without length)`` for every :data:`XSAMPA` symbol."""
    return tuple((k, xsampa_to_ipa(k).replace("ː", "")) for k in XSAMPA)


#: A glide the voice lacks is spoken as its vowel (it1 has no ``j``).
_GLIDE_VOWELS = {"j": "i", "w": "u", "ɥ": "y"}


def _symbol_candidates(symbol: str, ipa: str, voice: str) -> list[str]:
    """Names the voice may have for a symbol eSpeak gives it but it lacks (eSpeak NG 1.51
    writes variants some voices never recorded: vz1's unstressed ``o/`` ``e/``, it1's
    stressed ``U1``, in1's nasal ``e~``): the symbol without its marks, then without its
    digits (case kept: X-SAMPA ``J`` is not ``j``), doubled (jp1 writes ``r`` as ``rr``),
    then the voice's symbols that the learned table (:func:`voice_ipa_table`) names with
    the same IPA (length aside), or for a glide with its vowel's, then the X-SAMPA
    symbols (:data:`XSAMPA`) that read as that IPA."""
    bare = re.sub(r"[^0-9A-Za-z@]", "", symbol)
    cands = [bare, re.sub(r"[0-9]", "", bare), bare * 2 if len(bare) == 1 else ""]
    if ipa:
        table = voice_ipa_table(voice)
        base = ipa.replace("ː", "")
        for want in (ipa, base, _GLIDE_VOWELS.get(base, "")):
            cands += [k for k, v in sorted(table.items()) if want and v.replace("ː", "") ==
                      want.replace("ː", "")]
        # symbols the voice may name in its own (X-)SAMPA: it2 writes tʃ as "ch"
        cands += [k for k, v in _xsampa_readings() if v == base]
    return [c for c in dict.fromkeys(cands) if c and c != symbol]


def repair_diphones(lines: list[PhoLine], voice: str) -> tuple[list[PhoLine], int]:
    """Give the voice a symbol it has where eSpeak wrote one it lacks, and count the
    diphones still missing.

    eSpeak NG 1.51 writes some MBROLA voices symbols they have no diphones for (vz1 lacks
    every diphone of its ``o/`` and ``e/``: a third of its diphones; jp1 its ``r``), and
    mbrola renders a missing diphone as silence, half a phone on each side, under phones
    that say speech. A symbol the voice has no diphone with a pause for is renamed to the
    first of :func:`_symbol_candidates` it has (``o/`` → ``o``); the IPA names stay.
    Between two symbols the voice has but never recorded together (in1's consonant
    clusters, jp1's geminates) goes a :data:`BRIDGE_MS` pause taken from the first, which
    keeps the first's IPA name (its phone spans the pause).

    Args:
        lines: phone data (:func:`parse_pho`, ``ipa`` set); voice: an installed voice.
    Returns:
        (new :class:`PhoLine` objects, the number of consecutive symbol pairs the voice
        still has no diphone for: rendered as silence).
    Raises:
        RuntimeError: mbrola failed to run the voice (names it).
    """
    syms = [ln.symbol for ln in lines]

    def has(s: str) -> bool:
        if s == "_":
            return True
        k = _probe_diphones(voice, [("_", s), (s, "_")])
        return k[("_", s)] or k[(s, "_")]

    ipa = {}
    for ln in lines:
        ipa.setdefault(ln.symbol, ln.ipa)
    _probe_diphones(voice, [q for s in ipa for q in (("_", s), (s, "_"))])   # one run
    rename = {}
    for s in dict.fromkeys(syms):
        if not has(s):
            rename[s] = next((c for c in _symbol_candidates(s, ipa[s], voice) if has(c)), s)
    out = [PhoLine(rename.get(ln.symbol, ln.symbol), ln.dur_ms, list(ln.pitch), ln.ipa)
           for ln in lines]
    pairs = [(a.symbol, b.symbol) for a, b in zip(out, out[1:])]
    known = _probe_diphones(voice, pairs)
    missing = [i for i, p in enumerate(pairs) if not known[p]]
    # a pair the voice lacks, between symbols it has: one of the two spoken as another
    # name of its sound that the voice has with both neighbours (it2 ``tS-E2``: ``E2``
    # is also ``e``)
    for i in missing:
        for j in (i + 1, i):
            for c in _symbol_candidates(out[j].symbol, out[j].ipa, voice):
                need = ([(out[j - 1].symbol, c)] if j > 0 else []) + \
                    ([(c, out[j + 1].symbol)] if j + 1 < len(out) else [])
                if need and all(_probe_diphones(voice, need).values()):
                    out[j].symbol = c
                    break
            else:
                continue
            break
    pairs = [(a.symbol, b.symbol) for a, b in zip(out, out[1:])]
    known = _probe_diphones(voice, pairs)
    missing = {i for i, p in enumerate(pairs) if not known[p]}
    if not missing:
        return out, 0
    # a pair the voice never recorded (a consonant cluster, a geminate): a short pause
    # between the two, so both are heard whole and only the transition is lost
    bridge = _probe_diphones(voice, [q for i in missing for q in
                                     ((pairs[i][0], "_"), ("_", pairs[i][1]))])
    fixed, left = [], 0
    for i, ln in enumerate(out):
        fixed.append(ln)
        if i in missing:
            a, b = pairs[i]
            if bridge[(a, "_")] and bridge[("_", b)]:
                gap = min(BRIDGE_MS, 0.3 * ln.dur_ms)
                ln.dur_ms -= gap
                fixed.append(PhoLine("_", gap, [], ln.ipa))   # still ln's phone
            else:
                left += 1
    return fixed, left


def _voice_file(voice: str) -> Path | None:
    for d in MBROLA_DIRS:
        f = d / voice / voice
        if f.is_file():
            return f
    return None


@functools.lru_cache(maxsize=1)
def mbrola_voices() -> dict:
    """Installed MBROLA voices that eSpeak NG can drive: ``{voice: language}``, e.g.
    ``{"de4": "de", "fr2": "fr-fr", "jp2": "ja"}`` ({} when the ``mbrola`` program or the
    voices are missing). The language is eSpeak's (its ``mb-XX`` voice file)."""
    if shutil.which("mbrola") is None:
        return {}
    out = {}
    for d in _ESPEAK_MB_DIRS:
        if not d.is_dir():
            continue
        for f in sorted(d.glob("mb-*")):
            voice = f.name[3:]
            if "-" in voice or _voice_file(voice) is None:   # mb-de4-en: English via de4
                continue
            for line in f.read_text(errors="replace").splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "language":
                    out.setdefault(voice, parts[1])
                    break
        break
    return out


def language_switches(text: str, voice: str) -> list[str]:
    """The language switches eSpeak makes reading ``text`` with MBROLA voice ``voice``
    (``"in2"``): :func:`model_core.training.tts.language_switches` of ``mb-{voice}``
    (``["(en)", "(hi)"]``, ``[]`` for none; only the phone data is made, about 25 ms).

    Raises:
        ValueError: eSpeak has no voice ``mb-{voice}``; RuntimeError: eSpeak failed.
    """
    return _language_switches(text, f"mb-{voice}")


#: How many times eSpeak renders an MBROLA job at most to get one event list twice.
RENDER_TRIES = 4


def steady_events(job: tuple, first: list, tries: int = RENDER_TRIES) -> list:
    """eSpeak's phoneme events for an MBROLA job, the same from run to run.

    eSpeak renders an MBROLA voice by reading the mbrola program's audio back through a
    pipe, and now and then (more often on a busy machine) a piece of it goes missing from
    the rendering: an event is dropped or the events after it move by the missing length.
    The job is rendered again (each time from eSpeak's pristine state) until one event
    list comes twice, and that one is used; if none does within ``tries`` renders, the
    longest (most events, then the latest last event): a dropped piece only shortens.

    Args:
        job: the eSpeak job tuple (voice, rate, pitch, pitch_range, flags, text);
        first: the events of the first render, ``[(sample, name)]``.
    Returns:
        the chosen event list.
    """
    seen = [first]
    for _ in range(tries - 1):
        ((_pcm, events),), _sr = _espeak_call("synth", [job], ipa=True)
        if events in seen:
            return events
        seen.append(events)
    return max(seen, key=lambda ev: (len(ev), ev[-1][0] - ev[0][0] if ev else 0))


def mbrola_synthesize(text: str, voice: str, rate: int = 160, pitch: int = 50,
                      pitch_range: int = 50, vowel_ratio: float | None = 1.6) -> SpeechClip:
    """Synthesize ``text`` with an MBROLA voice; phones with IPA names and exact timing.

    Args:
        text: non-empty text in the voice's language (eSpeak reads it; Japanese in kana).
        voice: an installed voice of :func:`mbrola_voices` (``"de4"``, ``"fr2"`` ...).
        rate: eSpeak speaking rate, words per minute (80-450).
        pitch, pitch_range: eSpeak pitch and range (0-100).
        vowel_ratio: mean vowel / mean consonant duration to restore
            (:func:`rebalance_durations`); None keeps eSpeak's durations.

    Returns:
        :class:`SpeechClip` (``engine "mbrola"``, ``voice`` e.g. ``"mb-de4"``) at the
        voice's rate (16 kHz for most), ``phones`` ``[(ipa, start_s, end_s)]`` contiguous
        from 0 to the end (pauses ``"_"``), ``settings`` with ``rate``, ``pitch``,
        ``pitch_range``, ``vowel_ratio``, ``alphabet "ipa"``.

    Raises:
        FileNotFoundError: mbrola, the voice or eSpeak NG is not installed (names the fix).
        ValueError: empty text, unknown voice, parameters out of range.
        RuntimeError: eSpeak or mbrola failed (names the voice and the text).
    """
    import soundfile as sf

    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    if shutil.which("mbrola") is None:
        raise FileNotFoundError(f"the mbrola program is not installed: {_INSTALL}")
    if voice not in mbrola_voices():
        raise FileNotFoundError(f"MBROLA voice {voice!r} is not installed (or eSpeak NG has no "
                                f"mb-{voice} voice for it): {_INSTALL}")
    for name, value, lo, hi in (("rate", rate, 80, 450), ("pitch", pitch, 0, 100),
                                ("pitch_range", pitch_range, 0, 100)):
        if isinstance(value, bool) or not (isinstance(value, (int, np.integer)) and lo <= value <= hi):
            raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    with tempfile.TemporaryDirectory(prefix="streamtalker-mbrola-") as tmp:
        pho_in = os.path.join(tmp, "espeak.pho")
        job = (f"mb-{voice}", int(rate), int(pitch), int(pitch_range), _ENDPAUSE, text)
        # eSpeak does not render while it writes phone data (its events then carry no
        # positions): the same synthesis again gives the events on the time line
        (traced, rendered), _sr = _espeak_call("synth", [job + (pho_in,), job], ipa=True)
        pho_text, events = traced[2], steady_events(job, rendered[1])
        lines = parse_pho(pho_text)
        if not lines:
            raise RuntimeError(f"eSpeak NG wrote no MBROLA phone data for {text!r} "
                               f"(voice mb-{voice})")
        rate = int(_ipa_table().get(voice, {}).get("sample_rate", 16000))
        lang = mbrola_voices()[voice]   # eSpeak 1.51's names that are not IPA, fixed
        events = [(s, espeak_ipa_name(n, lang) if n else n) for s, n in events]
        table = {k: espeak_ipa_name(v, lang) for k, v in voice_ipa_table(voice).items()}
        lines = pair_ipa(lines, events, rate, table)
        if vowel_ratio is not None:
            lines = rebalance_durations(lines, float(vowel_ratio))
        lines, missing = repair_diphones(lines, voice)
        pho_out = os.path.join(tmp, "balanced.pho")
        wav = os.path.join(tmp, "out.wav")
        Path(pho_out).write_text(format_pho(lines), encoding="utf-8")
        r = subprocess.run(["mbrola", "-e", str(_voice_file(voice)), pho_out, wav],
                           capture_output=True, text=True)
        if r.returncode != 0 or not os.path.exists(wav):
            raise RuntimeError(f"mbrola failed for voice {voice} ({r.returncode}): "
                               f"{(r.stderr or r.stdout).strip()[-300:]}")
        x, sr = sf.read(wav, dtype="float32", always_2d=False)
    x = np.asarray(x, np.float32).reshape(-1)
    phones, t = [], 0.0
    for ln in lines:
        d = max(1, int(round(ln.dur_ms))) / 1000.0      # what mbrola rendered
        label = ESPEAK_PAUSE if not ln.ipa else ln.ipa
        if phones and (label == ESPEAK_PAUSE == phones[-1][0] or
                       (ln.symbol == "_" and ln.ipa)):   # a bridge: the phone before's
            phones[-1][2] = t + d
        else:
            phones.append([label, t, t + d])
        t += d
    end = len(x) / sr
    if phones:    # mbrola's length is the sum of the durations, to a sample
        phones[-1][2] = end
        phones = [p for p in phones if p[2] > p[1]]
    return SpeechClip(samples=x, sample_rate=int(sr), phones=[tuple(p) for p in phones],
                      text=text, voice=f"mb-{voice}", engine="mbrola",
                      settings={"rate": int(rate), "pitch": int(pitch),
                                "pitch_range": int(pitch_range), "vowel_ratio": vowel_ratio,
                                "alphabet": "ipa", "missing_diphones": missing})
