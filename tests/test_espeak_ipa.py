"""eSpeak NG 1.51's IPA names that are not IPA (model_core.training.tts.espeak_ipa): known
answers per language, and on real eSpeak speech the teacher no longer puckers the lips on
Brazilian Portuguese's final unstressed e."""

from __future__ import annotations

import numpy as np
import pytest

from model_core.face import ARKIT_52
from model_core.training.phonemes import parse_phone
from model_core.training.tts.espeak_ipa import (ESPEAK_IPA_FIXES, espeak_ipa_digest,
                                                espeak_ipa_name)

IDX = {n: i for i, n in enumerate(ARKIT_52)}


@pytest.mark.parametrize("name, language, want", [
    ("y", "pt-br", "ɪ"), ("æ", "pt-br", "ɐ"), ("y", "pt-br+f3", "ɪ"),     # sabe, casa
    ("y", "pt-pt", "ɨ"), ("æ", "pt-pt", "ɐ"), ("y", "pt", "ɨ"),           # mb-pt1
    ("y", "ru", "ɨ"), ('u"', "ru", "ʉ"), ("y", "uk", "ɪ"),                # ы, ю
    ("y", "vi", "ɨ"), ("yə", "vi", "ɨə"),                                 # ư, ươ
    ("æ", "hr", "ɐ"), ("??", "de", "ʊɐ"),                                 # mama, durch
    ("ʲ", "pl", "j"), ("ε", "da", "ɛ"), ("?ɑ", "da", "ʔɑ"),               # marks, any language
    ("s^", "et", "s"), ("r#", "is", "r"), ("a`", "lv", "a"), ("ɪ^", "ru", "ɪ"),
])
def test_known_answers(name, language, want):
    assert espeak_ipa_name(name, language) == want
    assert parse_phone(want, "ipa").visemes[0] != "NEU"


@pytest.mark.parametrize("name, language", [
    ("y", "fr-fr"), ("y", "de"), ("y", "tr"), ("y", "is"),     # real front rounded vowels
    ("æ", "en-us"), ("æ", "fi"), ("tʲ", "ru"), ("_", "pt-br"),
    ("", "pt-br"), ("ˈaɪ", "pt-br"), ("ʔ", "de"),
])
def test_names_that_are_ipa_stay(name, language):
    """Where the name is the sound (French, German, Turkish, Icelandic y; Finnish ä; a
    palatalised consonant; pauses), nothing changes."""
    assert espeak_ipa_name(name, language) == name


def test_a_variant_keeps_its_own_entry_and_the_digest_follows_the_table(monkeypatch):
    assert espeak_ipa_name("y", "pt-br") != espeak_ipa_name("y", "pt-pt")
    d = espeak_ipa_digest()
    assert len(d) == 12 and d == espeak_ipa_digest()
    monkeypatch.setitem(ESPEAK_IPA_FIXES, "xx", {"y": "ɨ"})
    assert espeak_ipa_digest() != d


@pytest.mark.slow   # TTS
def test_brazilian_final_e_is_not_rounded_by_the_teacher():
    """eSpeak speaks "sabe ... eles" with an unrounded final /ɪ/; the clip's phones say
    so, and the teacher's pucker there is far below its pucker on the /u/ of "tudo"."""
    from model_core.training.teacher import teacher_curves
    from model_core.training.tts import espeak_synthesize
    clip = espeak_synthesize("sabe que eles tudo", "pt-br", ipa=True)
    labels = [p[0] for p in clip.phones]
    assert "y" not in labels and labels.count("ɪ") >= 2, labels
    assert not any(parse_phone(lab, "ipa").visemes[0] in ("UE", "OE") for lab in labels)
    fps = 30
    w = teacher_curves(clip.phones, len(clip.samples) / clip.sample_rate, fps,
                       np.random.default_rng(0), alphabet="ipa")
    rnd = w[:, IDX["mouthPucker"]] + w[:, IDX["mouthFunnel"]]

    def peak(label):
        return max(rnd[int(s * fps):max(int(s * fps) + 1, int(e * fps))].max()
                   for lab, s, e in clip.phones if lab == label)
    assert peak("ɪ") < 0.5 * peak("u")
