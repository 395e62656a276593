"""The release rule (model_core.evaluation.choose): checks first, then P/B/M closures only
where a paired sign test over the clips finds a difference, then openness r everywhere;
a tie keeps the released network."""

from __future__ import annotations

import pytest

from model_core.errors import DataError
from model_core.evaluation.choose import compare_to_released, paired_closures


def result(closed: list[int], r: float = 0.6, failing: int = 0, inputs: str = "dev",
           eligible: int = 9) -> dict:
    """A minimal `streamtalker evaluate` result: one clip per entry of ``closed`` (P/B/M
    closed of ``eligible`` over the seeds), a held-out set copying it, 6 checks per set of
    which ``failing`` fail on the main set."""
    def one(label, fail):
        items = [{"name": f"v/{k:02d}", "lip": {"n_bilabials": eligible, "n_closed": c}}
                 for k, c in enumerate(closed)]
        checks = {f"c{k}": {"pass": k >= fail, "value": 0.0, "rule": ""} for k in range(6)}
        return {"settings": {"inputs": label}, "items": items, "checks": checks,
                "overall": {"lip": {"openness_r": r}}}
    res = one(inputs, failing)
    res["heldout"] = one("heldout-v3", 0)
    return res


def test_more_checks_win_whatever_the_closures():
    v = compare_to_released([result([9] * 20)], [result([5] * 20, failing=1)])
    assert (v["winner"], v["by"]) == ("released", "checks")
    assert v["checks"] == (12, 11, 12)


def test_closures_decide_only_beyond_noise():
    base = [result([8] * 20), result([8] * 20)]
    # one clip closes one more P/B/M: noise, and the vowel is not followed better: a tie
    one_more = [result([9] + [8] * 19), result([8] * 20)]
    v = compare_to_released(base, one_more)
    assert (v["winner"], v["by"]) == ("released", "tie")
    assert v["closures"]["candidate"] - v["closures"]["released"] == 2   # main + held-out
    assert v["closures"]["p"] == 0.5
    # closing more on 16 clips of 80 pairs, fewer on none: a difference (p = 2 * 0.5**16)
    many = [result([9] * 8 + [8] * 12), result([8] * 20)]
    v = compare_to_released(base, many)
    assert (v["winner"], v["by"]) == ("candidate", "closures")
    assert v["closures"]["candidate_more"] == 16 and v["closures"]["p"] < 1e-4
    assert compare_to_released(many, base)["winner"] == "released"


def test_several_candidates_need_a_smaller_p():
    """Of several candidates from one experiment, one passing the sign test at 0.05 is
    likelier by chance: the level is 0.05 / the number of candidates (Bonferroni)."""
    base = [result([8] * 20)]
    # closing more on 3 clips of each set (6 of 40 pairs), fewer on none: p = 2 * 0.5**6
    some = [result([9] * 3 + [8] * 17)]
    v1 = compare_to_released(base, some)
    assert v1["closures"]["p"] == pytest.approx(0.03125)
    assert (v1["winner"], v1["by"]) == ("candidate", "closures")
    v3 = compare_to_released(base, some, candidates=3)
    assert (v3["winner"], v3["by"]) == ("released", "tie")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="candidates"):
            compare_to_released(base, some, candidates=bad)


def test_openness_r_must_be_higher_everywhere():
    base = [result([8] * 20, r=0.60), result([8] * 20, r=0.55)]
    higher = [result([8] * 20, r=0.61), result([8] * 20, r=0.56)]
    mixed = [result([8] * 20, r=0.62), result([8] * 20, r=0.54)]
    assert compare_to_released(base, higher)["by"] == "openness r"
    assert compare_to_released(base, higher)["winner"] == "candidate"
    assert compare_to_released(base, mixed)["winner"] == "released"


def test_results_on_other_sets_are_refused():
    with pytest.raises(DataError, match="not the same clips"):
        paired_closures([result([8] * 3)], [result([8] * 4)])
    with pytest.raises(DataError, match="one per setting"):
        paired_closures([result([8])], [result([8]), result([8])])
    with pytest.raises(DataError, match="P/B/M"):
        paired_closures([result([8])], [result([8], eligible=6)])
    with pytest.raises(DataError, match="set main"):
        paired_closures([result([8])], [result([8], inputs="test")])


def test_eval_summary_prints_each_set_and_names_a_bad_file(tmp_path):
    """tools/eval_summary.py: one row per set for the model and the teacher, the P/B/M closed
    over all sets; a file that is not an evaluate result is named in a one-line error."""
    import json
    import subprocess
    import sys
    from pathlib import Path
    tool = Path(__file__).resolve().parents[1] / "tools" / "eval_summary.py"
    res = result([7, 8], r=0.612)
    for part in (res, res["heldout"]):
        part["overall"]["lip"].update(n_closed=15, n_bilabials=18, closure=0.833)
        part["overall"].update(lip_reference={"openness_r": 0.74, "closure": 1.0},
                               blink_rate_per_min=20.0, reference={"blink_rate_per_min": 21.0})
    good = tmp_path / "cand-q.json"
    good.write_text(json.dumps(res))
    run = [sys.executable, str(tool)]
    out = subprocess.run(run + [str(good)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    model = [ln for ln in lines if "| model |" in ln]
    assert [ln.split(" | ")[1] for ln in model] == ["dev", "heldout-v3"]
    assert all("0.612" in ln and "0.833" in ln for ln in model)
    assert any("| teacher |" in ln and "0.740" in ln for ln in lines)
    assert lines[-1] == "| cand-q | P/B/M closed, all sets: 30/36 |"
    (tmp_path / "other.json").write_text('{"items": []}')
    for bad in ("missing.json", "other.json"):
        out = subprocess.run(run + [str(good), str(tmp_path / bad)], capture_output=True,
                             text=True)
        assert out.returncode == 2 and bad in out.stderr and "Traceback" not in out.stderr
        assert out.stdout == ""
        # the release rule mode names it the same way
        rule = run + ["--released", f"{good},{good}", "--candidate", f"{good},{tmp_path / bad}"]
        out = subprocess.run(rule, capture_output=True, text=True)
        assert out.returncode == 2 and bad in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run(run + ["--released", f"{good},{good}", "--candidate", f"{good},{good}"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "winner: released (by tie)" in out.stdout, out.stderr
    # results on other clips: the rule's own error, one line
    other = tmp_path / "fewer.json"
    other.write_text(json.dumps(result([7])))
    out = subprocess.run(run + ["--released", f"{good},{good}", "--candidate", f"{good},{other}"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "clips" in out.stderr
    assert subprocess.run(run + ["--help"], capture_output=True).returncode == 0
