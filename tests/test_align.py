"""Forced phone alignment (model_core.training.align) on real speech.

The clips are the project's real inputs (docs/architecture.md, "Real inputs"), fetched into ``inputs/`` by
``.venv/bin/python tools/fetch_inputs.py``. Missing inputs fail these tests (they are not
skipped): the alignment of real speech is what they check.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from model_core.training import align as al
from model_core.training.align import (
    AlignmentError, align_phones, align_words, load_transcript, missing_words,
    normalize_transcript)
from model_core.errors import AudioError
from tiers import first_fast

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ROOT / "inputs"
SPEECH = INPUTS / "speech"
FETCH_HINT = "run `.venv/bin/python tools/fetch_inputs.py` from the project root to fetch them"

LIBRIVOX = [SPEECH / "librivox" / f"sense_and_sensibility_01_austen_64kb-{n}.wav"
            for n in ("0870", "0880", "0890", "0920", "0930")]
ARCTIC = SPEECH / "arctic" / "arctic_a0007.wav"
FOREVER = SPEECH / "forever" / "input_2_16k.wav"
CARDS = [SPEECH / "cards" / f"00{i}.wav" for i in range(1, 6)]
TRANSCRIBED = LIBRIVOX + [ARCTIC, FOREVER] + CARDS

ARPABET = {
    "AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW",
    "B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH",
    "T", "TH", "V", "W", "Y", "Z", "ZH",
}
BILABIALS = {"P", "B", "M"}
FRAME = 0.01


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"real test input {path.relative_to(ROOT)} is missing: {FETCH_HINT}",
                    pytrace=False)
    return path


def _clip(wav: Path) -> tuple[np.ndarray, str]:
    x, sr = sf.read(_require(wav), dtype="float32")
    assert sr == 16000 and x.ndim == 1
    return x, load_transcript(_require(wav.with_suffix(".txt")))


_CACHE: dict = {}


def _aligned(wav: Path):
    """(samples, transcript, phones, words) for a clip, aligned once per test session."""
    if wav not in _CACHE:
        x, text = _clip(wav)
        _CACHE[wav] = (x, text, align_phones(x, text), align_words(x, text))
    return _CACHE[wav]


def _name(wav: Path) -> str:
    return f"{wav.parent.name}/{wav.stem}"


# --- the inputs themselves ----------------------------------------------------------------

def test_inputs_present_and_verified():
    manifest = _require(INPUTS / "MANIFEST.json")
    files = json.loads(manifest.read_text())["files"]
    listed = {f["path"] for f in files}
    for wav in TRANSCRIBED:
        rel = wav.relative_to(INPUTS).as_posix()
        assert rel in listed and rel[:-4] + ".txt" in listed, rel
    for f in files:
        path = _require(INPUTS / f["path"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == f["sha256"], (
            f"{f['path']} differs from its manifest sha256: {FETCH_HINT}")
        assert f["source"] and f["licence"]


# --- transcripts --------------------------------------------------------------------------

def test_normalize_transcript():
    assert normalize_transcript("  Cold-hearted, isn\u2019t it?\n'Tis  SO!  ") == \
        "cold hearted isn't it tis so"
    assert normalize_transcript("...!") == ""
    with pytest.raises(TypeError):
        normalize_transcript(b"bytes")


def test_load_transcript(tmp_path):
    assert load_transcript(_require(LIBRIVOX[1].with_suffix(".txt"))) == \
        "he was not an ill disposed young man"
    p = tmp_path / "t.txt"
    p.write_text("And you always want to see it,\nin the SUPERLATIVE degree.\n")
    assert load_transcript(p) == "and you always want to see it in the superlative degree"
    p.write_text(" -- \n")
    with pytest.raises(ValueError, match="no words"):
        load_transcript(p)
    with pytest.raises(FileNotFoundError):
        load_transcript(tmp_path / "missing.txt")


# --- structure of every alignment ---------------------------------------------------------

def _speech_extent(x: np.ndarray) -> tuple[float, float]:
    """First and last time (s) of the loud part of a clip: 25 ms frames (10 ms hop) whose
    energy is above the midpoint, in dB, between the noise floor (10th percentile) and the
    peak. Independent of the aligner; the LibriVox clips have a noise floor only about
    25-30 dB below their peak, so a fixed distance from the peak would not do."""
    hop, win = 160, 400
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop]
    db = 20 * np.log10(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-9)
    floor, peak = np.percentile(db, 10), db.max()
    loud = np.nonzero(db > (floor + peak) / 2)[0]
    return loud[0] * hop / 16000, (loud[-1] * hop + win) / 16000


@pytest.mark.parametrize("wav", first_fast(TRANSCRIBED, _name))
def test_phones_tile_the_clip_in_order(wav):
    x, text, phones, words = _aligned(wav)
    duration = len(x) / 16000
    assert phones, "no phones"
    for label, start, end in phones:
        assert label in ARPABET or label == "SIL", label
        assert isinstance(start, float) and isinstance(end, float)
        assert 0.0 <= start < end <= duration + 1e-9
        assert abs(start / FRAME - round(start / FRAME)) < 1e-6  # 10 ms grid
    # monotonic and contiguous: each phone starts where the previous one ended
    assert phones[0][1] == 0.0
    for (_, _, e0), (_, s1, _) in zip(phones, phones[1:]):
        assert s1 == pytest.approx(e0, abs=1e-9)
    assert phones[-1][2] >= duration - 3 * FRAME
    # words come out in transcript order, each covering a run of phones
    assert [w for w, _, _ in words] == text.split()
    for (_, s0, e0), (_, s1, _) in zip(words, words[1:]):
        assert e0 <= s1 + 1e-9


@pytest.mark.parametrize("wav", first_fast(TRANSCRIBED, _name))
def test_speech_phones_cover_the_speech(wav):
    x, _text, phones, words = _aligned(wav)
    onset, offset = _speech_extent(x)
    speech = [p for p in phones if p[0] != "SIL"]
    # the first speech phone starts no later than the loud part (50 ms slack), the last
    # ends no earlier than it (50 ms slack), and speech takes most of the loud span
    assert speech[0][1] <= onset + 0.05, (speech[0], onset)
    assert speech[-1][2] >= offset - 0.05, (speech[-1], offset)
    voiced = sum(e - s for _, s, e in speech)
    assert voiced >= 0.6 * (offset - onset)
    # and each word's span holds exactly the phones aligned inside it
    for _w, ws, we in words:
        inside = [p for p in speech if p[1] >= ws - 1e-9 and p[2] <= we + 1e-9]
        assert inside and inside[0][1] == pytest.approx(ws) and inside[-1][2] == pytest.approx(we)


def test_short_clip_onset_is_adapted():
    """cards/001 ("ten of clubs", 1.1 s) starts with ~0.15 s of near-silence. Without the
    adaptation pass the T is pulled back to 0 s; with it the alignment starts with SIL."""
    x, text = _clip(CARDS[0])
    onset, _ = _speech_extent(x)
    adapted = align_phones(x, text)
    plain = align_phones(x, text, adapt=False)
    assert adapted[0][0] == "SIL" and adapted[1][0] == "T"
    assert abs(adapted[1][1] - onset) <= 0.05, (adapted[1], onset)
    assert plain[0][0] == "T" and plain[0][1] == 0.0  # the documented failure it fixes


# --- content: the ARCTIC prompt -------------------------------------------------------------

ARCTIC_PHONES = [
    "SIL",
    "AE", "N", "D",                                 # and
    "Y", "UW",                                      # you
    "AO", "L", "W", "IY", "Z",                      # always
    "W", "AA", "N", "T",                            # want
    "T", "AH",                                      # to
    "S", "IY",                                      # see
    "IH", "T",                                      # it
    "IH", "N",                                      # in
    "DH", "AH",                                     # the
    "S", "UH", "P", "ER", "L", "AH", "T", "IH", "V",  # superlative
    "D", "IH", "G", "R", "IY",                      # degree
    "SIL",
]


def test_arctic_prompt_phones_in_order():
    x, text, phones, words = _aligned(ARCTIC)
    assert text == "and you always want to see it in the superlative degree"
    labels = [p[0] for p in phones]
    assert labels == ARCTIC_PHONES
    # the sentence has exactly one bilabial: the P of "superlative", after S UH, before ER
    bil = [p for p in phones if p[0] in BILABIALS]
    assert [p[0] for p in bil] == ["P"]
    sup = next(w for w in words if w[0] == "superlative")
    p = bil[0]
    assert sup[1] < p[1] < p[2] < sup[2]
    i = phones.index(p)
    assert [q[0] for q in phones[i - 2:i + 2]] == ["S", "UH", "P", "ER"]
    assert p[2] - p[1] >= 0.03  # a real closure, not a one-frame blip
    # rough timing of the words in the 4 s recording (speech from about 0.4 s to 3.5 s)
    assert 0.2 <= words[0][1] <= 0.5
    assert 2.8 <= words[-1][2] <= 3.7
    assert 1.8 <= sup[1] <= 2.5


def test_forever_matches_pocketsphinx_own_test():
    # pocketsphinx 5.1.1 cython/test/alignment_test.py expects exactly these phones
    _x, _t, phones, _w = _aligned(FOREVER)
    assert [p[0] for p in phones] == [
        "F", "IY", "L", "Z", "L", "AY", "K", "DH", "IY", "Z", "D", "EY", "Z", "G", "OW",
        "AO", "N", "F", "ER", "EH", "V", "ER", "SIL"]


# --- content: LibriVox ----------------------------------------------------------------------

@pytest.mark.parametrize("wav", first_fast(LIBRIVOX, _name))
def test_librivox_bilabials(wav):
    """Every word spelled with b, m or p gets its lip closure, inside that word's span.

    In these five sentences every b/m/p letter is pronounced (no silent or doubled ones),
    so the number of bilabial phones equals the number of such letters.
    """
    _x, text, phones, words = _aligned(wav)
    bil = [p for p in phones if p[0] in BILABIALS]
    assert bil, "no bilabial found"
    assert len(bil) == sum(text.count(c) for c in "bmp")
    for word, ws, we in words:
        n_letters = sum(word.count(c) for c in "bmp")
        inside = [p for p in bil if ws - 1e-9 <= p[1] and p[2] <= we + 1e-9]
        assert len(inside) == n_letters, (word, inside)
    for label, s, e in bil:
        assert e - s >= 0.03


@pytest.mark.parametrize("wav", first_fast(LIBRIVOX, _name))
def test_librivox_matches_pocketsphinx_reference(wav):
    """Same phones as pocketsphinx's own regression reference (`pocketsphinx align
    -phone_align yes`): exactly with adapt=False, within one frame by default."""
    x, text, phones, _w = _aligned(wav)
    ref = json.loads(_require(wav.with_name(wav.stem + ".phone.json")).read_text())
    ref_phones = [(p["t"], round(p["b"], 2), round(p["b"] + p["d"], 2))
                  for w in ref["w"] for p in w["w"]]
    plain = [(lab, round(s, 2), round(e, 2)) for lab, s, e in align_phones(x, text, adapt=False)]
    assert plain == ref_phones
    assert [p[0] for p in phones] == [p[0] for p in ref_phones]
    for (_, s, e), (_, rs, re_) in zip(phones, ref_phones):
        assert abs(s - rs) <= FRAME + 1e-9 and abs(e - re_) <= FRAME + 1e-9


# --- determinism, options, errors -------------------------------------------------------------

def test_alignment_is_deterministic_and_history_free():
    a, b = LIBRIVOX[1], CARDS[0]
    xa, ta = _clip(a)
    xb, tb = _clip(b)
    first = align_phones(xa, ta)
    align_phones(xb, tb)
    align_phones(xb, tb, adapt=False)
    assert align_phones(xa, ta) == first
    al._ALIGNER = None  # a freshly loaded decoder gives the same result
    assert align_phones(xa, ta) == first
    assert align_phones(xb, tb) == align_phones(xb, tb)


def test_options_and_resampling():
    x, text, phones, words = _aligned(ARCTIC)
    no_sil = align_phones(x, text, keep_silence=False)
    assert no_sil == [p for p in phones if p[0] != "SIL"]
    # float64 input and punctuation/case in the transcript change nothing
    assert align_phones(x.astype(np.float64), "And you always want to see it in the "
                        "Superlative degree.") == phones
    # 22.05 kHz input is resampled: same phones, boundaries within 20 ms
    import soxr
    x22 = soxr.resample(x, 16000, 22050).astype(np.float32)
    p22 = align_phones(x22, text, sample_rate=22050)
    assert [p[0] for p in p22] == [p[0] for p in phones]
    assert max(abs(p[1] - q[1]) for p, q in zip(p22, phones)) <= 0.02 + 1e-9
    assert align_words(x, text, keep_silence=True)[0][0] == "<sil>"


def test_missing_words():
    x, _text = _clip(ARCTIC)
    assert missing_words("and you always want xyzzyq frobnitz xyzzyq") == ["xyzzyq", "frobnitz"]
    with pytest.raises(ValueError, match="xyzzyq"):
        align_phones(x, "and you always want to see it in the xyzzyq degree")
    skipped = align_phones(x, "and you always want to see it in the xyzzyq degree",
                           on_missing="skip")
    assert "S" in [p[0] for p in skipped] and skipped[-2][0] == "IY"  # ... degree
    with pytest.raises(ValueError, match="no word"):
        align_phones(x, "xyzzyq", on_missing="skip")
    with pytest.raises(ValueError, match="on_missing"):
        align_phones(x, "and you", on_missing="guess")


def test_bad_inputs():
    x, text = _clip(ARCTIC)
    with pytest.raises(AudioError):
        align_phones(np.stack([x, x], axis=1), text)  # not mono [N]
    with pytest.raises(AudioError):
        align_phones((x * 32767).astype(np.int16), text)  # not floating point
    bad = x.copy()
    bad[100] = np.nan
    with pytest.raises(AudioError):
        align_phones(bad, text)
    with pytest.raises(AudioError):
        align_phones(x[:400], text)  # 25 ms
    with pytest.raises(ValueError, match="no words"):
        align_phones(x, " ?! ")
    with pytest.raises(ValueError):
        align_phones(x, text, sample_rate=0)
    # digital silence cannot be aligned to a sentence; the next call still works
    with pytest.raises(AlignmentError):
        align_phones(np.zeros(16000, np.float32), text)
    assert align_phones(x, text) == _aligned(ARCTIC)[2]
