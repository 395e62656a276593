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

* **IPA**, as eSpeak NG's phoneme events give it for every language it speaks (its IPA
  phoneme names, ``espeakINITIALIZE_PHONEME_IPA``) and as :mod:`.mbrola` labels the phones
  of MBROLA voices: ``"a"``, ``"ˈaɪ"``, ``"yː"``, ``"ɔ̃"``, ``"tʃ"``, ``"ʁ"``. Stress marks
  (``ˈ ˌ``), length (``ː ˑ``), nasalisation and other diacritics are read and dropped from
  the shape (a nasal vowel has its oral vowel's mouth; a long consonant holds its shape for
  its whole length, which is the phone's duration). Symbols not in :data:`IPA_TO_VISEMES`
  are classified from their phonological features (PyPI ``panphon``: height, backness
  and rounding of a vowel; place and manner of a consonant), so no symbol falls to the
  neutral mouth.

The ASCII alphabets share some symbols with different meanings: in espeak ``T D S Z N V`` are
TH, DH, SH, ZH, NG and the STRUT vowel, in ARPAbet they are t, d, s, z, n, v. A single label
is read as ARPAbet where it is valid ARPAbet; a whole sequence is classified with
:func:`detect_alphabet` (any IPA-only character makes it IPA, else any espeak-only symbol
makes it espeak), and callers can force an alphabet with ``alphabet="arpabet"`` /
``"espeak"`` / ``"ipa"`` (IPA sequences made only of ASCII letters, such as ``m a p a``,
need ``"ipa"``: the corpus stores each utterance's alphabet).

Viseme classes (:data:`VISEMES`) group phones that look alike on the lips and jaw: ``sil``
(rest pose), ``NEU`` (neutral, for unknown symbols), consonant classes ``PP`` (p b m),
``FF`` (f v), ``TH``, ``DD`` (t d), ``NN`` (n), ``LL``, ``SS`` (s z), ``SH`` (sh zh ch jh),
``KK`` (k g ng), ``RR``, ``WW``, ``YY``, ``HH``, and vowel classes named after their ARPAbet
vowel (``AA AE AH AO OH EH IH IY UH UW ER AX``), and the shapes English lacks (IPA only):
``EE`` (close-mid front e), ``UE`` (front rounded close y ʏ ɥ: the jaw of i with the lips of
u), ``OE`` (front rounded mid ø œ), ``UI`` (close unrounded back/central ɯ ɨ: close jaw,
no pucker), ``BF`` (bilabial fricatives β ɸ: lips nearly closed, not sealed) and ``RT``
(trills and taps r ɾ: neutral lips, not English R's rounding). Diphthongs map to a sequence of two or
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

from ..face import VISEME_CLASSES

#: The viseme classes (:data:`model_core.face.VISEME_CLASSES`, the one list).
VISEMES: tuple[str, ...] = VISEME_CLASSES
#: Vowel viseme classes (they carry stress and set the jaw opening of a syllable).
VOWEL_VISEMES: frozenset[str] = frozenset(
    {"AA", "AE", "AH", "AO", "OH", "EH", "IH", "IY", "UH", "UW", "ER", "AX", "EE", "UE", "OE",
     "UI"})
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
_ALPHABETS = ("auto", "arpabet", "espeak", "ipa")


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


# --------------------------------------------------------------------------------------
# IPA (eSpeak NG's IPA phoneme names, MBROLA voices' phones): any language
# --------------------------------------------------------------------------------------

#: IPA symbol -> viseme classes: the one table from an IPA phone to its mouth targets
#: (:data:`model_core.training.teacher.VISEME_TARGETS`). Keys are base symbols without
#: stress, length or diacritics; several-letter keys (affricates, diphthongs written as
#: one unit) are matched first. A vowel sequence in one label is a diphthong (its parts in
#: turn). Symbols not listed are classified by :func:`ipa_feature_class`.
IPA_TO_VISEMES: dict[str, tuple[str, ...]] = {
    # -- vowels: close
    "i": ("IY",), "ɪ": ("IH",), "y": ("UE",), "ʏ": ("UE",), "ɨ": ("UI",), "ʉ": ("UW",),
    "ɯ": ("UI",), "u": ("UW",), "ʊ": ("UH",), "ᵻ": ("IH",), "ᵿ": ("UH",),
    # -- vowels: mid
    "e": ("EE",), "ø": ("OE",), "ɘ": ("AX",), "ɵ": ("UH",), "ɤ": ("AX",), "o": ("OH",),
    "ə": ("AX",), "ɚ": ("ER",), "ɛ": ("EH",), "œ": ("OE",), "ɜ": ("ER",), "ɝ": ("ER",),
    "ɞ": ("OE",), "ʌ": ("AH",), "ɔ": ("AO",),
    # -- vowels: open
    "æ": ("AE",), "ɐ": ("AH",), "a": ("AA",), "ɶ": ("OE",), "ä": ("AA",), "ɑ": ("AA",),
    "ɒ": ("AO",),
    # -- bilabials: p b m seal the lips; β ɸ nearly close them; labiodentals
    "p": ("PP",), "b": ("PP",), "m": ("PP",), "ɓ": ("PP",), "ʙ": ("PP",), "ʘ": ("PP",),
    "ɸ": ("BF",), "β": ("BF",),
    "f": ("FF",), "v": ("FF",), "ʋ": ("FF",), "ɱ": ("FF",), "ⱱ": ("FF",),
    # -- dental / alveolar
    "θ": ("TH",), "ð": ("TH",), "t": ("DD",), "d": ("DD",), "ɗ": ("DD",), "n": ("NN",),
    "s": ("SS",), "z": ("SS",), "l": ("LL",), "ɫ": ("LL",), "ɬ": ("LL",), "ɮ": ("LL",),
    "r": ("RT",), "ɾ": ("RT",), "ɹ": ("RR",), "ɺ": ("RT",),
    # -- postalveolar, retroflex, alveolo-palatal (spread, no protrusion)
    "ʃ": ("SH",), "ʒ": ("SH",), "ʂ": ("SH",), "ʐ": ("SH",), "ɕ": ("SS",), "ʑ": ("SS",),
    "ʈ": ("DD",), "ɖ": ("DD",), "ɳ": ("NN",), "ɭ": ("LL",), "ɽ": ("RT",), "ɻ": ("RR",),
    # -- palatal: close jaw, slight spread
    "j": ("YY",), "ɲ": ("YY",), "ʎ": ("YY",), "ç": ("YY",), "ʝ": ("YY",), "c": ("YY",),
    "ɟ": ("YY",), "ʄ": ("YY",),
    # -- velar, uvular: like K, the lips from the neighbours
    "k": ("KK",), "g": ("KK",), "ɡ": ("KK",), "ŋ": ("KK",), "x": ("KK",), "ɣ": ("KK",),
    "ɰ": ("KK",), "q": ("KK",), "ɢ": ("KK",), "ɴ": ("KK",), "χ": ("KK",), "ʁ": ("KK",),
    "ʀ": ("KK",), "ɠ": ("KK",), "ʟ": ("LL",),
    # -- labial-velar / labial-palatal approximants
    "w": ("WW",), "ʍ": ("WW",), "ɥ": ("UE",),
    # -- pharyngeal, epiglottal, glottal
    "h": ("HH",), "ɦ": ("HH",), "ħ": ("HH",), "ʕ": ("HH",), "ʜ": ("HH",), "ʢ": ("HH",),
    "ʡ": ("HH",), "ʔ": ("HH",),
    # -- affricates (pf: P then F; ts: S) and other several-letter units
    "pf": ("PP", "FF"), "bv": ("PP", "FF"), "ts": ("SS",), "dz": ("SS",), "tʃ": ("SH",),
    "dʒ": ("SH",), "tɕ": ("SS",), "dʑ": ("SS",), "ʈʂ": ("SH",), "ɖʐ": ("SH",),
    "tθ": ("TH",), "dð": ("TH",), "kx": ("KK",), "tɬ": ("LL",), "dɮ": ("LL",),
    "ɝ˞": ("ER",),
}

#: IPA stress marks: primary 1, secondary 2.
_IPA_STRESS = {"ˈ": 1, "ˌ": 2, "'": 1, ",": 2}
#: Characters that never change the mouth's class: length, tie bars, syllable and
#: intonation marks, rhoticity and aspiration-like modifier letters (combining marks are
#: dropped too, by their Unicode class).
_IPA_DROP = set("ːˑ͜͡‿.|‖↗↘˞ʰʱʲʷˠˤ̩̯̪̥̬̃ⁿˡ˭'-#=0123456789")
_IPA_KEYS = sorted(IPA_TO_VISEMES, key=len, reverse=True)
_IPA_ONLY = re.compile("[^\\x00-\\x7f]")


def _ipa_strip(label: str) -> tuple[str, int | None]:
    """(base symbols, stress) of an IPA label: stress marks read, diacritics dropped."""
    import unicodedata
    stress = None
    out = []
    for ch in unicodedata.normalize("NFD", label.strip()):
        if ch in _IPA_STRESS:
            stress = _IPA_STRESS[ch]
        elif ch in _IPA_DROP or unicodedata.combining(ch) or unicodedata.category(ch) == "Lm":
            continue     # diacritics and modifier letters (ʰ ʲ ʷ ᵝ ...): no class of their own
        else:
            out.append(ch)
    base = unicodedata.normalize("NFC", "".join(out))
    return base, stress


@lru_cache(maxsize=1)
def _panphon_table():
    try:
        import panphon
    except ImportError:  # pragma: no cover - a train-extra dependency
        return None
    return panphon.FeatureTable()


@lru_cache(maxsize=1024)
def ipa_feature_class(symbol: str) -> str:
    """The viseme class of one IPA segment from its phonological features (PyPI
    ``panphon``): the fallback for symbols :data:`IPA_TO_VISEMES` does not list.

    Vowels (``syl+``) by height (``hi``/``lo``), backness (``back``) and rounding (``round``):
    close front unrounded ``IY``, rounded ``UE``; close back unrounded ``UI``, rounded
    ``UW``; mid front unrounded ``EE``, rounded ``OE``; mid back rounded ``OH``, unrounded
    ``AX``; open rounded ``AO``, unrounded ``AA``. Consonants by place and manner: labial
    stops and nasals ``PP``, labial fricatives ``BF``, labial approximants ``WW``; coronal
    sibilants ``SS`` (anterior) / ``SH`` (posterior), laterals ``LL``, nasals ``NN``,
    rhotic approximants and taps ``RT``, non-sibilant fricatives ``TH``, stops ``DD``;
    dorsal high front (palatal) ``YY``, other dorsals ``KK``; the rest (glottal,
    pharyngeal) ``HH``.

    Args:
        symbol: one IPA segment (diacritics allowed).
    Returns:
        a class name in :data:`VISEMES` (``"NEU"`` only when panphon is not installed or
        does not know the symbol either).
    """
    ft = _panphon_table()
    segs = ft.word_fts(symbol) if ft is not None else []
    if not segs:
        return "NEU"
    f = segs[0]
    if f["syl"] > 0:
        front, rnd = f["back"] < 0, f["round"] > 0
        if f["hi"] > 0:
            return ("UE" if rnd else "IY") if front else ("UW" if rnd else "UI")
        if f["lo"] > 0:
            return "AO" if rnd else "AA"
        return ("OE" if rnd else "EE") if front else ("OH" if rnd else "AX")
    if f["lab"] > 0 and f["cor"] <= 0 and f["hi"] <= 0:
        if f["son"] > 0 and f["cons"] < 0:
            return "WW"
        return "BF" if f["cont"] > 0 and f["nas"] <= 0 else "PP"
    if f["cor"] > 0:
        if f["strid"] > 0:
            return "SS" if f["ant"] > 0 else "SH"
        if f["lat"] > 0:
            return "LL"
        if f["nas"] > 0:
            return "NN"
        if f["son"] > 0:
            return "RT"
        return "TH" if f["cont"] > 0 else "DD"
    if f["hi"] > 0 or f["back"] > 0:
        return "YY" if f["hi"] > 0 and f["back"] < 0 else ("KK" if f["lo"] <= 0 else "HH")
    return "HH"


def _ipa(label: str) -> Phone | None:
    """An IPA phone label -> :class:`Phone` (None for an empty label)."""
    base, stress = _ipa_strip(label)
    if not base:
        return None
    vis: list[str] = []
    k = 0
    while k < len(base):
        for key in _IPA_KEYS:
            if base.startswith(key, k):
                vis.extend(IPA_TO_VISEMES[key])
                k += len(key)
                break
        else:
            vis.append(ipa_feature_class(base[k]))
            k += 1
    # a label holds one phone: a vowel sequence is a diphthong (at most three parts); any
    # consonant in it is a unit such as an affricate, already one or two classes
    vis = vis[:3]
    if stress is None and vis[0] == "AX":
        stress = 0
    return Phone(label, "phone", tuple(vis), stress, "ipa")


def is_ipa_label(label: str) -> bool:
    """True when ``label`` holds a character outside ASCII (every IPA-only symbol is one:
    ``ə ɪ ʊ ː ˈ``...), so that a sequence holding it is IPA (:func:`detect_alphabet`)."""
    return bool(_IPA_ONLY.search(label))


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
            ``"'a"``, ``"_:"``), an IPA phone (``"ˈaɪ"``, ``"yː"``, ``"ʁ"``), a silence
            label (``"SIL"``, ``"<sil>"``, ``"+NSN+"``, ``"_"``) or a stress mark
            (``"'"``, ``"ˈ"``).
        alphabet: ``"auto"`` (IPA when the label holds a non-ASCII character, else ARPAbet
            where the label is valid ARPAbet, else espeak), ``"arpabet"``, ``"espeak"`` or
            ``"ipa"``.

    Returns:
        a :class:`Phone`; unknown symbols give ``kind="phone"``, ``visemes=("NEU",)``.

    Raises:
        ValueError: ``label`` is not a string, or ``alphabet`` is not one of the four names.
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
    if alphabet == "ipa" or (alphabet == "auto" and is_ipa_label(s)):
        if set(s) <= set(_IPA_STRESS):
            return Phone(label, "mark", (), _IPA_STRESS[s[0]])
        p = _ipa(s)
        return p if p is not None else Phone(label, "phone", ("NEU",))
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
    """Classify a whole label sequence as ``"ipa"``, ``"espeak"`` or ``"arpabet"``.

    The sequence is IPA when any label holds a non-ASCII character (:func:`is_ipa_label`);
    else espeak when any label (other than silence and marks) is an espeak-only
    symbol (``"@"``, ``"aI"``, ``"i:"``, ``"a"``, ``"tS"`` ...); otherwise ARPAbet. This
    settles the symbols the two alphabets share (``T D S Z N V``). Non-string labels are
    skipped here (:func:`parse_phone` rejects them).
    """
    labels = [lab for lab in labels if isinstance(lab, str)]
    if any(is_ipa_label(lab) for lab in labels):
        return "ipa"
    for lab in labels:
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


def bilabial_frame_mask(phones, fps: float, n_frames: int,
                        alphabet: str = "auto") -> np.ndarray:
    """Frames of the bilabial stops and nasal (P, B, M in any alphabet :func:`parse_phone`
    reads: the phones whose visemes include ``PP``), each widened by one frame on each side
    as the closure measure counts them (:func:`phone_frames` with ``widen=1``).

    Args:
        phones: ``[(label, start_s, end_s)]``, seconds; fps: frames per second (> 0);
        n_frames: T; alphabet: how to read the labels (as :func:`parse_phone`; ``"auto"``
        decides over the whole sequence, :func:`detect_alphabet`).
    Returns:
        bool [T].
    Raises:
        ValueError: fps not finite and > 0.
    """
    m = np.zeros(int(n_frames), dtype=bool)
    if alphabet == "auto":
        alphabet = detect_alphabet(str(p[0]) for p in phones)
    for label, s, e in phones:
        if "PP" in parse_phone(str(label), alphabet).visemes:
            m[phone_frames(float(s), float(e), fps, n_frames, widen=1)] = True
    return m
