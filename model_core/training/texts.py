"""Text for the corpus in many languages, offline.

Two sources, both installed from package registries:

* **Sentences** from Debian's fortune packages (``fortunes`` and ``fortunes-min`` for
  English; ``fortunes-de``, ``-es``, ``-it``, ``-pl``, ``-ru``, ``-cs``, ``-br`` (Brazilian
  Portuguese), ``-bg``): quotations, proverbs, jokes; :func:`fortune_sentences`.
* **Word sequences** for every language of PyPI ``wordfreq`` (about 40), and Telugu from
  Debian's ``hunspell-te`` dictionary (:data:`HUNSPELL_WORDS`, uniform): words drawn from the
  language's 5 000 most frequent, weighted by the square root of their frequency (from the
  rank, by Zipf's law: ``1 / sqrt(rank)``; function
  words stay common, content words appear), 6-16 words; Japanese turned into hiragana with
  PyPI ``pykakasi`` (eSpeak NG reads Japanese only as kana); :func:`wordfreq_text`.

The lip-sync model needs phones in the proportions a language has them, which both give;
the sentences add the prosody of real phrases. A tenth of the sentences (by hash) is held
out for evaluation sets, as for English (:func:`is_heldout_sentence`).
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from pathlib import Path
from ..errors import InputNotFoundError, SettingError

__all__ = ["FORTUNE_DIRS", "FORTUNE_FILES", "HUNSPELL_WORDS", "WORDFREQ_LANGUAGE", "fortune_files",
           "fortune_sentences", "is_heldout_sentence", "text_language", "wordfreq_text"]

FORTUNE_DIRS = (Path("/usr/share/games/fortunes"), Path("/usr/share/fortunes"))

#: Language -> the fortune files and folders (relative to a :data:`FORTUNE_DIRS` folder)
#: its Debian package installs. English is every other top-level file (``fortunes``,
#: ``fortunes-min``).
FORTUNE_FILES: dict[str, tuple[str, ...]] = {
    "de": ("de",), "es": ("es",), "pl": ("pl",), "ru": ("ru",), "cs": ("cs", "cz"),
    "sk": ("sk",), "bg": ("bg",), "pt": ("brasil",),
    "it": ("it", "adams", "banner", "computer", "definizioni", "formiche", "italia",
           "itatrek", "jackfr", "leggi", "luke", "luttazzi", "norm", "paolotedeschi", "zuse"),
}
_NOT_ENGLISH = frozenset(n for names in FORTUNE_FILES.values() for n in names) | {"off"}

#: eSpeak NG / MBROLA language code -> the wordfreq language whose words it reads (the
#: nearest where wordfreq has none: Afrikaans reads Dutch words, Estonian Finnish ones,
#: Marathi Hindi ones, both in Devanagari).
WORDFREQ_LANGUAGE: dict[str, str] = {
    "af": "nl", "et": "fi", "hr": "sh", "sr": "sh", "bs": "sh", "nb": "nb", "no": "nb",
    "cmn": "zh", "yue": "zh", "mr": "hi",
}


def text_language(code: str) -> str:
    """The base language of an eSpeak / MBROLA language code: ``"pt-br"`` -> ``"pt"``,
    ``"fr-ca"`` -> ``"fr"``, ``"en-us"`` -> ``"en"``."""
    return code.lower().split("-")[0].split("_")[0]


def is_heldout_sentence(sentence: str) -> bool:
    """True for the tenth of sentences kept for evaluation (SHA-1's first byte % 10 == 0)."""
    return hashlib.sha1(sentence.encode("utf-8")).digest()[0] % 10 == 0


def fortune_files(language: str = "en") -> list[Path]:
    """The installed fortune files of a language (``[]`` when none is installed)."""
    lang = text_language(language)
    out = []
    for d in FORTUNE_DIRS:
        if not d.is_dir():
            continue
        if lang == "en":
            out += [f for f in sorted(d.iterdir()) if f.is_file() and not f.suffix
                    and not f.name.startswith(".") and f.name not in _NOT_ENGLISH]
            continue
        for name in FORTUNE_FILES.get(lang, ()):
            p = d / name
            if p.is_dir():
                out += [f for f in sorted(p.iterdir()) if f.is_file()
                        and f.suffix not in (".dat", ".u8") and not f.name.startswith(".")]
            elif p.is_file():
                out.append(p)
    return out


@functools.lru_cache(maxsize=32)
def fortune_sentences(language: str, min_words: int = 4, max_words: int = 24,
                      split: str = "all") -> tuple[str, ...]:
    """Sentences of a language from its fortune files, deduplicated and sorted.

    A sentence is kept when it has ``min_words``..``max_words`` words, only letters (any
    script), spaces and ``,.;:!?'"-``, at most two digits, and no all-capital word of two
    or more letters beyond one (ascii art, code, tables, URLs and shouting are skipped).

    Args:
        language: a language code (``"de"``, ``"pt-br"``, ``"en"``).
        split: ``"all"``, ``"train"`` (not held out) or ``"heldout"``.
    Returns:
        a tuple of sentences (empty when the language has no fortune files installed).
    Raises:
        ValueError: unknown split.
    """
    if split not in ("all", "train", "heldout"):
        raise SettingError(f"split must be 'all', 'train' or 'heldout', got {split!r}")
    out = set()
    for f in fortune_files(language):
        text = f.read_bytes().decode("utf-8", "ignore")
        for entry in text.split("\n%\n"):
            if re.search(r"[|_<>{}\[\]\\/=@#$^*~`]|http|www\.", entry) or \
                    re.search(r"\t|  {3,}", entry):
                continue
            entry = re.sub(r"\s+", " ", entry).strip()
            entry = re.sub(r"^-+\s*|\s+--\s.*$", "", entry)
            for s in re.split(r"(?<=[.!?])\s+", entry):
                s = s.strip(" \"'()«»„“”-–—,;:.…")
                s = s + "." if s and s[-1] not in "!?" else s
                words = s.split()
                if not (min_words <= len(words) <= max_words):
                    continue
                if re.search(r"[^\w ,.;:!?'\"-]|_", s) or sum(c.isdigit() for c in s) > 2:
                    continue
                if sum(w.isupper() and len(w) > 1 for w in words) > 1:
                    continue
                out.add(s)
    if split != "all":
        out = {x for x in out if is_heldout_sentence(x) == (split == "heldout")}
    return tuple(sorted(out))


def _latin(word: str) -> bool:
    """Whether ``word`` has a Latin letter (``"the"``, ``"café"``; not ``"घर"``)."""
    return any(unicodedata.name(c, "").startswith("LATIN") for c in word)


def _word(word: str) -> bool:
    """Whether ``word`` is letters and combining marks only (``"नहीं"``, whose vowel signs
    ``str.isalpha`` refuses)."""
    return bool(word) and all(unicodedata.category(c)[0] in "LM" for c in word) \
        and unicodedata.category(word[0])[0] == "L"


#: Languages wordfreq lacks whose words come from a Debian hunspell dictionary instead
#: (language -> (dictionary file, package)); its words are drawn uniformly (a dictionary
#: has no frequencies).
HUNSPELL_WORDS: dict[str, tuple[str, str]] = {
    "te": ("/usr/share/hunspell/te_IN.dic", "hunspell-te"),
}


def _hunspell_words(lang: str, own_script: bool) -> list[str]:
    """The words of ``lang``'s hunspell dictionary (affix flags dropped; with
    ``own_script`` only whole words of letters and marks, none in Latin letters), at most
    12 characters long (a dictionary's long compounds are rare in speech).

    Raises:
        InputNotFoundError: the dictionary is not installed (names its package)."""
    path, package = HUNSPELL_WORDS[lang]
    if not Path(path).exists():
        raise InputNotFoundError(f"{path} not found: the {lang!r} word list is Debian's "
                                 f"{package} (apt-get install -y {package}, or bash "
                                 f"tools/setup_corpus.sh)")
    lines = Path(path).read_text(encoding="utf-8").splitlines()[1:]   # first: the count
    words = [w.split("/", 1)[0].strip() for w in lines]
    ok = (lambda w: _word(w) and not _latin(w)) if own_script else str.isalpha
    return [w for w in words if w and len(w) <= 12 and ok(w)]


@functools.lru_cache(maxsize=64)
def _wordlist(lang: str, own_script: bool = False):
    import numpy as np
    import wordfreq
    if lang in HUNSPELL_WORDS and lang not in wordfreq.available_languages():
        words = _hunspell_words(lang, own_script)
        if not words:
            raise SettingError(f"{HUNSPELL_WORDS[lang][0]} holds no words")
        return words, np.full(len(words), 1.0 / len(words))
    try:
        ranked = wordfreq.top_n_list(lang, 5000)
    except LookupError:
        raise SettingError(f"wordfreq has no word list for language {lang!r} (its languages: "
                         f"{', '.join(sorted(wordfreq.available_languages()))})") from None
    keep = [k for k, w in enumerate(ranked) if (_word(w) if own_script else w.isalpha())]
    if own_script and sum(map(_latin, (ranked[k] for k in keep))) < len(keep) / 2:
        keep = [k for k in keep if not _latin(ranked[k])]   # English words in a Hindi list
    if not keep:
        raise SettingError(f"wordfreq has no words for language {lang!r}")
    # Zipf: frequency ~ 1 / rank, so sqrt(frequency) ~ 1 / sqrt(rank)
    p = 1.0 / np.sqrt(np.array(keep, np.float64) + 1.0)
    return [ranked[k] for k in keep], p / p.sum()


@functools.lru_cache(maxsize=1)
def _kakasi():
    import pykakasi
    return pykakasi.kakasi()


def wordfreq_text(language: str, rng, n_words: int | None = None,
                  own_script: bool = False) -> str:
    """A sequence of frequent words of ``language`` (PyPI wordfreq; for a language of
    :data:`HUNSPELL_WORDS`, any words of its hunspell dictionary), for a TTS voice to read.

    Args:
        language: an eSpeak / MBROLA language code (``"de"``, ``"pt-br"``, ``"ja"``...);
            mapped through :data:`WORDFREQ_LANGUAGE` where wordfreq has no list of its own.
        rng: a ``random.Random`` or ``numpy.random.Generator``.
        n_words: words (default 6-16, drawn).
        own_script: words whole (letters and combining marks: Hindi "नहीं", which
            ``str.isalpha`` refuses, so that only the words without vowel signs were
            drawn, 479 of Hindi's 5000 and 180 of Tamil's), and for a language most of whose
            words are not in Latin letters (Hindi, Tamil, Russian, ...) none in Latin
            letters (wordfreq's lists hold English words: "the", "if"; eSpeak reads them in
            English). False draws as the v4 corpus and the held-out sets were drawn.
    Returns:
        the words joined by spaces (Japanese: hiragana, no spaces), ending in a full stop.
    Raises:
        ValueError: wordfreq does not know the language.
        FileNotFoundError: a :data:`HUNSPELL_WORDS` dictionary is not installed.
        ImportError: wordfreq (or, for Japanese, pykakasi) is not installed
            (``pip install wordfreq pykakasi``).
    """
    import numpy as np
    lang = text_language(language)
    lang = WORDFREQ_LANGUAGE.get(lang, lang)
    words, p = _wordlist(lang, own_script)
    n = int(n_words) if n_words else 6 + int(rng.random() * 11)
    cdf = np.cumsum(p)
    picks = [words[min(int(np.searchsorted(cdf, rng.random())), len(words) - 1)]
             for _ in range(n)]
    if lang == "ja":
        return "".join(x["hira"] for x in _kakasi().convert("".join(picks))) + "。"
    return " ".join(picks) + "."
