"""Festival's non-English voices (issue 20 §2): their phone sets read as IPA, real speech
with phones the teacher can shape, and the v6 corpus plan that draws them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from model_core.errors import DataError
from model_core.face import ARKIT_52
from model_core.training import corpus, tts
from model_core.training.phonemes import bilabial_frame_mask, parse_phone
from model_core.training.teacher import teacher_curves
from model_core.training.tts.festival_ipa import (FESTIVAL_ML_VOICES, FESTIVAL_PHONESETS,
                                                  PAUSE, festival_ipa)

IDX = {n: i for i, n in enumerate(ARKIT_52)}
FPS = 30

#: The phone-set definition each table was written from, as the Debian packages install it.
PHONESET_FILES = {
    "czech": "/usr/share/festival/czech.scm",
    "msu_ru": "/usr/share/festival/voices/russian/msu_ru_nsh_clunits/festvox/"
              "msu_ru_nsh_phoneset.scm",
    "upc_ca": "/usr/share/festival/upc_catalan/upc_catalan_phones-central.scm",
    "indic": "/usr/share/festival/hindi_scm/hindi_phones.scm",
}

#: A sentence per voice with bilabials in it (P/B/M), in the voice's own script.
BILABIAL_TEXT = {
    "cs": "Máma peče bábovku pro Pavla.", "ru": "Папа купил молоко и бублик.",
    "ca": "El pare compra pa i mel.", "hi": "बाबा पानी माँगते हैं।",
    "mr": "बाबा पाणी मागतात.", "te": "బాబు పాలు తాగాడు.",
}


#: The phone features the sets declare before their phones (same line shape as a phone).
_FEATURES = {"vc", "vlng", "vheight", "vfront", "vrnd", "ctype", "cplace", "cvox", "csoft",
             "syl", "postnas", "partner"}


def _phone_names(path: str) -> list[str]:
    """The phone names a Festival ``defPhoneSet`` declares (the lines whose first field is
    not a feature's name and whose second is ``+``, ``-`` or ``0``)."""
    text = Path(path).read_text(encoding="latin-1")
    body = text[text.index("defPhoneSet"):]
    body = body[:body.index("PhoneSet.silences")]
    names = []
    for line in body.splitlines():
        line = line.split(";", 1)[0]
        m = re.match(r"\s*\((\S+)\s+([-+0])\s", line)
        if m and m.group(1) not in _FEATURES:
            names.append(m.group(1))
    return names


@pytest.mark.parametrize("phoneset", sorted(PHONESET_FILES))
def test_every_phone_the_phone_set_declares_has_a_mouth(phoneset):
    """No phone of a voice's set falls to a neutral mouth: each is in the IPA table, and the
    teacher reads the IPA as a silence or as visemes."""
    path = PHONESET_FILES[phoneset]
    if not Path(path).exists():
        pytest.skip(f"{path} not installed (bash tools/setup_corpus.sh)")
    names = _phone_names(path)
    assert len(names) > 30, names
    table = FESTIVAL_PHONESETS[phoneset]
    missing = [n for n in names if n not in table]
    assert not missing, f"{phoneset}: no IPA for {missing}"
    assert not set(table) - set(names), f"{phoneset}: phones the set does not declare"
    for n in names:
        ipa = table[n]
        p = parse_phone(ipa, "ipa")
        assert ipa == PAUSE or p.visemes, (n, ipa, p)


def test_known_answers_per_class():
    """Bilabials stay bilabial (the closures the product is judged on), rounded vowels
    rounded, the palatalised and retroflex consonants keep their place."""
    def vis(voice, label):
        return parse_phone(festival_ipa([label], voice)[0], "ipa").visemes

    for voice, labels in (("czech_dita", ["p", "b", "m"]),
                          ("msu_ru_nsh_clunits", ["p", "pp", "b", "bb", "m", "mm"]),
                          ("upc_ca_ona_hts", ["p", "b", "m"]),
                          ("hindi_NSK_diphone", ["p", "b", "bh", "m"])):
        for lab in labels:
            assert "PP" in vis(voice, lab), (voice, lab)
    assert vis("czech_dita", "s~") == ("SH",) and vis("czech_dita", "f") == ("FF",)
    assert vis("msu_ru_nsh_clunits", "uu") == vis("czech_dita", "u")     # /u/ either way
    assert "PP" not in vis("msu_ru_nsh_clunits", "tt")                   # /tʲ/ is a T
    assert vis("upc_ca_ona_hts", "O1") == parse_phone("ɔ", "ipa").visemes
    assert festival_ipa(["pau", "a", "aa"], "hindi_NSK_diphone") == [PAUSE, "ə", "aː"]
    assert festival_ipa(["a", "oo"], "telugu_NSK_diphone") == ["a", "oː"]   # Telugu: ఓ
    assert festival_ipa(["oo", "ee"], "hindi_NSK_diphone") == ["ɔ", "ɛ"]    # Hindi: ऑ ॅ
    assert festival_ipa(["#", "r~"], "czech_ph") == [PAUSE, "r̝"]


def test_an_unknown_label_or_voice_is_named():
    with pytest.raises(DataError, match=r"'czech_dita' spoke phone 'qq'.*'czech' table"):
        festival_ipa(["a", "qq"], "czech_dita")
    with pytest.raises(DataError, match=r"'kal_diphone' has no IPA table"):
        festival_ipa(["pau"], "kal_diphone")


@pytest.mark.slow   # Festival
@pytest.mark.parametrize("voice", sorted(FESTIVAL_ML_VOICES))
def test_real_speech_in_ipa_closes_on_bilabials(voice):
    """A sentence in the voice's language: IPA phones covering the wave, bilabials where the
    text has them, and the teacher's lips shut on them and open on the vowels."""
    if shutil.which("festival") is None or voice not in tts.festival_ml_voices():
        pytest.skip(f"Festival voice {voice} not installed "
                    f"(apt-get install -y {FESTIVAL_ML_VOICES[voice].package})")
    clip = tts.festival_synthesize(BILABIAL_TEXT[FESTIVAL_ML_VOICES[voice].language], voice)
    assert clip.settings["alphabet"] == "ipa" and clip.engine == "festival"
    ph = clip.phones
    assert ph[0][1] == 0.0 and abs(ph[-1][2] - clip.duration_s) < 1e-6
    assert all(a[2] == b[1] for a, b in zip(ph, ph[1:]))
    assert ph[0][0] == PAUSE and ph[-1][0] == PAUSE
    n = int(clip.duration_s * FPS)
    mask = bilabial_frame_mask(ph, FPS, n, alphabet="ipa")
    assert mask.sum() >= 3
    y = teacher_curves(ph, clip.duration_s, FPS, np.random.default_rng(0), alphabet="ipa")
    vowels = np.zeros(n, bool)
    for lab, s, e in ph:
        if parse_phone(lab, "ipa").visemes and parse_phone(lab, "ipa").visemes[0] in (
                "AA", "AH", "AE", "EH", "AO"):
            vowels[int(np.ceil(s * FPS)):int(np.ceil(e * FPS))] = True
    jaw = y[:n, IDX["jawOpen"]] - y[:n, IDX["mouthClose"]]
    assert vowels.any()
    assert jaw[vowels].mean() > jaw[mask].mean() + 0.1


@pytest.mark.slow   # Festival
def test_text_outside_the_voices_encoding_is_refused_by_name():
    if shutil.which("festival") is None or "czech_dita" not in tts.festival_ml_voices():
        pytest.skip("festvox-czech-dita not installed")
    with pytest.raises(ValueError, match=r"'czech_dita' reads iso-8859-2 text; 'Д'"):
        tts.festival_synthesize("Dobrý den Д.", "czech_dita")


def test_v6_plan_draws_the_festival_voices_in_their_languages(monkeypatch):
    """The v6 plan gives Festival's non-English voices their share, each reading its own
    language; without them (v4, v5) a plan is drawn exactly as before."""
    monkeypatch.setattr(corpus, "_text", lambda lang, rng, **kw: f"text in {lang}")
    kw = dict(espeak_voices=["en-us"], festival_voices=["kal_diphone"],
              sentences=["A short one.", "Another one here."])
    fml = {"czech_dita": "cs", "upc_ca_ona_hts": "ca", "telugu_NSK_diphone": "te",
           "a_voice_without_text": "xx"}
    v5 = corpus.plan_jobs_v4(400, 3, **kw)
    assert [vars(j) for j in corpus.plan_jobs_v4(400, 3, festival_ml_voices=fml, **kw)] == \
        [vars(j) for j in v5]                                   # V4_SHARES: no festival-ml
    v6 = corpus.plan_jobs_v4(400, 3, festival_ml_voices=fml, shares=corpus.V6_SHARES, **kw)
    ml = [j for j in v6 if j.voice in fml]
    # 0.10 of the shares among the engines with voices here (no MBROLA, no Piper): 0.23
    assert 60 <= len(ml) <= 120, len(ml)
    assert {j.voice for j in ml} == {"czech_dita", "upc_ca_ona_hts", "telugu_NSK_diphone"}
    assert all(j.engine == "festival" and j.text == f"text in {fml[j.voice]}"
               and j.language == fml[j.voice] for j in ml)
    assert any(j.world for j in ml) and not all(j.world for j in ml)
    assert abs(sum(corpus.V6_SHARES.values()) - 1.0) < 1e-9


def test_festival_ml_alone_needs_the_v6_recipe(tmp_path):
    """Asking for the non-English Festival voices with a recipe that does not draw them is
    refused by name before anything is written."""
    from model_core.errors import SettingError
    with pytest.raises(SettingError, match="use --recipe v6"):
        corpus.build_corpus(tmp_path / "c", 10, engines=("festival-ml",), recipe="v5",
                            progress=False)
    assert not (tmp_path / "c").exists()


@pytest.mark.slow   # eSpeak NG
def test_telugu_words_from_the_hunspell_dictionary():
    """Telugu, which wordfreq lacks, reads words of Debian's hunspell-te: whole words in
    Telugu script that eSpeak reads in Telugu alone."""
    import unicodedata
    from model_core.training.texts import HUNSPELL_WORDS, wordfreq_text
    if not Path(HUNSPELL_WORDS["te"][0]).exists():
        pytest.skip("hunspell-te not installed (bash tools/setup_corpus.sh)")
    rng = np.random.default_rng(0)
    texts = [wordfreq_text("te", rng, own_script=True) for _ in range(5)]
    assert len({t for t in texts}) == 5
    for t in texts:
        words = t.rstrip(".").split()
        assert 6 <= len(words) <= 16
        assert all(unicodedata.name(c).startswith("TELUGU") for w in words for c in w), t
        assert not tts.language_switches(t, "te"), t


@pytest.mark.slow   # Festival, eSpeak NG
def test_festival_evalset_is_the_same_on_every_build(tmp_path):
    """make-evalset --recipe festival-ml: each voice's clips in its language with IPA phones
    covering the wave, no digits (the Russian voice cannot read them), byte for byte the
    same when built again; --split is refused by name."""
    import json
    import subprocess
    import sys
    from model_core.training.texts import HUNSPELL_WORDS
    if shutil.which("festival") is None or set(tts.festival_ml_voices()) != set(
            FESTIVAL_ML_VOICES) or not Path(HUNSPELL_WORDS["te"][0]).exists():
        pytest.skip("the Festival voices or hunspell-te are not all installed "
                    "(bash tools/setup_corpus.sh)")
    a = corpus.build_festival_evalset(tmp_path / "a", per_voice=2, seed=3)
    b = corpus.build_festival_evalset(tmp_path / "b", per_voice=2, seed=3)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 1 + 2 * 2 * len(FESTIVAL_ML_VOICES)
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    info = json.loads((a / "heldout.json").read_text())
    assert info["recipe"] == "festival-ml" and info["voices"] == list(FESTIVAL_ML_VOICES)
    for voice, v in FESTIVAL_ML_VOICES.items():
        for side in sorted((a / "speech" / voice).glob("*.phones.json")):
            clip = json.loads(side.read_text(encoding="utf-8"))
            assert clip["language"] == v.language and clip["alphabet"] == "ipa"
            assert not any(c.isdigit() for c in clip["text"])
            assert clip["phones"][0][1] == 0.0
    with pytest.raises(FileExistsError, match="not empty"):
        corpus.build_festival_evalset(a, per_voice=1)
    r = subprocess.run([sys.executable, "-m", "model_core.cli", "make-evalset",
                        str(tmp_path / "c"), "--recipe", "festival-ml", "--split", "dev"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "--split is for --recipe v4" in r.stderr
