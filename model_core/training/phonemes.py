"""Phone inventories and phone -> viseme tables for English.

Two phone alphabets are understood:

* **ARPAbet** as used by the CMU Pronouncing Dictionary and pocketsphinx: the 39 phones of
  :data:`ARPABET_PHONES`, upper or lower case, vowels with or without a stress digit
  (``AA1``, ``ih0``). ``AH0`` is the reduced schwa and maps to ``AX``. The extra symbols
  of Festival / TIMIT style label sets (``ax``, ``axr``, ``dx``, ``el``, ``bcl`` ...) are
  read too (:data:`ARPABET_EXTENSIONS`).
* **espeak-ng mnemonics**, the names espeak-ng's phoneme events report for English voices
  (``p``, ``T``, ``D``, ``tS``, ``dZ``, ``N``, ``@``, ``3:``, ``i:``, ``aI``, ``oU``, ``e@``,
  ``_`` pauses ...; see espeak-ng ``phsource/ph_english``). Stress marks (``'`` primary,
  ``,`` secondary, ``%`` unstressed, ``=``) may come as separate events or as a prefix of the
  next vowel (``'aI``).

Both alphabets share some symbols with different meanings: in espeak ``T D S Z N V`` are
TH, DH, SH, ZH, NG and the STRUT vowel, in ARPAbet they are t, d, s, z, n, v. A single label
is read as ARPAbet where it is valid ARPAbet; a whole sequence is classified with
:func:`detect_alphabet` (any espeak-only symbol makes it espeak), and callers can force an
alphabet with ``alphabet="arpabet"`` / ``"espeak"``.

Viseme classes (:data:`VISEMES`) group phones that look alike on the lips and jaw: ``sil``
(rest pose), ``NEU`` (neutral, for unknown symbols), consonant classes ``PP`` (p b m),
``FF`` (f v), ``TH``, ``DD`` (t d), ``NN`` (n), ``LL``, ``SS`` (s z), ``SH`` (sh zh ch jh),
``KK`` (k g ng), ``RR``, ``WW``, ``YY``, ``HH``, and vowel classes named after their ARPAbet
vowel (``AA AE AH AO OH EH IH IY UH UW ER AX``). Diphthongs map to a sequence of two or
three vowel classes (``AY`` -> ``("AA", "IH")``). Unknown symbols never raise: they map to
``("NEU",)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

import numpy as np

VISEMES: tuple[str, ...] = (
    "sil", "NEU", "PP", "FF", "TH", "DD", "NN", "LL", "SS", "SH", "KK", "RR", "WW", "YY", "HH",
    "AA", "AE", "AH", "AO", "OH", "EH", "IH", "IY", "UH", "UW", "ER", "AX",
)
#: Vowel viseme classes (they carry stress and set the jaw opening of a syllable).
VOWEL_VISEMES: frozenset[str] = frozenset(
    {"AA", "AE", "AH", "AO", "OH", "EH", "IH", "IY", "UH", "UW", "ER", "AX"})
#: Open vowels: the jaw opens most on these (the lip-sync measures of docs/architecture.md, "Metrics").
OPEN_VOWELS_ARPABET: frozenset[str] = frozenset({"AA", "AE", "AH", "AO", "AW", "AY"})
#: Bilabial phones (lips sealed).
BILABIALS_ARPABET: frozenset[str] = frozenset({"P", "B", "M"})

#: The 39 CMU ARPAbet phones (15 vowels, 24 consonants), without stress digits.
ARPABET_PHONES: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW",
    "B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH",
    "T", "TH", "V", "W", "Y", "Z", "ZH",
)

#: ARPAbet phone -> viseme classes (diphthongs give two).
ARPABET_TO_VISEMES: dict[str, tuple[str, ...]] = {
    "AA": ("AA",), "AE": ("AE",), "AH": ("AH",), "AO": ("AO",), "AW": ("AA", "UH"),
    "AY": ("AA", "IH"), "EH": ("EH",), "ER": ("ER",), "EY": ("EH", "IY"), "IH": ("IH",),
    "IY": ("IY",), "OW": ("OH", "UH"), "OY": ("AO", "IH"), "UH": ("UH",), "UW": ("UW",),
    "B": ("PP",), "P": ("PP",), "M": ("PP",), "F": ("FF",), "V": ("FF",),
    "TH": ("TH",), "DH": ("TH",), "T": ("DD",), "D": ("DD",), "N": ("NN",), "L": ("LL",),
    "S": ("SS",), "Z": ("SS",), "SH": ("SH",), "ZH": ("SH",), "CH": ("SH",), "JH": ("SH",),
    "K": ("KK",), "G": ("KK",), "NG": ("KK",), "R": ("RR",), "W": ("WW",), "Y": ("YY",),
    "HH": ("HH",),
}

#: Symbols beyond the 39 that ARPAbet-style aligners and Festival / TIMIT label sets use
#: (read like ARPAbet, case-insensitively): schwas, syllabic consonants, flaps, and the
#: TIMIT stop closures (a ``bcl`` / ``pcl`` closure has the lips sealed).
ARPABET_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "AX": ("AX",), "AXH": ("AX",), "AXR": ("ER",), "IX": ("IH",), "UX": ("UW",),
    "EL": ("AX", "LL"), "EM": ("AX", "PP"), "EN": ("AX", "NN"), "ENG": ("AX", "KK"),
    "DX": ("DD",), "NX": ("NN",), "HV": ("HH",), "WH": ("WW",), "Q": ("NEU",),
    "BCL": ("PP",), "PCL": ("PP",), "DCL": ("DD",), "TCL": ("DD",), "GCL": ("KK",),
    "KCL": ("KK",),
}
_ARPA_ALL = {**ARPABET_TO_VISEMES, **ARPABET_EXTENSIONS}

#: espeak-ng English phoneme mnemonic -> viseme classes.
ESPEAK_TO_VISEMES: dict[str, tuple[str, ...]] = {
    # consonants
    "p": ("PP",), "b": ("PP",), "m": ("PP",), "m-": ("PP",),
    "f": ("FF",), "v": ("FF",), "T": ("TH",), "D": ("TH",),
    "t": ("DD",), "d": ("DD",), "t#": ("DD",), "d#": ("DD",), "t2": ("DD",), "d2": ("DD",),
    "n": ("NN",), "n-": ("NN",), "l": ("LL",), "l/": ("LL",), "l/2": ("LL",), "l#": ("LL",),
    "s": ("SS",), "z": ("SS",), "z#": ("SS",), "z/2": ("SS",),
    "S": ("SH",), "Z": ("SH",), "tS": ("SH",), "dZ": ("SH",),
    "k": ("KK",), "g": ("KK",), "N": ("KK",), "x": ("KK",), "C": ("KK",),
    "r": ("RR",), "r-": ("RR",), "w": ("WW",), "w#": ("WW",), "j": ("YY",), "h": ("HH",),
    "?": ("NEU",),
    # monophthongs
    "a": ("AE",), "a2": ("AE",), "A#": ("AE",), "a#": ("AX",), "a#2": ("AX",),
    "aa": ("AA",), "A:": ("AA",), "A@": ("AA",), "A~": ("AA",),
    "V": ("AH",), "@": ("AX",), "@2": ("AX",), "@5": ("AX",), "@#": ("AX",), "I#": ("AX",),
    "@L": ("AX", "LL"), "3": ("ER",), "3:": ("ER",), "IR": ("ER",), "VR": ("ER",),
    "E": ("EH",), "E#": ("EH",), "E2": ("EH",), "e#": ("EH",), "e:": ("EH",), "e": ("EH",),
    "I": ("IH",), "I2": ("IH",), "I2#": ("IH",), "i": ("IY",), "i:": ("IY",),
    "0": ("AO",), "0#": ("AO",), "02": ("AO",), "O2": ("AO",), "O": ("AO",), "O:": ("AO",),
    "O@": ("AO",), "o@": ("AO",), "O~": ("AO",), "o:": ("OH",), "o": ("OH",),
    "U": ("UH",), "u:": ("UW",), "u": ("UW",),
    # diphthongs and triphthongs
    "aI": ("AA", "IH"), "aI@": ("AA", "IH", "AX"), "aI3": ("AA", "IH", "AX"),
    "aU": ("AA", "UH"), "aU@": ("AA", "UH", "AX"), "eI": ("EH", "IY"), "OI": ("AO", "IH"),
    "oU": ("OH", "UH"), "oU#": ("OH", "UH"), "e@": ("EH", "AX"), "i@": ("IY", "AX"),
    "i@3": ("IY", "AX"), "I@": ("IH", "AX"), "U@": ("UH", "AX"),
}

#: espeak-ng vowels defined as always unstressed (reduced): stress 0 unless marked.
ESPEAK_UNSTRESSED: frozenset[str] = frozenset(
    {"@", "@2", "@5", "@#", "@L", "a#", "I#", "I2", "I2#", "3", "i"})

#: Labels that mean silence / non-speech, compared case-insensitively. In addition, any
#: label starting with ``_`` (espeak pauses ``_``, ``_:``, ``_!``) or wrapped in ``+...+``,
#: ``[...]`` or ``<...>`` (pocketsphinx fillers ``+NSN+``, ``+SPN+``, ``<sil>``, ``[NOISE]``)
#: is silence.
SILENCE_LABELS: frozenset[str] = frozenset(
    {"", "sil", "sp", "spn", "sp1", "pau", "pause", "silence", "h#", "#", "noise", "nsn",
     "breath", "brth", "epi", "bs"})

#: Stress-mark symbols (espeak): primary 1, secondary 2, unstressed 0; ``=`` (stress on the
#: preceding syllable) and word separators carry no stress for the next vowel.
STRESS_MARKS: dict[str, int | None] = {"'": 1, ",": 2, "%": 0, "=": None, "|": None,
                                       "||": None}

_ARPA_RE = re.compile(r"^([A-Za-z]{1,3})([0-2])?$")
_ESPEAK_SUFFIX = ";#/-!^~:0123456789"
_ALPHABETS = ("auto", "arpabet", "espeak")


@dataclass(frozen=True)
class Phone:
    """A parsed phone label.

    Attributes:
        label: the label as given.
        kind: ``"phone"`` (articulated), ``"silence"`` (rest pose) or ``"mark"`` (a stress
            mark or separator with no articulation of its own).
        visemes: viseme classes from :data:`VISEMES`; one for most phones, two or three
            for diphthongs; ``("sil",)`` for silence; ``()`` for marks.
        stress: 1 primary, 2 secondary, 0 unstressed, None unknown. For a mark, the
            stress it gives the next vowel.
        alphabet: ``"arpabet"`` or ``"espeak"`` (how the label was read), or ``""`` for
            silence, marks and unknown labels.
    """

    label: str
    kind: str
    visemes: tuple[str, ...]
    stress: int | None = None
    alphabet: str = ""


def _is_silence(label: str) -> bool:
    s = label.strip()
    if s.lower() in SILENCE_LABELS or s.startswith("_"):
        return True
    return len(s) >= 2 and ((s[0] == "+" and s[-1] == "+") or (s[0] == "[" and s[-1] == "]")
                            or (s[0] == "<" and s[-1] == ">"))


def _arpabet(label: str, case_sensitive: bool) -> Phone | None:
    m = _ARPA_RE.match(label)
    if m is None:
        return None
    base, digit = m.group(1), m.group(2)
    if case_sensitive and not base.isupper():
        return None
    base = base.upper()
    if base not in _ARPA_ALL:
        return None
    stress = int(digit) if digit is not None else None
    vis = _ARPA_ALL[base]
    if base == "AH" and stress == 0:
        vis = ("AX",)  # CMU dictionary: AH0 is the reduced schwa
    if digit is not None and vis[0] not in VOWEL_VISEMES:
        return None  # consonants never carry a stress digit
    return Phone(label, "phone", vis, stress, "arpabet")


def _espeak(label: str) -> Phone | None:
    stress = None
    name = label
    while name and name[0] in "',%=":
        s = STRESS_MARKS[name[0]]
        stress = s if s is not None else stress
        name = name[1:]
    if not name:
        return None
    vis = ESPEAK_TO_VISEMES.get(name)
    if vis is None:
        stripped = name.rstrip(_ESPEAK_SUFFIX)
        vis = ESPEAK_TO_VISEMES.get(stripped) if stripped else None
    if vis is None:  # longest known prefix, e.g. "3:r" -> "3:", "aI;" -> "aI"
        for n in range(min(3, len(name) - 1), 0, -1):
            vis = ESPEAK_TO_VISEMES.get(name[:n])
            if vis is not None:
                break
    if vis is None:
        return None
    if stress is None and name in ESPEAK_UNSTRESSED:
        stress = 0
    return Phone(label, "phone", vis, stress, "espeak")


def parse_phone(label: str, alphabet: str = "auto") -> Phone:
    """Parse one phone label; never raises for an unknown symbol.

    Args:
        label: an ARPAbet phone (``"AA1"``, ``"m"``), an espeak-ng mnemonic (``"aI"``,
            ``"'a"``, ``"_:"``), a silence label (``"SIL"``, ``"<sil>"``, ``"+NSN+"``) or a
            stress mark (``"'"``).
        alphabet: ``"auto"`` (ARPAbet where the label is valid ARPAbet, else espeak),
            ``"arpabet"`` or ``"espeak"``.

    Returns:
        a :class:`Phone`; unknown symbols give ``kind="phone"``, ``visemes=("NEU",)``.

    Raises:
        ValueError: ``label`` is not a string, or ``alphabet`` is not one of the three names.
    """
    if not isinstance(label, str):
        raise ValueError(f"phone label must be a string, got {type(label).__name__}")
    if alphabet not in _ALPHABETS:
        raise ValueError(f"alphabet must be one of {_ALPHABETS}, got {alphabet!r}")
    return _parse(label, alphabet)


@lru_cache(maxsize=4096)
def _parse(label: str, alphabet: str) -> Phone:
    s = label.strip()
    if s in STRESS_MARKS or (s and set(s) <= set("',%=|")):
        return Phone(label, "mark", (), STRESS_MARKS.get(s, STRESS_MARKS.get(s[0])))
    if _is_silence(s):
        return Phone(label, "silence", ("sil",))
    p = None
    if alphabet == "arpabet":
        p = _arpabet(s, case_sensitive=False) or _espeak(s)
    elif alphabet == "espeak":
        p = _espeak(s) or _arpabet(s, case_sensitive=False)
    else:
        p = _arpabet(s, case_sensitive=True)
        if p is None and len(s) >= 2:
            p = _arpabet(s, case_sensitive=False)  # "aa1", "ih" (not an espeak name)
            if p is not None and s in ESPEAK_TO_VISEMES:
                p = None
        p = p or _espeak(s) or _arpabet(s, case_sensitive=False)
    if p is None:
        return Phone(label, "phone", ("NEU",))
    return Phone(label, p.kind, p.visemes, p.stress, p.alphabet)


def viseme_class(label: str, alphabet: str = "auto") -> str:
    """Normalise any phone label to its (principal) viseme class, a name in :data:`VISEMES`.

    Diphthongs give their first, dominant part (``AY`` -> ``"AA"``, an open vowel);
    silence labels and stress marks give ``"sil"``; unknown symbols give ``"NEU"``.
    Raises ValueError as :func:`parse_phone`.
    """
    p = parse_phone(label, alphabet)
    return p.visemes[0] if p.visemes else "sil"


@lru_cache(maxsize=4096)
def _espeak_only(label: str) -> bool:
    s = label.strip()
    if _arpabet(s, case_sensitive=False) is not None:
        return False
    return _espeak(s) is not None


def detect_alphabet(labels: Iterable[str]) -> str:
    """Classify a whole label sequence as ``"espeak"`` or ``"arpabet"``.

    The sequence is espeak when any label (other than silence and marks) is an espeak-only
    symbol (``"@"``, ``"aI"``, ``"i:"``, ``"a"``, ``"tS"`` ...); otherwise ARPAbet. This
    settles the symbols the two alphabets share (``T D S Z N V``). Non-string labels are
    skipped here (:func:`parse_phone` rejects them).
    """
    for lab in labels:
        if not isinstance(lab, str):
            continue
        s = lab.strip()
        if not s or _is_silence(s) or set(s) <= set("',%=|"):
            continue
        if _espeak_only(s) or (s[0] in "',%=" and _espeak(s) is not None):
            return "espeak"
    return "arpabet"


def phone_frames(start_s: float, end_s: float, fps: float, n_frames: int,
                 widen: int = 0) -> np.ndarray:
    """Frame indices of a phone: ``i`` with ``start_s <= i / fps < end_s``, widened. The one
    rule for which frames a phone covers (the lip-sync metrics and the closure loss weight).

    Args:
        start_s, end_s: the phone's times in seconds.
        fps: frames per second (> 0).
        n_frames: number of frames T of the sequence (the result is clipped to 0..T-1).
        widen: frames added on each side (``widen=1``: one frame before the first and one
            after the last; a phone lying between two frames then gets those two frames).

    Returns:
        int64 [k] sorted frame indices (possibly empty).

    Raises:
        ValueError: fps not finite and > 0.
    """
    f = float(fps)
    if not math.isfinite(f) or f <= 0:
        raise ValueError(f"fps must be finite and > 0, got {fps!r}")
    # smallest i with i / fps >= s, and smallest i with i / fps >= e (exclusive end);
    # the tolerance absorbs floating error in times that are exact multiples of 1/fps
    lo = int(math.ceil(start_s * f - 1e-6))
    hi = int(math.ceil(end_s * f - 1e-6))
    lo, hi = lo - widen, hi + widen
    return np.arange(max(lo, 0), min(hi, int(n_frames)), dtype=np.int64)


def bilabial_frame_mask(phones, fps: float, n_frames: int) -> np.ndarray:
    """Frames of the bilabial stops and nasal (P, B, M in any alphabet :func:`parse_phone`
    reads: the phones whose visemes include ``PP``), each widened by one frame on each side
    as the closure measure counts them (:func:`phone_frames` with ``widen=1``).

    Args:
        phones: ``[(label, start_s, end_s)]``, seconds; fps: frames per second (> 0);
        n_frames: T.
    Returns:
        bool [T].
    Raises:
        ValueError: fps not finite and > 0.
    """
    m = np.zeros(int(n_frames), dtype=bool)
    for label, s, e in phones:
        if "PP" in parse_phone(str(label)).visemes:
            m[phone_frames(float(s), float(e), fps, n_frames, widen=1)] = True
    return m
