"""The multilingual side: the teacher on IPA phones, MBROLA voices with exact IPA timing,
text in many languages, the v4 corpus and its held-out set, and the lip-gap measures on
IPA phones (model_core.training.phonemes / teacher / mbrola / texts / corpus,
model_core.evaluation.metrics)."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest

from model_core.face import ARKIT_52, VISEME_CLASSES
from model_core.training.phonemes import (IPA_TO_VISEMES, detect_alphabet, ipa_feature_class,
                                          parse_phone, bilabial_frame_mask)
from model_core.training.teacher import VISEME_TARGETS, teacher_curves

IDX = {n: i for i, n in enumerate(ARKIT_52)}
FPS = 30


def vis(label):
    return parse_phone(label, "ipa").visemes


# ------------------------------------------------------------------------------------------
# IPA -> mouth classes (known answers, one per class the issue names)
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("label, want", [
    ("y", ("UE",)), ("ʏ", ("UE",)), ("ɥ", ("UE",)), ("ø", ("OE",)), ("œ", ("OE",)),  # front rounded
    ("ɯ", ("UI",)), ("ɨ", ("UI",)),                                                    # close unrounded back
    ("ɑ̃", ("AA",)), ("ɔ̃", ("AO",)), ("ɛ̃", ("EH",)), ("œ̃", ("OE",)),                     # nasal = oral
    ("r", ("RT",)), ("ɾ", ("RT",)),                                                    # trill / tap
    ("ʁ", ("KK",)), ("χ", ("KK",)), ("x", ("KK",)), ("ɣ", ("KK",)),                    # uvular, velar
    ("ɲ", ("YY",)), ("ʎ", ("YY",)), ("ç", ("YY",)), ("j", ("YY",)),                    # palatal
    ("β", ("BF",)), ("ɸ", ("BF",)),                                                    # near closure
    ("ɕ", ("SS",)), ("ʑ", ("SS",)),                                                    # alveolo-palatal
    ("pf", ("PP", "FF")), ("ts", ("SS",)), ("tʃ", ("SH",)),                            # affricates
    ("mː", ("PP",)), ("ˈaː", ("AA",)), ("aɪ", ("AA", "IH")), ("e", ("EE",)),
])
def test_ipa_classes(label, want):
    assert vis(label) == want


def test_ipa_stress_and_diacritics():
    assert parse_phone("ˈa", "ipa").stress == 1 and parse_phone("ˌa", "ipa").stress == 2
    assert parse_phone("ə", "ipa").stress == 0            # reduced
    assert vis("tʰ") == vis("t") and vis("kʷ") == vis("k") and vis("ɯᵝ") == vis("ɯ")
    assert parse_phone("_", "ipa").kind == "silence" and parse_phone("", "ipa").kind == "silence"


def test_every_ipa_symbol_gets_a_mouth():
    """The feature fallback (panphon) classifies what the table lacks: no symbol falls to
    the neutral mouth, and known vowels/consonants land where phonetics puts them."""
    for sym in ("ɘ", "ɵ", "ɤ", "ʉ", "ɞ", "ɶ", "ʝ", "ʕ", "ħ", "ǀ", "ɺ", "ʙ", "ɬ", "ɭ", "ɻ"):
        assert parse_phone(sym, "ipa").visemes[0] != "NEU", sym
    assert ipa_feature_class("y") == "UE" and ipa_feature_class("ɯ") == "UI"
    assert ipa_feature_class("ø") == "OE" and ipa_feature_class("i") == "IY"
    assert ipa_feature_class("u") == "UW" and ipa_feature_class("a") == "AA"
    assert ipa_feature_class("β") == "BF" and ipa_feature_class("p") == "PP"
    assert ipa_feature_class("s") == "SS" and ipa_feature_class("ʃ") == "SH"
    assert ipa_feature_class("ʎ") in ("YY", "LL") and ipa_feature_class("k") == "KK"
    # every class the table names has teacher targets
    assert set(c for v in IPA_TO_VISEMES.values() for c in v) <= set(VISEME_TARGETS)
    assert tuple(VISEME_TARGETS) == VISEME_CLASSES


def test_alphabet_detection_and_ascii_ipa():
    assert detect_alphabet(["_", "m", "aɪ", "n"]) == "ipa"
    assert detect_alphabet(["D", "V", "s"]) == "arpabet"          # unchanged for ASCII
    # an ASCII-only IPA sequence must be said to be IPA: "a" is open in IPA, AE in eSpeak
    assert parse_phone("a", "ipa").visemes == ("AA",)
    assert parse_phone("a").visemes == ("AE",)


def _curves(labels, durs, alphabet="ipa", tail=0.4):
    phones, t = [("_", 0.0, 0.3)], 0.3
    for lab, d in zip(labels, durs):
        phones.append((lab, t, t + d))
        t += d
    phones.append(("_", t, t + tail))
    y = teacher_curves(phones, t + tail, FPS, np.random.default_rng(0), alphabet=alphabet)
    return y, phones


def _mean(y, phone, ch):
    _, s, e = phone
    i0, i1 = int(np.ceil(s * FPS)), int(np.ceil(e * FPS))
    return float(np.mean(y[i0:i1, IDX[ch]]))


def test_teacher_front_rounded_vowels_and_unrounded_back():
    """y: the jaw of i with the lips of u; ɯ (Turkish ı): close jaw, no pucker."""
    y, ph = _curves(["t", "y", "t", "i", "t", "u", "t", "ɯ", "t", "ø", "t", "e"],
                    [0.08, 0.2] * 6)
    pucker = {lab: _mean(y, p, "mouthPucker") for p, lab in zip(ph[1:], [p[0] for p in ph[1:]])}
    jaw = {lab: _mean(y, p, "jawOpen") for p, lab in zip(ph[1:], [p[0] for p in ph[1:]])}
    assert pucker["y"] > 0.4 and pucker["y"] > 3 * pucker["i"]
    assert abs(jaw["y"] - jaw["i"]) < 0.05 and jaw["y"] < jaw["ø"] < jaw["e"] + 0.05
    assert pucker["ɯ"] < 0.1 < 0.4 < pucker["u"]
    assert pucker["ø"] > 0.25 and pucker["e"] < 0.1


def test_teacher_trill_is_not_rounded_and_near_closure_is_not_sealed():
    y, ph = _curves(["a", "r", "a", "ɹ", "a", "β", "a", "b", "a"], [0.2, 0.12] * 4 + [0.2])
    r_trill, r_engl = ph[2], ph[4]
    assert _mean(y, r_trill, "mouthFunnel") < 0.5 * _mean(y, r_engl, "mouthFunnel")
    beta, b = ph[6], ph[8]
    # b seals the lips (mouthClose follows the jaw, press floor); β only nearly closes them
    assert _mean(y, b, "mouthPressLeft") > 0.3 > _mean(y, beta, "mouthPressLeft")
    assert _mean(y, b, "jawOpen") <= 0.13
    mask = bilabial_frame_mask([p for p in ph], FPS, len(y), alphabet="ipa")
    s, e = ph[6][1], ph[6][2]
    assert not mask[int(np.ceil(s * FPS)) + 1]          # β is not a closure to weigh


def test_teacher_long_consonant_holds_the_closure():
    """A long (geminate) bilabial keeps the lips sealed for its whole length."""
    y, ph = _curves(["a", "mː", "a"], [0.2, 0.3, 0.2])
    _, s, e = ph[2]
    frames = range(int(np.ceil(s * FPS)), int(np.ceil(e * FPS)))
    assert all(y[i, IDX["jawOpen"]] <= 0.13 for i in frames)
    assert all(y[i, IDX["mouthPressLeft"]] >= 0.3 for i in frames)


def test_teacher_affricate_pf_closes_then_labiodental():
    y, ph = _curves(["a", "pf", "a"], [0.2, 0.16, 0.2])
    _, s, e = ph[2]
    i0, i1 = int(np.ceil(s * FPS)), int(np.ceil(e * FPS))
    first, last = y[i0, IDX["mouthPressLeft"]], y[i1 - 1, IDX["mouthRollLower"]]
    assert first >= 0.3 and last > 0.3


# ------------------------------------------------------------------------------------------
# MBROLA (recorded diphone voices), eSpeak IPA events
# ------------------------------------------------------------------------------------------

from model_core.training import mbrola  # noqa: E402


def test_pho_round_trip_and_xsampa():
    text = "_\t25\n?I\t54\t 0 94 100 99\nm\t108\t100 91\n\n; comment\nm\t65\n"
    lines = mbrola.parse_pho(text)
    assert [ln.symbol for ln in lines] == ["_", "?I", "m", "m"]
    assert lines[1].pitch == [(0.0, 94.0), (100.0, 99.0)]
    assert mbrola.parse_pho(mbrola.format_pho(lines))[1].dur_ms == 54
    with pytest.raises(ValueError, match="line 1"):
        mbrola.parse_pho("a b c\n")
    x = mbrola.xsampa_to_ipa
    assert (x("y:"), x("2:"), x("9"), x("a~"), x("E2"), x("tS"), x("_")) == \
        ("yː", "øː", "œ", "ã", "ɛ", "tʃ", "")
    assert x("aa") == "aː"


def test_rebalance_keeps_the_length_and_sets_the_ratio():
    L = mbrola.PhoLine
    lines = [L("_", 50, [], ""), L("p", 80, [], "p"), L("a", 30, [], "a"), L("t", 70, [], "t"),
             L("i", 20, [], "i"), L("m", 60, [], "m"), L("_", 200, [], "")]
    out = mbrola.rebalance_durations(lines, 1.6)
    assert sum(o.dur_ms for o in out) == pytest.approx(sum(ln.dur_ms for ln in lines))
    v = np.mean([o.dur_ms for o in out if o.ipa in ("a", "i")])
    c = np.mean([o.dur_ms for o in out if o.ipa in ("p", "t", "m")])
    assert v / c == pytest.approx(1.6, rel=0.02)
    assert out[0].dur_ms == 50 and out[-1].dur_ms == 200       # pauses untouched
    # already long vowels: nothing changes
    same = mbrola.rebalance_durations([L("p", 50, [], "p"), L("a", 150, [], "a")], 1.6)
    assert [o.dur_ms for o in same] == [50, 150]


def test_pair_ipa_uses_the_events_then_the_table():
    L = mbrola.PhoLine
    lines = [L("b", 50, []), L("a", 100, []), L("b", 50, []), L("b", 50, []), L("o", 100, [])]
    # events on the same time line for the first two phones (16 samples per ms), then the
    # long b is one event: the time lines part and the table / X-SAMPA name the rest
    events = [(1000, "β"), (1800, "a"), (3400, "b"), (4200, "o"), (6000, "")]
    mbrola.pair_ipa(lines, events, 16000, table={"b": "b"})
    assert [ln.ipa for ln in lines] == ["β", "a", "b", "b", "o"]


@pytest.mark.parametrize("shift_ms", [36.4, -65.3])
def test_pair_ipa_finds_the_events_again_after_they_moved(shift_ms):
    """eSpeak's events for an MBROLA voice may land tens of ms off the phone data after a
    language switch or a pause, by a different amount in every run: the names after that
    point must still be eSpeak's allophones, not the table's, whatever the amount."""
    L = mbrola.PhoLine
    syms = [("b", 50), ("a", 100), ("_", 80), ("b", 60), ("a", 90), ("d", 40), ("o", 110)]
    names = ["β", "a", "", "β", "ɐ", "ð", "o"]              # what eSpeak said (allophones)
    rate = 22050

    def events(shift):
        out, t = [], 0.0
        for k, ((sym, dur), name) in enumerate(zip(syms, names)):
            moved = shift if k >= 2 else 0.0            # everything after the pause moves
            out.append((1000 + round((t + moved) * rate / 1000), name))
            t += dur
        out.append((1000 + round((t + shift) * rate / 1000), ""))
        return out

    table = {"b": "b", "a": "a", "d": "d", "o": "o"}
    steady = mbrola.pair_ipa([L(s, d, []) for s, d in syms], events(0.0), rate, table)
    moved = mbrola.pair_ipa([L(s, d, []) for s, d in syms], events(shift_ms), rate, table)
    assert [ln.ipa for ln in steady] == names
    assert [ln.ipa for ln in moved] == names
    # beyond resync_ms the events are not trusted: the table names the rest
    far = mbrola.pair_ipa([L(s, d, []) for s, d in syms], events(shift_ms), rate, table,
                          resync_ms=abs(shift_ms) / 2)
    assert [ln.ipa for ln in far] == ["β", "a", "", "b", "a", "d", "o"]


def test_steady_events_renders_until_one_event_list_comes_twice(monkeypatch):
    clean = [(1000, "j"), (2080, "a"), (3160, "k"), (5400, "")]
    dropped = [(1000, "a"), (2080, "k"), (4320, "")]          # a piece of audio went missing
    moved = [(1000, "j"), (2080, "a"), (2500, "k"), (4740, "")]
    renders = iter([moved, clean, clean])
    calls = []

    def fake_call(op, payload, ipa=False):
        calls.append(payload)
        return [(b"", next(renders))], 22050

    monkeypatch.setattr(mbrola, "_espeak_call", fake_call)
    job = ("mb-jp2", 160, 50, 50, 0, "text")
    assert mbrola.steady_events(job, dropped) == clean       # dropped, moved, clean, clean
    assert len(calls) == 3 and all(p == [job] for p in calls)
    # no list twice within the tries: the longest
    renders = iter([moved, clean])
    assert mbrola.steady_events(job, dropped, tries=3) == clean


@pytest.fixture(scope="module")
def voices():
    v = mbrola.mbrola_voices()
    if "fr2" not in v or "jp1" not in v:
        pytest.fail("the MBROLA voices fr2 and jp1 are missing: run tools/setup.sh "
                    "(tools/apt-packages.txt lists them)")
    return v


@pytest.mark.slow   # TTS
def test_mbrola_synthesis_has_exact_ipa_timing(voices):
    clip = mbrola.mbrola_synthesize("Une tortue têtue mange du beurre.", "fr2", rate=160,
                                    vowel_ratio=1.6)
    ph = clip.phones
    assert clip.engine == "mbrola" and clip.settings["alphabet"] == "ipa"
    assert ph[0][1] == 0.0 and ph[-1][2] == pytest.approx(len(clip.samples) / clip.sample_rate)
    assert all(a[2] == pytest.approx(b[1]) for a, b in zip(ph, ph[1:]))
    labels = [p[0] for p in ph]
    assert "y" in labels and any(lab.startswith("œ") or lab.startswith("ø") for lab in labels)
    assert "NEU" not in {parse_phone(lab, "ipa").visemes[0] for lab in labels}
    # the vowels were lengthened: mean vowel / consonant duration near the ratio asked for
    d = {k: [] for k in ("v", "c")}
    for lab, s, e in ph:
        p = parse_phone(lab, "ipa")
        if p.kind == "phone":
            d["v" if p.visemes[0] in ("AA", "AE", "AH", "AO", "OH", "EH", "IH", "IY", "UH",
                                      "UW", "ER", "AX", "EE", "UE", "OE", "UI") else "c"].append(e - s)
    assert np.mean(d["v"]) / np.mean(d["c"]) > 1.3
    # the audio is speech where the phones say so: louder in phones than in the end pause
    x = clip.samples
    sr = clip.sample_rate
    speech = x[int(ph[1][1] * sr):int(ph[-2][2] * sr)]
    assert np.sqrt(np.mean(speech ** 2)) > 10 * np.sqrt(np.mean(x[-int(0.1 * sr):] ** 2) + 1e-12)


@pytest.mark.slow   # TTS
def test_mbrola_errors_name_the_fix(voices):
    with pytest.raises(FileNotFoundError, match="setup_corpus.sh|apt-get"):
        mbrola.mbrola_synthesize("hallo", "zz9")
    with pytest.raises(ValueError, match="rate"):
        mbrola.mbrola_synthesize("bonjour", "fr2", rate=5)
    with pytest.raises(ValueError, match="text"):
        mbrola.mbrola_synthesize("  ", "fr2")


@pytest.mark.slow   # TTS
def test_espeak_ipa_events_any_language():
    from model_core.training.tts import espeak_languages, espeak_synthesize
    assert {"de", "fr-fr", "ja", "tr"} <= set(espeak_languages())
    clip = espeak_synthesize("Über Brücken fährt Müller.", voice="de", ipa=True,
                             stop_closure=True)
    labels = [p[0] for p in clip.phones]
    assert clip.settings["alphabet"] == "ipa" and "yː" in labels and "b" in labels
    # the English mnemonics path is unchanged
    assert "@" in [p[0] for p in espeak_synthesize("hello again", voice="en-us").phones]


# ------------------------------------------------------------------------------------------
# text in many languages
# ------------------------------------------------------------------------------------------

def test_word_sequences_and_kana():
    from model_core.training.texts import fortune_files, wordfreq_text
    a = wordfreq_text("pt-br", random.Random(3), 8)
    assert a == wordfreq_text("pt-br", random.Random(3), 8) and len(a.split()) == 8
    ja = wordfreq_text("ja", np.random.default_rng(1), 6)
    assert ja.endswith("。") and all("\u3040" <= c <= "\u30ff" or c in "ー。" for c in ja)
    with pytest.raises(ValueError):
        wordfreq_text("xx", random.Random(0))
    # English sentences never come from another language's fortune files
    assert not {f.name for f in fortune_files("en")} & {"brasil", "italia", "definizioni"}


# ------------------------------------------------------------------------------------------
# v4 corpus, resumable; multilingual held-out set; IPA lip-gap measures
# ------------------------------------------------------------------------------------------

@pytest.mark.slow   # TTS
def test_v4_corpus_is_multilingual_and_resumes(tmp_path, voices, monkeypatch):
    from model_core.training import corpus
    # two voices installed here stand for the whole list; every engine but MBROLA and eSpeak
    monkeypatch.setattr(corpus, "TRAIN_MBROLA", ("fr2", "jp1"))
    out = tmp_path / "c"
    kw = dict(seed=2, workers=1, augment=False, engines=("mbrola", "espeak-ng"),
              progress=False, recipe="v4")
    corpus.build_corpus(out, 20, **kw)
    recs = corpus.read_manifest(out)
    assert len(recs) == 20
    langs = {r["language"] for r in recs}
    assert {"fr-fr", "ja"} <= langs and len(langs) >= 4
    mb = [r for r in recs if r["engine"] == "mbrola"]
    assert mb and all(r["alphabet"] == "ipa" and 1.3 <= r["vowel_ratio"] <= 2.0 for r in mb)
    u = corpus.load_utterance(out / mb[0]["file"])
    assert u.alphabet == "ipa" and u.phones and len(u.frames) > 0
    # a build stopped half-way goes on with the same arguments and gives the same corpus
    manifest = (out / "manifest.jsonl").read_text()
    (out / "manifest.jsonl").unlink()
    (out / "corpus.json").unlink()
    parts = sorted((out / "parts").iterdir())
    parts[-1].unlink()
    corpus.build_corpus(out, 20, **kw)
    assert (out / "manifest.jsonl").read_text() == manifest
    with pytest.raises(FileExistsError, match="same arguments|not empty"):
        corpus.build_corpus(out, 21, **kw)
    # a stopped build does not go on under another phone-name table
    assert json.loads((out / "corpus.json").read_text())["mbrola_ipa"] == \
        mbrola.ipa_table_digest() != ""
    (out / "manifest.jsonl").unlink()
    monkeypatch.setattr(mbrola, "ipa_table_digest", lambda: "0" * 12)
    with pytest.raises(FileExistsError, match="other phone names.*mbrola_ipa"):
        corpus.build_corpus(out, 20, **kw)
    # nor under other fixes of eSpeak's names
    from model_core.training.tts import espeak_ipa
    assert json.loads((out / "corpus.json").read_text())["espeak_ipa"] == \
        espeak_ipa.espeak_ipa_digest()
    monkeypatch.undo()
    monkeypatch.setitem(espeak_ipa.ESPEAK_IPA_FIXES, "xx", {"y": "ɨ"})
    with pytest.raises(FileExistsError, match="other phone names.*espeak_ipa"):
        corpus.build_corpus(out, 20, **kw)


def test_v5_word_sequences_are_whole_words_of_the_languages_own_script():
    """Hindi word sequences of the v5 recipe are whole Hindi words: v4's lists kept only
    the words ``str.isalpha`` takes (none with a vowel sign: 479 of 5000, Tamil 180) and
    wordfreq's English words ("the", "if"), which eSpeak reads in English."""
    from model_core.training.texts import _latin, _wordlist, wordfreq_text
    v4_words, _ = _wordlist("hi")
    v5_words, _ = _wordlist("hi", True)
    assert len(v5_words) > 4 * len(v4_words)
    assert "नहीं" in v5_words and "नहीं" not in v4_words
    assert not any(map(_latin, v5_words)) and any(map(_latin, _wordlist("ta")[0]))
    text = wordfreq_text("ta", np.random.default_rng(0), 12, own_script=True)
    assert len(text.split()) == 12 and not _latin(text)
    # Latin-script languages keep their words
    assert len(_wordlist("vi", True)[0]) > 4000 and "không" in _wordlist("vi", True)[0]
    # the default draws from the lists the v4 corpus and the held-out sets drew from
    import wordfreq
    assert v4_words == [w for w in wordfreq.top_n_list("hi", 5000) if w.isalpha()]


def test_v5_plan_gives_up_on_a_voice_by_name(monkeypatch):
    """A voice eSpeak reads in another language whatever is drawn: a DataError naming the
    voice and its language after TEXT_DRAWS draws, not a corpus of English."""
    from model_core.errors import DataError
    from model_core.training import corpus, tts
    monkeypatch.setattr(tts, "language_switches", lambda text, voice: ["(en)", "(hi)"])
    monkeypatch.setattr(corpus, "TRAIN_MBROLA", ("in1",))
    monkeypatch.setattr(corpus, "V4_SHARES", {"mbrola": 1.0})
    kw = dict(espeak_voices=[], festival_voices=[], sentences=["A short one."],
              mbrola_voices={"in1": "hi"})
    with pytest.raises(DataError, match=r"mb-in1 \(hi\): 50 draws"):
        corpus.plan_jobs_v4(3, 0, own_language=True, **kw)
    assert len(corpus.plan_jobs_v4(3, 0, **kw)) == 3      # v4 does not ask


@pytest.mark.slow   # TTS
def test_v5_plan_reads_every_text_in_its_voices_language(voices):
    """The v5 corpus plan: no MBROLA or eSpeak NG text that eSpeak would read partly in
    another language (in a v4 plan of 1000 utterances: 54 of 724 texts, 17 of 22 Hindi)."""
    from model_core.training import corpus, tts
    mv = {"in1": "hi", "jp1": "ja", "fr2": "fr-fr"}
    mv = {v: lang for v, lang in mv.items() if v in voices}
    kw = dict(espeak_voices=["en-us"], festival_voices=[], sentences=["A short one."],
              mbrola_voices=mv)
    mp = pytest.MonkeyPatch()
    mp.setattr(corpus, "TRAIN_MBROLA", tuple(mv))
    mp.setattr(corpus, "V4_SHARES", {"mbrola": 0.5, "espeak-ml": 0.5})
    try:
        v4 = corpus.plan_jobs_v4(60, 1, **kw)
        v5 = corpus.plan_jobs_v4(60, 1, own_language=True, **kw)
    finally:
        mp.undo()

    def switched(jobs):
        return [j.text for j in jobs if tts.language_switches(
            j.text, f"mb-{j.voice}" if j.engine == "mbrola" else j.language)]
    assert switched(v4) and not switched(v5)
    assert {j.language for j in v5} >= {"hi"}


@pytest.mark.slow   # TTS
def test_multilingual_heldout_set_and_ipa_measures(tmp_path, voices):
    from model_core.training.corpus import build_multilingual_evalset
    from model_core.evaluation.evaluate import build_eval_set, evaluate_teacher
    out = build_multilingual_evalset(tmp_path / "h", per_voice=2, seed=1, voices=("fr2", "jp1"))
    info = json.loads((out / "heldout.json").read_text())
    assert info["languages"] == {"fr2": "fr-fr", "jp1": "ja"}
    items = build_eval_set(out, 30.0)
    assert len(items) == 4 and {it.alphabet for it in items} == {"ipa"}
    assert {it.language for it in items} == {"fr-fr", "ja"}
    res = evaluate_teacher(items, seeds=(0,))
    assert set(res["languages"]) == {"fr-fr", "ja"}
    lip = res["overall"]["lip"]
    assert lip["closure"] == 1.0 and lip["open_closed_ratio"] > 5 and lip["rounding"] > 0.2


@pytest.mark.slow   # TTS
def test_heldout_clips_are_read_in_their_own_language_and_never_twice(tmp_path, voices):
    """A Japanese held-out clip is Japanese: no text eSpeak reads partly in English (Latin
    words in the word list, kanji it spells out as "Japanese letter"), and no text twice
    for one voice (the dev set once had 6 of 6 Hindi clips half English, 2 of 6 Japanese)."""
    from model_core.training.corpus import build_multilingual_evalset
    out = build_multilingual_evalset(tmp_path / "ja", per_voice=8, seed=0, voices=("jp1",))
    texts = [json.loads(f.read_text(encoding="utf-8"))["text"]
             for f in sorted((out / "speech" / "jp1").glob("*.phones.json"))]
    assert len(texts) == 8 and len(set(texts)) == 8
    assert all(mbrola.language_switches(t, "jp1") == [] for t in texts)
    assert mbrola.language_switches("ありがとうございます。", "jp1") == []
    assert mbrola.language_switches("漢字です。", "jp1") == ["(en)", "(ja)"]
    assert mbrola.language_switches("le week-end, the people say hello", "fr2") == \
        ["(en)", "(fr)"]


@pytest.mark.slow   # TTS
def test_heldout_split_writes_one_half_with_the_whole_sets_clips(tmp_path, voices):
    """make-evalset --split dev: only the dev voices, and each of their clips is the very
    clip the whole set holds (choose on dev, report on test, from one recipe)."""
    from model_core.training.corpus import build_multilingual_evalset
    whole = build_multilingual_evalset(tmp_path / "all", per_voice=1, seed=2,
                                       voices=("fr2", "fr3"))
    dev = build_multilingual_evalset(tmp_path / "dev", per_voice=1, seed=2,
                                     voices=("fr2", "fr3"), split="dev")
    assert sorted(p.name for p in (dev / "speech").iterdir()) == ["fr3"]   # fr2 trains
    assert json.loads((dev / "heldout.json").read_text())["split"] == "dev"
    for f in ("00.wav", "00.phones.json"):
        assert (dev / "speech" / "fr3" / f).read_bytes() == \
            (whole / "speech" / "fr3" / f).read_bytes()
    with pytest.raises(ValueError, match="split"):
        build_multilingual_evalset(tmp_path / "x", split="train")


@pytest.mark.slow   # TTS
def test_seen_split_has_training_voices_read_the_dev_voices_texts(tmp_path, voices):
    """make-evalset --split seen: in each dev voice's place a voice the corpus trains on, of
    the same language, reads the very texts of the dev clips, so the dev set's figures minus
    these are what an unheard voice costs (and what is left is the network's)."""
    from model_core.training import corpus as C
    from model_core.training.mbrola import mbrola_voices
    installed = mbrola_voices()
    assert len(C.SEEN_MBROLA_DEV) == len(C.HELDOUT_MBROLA_DEV)
    for seen, held in zip(C.SEEN_MBROLA_DEV, C.HELDOUT_MBROLA_DEV):
        assert seen in C.TRAIN_MBROLA and seen not in C.HELDOUT_MBROLA
        assert seen[:2] == held[:2]    # MBROLA names a voice by its language: de4, de5
        if seen in installed and held in installed:   # tools/setup_corpus.sh installs all
            assert installed[seen] == installed[held]
    dev = C.build_multilingual_evalset(tmp_path / "dev", per_voice=2, seed=2,
                                       voices=("fr2", "fr3"), split="dev")
    seen = C.build_multilingual_evalset(tmp_path / "seen", per_voice=2, seed=2,
                                        voices=("fr2", "fr3"), split="seen")
    assert sorted(p.name for p in (seen / "speech").iterdir()) == ["fr2"]   # fr3's place
    info = json.loads((seen / "heldout.json").read_text())
    assert info["split"] == "seen" and info["seen"] == {"fr2": "fr3"} and info["dev"] == []
    for i in ("00", "01"):
        d = json.loads((dev / "speech" / "fr3" / f"{i}.phones.json").read_text("utf-8"))
        s = json.loads((seen / "speech" / "fr2" / f"{i}.phones.json").read_text("utf-8"))
        assert (s["voice"], s["text"], s["language"]) == ("fr2", d["text"], d["language"])
        assert (seen / "speech" / "fr2" / f"{i}.wav").read_bytes() != \
            (dev / "speech" / "fr3" / f"{i}.wav").read_bytes()


def test_ipa_and_arpabet_measures_agree_on_the_same_speech():
    """The same phones written in ARPAbet and IPA give the same lip-gap figures."""
    from model_core.evaluation import metrics as M
    arpa = ["P", "AA1", "M", "IY1", "B", "UW1", "T", "AE1", "M", "OW1"]
    ipa = ["p", "ɑ", "m", "i", "b", "u", "t", "æ", "m", "o"]
    t, pa, pi = 0.2, [("SIL", 0, 0.2)], [("_", 0, 0.2)]
    for a, b in zip(arpa, ipa):
        d = 0.18 if a[-1].isdigit() else 0.09
        pa.append((a, t, t + d))
        pi.append((b, t, t + d))
        t += d
    w = teacher_curves(pa, t + 0.3, FPS, np.random.default_rng(0))
    gap = 10 * w[:, IDX["jawOpen"]] * (1 - w[:, IDX["mouthClose"]])
    ma = M.lip_gap_measures(gap, w, pa, FPS, alphabet="arpabet")
    mi = M.lip_gap_measures(gap, w, pi, FPS, alphabet="ipa")
    for key in ("closure", "n_bilabials", "open_closed_ratio"):
        assert ma[key] == pytest.approx(mi[key])
    assert mi["openness_r_no_ah"] == pytest.approx(mi["openness_r"])
    assert M.phone_measure_class("y", "ipa")["front_rounded"]
    assert M.phone_measure_class("AH1")["is_ah"] and not M.phone_measure_class("β", "ipa")["bilabial"]


@pytest.mark.slow   # TTS
def test_mbrola_renders_no_silence_where_espeak_names_a_symbol_the_voice_lacks(voices):
    """eSpeak NG 1.51 writes jp1's r as ``r``, a symbol jp1 never recorded (it has
    ``rr``): mbrola rendered every diphone with it as silence under phones that say
    speech. The voice's own name is used now, and the r and its vowels are heard."""
    assert mbrola._probe_diphones("jp1", [("a", "r"), ("a", "rr"), ("rr", "i")]) == \
        {("a", "r"): False, ("a", "rr"): True, ("rr", "i"): True}
    clip = mbrola.mbrola_synthesize("ありがとう。りんご。", "jp1", rate=160, vowel_ratio=1.6)
    assert clip.settings["missing_diphones"] == 0
    x, sr = clip.samples, clip.sample_rate
    rms = {}
    for lab, s, e in clip.phones:
        seg = x[int(s * sr):int(e * sr)]
        rms.setdefault(lab, []).append(float(np.sqrt(np.mean(seg ** 2))))
    pause = max(rms["_"])
    assert len(rms["ɽ"]) == 2 and min(rms["ɽ"]) > 5 * pause, rms
    assert all(min(v) > 5 * pause for lab, v in rms.items() if lab != "_"), rms
    # the repair itself: an unknown symbol renamed, a pair never recorded bridged by a
    # short pause that stays the first phone's, and what is left counted
    lines = [mbrola.PhoLine("a", 80, [], "ä"), mbrola.PhoLine("r", 40, [], "ɽ"),
             mbrola.PhoLine("i", 60, [], "i")]
    fixed, left = mbrola.repair_diphones(lines, "jp1")
    assert [ln.symbol for ln in fixed] == ["a", "rr", "i"] and left == 0
    assert [ln.symbol for ln in lines] == ["a", "r", "i"]          # the input is kept
    assert mbrola._probe_diphones("jp1", [("k", "k")]) == {("k", "k"): False}
    fixed, left = mbrola.repair_diphones(
        [mbrola.PhoLine("k", 50, [], "k"), mbrola.PhoLine("k", 50, [], "k")], "jp1")
    assert [ln.symbol for ln in fixed] == ["k", "_", "k"] and left == 0
    assert fixed[1].ipa == "k" and sum(ln.dur_ms for ln in fixed) == 100
