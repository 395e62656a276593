"""Metrics (model_core.evaluation.metrics) against values computed by hand on tiny arrays, and on
hand-built ARKit curves where the answer is known, including curves that must fail."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model_core.evaluation import metrics as M
from model_core.face import ARKIT_52

IDX = {n: i for i, n in enumerate(ARKIT_52)}
JAW = IDX["jawOpen"]


# ------------------------------------------------------------------------------------------
# vertex metrics
# ------------------------------------------------------------------------------------------

def test_lve_is_mean_over_frames_of_max_squared_lip_error():
    gt = np.zeros((2, 3, 3))
    pred = np.zeros((2, 3, 3))
    pred[0, 0] = [1, 0, 0]      # squared error 1
    pred[0, 1] = [1, 1, 0]      # 2  <- frame 0 max over lips
    pred[0, 2] = [10, 0, 0]     # 100, not a lip vertex
    pred[1, 0] = [0, 0, 3]      # 9  <- frame 1 max
    assert M.lve(pred, gt, [0, 1]) == pytest.approx((2 + 9) / 2)
    assert M.lve(pred, gt, np.array([True, True, False])) == pytest.approx(5.5)
    assert M.lve(pred, gt, [0, 1, 2]) == pytest.approx((100 + 9) / 2)
    # squared, not Euclidean: a 2-unit error on one vertex gives 4
    one = np.zeros((1, 1, 3))
    assert M.lve(one + [0, 2, 0], one, [0]) == pytest.approx(4.0)


def test_lve_matches_the_faceformer_loop():
    rng = np.random.default_rng(0)
    gt, pred = rng.normal(size=(2, 7, 40, 3))
    mouth_map = [3, 5, 8, 13, 21, 34]
    # FaceFormer / CodeTalker test scripts, literally
    d = np.array([np.square(gt[:, v, :] - pred[:, v, :]) for v in mouth_map])
    d = np.transpose(d, (1, 0, 2))
    d = np.sum(d, axis=2)
    d = np.max(d, axis=1)
    assert M.lve(pred, gt, mouth_map) == pytest.approx(float(np.mean(d)), rel=1e-12)


def test_fdd_std_of_squared_motion_and_sign():
    tpl = np.array([[5.0, -1.0, 2.0], [0.0, 0.0, 0.0]])
    gt = np.repeat(tpl[None], 4, axis=0).copy()
    pred = gt.copy()
    gt[:, 0, 0] += [0.0, 2.0, 0.0, 2.0]    # ||motion||^2 = 0, 4, 0, 4 -> std 2 (norm: std 1)
    pred[:, 0, 0] += [0.0, 1.0, 0.0, 1.0]  # 0, 1, 0, 1 -> std 0.5
    pred[:, 1, 1] += [0.0, 9.0, 0.0, 9.0]  # not an upper vertex: ignored
    v = M.fdd(pred, gt, tpl, [0])
    assert v == pytest.approx(2.0 - 0.5)
    assert v > 0                                            # prediction moves less
    assert M.fdd(gt, pred, tpl, [0]) == pytest.approx(-1.5)   # moves more: negative
    # mean over upper vertices: vertex 1 does not move in gt, moves in pred (std 40.5)
    assert M.fdd(pred, gt, tpl, [0, 1]) == pytest.approx(((2.0 - 0.5) + (0.0 - 40.5)) / 2)
    assert M.fdd(gt, gt, tpl, [0, 1]) == 0.0


def test_fdd_matches_the_codetalker_loop():
    rng = np.random.default_rng(1)
    tpl = rng.normal(size=(30, 3))
    gt = tpl + 0.1 * rng.normal(size=(9, 30, 3))
    pred = tpl + 0.05 * rng.normal(size=(9, 30, 3))
    upper = [0, 2, 4, 6, 8, 29]

    def std_mean(x):
        m = x - tpl.reshape(1, 30, 3)
        d = np.array([np.square(m[:, v, :]) for v in upper])
        d = np.transpose(d, (1, 0, 2))
        return np.mean(np.std(np.sum(d, axis=2), axis=0))

    assert M.fdd(pred, gt, tpl, upper) == pytest.approx(std_mean(gt) - std_mean(pred),
                                                        rel=1e-12)


def test_mve_is_mean_euclidean_error():
    gt = np.zeros((1, 2, 3))
    pred = gt.copy()
    pred[0, 0] = [3, 4, 0]                  # 5
    assert M.mve(pred, gt) == pytest.approx(2.5)
    pred2 = np.zeros((2, 2, 3))
    pred2[1, 1] = [0, 0, 2]
    assert M.mve(pred2, np.zeros((2, 2, 3))) == pytest.approx(0.5)


def test_vertex_metrics_reject_bad_input():
    a = np.zeros((3, 4, 3))
    with pytest.raises(ValueError, match="differ"):
        M.lve(a, np.zeros((3, 5, 3)), [0])
    with pytest.raises(ValueError, match="T, V, 3"):
        M.mve(np.zeros((3, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="empty"):
        M.mve(np.zeros((0, 4, 3)), np.zeros((0, 4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        M.mve(a + np.nan, a)
    for bad in ([], [4], [-1], [0.5], np.array([True, False]), [[0, 1]], "0"):
        with pytest.raises(ValueError):
            M.lve(a, a, bad)
    with pytest.raises(ValueError, match="template"):
        M.fdd(a, a, np.zeros((5, 3)), [0])
    with pytest.raises(ValueError):
        M.fdd(a, a, np.zeros((4, 3)), [7])
    assert M.lve(a, a, np.array([0.0, 3.0])) == 0.0   # integral floats are indices


# ------------------------------------------------------------------------------------------
# blendshape metrics on hand-built curves
# ------------------------------------------------------------------------------------------

FPS = 100   # 10 ms frames: frame i is the face at i / 100 s

# SIL | AA | M | AA | B (20 ms: too short) | AA1 | p (lower case) | AE | SIL
PHONES = [("SIL", 0.0, 0.2), ("AA", 0.2, 0.4), ("M", 0.4, 0.5), ("AA", 0.5, 0.7),
          ("B", 0.7, 0.72), ("AA1", 0.72, 0.9), ("p", 0.9, 1.0), ("AE", 1.0, 1.1),
          ("SIL", 1.1, 1.2)]


def curves(jaw_by_phone: dict, default=0.6, n=120) -> np.ndarray:
    """[n, 52] with jawOpen set per phone index (frames i with start <= i/FPS < end)."""
    c = np.zeros((n, 52))
    for k, (_, s, e) in enumerate(PHONES):
        fr = M.phone_frames(s, e, FPS, n)
        c[fr, JAW] = jaw_by_phone.get(k, default if PHONES[k][0] != "SIL" else 0.0)
    return c


def test_phone_frames_half_open_and_widened():
    assert list(M.phone_frames(0.4, 0.5, 100, 120)) == list(range(40, 50))
    assert list(M.phone_frames(0.4, 0.5, 100, 120, widen=1)) == list(range(39, 51))
    # a 20 ms phone between two 30 fps frames has no frame; widened it gets its neighbours
    assert list(M.phone_frames(0.34, 0.36, 30, 100)) == []
    assert list(M.phone_frames(0.34, 0.36, 30, 100, widen=1)) == [10, 11]
    assert list(M.phone_frames(0.0, 0.05, 30, 100, widen=1)) == [0, 1, 2]   # clipped at 0


def test_bilabial_closure_rule():
    c = curves({2: 0.05, 6: 0.1})                    # M and p closed, B ineligible
    d = M.bilabial_closures(c, PHONES, FPS)
    assert d["open_level"] == pytest.approx(0.6) and d["threshold"] == pytest.approx(0.3)
    assert d["open_level_from"] == "open_vowels"
    assert (d["n_eligible"], d["n_closed"]) == (2, 2)
    assert [p["label"] for p in d["phones"]] == ["M", "p"]
    assert M.bilabial_closure_rate(c, PHONES, FPS) == 1.0
    # p stays open at 0.4 > 0.3: half of the bilabials close -> fails the 0.8 check
    c = curves({2: 0.05, 6: 0.4})
    assert M.bilabial_closure_rate(c, PHONES, FPS) == 0.5
    # the threshold is inclusive: exactly 0.5 x open level closes, just above does not
    assert M.bilabial_closure_rate(curves({2: 0.3, 6: 0.3}), PHONES, FPS) == 1.0
    assert M.bilabial_closure_rate(curves({2: 0.31, 6: 0.31}), PHONES, FPS) == 0.0


def test_bilabial_closure_window_is_widened_by_one_frame():
    c = curves({2: 0.5, 6: 0.5})
    c[39, JAW] = 0.1     # one frame before M (0.40 s): inside the widened window
    c[101, JAW] = 0.1    # two frames after p ends (1.00 s), in AE: outside
    d = M.bilabial_closures(c, PHONES, FPS)
    assert [p["closed"] for p in d["phones"]] == [True, False]


def test_bilabial_open_level_is_the_90th_percentile_of_open_vowels():
    c = curves({2: 0.2, 6: 0.2})
    # one open-vowel phone peaks at 1.0: the 90th percentile ignores that short peak
    c[25:28, JAW] = 1.0
    d = M.bilabial_closures(c, PHONES, FPS)
    jaw_ov = np.concatenate([c[M.phone_frames(s, e, FPS, 120), JAW]
                             for lab, s, e in PHONES if lab in ("AA", "AA1", "AE")])
    assert d["open_level"] == pytest.approx(np.percentile(jaw_ov, 90))
    # no open vowel: the level comes from all speech frames
    phones = [("IY", 0.2, 0.4), ("M", 0.4, 0.5), ("IY", 0.5, 0.7)]
    c = np.zeros((80, 52))
    c[20:40, JAW] = 0.3
    c[50:70, JAW] = 0.3
    d = M.bilabial_closures(c, phones, FPS)
    assert d["open_level_from"] == "speech"
    assert d["open_level"] == pytest.approx(0.3) and d["rate"] == 1.0


def test_frozen_mouth_does_not_pass_closure():
    still = np.zeros((120, 52))
    assert M.bilabial_closure_rate(still, PHONES, FPS) == 0.0
    assert M.bilabial_closure_rate(still, PHONES, FPS, min_open_level=0) == 1.0
    assert math.isnan(M.bilabial_closure_rate(still, [("AA", 0.1, 0.5)], FPS))  # none


def test_open_vowel_jaw():
    c = curves({2: 0.1, 4: 0.1, 6: 0.1})           # vowels 0.6, consonants 0.1
    c[:20, JAW] = 0.9                               # silence is ignored
    r = M.open_vowel_jaw(c, PHONES, FPS)
    assert r["open"] == pytest.approx(0.6) and r["other"] == pytest.approx(0.1)
    assert r["ratio"] == pytest.approx(6.0)
    assert (r["n_open"], r["n_other"]) == (20 + 20 + 18 + 10, 10 + 2 + 10)
    # a mouth that opens more on consonants than on vowels: ratio < 1
    bad = curves({2: 0.7, 4: 0.7, 6: 0.7}, default=0.2)
    assert M.open_vowel_jaw(bad, PHONES, FPS)["ratio"] < 1
    # diphthongs AW / AY are open vowels; IY is not
    r = M.open_vowel_jaw(np.full((40, 52), 0.5), [("AW", 0.0, 0.1), ("AY1", 0.1, 0.2),
                                                  ("IY", 0.2, 0.4)], FPS)
    assert (r["n_open"], r["n_other"]) == (20, 20)


def test_jaw_correlation():
    rng = np.random.default_rng(0)
    ref = rng.random((50, 52))
    pred = ref.copy()
    pred[:, JAW] = 0.5 * ref[:, JAW] + 0.1
    assert M.jaw_correlation(pred, ref) == pytest.approx(1.0)
    pred[:, JAW] = 1 - ref[:, JAW]
    assert M.jaw_correlation(pred, ref) == pytest.approx(-1.0)
    other = rng.random((50, 52))
    assert M.jaw_correlation(other, ref) == pytest.approx(
        np.corrcoef(other[:, JAW], ref[:, JAW])[0, 1])
    assert M.jaw_correlation(other[:, JAW], ref[:, JAW]) == M.jaw_correlation(other, ref)
    assert math.isnan(M.jaw_correlation(np.full((50, 52), 0.3), ref))   # constant
    with pytest.raises(ValueError):
        M.jaw_correlation(ref[:40], ref)
    with pytest.raises(ValueError):
        M.jaw_correlation(ref[:, :51], ref[:, :51])


def blink_curves(b: np.ndarray, right=None) -> np.ndarray:
    c = np.zeros((len(b), 52))
    c[:, IDX["eyeBlinkLeft"]] = b
    c[:, IDX["eyeBlinkRight"]] = b if right is None else right
    return c


def test_blink_rule():
    b = np.zeros(30)
    b[5:8] = 1.0                       # a blink (3 frames above 0.5)
    b[15] = 1.0                        # one frame: not a blink
    assert M.count_blinks(blink_curves(b)) == 1
    b = np.zeros(40)
    b[5:8] = 1.0
    b[8:10] = 0.4                      # dip, but not below 0.3: the same blink
    b[10:12] = 0.9
    assert M.count_blinks(blink_curves(b)) == 1
    b[8:10] = 0.2                      # dip below 0.3: two blinks
    assert M.count_blinks(blink_curves(b)) == 2
    b = np.zeros(20)
    b[5:9] = 1.0                       # left closed, right open: mean 0.5 is not > 0.5
    assert M.count_blinks(blink_curves(b, right=np.zeros(20))) == 0
    assert M.count_blinks(blink_curves(b, right=0.2 * b)) == 1       # mean 0.6
    assert M.count_blinks(np.zeros((0, 52))) == 0


def test_blink_rate_per_minute_and_failures():
    fps = 30
    b = np.zeros(60 * fps)             # one minute
    for k in range(12):
        b[k * 150 + 20: k * 150 + 26] = 1.0
    assert M.blink_rate(blink_curves(b), fps) == pytest.approx(12.0)
    assert M.blink_rate(blink_curves(b[: 30 * fps]), fps) == pytest.approx(12.0)  # 6 in 30 s
    assert M.blink_rate(np.zeros((60 * fps, 52)), fps) == 0.0          # never blinks: < 8
    fast = np.zeros(60 * fps)
    for k in range(40):
        fast[k * 45 + 5: k * 45 + 10] = 1.0
    assert M.blink_rate(blink_curves(fast), fps) == pytest.approx(40.0)  # > 25
    with pytest.raises(ValueError):
        M.blink_rate(np.zeros((0, 52)), fps)
    with pytest.raises(ValueError):
        M.blink_rate(blink_curves(b), 0)


def test_seed_diversity():
    base = np.full((10, 52), 0.2)
    seeds = [base.copy() for _ in range(3)]
    for k, s in enumerate(seeds):
        s[:, IDX["eyeBlinkLeft"]] = k          # 0, 1, 2 -> std sqrt(2/3) on one channel
    d = M.seed_diversity(seeds)
    assert d["lips"] == pytest.approx(0.0, abs=1e-12)
    assert d["upper"] == pytest.approx(math.sqrt(2 / 3) / len(M.UPPER_CHANNELS))
    assert d["lips"] < d["upper"]
    assert M.seed_diversity(np.stack(seeds)) == d
    # lips that change with the seed while the upper face does not: fails the check
    for k, s in enumerate(seeds):
        s[:, IDX["eyeBlinkLeft"]] = 0.2
        s[:, JAW] = 0.1 * k
    d = M.seed_diversity(seeds)
    assert d["lips"] == pytest.approx(np.std([0.0, 0.1, 0.2]) / len(M.LIP_CHANNELS))
    assert d["upper"] == pytest.approx(0.0, abs=1e-12) and d["lips"] > d["upper"]
    assert len(M.LIP_CHANNELS) == 27 and len(M.UPPER_CHANNELS) == 19
    with pytest.raises(ValueError, match="2 seeds"):
        M.seed_diversity([base])
    with pytest.raises(ValueError):
        M.seed_diversity([base, base[:5]])


def test_channel_mae():
    ref = np.full((20, 52), 0.3)
    pred = ref.copy()
    pred[:, JAW] += 0.1
    pred[:10, IDX["eyeBlinkLeft"]] -= 0.2
    r = M.channel_mae(pred, ref)
    assert r["per_channel"]["jawOpen"] == pytest.approx(0.1)
    assert r["per_channel"]["eyeBlinkLeft"] == pytest.approx(0.1)
    assert r["per_channel"]["mouthClose"] == 0.0
    assert r["mean"] == pytest.approx(0.2 / 52)
    assert r["mouth_mean"] == pytest.approx(0.1 / 27)
    with pytest.raises(ValueError):
        M.channel_mae(pred, ref[:10])


def test_blendshape_metrics_reject_bad_input():
    c = np.zeros((10, 52))
    with pytest.raises(ValueError):
        M.bilabial_closure_rate(np.zeros((10, 51)), PHONES, FPS)
    with pytest.raises(ValueError):
        M.bilabial_closure_rate(np.zeros((0, 52)), PHONES, FPS)
    with pytest.raises(ValueError):
        M.bilabial_closure_rate(c, [("M", 0.5, 0.4)], FPS)
    with pytest.raises(ValueError):
        M.bilabial_closure_rate(c, [("M", 0.5)], FPS)
    with pytest.raises(ValueError):
        M.open_vowel_jaw(c, "AA", FPS)
    with pytest.raises(ValueError):
        M.open_vowel_jaw(c, PHONES, -1)
    with pytest.raises(ValueError):
        M.open_vowel_jaw(c + np.nan, PHONES, FPS)


# ------------------------------------------------------------------------------------------
# lip-gap measures (on a head's geometry)
# ------------------------------------------------------------------------------------------

from model_core.evaluation.arkit_head import ArkitHead, load_facecap_head  # noqa: E402


def _toy_head() -> ArkitHead:
    """One lip pair 0.2 mm apart at rest; jawOpen parts the lips by 40 mm, mouthClose
    (applied with the jaw, as ARKit defines it) brings them back by 40 mm."""
    neutral = np.array([[0.0, 0.0, 0.0], [0.0, -0.2, 0.0]])
    deltas = np.zeros((52, 2, 3))
    deltas[IDX["jawOpen"], 1] = [0.0, -40.0, 0.0]
    deltas[IDX["mouthClose"], 1] = [0.0, 40.0, 0.0]
    deltas[IDX["mouthFunnel"], 1] = [0.0, -10.0, 0.0]
    return ArkitHead(neutral, deltas, np.array([[0, 1]]), name="toy")


def _frames(spec):
    """[(n_frames, {channel: weight})] -> weights [T, 52]."""
    rows = []
    for n, ws in spec:
        w = np.zeros(52)
        for k, v in ws.items():
            w[IDX[k]] = v
        rows += [w] * n
    return np.array(rows)


def test_lip_gap_of_closed_open_and_pressed_frames():
    head = _toy_head()
    w = _frames([(1, {}), (1, {"jawOpen": 1.0}), (1, {"jawOpen": 0.5, "mouthClose": 0.5}),
                 (1, {"jawOpen": 0.5})])
    assert head.lip_gap(w) == pytest.approx([0.2, 40.2, 0.2, 20.2])
    with pytest.raises(ValueError, match="52"):
        head.lip_gap(np.zeros((3, 51)))
    with pytest.raises(ValueError, match="NaN"):
        head.lip_gap(np.full((1, 52), np.nan))


# 10 frames per phone at 10 fps; the bilabials sit between vowels, so the frame of slack
# on each side of them does not reach a silence
_PHONES = [("SIL", 0.0, 1.0), ("AA", 1.0, 2.0), ("M", 2.0, 3.0), ("UW", 3.0, 4.0),
           ("IY", 4.0, 5.0), ("B", 5.0, 6.0), ("AA", 6.0, 7.0), ("SIL", 7.0, 8.0)]


def _performance(close_m=True, close_b=True, round_uw=True):
    return _frames([
        (10, {}),
        (10, {"jawOpen": 0.8}),
        (10, {"jawOpen": 0.5, "mouthClose": 0.5} if close_m else {"jawOpen": 0.5}),
        (10, {"jawOpen": 0.2, "mouthPucker": 0.6, "mouthFunnel": 0.2} if round_uw
         else {"jawOpen": 0.2}),
        (10, {"jawOpen": 0.3}),
        (10, {} if close_b else {"jawOpen": 0.4}),
        (10, {"jawOpen": 0.8}),
        (10, {}),
    ])


def test_lip_gap_measures_known_answers():
    head = _toy_head()
    w = _performance()
    r = M.lip_gap_measures(head.lip_gap(w), w, _PHONES, 10.0)
    assert (r["n_bilabials"], r["n_closed"], r["closure"]) == (2, 2, 1.0)
    assert r["open_gap"] == pytest.approx(32.2)
    assert r["closed_gap"] == pytest.approx(0.2)
    assert r["open_closed_ratio"] == pytest.approx(32.2 / 0.2)
    # rounding: funnel + pucker on UW (0.8) minus on IY (0)
    assert r["rounding"] == pytest.approx(0.8)
    # openness: the gap rises with the target (M, B 0; UW 0.35 -> 2 mm funnel + 8 mm;
    # IY 0.35 -> 12 mm; AA 1.0 -> 32 mm)
    assert r["openness_r"] > 0.9


def test_lip_gap_measures_say_no():
    head = _toy_head()
    w = _performance(close_m=False, close_b=False, round_uw=False)
    r = M.lip_gap_measures(head.lip_gap(w), w, _PHONES, 10.0)
    assert r["n_closed"] == 0 and r["closure"] == 0.0
    assert r["open_closed_ratio"] < 2.0
    assert r["rounding"] == pytest.approx(0.0)
    # a mouth that opens with loudness but closes nowhere: the open level is still
    # reached on the vowels, so the bilabials count as open
    still = np.zeros_like(w)
    rs = M.lip_gap_measures(head.lip_gap(still), still, _PHONES, 10.0)
    assert rs["closure"] == 0.0 and math.isnan(rs["openness_r"])


def test_false_seals_count_lips_shut_on_phones_that_do_not_seal():
    """Lips pressed shut on an L (jaw at 0.3, mouthClose 0.3: the 0.2 mm of rest) count
    as a false seal; the P/B/M and its neighbours (IY, the second AA), F and W do not
    count either way, so 1 of the 4 eligible phones (AA, L, AH0, T); in IPA the same."""
    head = _toy_head()
    phones = [("SIL", 0, 1), ("AA", 1, 2), ("L", 2, 3), ("AH0", 3, 4), ("T", 4, 5),
              ("F", 5, 6), ("W", 6, 7), ("IY", 7, 8), ("M", 8, 9), ("AA", 9, 10),
              ("SIL", 10, 11)]
    spec = [{}, {"jawOpen": 0.8}, {"jawOpen": 0.3}, {"jawOpen": 0.2}, {"jawOpen": 0.3},
            {}, {}, {"jawOpen": 0.3}, {"jawOpen": 0.5, "mouthClose": 0.5},
            {"jawOpen": 0.8}, {}]
    good = _frames([(10, w) for w in spec])
    spec[2] = {"jawOpen": 0.3, "mouthClose": 0.3}
    bad = _frames([(10, w) for w in spec])
    rg = M.lip_gap_measures(head.lip_gap(good), good, phones, 10.0)
    rb = M.lip_gap_measures(head.lip_gap(bad), bad, phones, 10.0)
    assert (rg["n_seal_free"], rg["n_false_seals"], rg["false_seals"]) == (4, 0, 0.0)
    assert (rb["n_seal_free"], rb["n_false_seals"], rb["false_seals"]) == (4, 1, 0.25)
    assert rb["closure"] == rg["closure"] == 1.0
    ipa = [(lab, s, e) for lab, (_, s, e) in
           zip(["_", "a", "l", "ə", "t", "f", "w", "i", "m", "a", "_"], phones)]
    ri = M.lip_gap_measures(head.lip_gap(bad), bad, ipa, 10.0, alphabet="ipa")
    assert (ri["n_seal_free"], ri["n_false_seals"]) == (4, 1)
    p = M.pool_lip_gap_measures([rg, rb])
    assert (p["n_false_seals"], p["n_seal_free"], p["false_seals"]) == (1, 8, 0.125)


def test_pool_lip_gap_measures_pools_counts_and_frames():
    head = _toy_head()
    good, bad = _performance(), _performance(close_m=False, close_b=False, round_uw=False)
    a = M.lip_gap_measures(head.lip_gap(good), good, _PHONES, 10.0)
    b = M.lip_gap_measures(head.lip_gap(bad), bad, _PHONES, 10.0)
    p = M.pool_lip_gap_measures([a, b])
    assert (p["n_closed"], p["n_bilabials"]) == (2, 4)
    assert p["closure"] == 0.5
    assert p["rounding"] == pytest.approx(0.4)
    assert p["openness_r"] == pytest.approx((a["openness_r"] + b["openness_r"]) / 2)
    with pytest.raises(ValueError):
        M.pool_lip_gap_measures([])


def test_openness_classes_show_where_openness_r_is_lost():
    """Per openness class, the gap as a fraction of the clip's open level (32.2 mm: the
    90th percentile over speech is an AA frame): mean and spread. The good performance has
    no spread inside a class but UW/IY's; the bad one, open on M (20.2 mm) and B (16.2 mm),
    spreads its P/B/M class, which is what lowers its openness r."""
    head = _toy_head()
    good, bad = _performance(), _performance(close_m=False, close_b=False, round_uw=False)
    g = M.pool_lip_gap_measures([M.lip_gap_measures(head.lip_gap(good), good, _PHONES, 10.0)])
    c = g["openness_classes"]
    assert sorted(c) == [0.0, 0.35, 1.0]
    assert (c[1.0]["n"], c[0.35]["n"], c[0.0]["n"]) == (20, 20, 20)
    assert c[1.0]["mean"] == pytest.approx(1.0) and c[1.0]["sd"] == pytest.approx(0.0)
    assert c[0.35]["mean"] == pytest.approx(11.2 / 32.2)
    assert c[0.35]["sd"] == pytest.approx(1.0 / 32.2)
    assert c[0.0]["mean"] == pytest.approx(0.2 / 32.2) and c[0.0]["sd"] == pytest.approx(0.0)
    b = M.pool_lip_gap_measures([M.lip_gap_measures(head.lip_gap(bad), bad, _PHONES, 10.0)])
    assert b["openness_classes"][0.0]["mean"] == pytest.approx(18.2 / 32.2)
    assert b["openness_classes"][0.0]["sd"] == pytest.approx(2.0 / 32.2)
    # a mouth that never opens: every class at the (resting) open level, nothing ordered
    still = np.zeros_like(good)
    s = M.pool_lip_gap_measures([M.lip_gap_measures(head.lip_gap(still), still, _PHONES, 10.0)])
    assert [v["mean"] for v in s["openness_classes"].values()] == pytest.approx([1.0] * 3)


def test_openness_r_among_vowels_leaves_the_bilabials_out():
    """The bad performance opens on M and B (18.2 mm) but orders its vowels as the good
    one does: openness r falls, openness r among the vowels (UW, IY 0.35; AA 1.0) stays.
    Vowels out of order (UW as wide as AA, the second AA narrower) with the bilabials
    shut: openness r among the vowels says no where openness r, carried by the closures,
    does not."""
    head = _toy_head()
    good, bad = _performance(), _performance(close_m=False, close_b=False)
    g = M.lip_gap_measures(head.lip_gap(good), good, _PHONES, 10.0)
    b = M.lip_gap_measures(head.lip_gap(bad), bad, _PHONES, 10.0)
    assert b["openness_r"] < g["openness_r"] - 0.2
    assert b["openness_r_vowels"] == pytest.approx(g["openness_r_vowels"])
    assert g["openness_r_vowels"] > 0.9
    wrong = _frames([(10, {}), (10, {"jawOpen": 0.8}), (10, {"jawOpen": 0.5, "mouthClose": 0.5}),
                     (10, {"jawOpen": 0.8}), (10, {"jawOpen": 0.1}), (10, {}),
                     (10, {"jawOpen": 0.3}), (10, {})])
    f = M.lip_gap_measures(head.lip_gap(wrong), wrong, _PHONES, 10.0)
    assert f["openness_r_vowels"] < 0.3 < f["openness_r"]
    p = M.pool_lip_gap_measures([g, b])
    assert p["openness_r_vowels"] == pytest.approx(g["openness_r_vowels"])


def test_face_cap_head_lip_gap():
    """The real head set-up fetches: lips meet at rest, jawOpen parts them by about 45 mm,
    jawOpen + mouthClose seals them again, mouthFunnel opens them a little."""
    head = load_facecap_head()
    assert head.neutral.shape == (2694, 3) and head.deltas.shape == (52, 2694, 3)
    w = _frames([(1, {}), (1, {"jawOpen": 1.0}), (1, {"jawOpen": 0.5, "mouthClose": 0.5}),
                 (1, {"mouthFunnel": 1.0}), (1, {"mouthPressLeft": 1.0, "mouthPressRight": 1.0})])
    g = head.lip_gap(w)
    assert g[0] < 0.5
    assert 40 < g[1] < 50
    assert g[2] < 0.5
    assert 5 < g[3] < 15
    assert g[4] < 3
