"""Where eSpeak NG 1.51's IPA phoneme names are not IPA, and what they stand for.

eSpeak gives a phoneme that its phoneme tables define without an ``ipa`` name the IPA
reading of its ASCII mnemonic. For most phonemes that is right; for a few it names a
different sound, and the teacher (:mod:`model_core.training.teacher`) and the lip-gap
measures would read it as that sound:

* Brazilian Portuguese writes its unstressed final /ɪ/ (``sabe`` [ˈsabɪ]) as ``y`` — a
  front *rounded* vowel, so the teacher puckered the lips on it — and its unstressed /ɐ/
  as ``æ``. eSpeak NG 1.53 renames both (``ɪ``, ``ɐ``; its 2026 Portuguese update); the
  MBROLA voices render them with their ``i`` and ``a`` diphones (br1-br4) or ``@`` and
  ``6`` (X-SAMPA ɨ, ɐ: European pt1, whose eSpeak voice uses the same names).
* Russian ``ы`` /ɨ/ and Vietnamese ``ư`` /ɨ/ are ``y``; Ukrainian ``и`` after a hard
  consonant /ɪ/ is ``y``. None of these languages has a front rounded vowel.
* Croatian writes its unstressed /a/ as ``æ``.
* German ``UR`` (``durch``, [ʊɐ̯]) has no name at all and comes out as ``??``.
* Marks of the mnemonics that are not IPA: a standalone ``ʲ`` event (a palatal off-glide,
  eSpeak's ``;``: Polish, Russian, Japanese, Lithuanian), Danish stød written ``?``, the
  Greek letter ``ε`` for ``ɛ``, and trailing ``^`` ``"`` `````` ``#`` (palatal, fronted,
  retroflex, voiceless variants).

Public API::

    espeak_ipa_name("y", "pt-br")      # "ɪ"
    espeak_ipa_name("ʲ", "pl")         # "j"
    ESPEAK_IPA_FIXES                   # {language: {eSpeak name: IPA}}
    espeak_ipa_digest()                # recorded by corpora and held-out sets
"""

from __future__ import annotations

import hashlib
import json

__all__ = ["ESPEAK_IPA_FIXES", "espeak_ipa_name", "espeak_ipa_digest"]

#: Per eSpeak language: characters (or whole names) of eSpeak NG 1.51's IPA names to
#: replace, in order. A language not listed here is matched by its first part
#: (``"pt-pt"`` → ``"pt"``), never a listed variant by its parent (``"pt-br"`` keeps
#: its own entry).
ESPEAK_IPA_FIXES: dict[str, dict[str, str]] = {
    "pt-br": {"y": "ɪ", "æ": "ɐ"},
    "pt": {"y": "ɨ", "æ": "ɐ"},
    "ru": {"y": "ɨ", 'u"': "ʉ"},
    "uk": {"y": "ɪ"},
    "vi": {"y": "ɨ"},
    "hr": {"æ": "ɐ"},
    "de": {"??": "ʊɐ"},
}

#: Any language: whole names, then leading and trailing marks that are not IPA.
_WHOLE = {"ʲ": "j", "ε": "ɛ"}
_LEADING = {"?": "ʔ"}
_TRAILING = "^\"`#"


def _fixes(language: str) -> dict[str, str]:
    lang = (language or "").split("+", 1)[0].lower()
    if lang in ESPEAK_IPA_FIXES:
        return ESPEAK_IPA_FIXES[lang]
    return ESPEAK_IPA_FIXES.get(lang.split("-", 1)[0], {})


def espeak_ipa_name(name: str, language: str) -> str:
    """The IPA of one eSpeak NG phoneme event's name (module docstring).

    Args:
        name: the event's name as eSpeak gave it (``espeakEVENT_PHONEME`` with IPA names),
            e.g. ``"y"``, ``"ˈaɪ"``; pauses and ``""`` come back unchanged.
        language: the eSpeak language or voice that spoke it (``"pt-br"``, ``"pt-br+f3"``,
            ``"pt-pt"``; for an MBROLA voice its eSpeak language, e.g. ``"pt-pt"`` for pt1).
    Returns:
        the name with :data:`ESPEAK_IPA_FIXES` for that language and the marks above
        applied; a name that needs none is returned as it was.
    """
    if not name or name.startswith("_"):
        return name
    for old, new in _fixes(language).items():
        name = name.replace(old, new)
    name = _WHOLE.get(name, name)
    for old, new in _LEADING.items():
        if name.startswith(old) and len(name) > len(old):
            name = new + name[len(old):]
    stripped = name.rstrip(_TRAILING)
    return stripped or name


def espeak_ipa_digest() -> str:
    """The first 12 hex digits of the SHA-256 of the fixes above: corpora
    (``request.json``, ``corpus.json``) and held-out sets (``heldout.json``) record it, so
    that two builds name eSpeak's phones alike only under the same fixes."""
    blob = json.dumps([ESPEAK_IPA_FIXES, _WHOLE, _LEADING, _TRAILING], ensure_ascii=False,
                      sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]
