"""Evaluation (model_core.evaluation.evaluate) on the project's real speech (inputs/, fetched by
tools/fetch_inputs.py): the eval set, the teacher scored against itself, a frozen face that
must fail, the test checkpoint end to end (mechanics only: it is not a lip-sync model), the
CLI handler and the vertex-metric aggregation."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

from model_core.cli.evaluate import add_evaluate_parser
from model_core.evaluation import evaluate as E
from model_core.evaluation import metrics as M
from model_core.errors import StreamTalkerError
from model_core.face import ARKIT_52

ROOT = Path(__file__).resolve().parents[1]
INPUTS = ROOT / "inputs"
EXPECTED = (["arctic/arctic_a0007"] + [f"cards/00{i}" for i in range(1, 6)]
            + ["forever/input_2_16k"]
            + [f"librivox/sense_and_sensibility_01_austen_64kb-0{n}"
               for n in ("870", "880", "890", "920", "930")])


@pytest.fixture(scope="module")
def eval_set():
    if not (INPUTS / "speech").is_dir():
        pytest.fail("real test inputs are missing: run `.venv/bin/python tools/fetch_inputs.py`",
                    pytrace=False)
    return E.build_eval_set(INPUTS, 30)


def parser():
    p = argparse.ArgumentParser(prog="streamtalker")
    sub = p.add_subparsers(dest="command", required=True)
    add_evaluate_parser(sub)
    return p


def run_cli(*argv):
    args = parser().parse_args(["evaluate", *map(str, argv)])
    return args.func(args)


# ------------------------------------------------------------------------------------------
# the evaluation set
# ------------------------------------------------------------------------------------------

def test_eval_set_from_real_inputs(eval_set):
    assert [it.name for it in eval_set] == EXPECTED        # forever/input_4 has no transcript
    for it in eval_set:
        assert it.samples.dtype == np.float32 and it.samples.ndim == 1
        assert it.transcript and it.fps == 30
        dur = it.duration_s
        # the phones tile the clip: start at 0, contiguous, end within 50 ms of the end
        assert it.phones[0][1] == 0.0
        assert all(abs(a[2] - b[1]) < 1e-9 for a, b in zip(it.phones, it.phones[1:]))
        assert dur - 0.05 <= it.phones[-1][2] <= dur + 1e-9
        assert any(lab not in ("SIL",) for lab, _, _ in it.phones)
        assert it.reference.shape == (int(math.floor(dur * 30 + 0.5)), 52)
        assert it.reference.dtype == np.float32
        assert it.reference.min() >= 0 and it.reference.max() <= 1
    # 35 bilabials of 30 ms or more over the set: enough to measure closure
    assert sum(M.bilabial_closures(it.reference, it.phones, 30)["n_eligible"]
               for it in eval_set) >= 20


def test_reference_is_reproducible(eval_set):
    it = eval_set[1]
    again = E.teacher_reference(it.name, it.samples, it.phones, it.fps)
    np.testing.assert_array_equal(again, it.reference)
    assert E.item_seed(it.name) == E.item_seed(str(it.name))
    other = E.teacher_reference(it.name, it.samples, it.phones, it.fps, seed=0)
    mouth = [i for i, n in enumerate(ARKIT_52) if n.startswith(("jaw", "mouth"))]
    np.testing.assert_array_equal(other[:, mouth], it.reference[:, mouth])  # no randomness
    assert not np.array_equal(other, it.reference)                          # upper face does
    sub = E.build_eval_set(INPUTS, 30, names=["cards/00[12]"])               # cached phones
    assert [s.name for s in sub] == ["cards/001", "cards/002"]
    np.testing.assert_array_equal(sub[0].reference, eval_set[1].reference)


def test_eval_set_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="fetch_inputs"):
        E.build_eval_set(tmp_path / "missing", 30)
    with pytest.raises(FileNotFoundError, match="fetch_inputs"):
        E.build_eval_set(tmp_path, 30)                    # no transcribed wav
    with pytest.raises(ValueError, match="no evaluation clip matches"):
        E.build_eval_set(INPUTS, 30, names=["nothing/*"])
    with pytest.raises(ValueError):
        E.build_eval_set(INPUTS, 0)


# ------------------------------------------------------------------------------------------
# scoring
# ------------------------------------------------------------------------------------------

def test_teacher_scores_high_on_its_own_metrics(eval_set):
    res = E.evaluate_teacher(eval_set, seeds=(0, 1, 2))
    ov = res["overall"]
    assert ov["jaw_corr"] == pytest.approx(1.0)
    assert all(r["jaw_corr"] == pytest.approx(1.0) for r in res["items"])
    assert ov["reference"]["jaw_corr"] == pytest.approx(1.0)
    assert ov["reference"]["bilabial_closure"] >= 0.9
    assert ov["bilabial_closure"] >= 0.9
    assert ov["open_vowel_ratio"] > 1.3
    assert 8 <= ov["blink_rate_per_min"] <= 25
    assert ov["mae_mouth"] == pytest.approx(0.0, abs=1e-7)    # same mouth as the reference
    assert ov["seed_diversity_lips"] < ov["seed_diversity_upper"]
    assert all(c["pass"] is True for c in res["checks"].values()) and res["all_pass"]
    # on the head's geometry the teacher closes every bilabial and rounds on "oo"
    assert ov["lip"]["closure"] == 1.0 and ov["lip"]["rounding"] > 0.25
    for key in E.LIP_FIGURES:      # three seeds of the teacher: its own ceiling
        assert ov["lip"][key] == pytest.approx(ov["lip_reference"][key])


def test_frozen_face_fails_every_check(eval_set):
    preds = [[np.zeros_like(it.reference)] * 2 for it in eval_set]
    res = E.evaluate_predictions(eval_set, preds, seeds=[0, 1])
    ov = res["overall"]
    assert ov["jaw_corr"] == 0.0                   # undefined correlation counts as 0
    assert ov["bilabial_closure"] == 0.0           # a mouth that never opens closes nothing
    assert ov["blink_rate_per_min"] == 0.0
    assert {k: c["pass"] for k, c in res["checks"].items()} == {
        "lip_closure": False, "open_closed_ratio": False, "openness_r": False,
        "rounding": False, "blink_rate": False, "seed_diversity": False}
    assert not res["all_pass"]
    lip = ov["lip"]
    assert lip["closure"] == 0.0 and lip["open_closed_ratio"] == pytest.approx(1.0)
    assert math.isnan(lip["openness_r"]) and lip["rounding"] == pytest.approx(0.0)
    # the teacher's ceiling is printed beside the model, whatever the model does
    assert ov["lip_reference"]["closure"] == 1.0
    # a model that moves the jaw against the reference fails jaw correlation
    flipped = []
    for it in eval_set:
        p = it.reference.copy()
        p[:, ARKIT_52.index("jawOpen")] = 1.0 - p[:, ARKIT_52.index("jawOpen")]
        flipped.append([p])
    res = E.evaluate_predictions(eval_set, flipped)
    assert res["overall"]["jaw_corr"] == pytest.approx(-1.0)
    assert res["checks"]["lip_closure"]["pass"] is False
    assert res["checks"]["openness_r"]["pass"] is False
    assert res["checks"]["seed_diversity"]["pass"] is None     # one seed: not measurable
    with pytest.raises(ValueError):
        E.evaluate_predictions(eval_set, preds[:-1])
    with pytest.raises(ValueError):
        E.evaluate_predictions(eval_set[:1], [[np.zeros((3, 52))]])


def test_evaluate_model_end_to_end(toy_model, eval_set, tmp_path):
    items = [it for it in eval_set if it.name.startswith("cards/")]
    res = E.evaluate_model(toy_model, items, seeds=(0, 1), steps=2)
    assert res["settings"]["seeds"] == [0, 1] and res["settings"]["steps"] == 2
    assert len(res["items"]) == len(items)
    keys = ["jaw_corr", "bilabial_closure", "open_vowel_ratio", "mae_mean", "mae_mouth",
            "seed_diversity_lips", "seed_diversity_upper"]
    for r in res["items"]:
        for k in keys + ["open_jaw", "other_jaw", "blinks"]:
            assert k in r
        for k in ("jaw_corr", "mae_mean", "mae_mouth", "seed_diversity_lips",
                  "seed_diversity_upper"):
            assert math.isfinite(r[k]), (r["name"], k)
    ov = res["overall"]
    for k in keys + ["blink_rate_per_min"]:
        assert math.isfinite(ov[k]), k
    assert set(ov["mae_per_channel"]) == set(ARKIT_52)
    assert set(res["checks"]) == set(E.CHECKS)
    assert all(c["pass"] in (True, False) for c in res["checks"].values())
    for r in res["items"]:
        assert set(E.LIP_FIGURES) <= set(r["lip"]) and set(E.LIP_FIGURES) <= set(r["lip_reference"])
    assert set(res["speakers"]) == {"cards"} and res["speakers"]["cards"]["clips"] == len(items)
    table = E.format_table(res)
    assert all(it.name in table for it in items) and "**overall**" in table
    clip_rows = [ln for ln in table.splitlines() if ln.startswith("| cards/")]
    assert len(clip_rows) == len(items)              # a row per clip
    assert any(ln.startswith("| cards ") for ln in table.splitlines())   # and per speaker
    # where openness r is lost: each class's mean and spread, the teacher's beside them
    classes = ov["lip"]["openness_classes"]
    assert 1.0 in classes and 0.0 in classes
    for c in (classes[1.0], ov["lip_reference"]["openness_classes"][1.0]):
        assert c["n"] > 0 and math.isfinite(c["mean"]) and c["sd"] >= 0
    line = next(ln for ln in table.splitlines() if ln.startswith("- openness by class"))
    ref = ov["lip_reference"]["openness_classes"][1.0]
    assert f"AA AE AH AO AW AY {classes[1.0]['mean']:.2f} ± {classes[1.0]['sd']:.2f} " \
        f"[{ref['mean']:.2f} ± {ref['sd']:.2f}]" in line
    # false seals, the teacher's beside them (its floor: a few on the pocketsphinx timing)
    fs, fs_ref = ov["lip"], ov["lip_reference"]
    assert fs["n_seal_free"] > 0 and fs_ref["false_seals"] < 0.05
    assert (f"- false seals (lips shut on a vowel or lingual consonant not next to P/B/M): "
            f"{fs['false_seals']:.3f} ({fs['n_false_seals']} of {fs['n_seal_free']}; teacher "
            f"{fs_ref['false_seals']:.3f})") in table
    # the blink rate is sampled: each seed's rate is shown beside the mean
    assert len(ov["blink_rate_per_seed"]) == 2
    assert ov["blink_rate_per_min"] == pytest.approx(np.mean(ov["blink_rate_per_seed"]))
    per_seed = ", ".join(f"{b:.1f}" for b in ov["blink_rate_per_seed"])
    assert f"- blinks {ov['blink_rate_per_min']:.1f}/min (per seed {per_seed}; teacher" in table
    out = E.save_results(res, tmp_path / "r.json")
    back = json.loads(out.read_text())
    assert back["overall"]["jaw_corr"] == pytest.approx(ov["jaw_corr"])
    assert "NaN" not in out.read_text()
    with pytest.raises(FileExistsError):
        E.save_results(res, out)
    assert not list(tmp_path.glob(".*tmp"))         # no temporary file left behind


def test_cli_writes_json_and_refuses_to_overwrite(toy_checkpoint, tmp_path, capsys):
    out = tmp_path / "results.json"
    rc = run_cli("--checkpoint", toy_checkpoint, "--items", "cards/001", "--seeds", "0,1",
                 "--steps", "2", "--blink-temperature", "1.5", "-o", out)
    assert rc == 0
    text = capsys.readouterr().out
    assert "cards/001" in text and "**overall**" in text
    res = json.loads(out.read_text())
    assert res["settings"]["items"] == ["cards/001"]
    assert res["settings"]["checkpoint"] == str(toy_checkpoint)
    assert res["settings"]["blink_temperature"] == 1.5     # the sampler setting is recorded
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="--force"):
        run_cli("--checkpoint", toy_checkpoint, "--items", "cards/001", "-o", out)
    assert out.read_bytes() == before
    assert run_cli("--teacher", "--items", "cards/00[1-3]", "--seeds", "0,1", "-o", out,
                   "--force") == 0
    assert json.loads(out.read_text())["settings"]["checkpoint"] == "teacher"
    with pytest.raises(FileNotFoundError, match="fetch_inputs"):
        run_cli("--teacher", "--inputs", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="seeds"):
        run_cli("--teacher", "--seeds", "0,x")
    with pytest.raises(ValueError, match="repeat"):
        run_cli("--teacher", "--seeds", "1,1")
    with pytest.raises(FileNotFoundError):
        run_cli("--teacher", "-o", tmp_path / "no" / "dir.json")
    # a missing or wrong head is the user's to fix: a one-line error naming the file
    with pytest.raises(StreamTalkerError, match="fetch_facecap"):
        run_cli("--teacher", "--items", "cards/001", "--head", tmp_path / "none.glb")
    not_glb = tmp_path / "not.glb"
    not_glb.write_bytes(b"not a glTF file at all")
    with pytest.raises(StreamTalkerError, match="not.glb"):
        run_cli("--teacher", "--items", "cards/001", "--head", not_glb)


# ------------------------------------------------------------------------------------------
# vertex metrics over a set
# ------------------------------------------------------------------------------------------

def test_evaluate_vertices_pools_like_the_field():
    rng = np.random.default_rng(0)
    tpl = rng.normal(size=(12, 3))
    gts = [tpl + 0.1 * rng.normal(size=(t, 12, 3)) for t in (5, 15)]
    preds = [g + 0.05 * rng.normal(size=g.shape) for g in gts]
    lip, upper = [0, 1, 2, 3], [6, 7, 8, 9, 10, 11]
    r = E.evaluate_vertices(preds, gts, tpl, lip, upper)
    seq = r["sequences"]
    assert [s["n_frames"] for s in seq] == [5, 15]
    assert seq[0]["lve"] == pytest.approx(M.lve(preds[0], gts[0], lip))
    # LVE / MVE: all frames pooled (frame-weighted); FDD: mean over sequences
    assert r["overall"]["lve"] == pytest.approx(
        M.lve(np.concatenate(preds), np.concatenate(gts), lip))
    assert r["overall"]["mve"] == pytest.approx(
        M.mve(np.concatenate(preds), np.concatenate(gts)))
    assert r["overall"]["fdd"] == pytest.approx((seq[0]["fdd"] + seq[1]["fdd"]) / 2)
    # one template per sequence
    r2 = E.evaluate_vertices(preds, gts, [tpl, tpl + 1.0], lip, upper)
    assert r2["sequences"][0]["fdd"] == pytest.approx(seq[0]["fdd"])
    assert r2["sequences"][1]["fdd"] != pytest.approx(seq[1]["fdd"])
    with pytest.raises(ValueError):
        E.evaluate_vertices(preds, gts[:1], tpl, lip, upper)
    with pytest.raises(ValueError):
        E.evaluate_vertices([], [], tpl, lip, upper)
    with pytest.raises(ValueError):
        E.evaluate_vertices(preds, gts, tpl, [99], upper)
