"""Festival's non-English voices: which Debian package holds each, the language it speaks,
the text encoding its front end reads, and its phone set's names in IPA.

Festival's ``Segment`` relation names phones in the voice's own phone set (``czech.scm``'s
SAMPA-like ``s~ c~ r~``, the MSU Russian set's ``tt`` for /tʲ/, UPC Catalan's ``ax E1``,
the CMU Indic ``th aa ksh``). The teacher reads IPA for every language, so
:func:`festival_ipa` turns a voice's labels into IPA; a label the table lacks is an error
(it would fall to a neutral mouth), named with its voice. Each table names exactly the
phones its set declares (Festival refuses any other), written from the phone-set
definitions the packages install (``/usr/share/festival/czech.scm``,
``.../msu_ru_nsh_clunits/festvox/msu_ru_nsh_phoneset.scm``,
``.../upc_catalan/upc_catalan_phones-central.scm`` (the set ``upc_ca_ona_hts`` selects),
``.../hindi_scm/hindi_phones.scm`` and the Marathi and Telugu ones, the same set) and the
letter-to-sound rules that use them (``hindi_lex.scm``: ``oo`` and ``ee`` are the candra
vowels ऑ ॅ, /ɔ/ and /ɛ/; Telugu's ``oo`` and ``ee`` are ఓ ఏ). ``tests/test_festival_ipa.py``
checks every declared phone and one sentence of real speech per voice.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import DataError

__all__ = ["FestivalVoice", "FESTIVAL_ML_VOICES", "FESTIVAL_PHONESETS", "festival_ipa"]


@dataclass(frozen=True)
class FestivalVoice:
    """A non-English Festival voice.

    Attributes:
        package: the Debian package that installs it (``apt-get install -y PACKAGE``).
        language: eSpeak NG / MBROLA style language code of what it reads (``"cs"``).
        encoding: the text encoding its front end reads (Czech ISO-8859-2, Catalan
            ISO-8859-1, the others UTF-8).
        phoneset: key of :data:`FESTIVAL_PHONESETS`.
        sample: a short sentence in its language (the check that the voice works).
    """

    package: str
    language: str
    encoding: str
    phoneset: str
    sample: str


_CS = "Dobrý den, mám se dobře."
#: Festival's voices recorded from people in languages other than English (Debian main):
#: voice name -> :class:`FestivalVoice`. Issue 20 names them as training voices.
FESTIVAL_ML_VOICES: dict[str, FestivalVoice] = {
    "czech_dita": FestivalVoice("festvox-czech-dita", "cs", "iso-8859-2", "czech", _CS),
    "czech_krb": FestivalVoice("festvox-czech-krb", "cs", "iso-8859-2", "czech", _CS),
    "czech_machac": FestivalVoice("festvox-czech-machac", "cs", "iso-8859-2", "czech", _CS),
    "czech_ph": FestivalVoice("festvox-czech-ph", "cs", "iso-8859-2", "czech", _CS),
    "msu_ru_nsh_clunits": FestivalVoice("festvox-ru", "ru", "utf-8", "msu_ru",
                                        "Добрый день, как дела?"),
    "upc_ca_ona_hts": FestivalVoice("festvox-ca-ona-hts", "ca", "iso-8859-1", "upc_ca",
                                    "Bon dia, com estàs?"),
    "hindi_NSK_diphone": FestivalVoice("festvox-hi-nsk", "hi", "utf-8", "indic",
                                       "नमस्ते, आप कैसे हैं?"),
    "marathi_NSK_diphone": FestivalVoice("festvox-mr-nsk", "mr", "utf-8", "indic",
                                         "नमस्कार, तुम्ही कसे आहात?"),
    "telugu_NSK_diphone": FestivalVoice("festvox-te-nsk", "te", "utf-8", "indic_te",
                                        "నమస్కారం, మీరు ఎలా ఉన్నారు?"),
}

#: The pause label every table maps silences to (the teacher's silence, as MBROLA's ``_``).
PAUSE = "_"

_CZECH = {
    "#": PAUSE, "_": "ʔ", "a": "a", "a:": "aː", "e": "ɛ", "e:": "ɛː", "i": "ɪ", "i:": "iː",
    "o": "o", "o:": "oː", "u": "u", "u:": "uː",
    "b": "b", "c": "ts", "c~": "tʃ", "ch": "x", "d": "d", "d~": "ɟ", "dz": "dz", "dz~": "dʒ",
    "f": "f", "g": "ɡ", "h": "ɦ", "j": "j", "k": "k", "l": "l", "m": "m", "n": "n",
    "n*": "ŋ", "n~": "ɲ", "p": "p", "r": "r", "r~": "r̝", "r~*": "r̝", "s": "s", "s~": "ʃ",
    "t": "t", "t~": "c", "v": "v", "z": "z", "z~": "ʒ",
}
_RUSSIAN = {
    "pau": PAUSE, "ii": "i", "yy": "ɨ", "uu": "u", "ee": "e", "oo": "o", "aa": "a",
    "a": "ɐ", "e": "e", "i": "ɪ", "y": "ɨ", "u": "ʊ", "ae": "ə", "ay": "ɪ", "ur": "ʊ",
    "p": "p", "pp": "pʲ", "b": "b", "bb": "bʲ", "t": "t", "tt": "tʲ", "d": "d", "dd": "dʲ",
    "k": "k", "kk": "kʲ", "g": "ɡ", "gg": "ɡʲ", "c": "ts", "ch": "tɕ", "f": "f", "ff": "fʲ",
    "v": "v", "vv": "vʲ", "s": "s", "ss": "sʲ", "z": "z", "zz": "zʲ", "sh": "ʂ", "sch": "ɕ",
    "zh": "ʐ", "h": "x", "hh": "xʲ", "m": "m", "mm": "mʲ", "n": "n", "nn": "nʲ", "l": "ɫ",
    "ll": "lʲ", "r": "r", "rr": "rʲ", "j": "j",
}
_CATALAN = {
    "pau": PAUSE, "_": PAUSE, "#": PAUSE,
    "ax": "ə", "a": "a", "a1": "a", "e": "e", "e1": "e", "E": "ɛ", "E1": "ɛ", "i": "i",
    "i1": "i", "o": "o", "o1": "o", "O": "ɔ", "O1": "ɔ", "u": "u", "u1": "u", "j": "j",
    "w": "w", "b": "b", "d": "d", "f": "f", "g": "ɡ", "J": "ɲ", "k": "k", "l": "l",
    "L": "ʎ", "m": "m", "n": "n", "p": "p", "r": "ɾ", "rr": "r", "s": "s", "S": "ʃ",
    "t": "t", "z": "z", "Z": "ʒ",
}
# The CMU Indic set of the NSK voices (festival-hi, -mr, -te): "a" is Hindi and Marathi's
# short /ə/; "oo" and "ee" their candra vowels ऑ ॅ (/ɔ/, /ɛ/); "w" a rounded glide;
# "ksh" the cluster kʃ, "sri" ʃr (one phone here: the lips of its ʃ).
_INDIC = {
    "pau": PAUSE, "a": "ə", "aa": "aː", "ih": "ɪ", "iy": "iː", "uh": "ʊ", "uw": "uː",
    "eh": "eː", "ee": "ɛ", "ay": "ɛː", "oh": "o", "oo": "ɔ", "aw": "ɔː", "@": "ə",
    "w": "w", "f": "f", "k": "k", "g": "ɡ", "ch": "tʃ", "T": "ʈ", "D": "ɖ", "N": "ɳ",
    "th": "t̪", "dh": "d̪", "n": "n", "p": "p", "b": "b", "m": "m", "y": "j", "r": "ɾ",
    "l": "l", "v": "ʋ", "L": "ɭ", "R": "ɽ", "s": "s", "sh": "ʃ", "j": "dʒ", "h": "ɦ",
    "ksh": "kʃ", "sri": "ʃ", "x": "ə", "kh": "kʰ", "gh": "ɡʱ", "td": "ʈʰ", "tth": "t̪ʰ",
    "ddh": "d̪ʱ", "bh": "bʱ", "zh": "ʒ",
}
#: Phone set name -> {Festival label: IPA}.
FESTIVAL_PHONESETS: dict[str, dict[str, str]] = {
    "czech": _CZECH, "msu_ru": _RUSSIAN, "upc_ca": _CATALAN, "indic": _INDIC,
    # Telugu's short a is open, not /ə/; its oo, ee are the long mid vowels ఓ ఏ
    "indic_te": {**_INDIC, "a": "a", "oo": "oː", "ee": "eː"},
}


def festival_ipa(labels, voice: str) -> list[str]:
    """Festival ``Segment`` names of ``voice`` (a key of :data:`FESTIVAL_ML_VOICES`) in IPA.

    Args:
        labels: iterable of str, the voice's phone-set names in order.
        voice: the Festival voice that spoke them.

    Returns:
        list of str, one IPA label per input label; silences are ``"_"``.

    Raises:
        DataError: ``voice`` is not a known non-English voice, or a label is not in its
            phone set's table (names the label and the voice: the table needs it).
    """
    if voice not in FESTIVAL_ML_VOICES:
        raise DataError(f"Festival voice {voice!r} has no IPA table; known: "
                        f"{', '.join(FESTIVAL_ML_VOICES)}")
    table = FESTIVAL_PHONESETS[FESTIVAL_ML_VOICES[voice].phoneset]
    out = []
    for label in labels:
        ipa = table.get(label)
        if ipa is None:
            raise DataError(f"Festival voice {voice!r} spoke phone {label!r}, which "
                            f"model_core/training/tts/festival_ipa.py's "
                            f"{FESTIVAL_ML_VOICES[voice].phoneset!r} table does not name")
        out.append(ipa)
    return out
