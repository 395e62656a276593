"""Tests of the procedural ARKit-52 teacher (model_core.training.teacher / .phonemes)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from model_core.face import ARKIT_52
from model_core.training.phonemes import (ARPABET_PHONES, detect_alphabet, parse_phone,
                                      viseme_class)
from model_core.training.teacher import (MOUTH_CHANNELS, UPPER_FACE_CHANNELS, channel_indices,
                                     prosody_from_audio, teacher_curves)

IDX = {n: i for i, n in enumerate(ARKIT_52)}
MOUTH = channel_indices(MOUTH_CHANNELS)
UPPER = channel_indices(UPPER_FACE_CHANNELS)
FPS = 30


def seq(labels, start=0.5, vowel=0.14, cons=0.08, tail=0.6):
    """Back-to-back phones: vowels (and stressed ARPAbet) ``vowel`` s, consonants ``cons``."""
    phones, t = [], start
    for lab in labels:
        d = vowel if parse_phone(lab).visemes and parse_phone(lab).visemes[0] in (
            "AA", "AE", "AH", "AO", "OH", "EH", "IH", "IY", "UH", "UW", "ER", "AX") else cons
        phones.append((lab, t, t + d))
        t += d
    return phones, t + tail


def frames_in(phone, fps=FPS):
    _, s, e = phone
    return [i for i in range(int(np.ceil(s * fps)), int(np.ceil(e * fps))) if s <= i / fps < e]


def synthetic_speech(minutes, seed=0):
    """Long ARPAbet 'speech': random CV syllables in phrases separated by pauses."""
    r = np.random.default_rng(seed)
    vowels = ["AA1", "AE1", "AH0", "IY1", "UW1", "EH1", "OW1", "AY1", "ER0", "IH0"]
    cons = ["P", "B", "M", "T", "D", "S", "K", "N", "L", "R", "F", "V", "W", "SH", "TH", "HH"]
    phones, t, end = [], 0.3, minutes * 60.0
    while t < end - 3.0:
        for _ in range(int(r.integers(4, 14))):
            d = r.uniform(0.05, 0.11)
            phones.append((str(r.choice(cons)), t, t + d))
            t += d
            d = r.uniform(0.08, 0.2)
            phones.append((str(r.choice(vowels)), t, t + d))
            t += d
        d = r.uniform(0.2, 0.8)
        phones.append(("SIL", t, t + d))
        t += d
    return phones, end


# ------------------------------------------------------------------------------------------
# mouth
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fps", [25, 30, 60])
def test_bilabials_close_the_mouth(fps):
    phones, dur = seq("AA M AA B AA P AA".split(), cons=0.08)
    c = teacher_curves(phones, dur, fps, np.random.default_rng(0))
    jaw, close = c[:, IDX["jawOpen"]], c[:, IDX["mouthClose"]]
    press = c[:, IDX["mouthPressLeft"]]
    vowel_peak = min(jaw[frames_in(p, fps)].max() for p in phones if p[0] == "AA")
    assert vowel_peak > 0.3
    for k, p in enumerate(phones):
        if p[0] not in "MBP":
            continue
        fr = frames_in(p, fps)
        assert fr, "a 80 ms phone contains a frame at every fps"
        neighbours = np.concatenate([jaw[frames_in(phones[k - 1], fps)],
                                     jaw[frames_in(phones[k + 1], fps)]])
        assert jaw[fr].max() < 0.5 * neighbours.max()
        assert jaw[fr].max() < 0.5 * vowel_peak
        assert close[fr].min() > 0.05           # lips sealed against the open jaw
        assert press[fr].min() > 0.2
        nxt = frames_in(phones[k + 1], fps)
        assert close[nxt[int(np.argmax(jaw[nxt]))]] < 0.02     # lips apart on the vowel


def test_short_bilabials_still_close():
    phones, dur = seq("AA1 B AH0 M IY1 P AA1".split(), cons=0.03, vowel=0.1)
    c = teacher_curves(phones, dur, 100, np.random.default_rng(1))
    jaw = c[:, IDX["jawOpen"]]
    for p in phones:
        if p[0] in "BMP":
            fr = frames_in(p, 100)
            assert jaw[fr].max() <= 0.13 and c[fr, IDX["mouthClose"]].min() > 0.05


def test_open_vowels_open_the_jaw_most():
    open_v = ["AA1", "AE1", "AH1", "AO1", "AW1", "AY1"]
    closed_v = ["IY1", "IH1", "UW1", "UH1", "EH1", "ER1"]
    peaks = {}
    for v in open_v + closed_v + ["S", "F", "T"]:
        phones, dur = seq(["T", v, "T"], vowel=0.2)
        c = teacher_curves(phones, dur, FPS, np.random.default_rng(0))
        peaks[v] = c[frames_in(phones[1]), IDX["jawOpen"]].max()
    assert min(peaks[v] for v in open_v) > max(peaks[v] for v in closed_v)
    assert min(peaks[v] for v in open_v) > 0.35
    assert max(peaks[v] for v in ["S", "F", "T"]) < 0.2


def test_rounded_and_labiodental_shapes():
    c_uw = teacher_curves(*seq(["T", "UW1", "T"], vowel=0.2), FPS, np.random.default_rng(0))
    c_iy = teacher_curves(*seq(["T", "IY1", "T"], vowel=0.2), FPS, np.random.default_rng(0))
    mid = frames_in(seq(["T", "UW1", "T"], vowel=0.2)[0][1])
    assert c_uw[mid, IDX["mouthPucker"]].max() > 0.4 > c_iy[mid, IDX["mouthPucker"]].max()
    assert c_iy[mid, IDX["mouthStretchLeft"]].max() > 0.3
    phones, dur = seq(["AA1", "F", "AA1", "V", "AA1"], cons=0.1)
    c = teacher_curves(phones, dur, FPS, np.random.default_rng(0))
    for p in (phones[1], phones[3]):
        fr = frames_in(p)
        assert c[fr, IDX["mouthRollLower"]].max() > 0.3
        assert c[fr, IDX["mouthUpperUpLeft"]].max() > 0.15
    phones, dur = seq(["AA1", "TH", "AA1"], cons=0.1)
    c = teacher_curves(phones, dur, FPS, np.random.default_rng(0))
    tongue = c[:, IDX["tongueOut"]]
    assert 0.03 < tongue[frames_in(phones[1])].max() < 0.3


def test_silence_is_rest_pose():
    phones = [("SIL", 0.0, 1.0), ("HH", 1.0, 1.08), ("AH1", 1.08, 1.3), ("L", 1.3, 1.38),
              ("OW1", 1.38, 1.6), ("sp", 1.6, 3.0)]
    c = teacher_curves(phones, 3.0, FPS, np.random.default_rng(0))
    quiet = list(range(0, 21)) + list(range(63, 90))   # >= 300 ms away from any phone
    assert np.abs(c[np.ix_(quiet, MOUTH)]).max() < 0.01
    assert c[:, IDX["jawOpen"]].max() > 0.3
    empty = teacher_curves([], 2.0, FPS, np.random.default_rng(0))
    assert np.abs(empty[:, MOUTH]).max() < 1e-6


def test_mouth_starts_moving_before_the_sound():
    phones = [("UW1", 1.0, 1.3)]
    c = teacher_curves(phones, 2.0, 100, np.random.default_rng(0))
    pucker = c[:, IDX["mouthPucker"]]
    assert 0.05 < pucker[94] < pucker[100]          # anticipation 60 ms before
    assert pucker[75] < 0.02                         # but not 250 ms before


# ------------------------------------------------------------------------------------------
# frames, ranges, inputs
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fps", [25, 30, 60])
@pytest.mark.parametrize("duration", [0.0, 0.01, 1.0, 2.345, 3.02])
def test_frame_count_and_range(fps, duration):
    phones, _ = seq("HH AH0 L OW1 W ER1 L D".split(), start=0.1)
    c = teacher_curves(phones, duration, fps, np.random.default_rng(3))
    assert c.shape == (int(np.floor(duration * fps + 0.5)), 52)
    assert c.dtype == np.float32
    assert np.all(np.isfinite(c)) and np.all((c >= 0.0) & (c <= 1.0))


def test_same_face_at_every_fps():
    phones, dur = seq("S EH1 V AH0 N T IY1 M AY1 L Z".split())
    c30 = teacher_curves(phones, dur, 30, np.random.default_rng(5))
    c60 = teacher_curves(phones, dur, 60, np.random.default_rng(5))
    np.testing.assert_allclose(c60[::2][: len(c30)], c30, atol=1e-6)


def test_bad_input_raises():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        teacher_curves([("AA", 0.5, 0.4)], 1.0, 30, rng)           # end < start
    with pytest.raises(ValueError):
        teacher_curves([], -1.0, 30, rng)
    with pytest.raises(ValueError):
        teacher_curves([], 1.0, 0, rng)
    with pytest.raises(ValueError):
        teacher_curves([("AA", 0.1)], 1.0, 30, rng)
    with pytest.raises(ValueError):
        teacher_curves([(3, 0.1, 0.2)], 1.0, 30, rng)
    with pytest.raises(ValueError):
        teacher_curves([("AA", float("nan"), 0.2)], 1.0, 30, rng)
    with pytest.raises(ValueError):
        teacher_curves([], 1.0, 30, rng, prosody={"f0": np.zeros(29), "energy": np.zeros(29)})
    with pytest.raises(ValueError):
        teacher_curves([], 1.0, 30, rng, prosody={"f0": np.zeros(30)})
    with pytest.raises(TypeError):
        teacher_curves([], 1.0, 30, 0)
    with pytest.raises(ValueError):
        channel_indices(["jawOpen", "jawOpn"])
    assert list(channel_indices(["eyeBlinkLeft", "tongueOut"])) == [0, 51]


def test_unknown_labels_do_not_crash():
    phones = [("AA1", 0.1, 0.3), ("XQZ", 0.3, 0.4), ("", 0.4, 0.5), ("@@!", 0.5, 0.6),
              ("é", 0.6, 0.7), ("AA9", 0.7, 0.8), ("M", 0.8, 0.9), ("<unk>", 0.9, 1.0)]
    c = teacher_curves(phones, 1.2, FPS, np.random.default_rng(0))
    assert np.all(np.isfinite(c)) and c.min() >= 0 and c.max() <= 1
    assert viseme_class("XQZ") == "NEU" and viseme_class("AA9") == "NEU"
    # phones outside the clip and zero-length phones are fine too
    c = teacher_curves([("AA", -0.5, 0.2), ("'", 0.2, 0.2), ("M", 0.9, 1.6)], 1.0, FPS,
                       np.random.default_rng(0))
    assert c.shape == (30, 52) and c[0, IDX["jawOpen"]] > 0.3 and c[-1, IDX["jawOpen"]] < 0.13


# ------------------------------------------------------------------------------------------
# phone alphabets
# ------------------------------------------------------------------------------------------

def test_arpabet_with_and_without_stress():
    assert len(ARPABET_PHONES) == 39
    for p in ARPABET_PHONES:
        assert viseme_class(p) not in ("NEU", "sil")
    assert viseme_class("AA1") == viseme_class("AA") == viseme_class("aa0") == "AA"
    assert viseme_class("AH0") == "AX" and viseme_class("AH1") == "AH"
    assert viseme_class("AY2") == "AA" and parse_phone("AY1").visemes == ("AA", "IH")
    for b in ("P", "B", "M", "p", "b", "m"):
        assert viseme_class(b) == "PP"
    assert viseme_class("T") == "DD" and viseme_class("TH") == "TH"
    assert parse_phone("IY1").stress == 1 and parse_phone("IY").stress is None
    for s in ("SIL", "sil", "sp", "<sil>", "<s>", "</s>", "+NSN+", "+SPN+", "[NOISE]", "_",
              "_:", "pau"):
        assert parse_phone(s).kind == "silence" and viseme_class(s) == "sil"
    # stress digits change the jaw a little, not the shape class
    a = teacher_curves(*seq(["T", "AA1", "T"]), FPS, np.random.default_rng(0))
    b = teacher_curves(*seq(["T", "AA0", "T"]), FPS, np.random.default_rng(0))
    c = teacher_curves(*seq(["T", "AA", "T"]), FPS, np.random.default_rng(0))
    j = IDX["jawOpen"]
    assert a[:, j].max() > c[:, j].max() > b[:, j].max() > 0.8 * a[:, j].max()


def test_espeak_mnemonics():
    table = {"p": "PP", "b": "PP", "m": "PP", "f": "FF", "v": "FF", "T": "TH", "D": "TH",
             "s": "SS", "z": "SS", "S": "SH", "Z": "SH", "tS": "SH", "dZ": "SH", "l": "LL",
             "r": "RR", "w": "WW", "j": "YY", "h": "HH", "n": "NN", "N": "KK", "t": "DD",
             "d": "DD", "k": "KK", "g": "KK", "a": "AE", "A:": "AA", "@": "AX", "3:": "ER",
             "E": "EH", "I": "IH", "i:": "IY", "O:": "AO", "U": "UH", "u:": "UW", "V": "AH",
             "aI": "AA", "aU": "AA", "eI": "EH", "OI": "AO", "oU": "OH", "e@": "EH",
             "I@": "IH", "U@": "UH", "'aI": "AA", "t#": "DD", "3:r": "ER", "aI;": "AA"}
    for lab, vis in table.items():
        assert viseme_class(lab, "espeak") == vis, lab
    for lab in ("_", "_:", "_!"):
        assert parse_phone(lab).kind == "silence"
    for lab in ("'", ",", "%"):
        assert parse_phone(lab).kind == "mark"
    assert parse_phone("'aI").stress == 1 and parse_phone(",@").stress == 2
    # the symbols the alphabets share are settled by the sequence
    assert detect_alphabet(["h", "@", "l", "oU"]) == "espeak"
    assert detect_alphabet(["D", "V", "s"]) == "arpabet"
    assert detect_alphabet(["D", "@", "k", "{", "_"]) == "espeak"
    assert viseme_class("D") == "DD" and viseme_class("D", "espeak") == "TH"


def test_espeak_and_arpabet_give_the_same_mouth():
    # "the man" in both alphabets, same timing
    times = [(0.3, 0.36), (0.36, 0.42), (0.42, 0.5), (0.5, 0.68), (0.68, 0.76)]
    arpa = [(lab, s, e) for lab, (s, e) in zip(["DH", "AH0", "M", "AE1", "N"], times)]
    esp = [("_", 0.0, 0.3)] + [(lab, s, e) for lab, (s, e) in
                               zip(["D", "@", "m", "'a", "n"], times)] + [("_:", 0.76, 1.2)]
    ca = teacher_curves(arpa, 1.2, FPS, np.random.default_rng(0))
    ce = teacher_curves(esp, 1.2, FPS, np.random.default_rng(0))
    np.testing.assert_allclose(ca[:, MOUTH], ce[:, MOUTH], atol=1e-6)
    assert ce[frames_in(esp[3]), IDX["mouthClose"]].min() > 0.05   # "m" closes
    assert ce[frames_in(esp[4]), IDX["jawOpen"]].max() > 0.35       # "a" opens


# ------------------------------------------------------------------------------------------
# upper face
# ------------------------------------------------------------------------------------------

def blink_events(c, fps, thr=0.5):
    """(onset, peak, offset) frame indices of blinks in the left eye."""
    x = c[:, IDX["eyeBlinkLeft"]]
    above = np.flatnonzero(np.diff((x > thr).astype(np.int8)) == 1) + 1
    out = []
    for a in above:
        lo = a
        while lo > 0 and x[lo - 1] > 0.1 and x[lo - 1] < x[lo]:
            lo -= 1
        hi = a
        while hi < len(x) - 1 and x[hi + 1] > 0.1:
            hi += 1
        out.append((lo, a + int(np.argmax(x[a:hi + 1])), hi))
    return out


def test_blinks_rate_both_eyes_and_kinematics():
    phones, dur = synthetic_speech(5.0)
    for seed in range(4):
        c = teacher_curves(phones, dur, FPS, np.random.default_rng(seed))
        ev = blink_events(c, FPS)
        rate = len(ev) / (dur / 60.0)
        assert 8 <= rate <= 25, rate
        left, right = c[:, IDX["eyeBlinkLeft"]], c[:, IDX["eyeBlinkRight"]]
        assert np.abs(left - right).max() < 0.05          # both eyes together
        peaks = np.array([p for _, p, _ in ev])
        assert right[peaks].min() > 0.5
        gaps = np.diff(peaks) / FPS
        assert gaps.min() >= 0.5                          # refractory
        assert gaps.std() > 0.3 * gaps.mean()             # irregular, Poisson-like
    # duration 100-400 ms, closing faster than opening (60 fps for timing resolution)
    c = teacher_curves(phones[:400], 60.0, 60, np.random.default_rng(7))
    ev = blink_events(c, 60, thr=0.5)
    assert len(ev) >= 8
    x = c[:, IDX["eyeBlinkLeft"]]
    close_t, open_t = [], []
    for lo, pk, hi in ev:
        above = np.flatnonzero(x[lo:hi + 1] > 0.2 * x[pk]) + lo
        assert 0.05 <= (above[-1] - above[0]) / 60 <= 0.4
        close_t.append(pk - above[0])
        open_t.append(above[-1] - pk)
    assert np.mean(close_t) < 0.7 * np.mean(open_t)


def test_seeds_change_upper_face_not_mouth():
    phones, dur = synthetic_speech(0.5)
    a = teacher_curves(phones, dur, FPS, np.random.default_rng(1))
    b = teacher_curves(phones, dur, FPS, np.random.default_rng(2))
    a2 = teacher_curves(phones, dur, FPS, np.random.default_rng(1))
    np.testing.assert_array_equal(a, a2)                  # deterministic given the rng
    np.testing.assert_allclose(a[:, MOUTH], b[:, MOUTH], atol=1e-6)
    diff = np.abs(a[:, UPPER] - b[:, UPPER]).mean(axis=0)
    assert diff.mean() > 0.01
    for name in ("browInnerUp", "eyeBlinkLeft", "eyeLookOutLeft", "eyeSquintLeft"):
        assert np.abs(a[:, IDX[name]] - b[:, IDX[name]]).max() > 0.02, name
    # the upper face keeps moving without prosody (idle brows, gaze)
    assert a[:, IDX["browInnerUp"]].std() > 0.005
    assert (a[:, IDX["eyeLookInLeft"]] + a[:, IDX["eyeLookOutLeft"]]).std() > 0.005


def synthetic_prosody(n, fps, accents):
    """f0 (Hz) with a pitch + loudness peak at each accent time; energy RMS."""
    t = np.arange(n) / fps
    f0 = np.full(n, 120.0)
    energy = np.full(n, 0.05)
    for a in accents:
        bump = np.exp(-0.5 * ((t - a) / 0.08) ** 2)
        f0 *= 2.0 ** (6.0 * bump / 12.0)   # +6 semitones
        energy *= 1.0 + 2.0 * bump
    f0[(t < 0.3) | (t > t[-1] - 0.3)] = 0.0
    energy[(t < 0.3) | (t > t[-1] - 0.3)] = 1e-4
    return {"f0": f0, "energy": energy}


def test_prosody_raises_brows():
    phones, dur = synthetic_speech(0.25)
    n = int(np.floor(dur * FPS + 0.5))
    accents = np.arange(1.0, dur - 1.0, 1.3)
    pros = synthetic_prosody(n, FPS, accents)
    brow = IDX["browInnerUp"]
    for seed in range(3):
        base = teacher_curves(phones, dur, FPS, np.random.default_rng(seed))
        withp = teacher_curves(phones, dur, FPS, np.random.default_rng(seed), prosody=pros)
        d = withp[:, brow] - base[:, brow]
        assert d.min() > -1e-6 and d.max() > 0.08
        # the raises sit on the accents
        near = np.zeros(n, bool)
        for a in accents:
            near[max(0, int((a - 0.5) * FPS)):int((a + 0.8) * FPS)] = True
        assert d[near].mean() > 3 * max(d[~near].mean(), 1e-4)
        assert (withp[:, IDX["eyeWideLeft"]] - base[:, IDX["eyeWideLeft"]]).max() > 0.02
        # loudness only scales the jaw; the other mouth shapes do not depend on prosody
        same = [i for i in MOUTH if ARKIT_52[i] not in ("jawOpen", "mouthClose")]
        np.testing.assert_allclose(withp[:, same], base[:, same], atol=1e-6)


# ------------------------------------------------------------------------------------------
# prosody from audio, speed
# ------------------------------------------------------------------------------------------

def test_prosody_from_audio_finds_f0_and_energy():
    sr = 16000
    t = np.arange(int(1.5 * sr)) / sr
    f0_true = 150.0
    tone = sum(np.sin(2 * np.pi * f0_true * k * t) / k for k in range(1, 8))
    gate = (t > 0.5) & (t < 1.2)
    rng = np.random.default_rng(0)
    x = (0.2 * tone * gate + 1e-4 * rng.standard_normal(len(t))).astype(np.float32)
    for fps in (25, 30, 60):
        p = prosody_from_audio(x, fps)
        n = int(np.floor(1.5 * fps + 0.5))
        assert p["f0"].shape == (n,) and p["energy"].shape == (n,)
        assert p["f0"].dtype == np.float32
        tf = np.arange(n) / fps
        inside = (tf > 0.56) & (tf < 1.14)
        outside = (tf < 0.44) | (tf > 1.26)
        np.testing.assert_allclose(p["f0"][inside], f0_true, rtol=0.02)
        assert np.all(p["f0"][outside] == 0)
        assert p["energy"][inside].min() > 20 * p["energy"][outside].max()
    assert prosody_from_audio(np.zeros(0, np.float32), 30)["f0"].shape == (0,)
    with pytest.raises(ValueError):
        prosody_from_audio(np.zeros((2, 100)), 30)
    with pytest.raises(ValueError):
        prosody_from_audio(np.array([0.0, np.nan]), 30)


def test_five_minutes_is_fast():
    phones, dur = synthetic_speech(5.0, seed=3)
    n = int(np.floor(dur * FPS + 0.5))
    pros = synthetic_prosody(n, FPS, np.arange(1.0, dur - 1.0, 1.7))
    teacher_curves(phones[:50], 5.0, FPS, np.random.default_rng(0), prosody=None)  # warm-up
    t = time.perf_counter()
    c = teacher_curves(phones, dur, FPS, np.random.default_rng(0), prosody=pros)
    elapsed = time.perf_counter() - t
    assert c.shape == (9000, 52)
    assert elapsed < 1.0, elapsed


def test_prosody_from_audio_feeds_the_teacher():
    sr = 16000
    t = np.arange(int(2.0 * sr)) / sr
    f0 = 110.0 * 2.0 ** (4.0 * np.exp(-0.5 * ((t - 1.0) / 0.1) ** 2) / 12.0)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) * ((t > 0.4) & (t < 1.6))
    x *= 0.1 * (1.0 + 1.5 * np.exp(-0.5 * ((t - 1.0) / 0.1) ** 2))
    p = prosody_from_audio(x.astype(np.float32), FPS)
    tf = np.arange(len(p["f0"])) / FPS
    voiced = p["f0"] > 0
    assert voiced[(tf > 0.5) & (tf < 1.5)].all() and not voiced[(tf < 0.3) | (tf > 1.7)].any()
    assert abs(tf[np.argmax(p["f0"])] - 1.0) < 0.05
    phones, _ = seq("M AY1 N EY1 M IH1 Z".split(), start=0.4, vowel=0.2, cons=0.1)
    c = teacher_curves(phones, 2.0, FPS, np.random.default_rng(0), prosody=p)
    assert c.shape == (60, 52) and np.all(np.isfinite(c))
