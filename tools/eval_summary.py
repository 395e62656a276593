"""Print the headline lip-gap figures of `streamtalker evaluate -o` JSON files side by side:
per set (the main inputs and every --heldout set) the model and the teacher on the same
phones, then the languages that hold issue 20's per-language rule; per file, the P/B/M
closed over all its sets (the model card's rule compares candidates by it after the
must-hold checks).

Usage: .venv/bin/python tools/eval_summary.py results.json [more.json ...]
       .venv/bin/python tools/eval_summary.py --released Q.json,LIVE.json \
           --candidate Q.json,LIVE.json     # the release rule (model_core.evaluation.choose)
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model_core.errors import StreamTalkerError  # noqa: E402
from model_core.evaluation.choose import result_sets  # noqa: E402
from model_core.evaluation.evaluate import language_pass  # noqa: E402

KEYS = ("closure", "open_closed_ratio", "openness_r", "openness_r_no_ah", "openness_r_vowels",
        "rounding", "front_rounding", "false_seals")


def fmt(v):
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"


def rows(res: dict, name: str):
    ov = res["overall"]
    for who, lip in (("model", ov["lip"]), ("teacher", ov["lip_reference"])):
        blinks = ov["blink_rate_per_min"] if who == "model" else ov["reference"]["blink_rate_per_min"]
        yield [name, who] + [fmt(lip.get(k)) for k in KEYS] + [fmt(blinks)]
    langs = res.get("languages") or {}
    if set(langs) - {"en"}:
        ok = [k for k, v in sorted(langs.items()) if language_pass(v["lip"])]
        yield [name, f"languages holding: {len(ok)}/{len(langs)} ({' '.join(ok)})"]


#: what reading a file that is not an evaluate result raises
BAD_RESULT = (OSError, ValueError, KeyError, TypeError, AttributeError)


class NotAResult(Exception):
    """A file named on the command line is not a readable `streamtalker evaluate -o` result."""

    def __init__(self, path: str, error: Exception):
        super().__init__(f"{path}: not a readable `streamtalker evaluate -o` result "
                         f"({type(error).__name__}: {error})")


def load_result(path: str) -> dict:
    """One `streamtalker evaluate -o` file, checked to hold its sets (``result_sets``).

    Raises:
        NotAResult: the file is missing or not such a result (the message names it).
    """
    try:
        res = json.loads(Path(path).read_text())
        for r in result_sets(res).values():
            for key in ("settings", "items", "checks", "overall"):
                if not isinstance(r.get(key), (dict, list)):
                    raise KeyError(f"no {key!r}")
            if not isinstance(r["overall"].get("lip"), dict):
                raise KeyError("no 'overall.lip'")
        return res
    except BAD_RESULT as e:
        raise NotAResult(path, e) from None


def compare(released: list[str], candidate: list[str], candidates: int = 1) -> int:
    """Print the release rule's verdict (model_core.evaluation.choose) for two networks;
    ``candidates``: how many candidates of the experiment are compared with the released.

    Raises:
        NotAResult: a file is missing or not an evaluate result (named).
        DataError: the two networks' results are not on the same sets and clips.
    """
    from model_core.evaluation.choose import ALPHA, compare_to_released
    load = [[load_result(f) for f in files] for files in (released, candidate)]
    v = compare_to_released(*load, candidates=candidates)
    ra, ca, n = v["checks"]
    c = v["closures"]
    print(f"checks passed: released {ra}/{n}, candidate {ca}/{n}")
    print(f"P/B/M closed: released {c['released']}, candidate {c['candidate']} of "
          f"{c['eligible']}; clips where the candidate closes more {c['candidate_more']}, "
          f"fewer {c['released_more']}; sign test p = {c['p']:.3f} (level "
          f"{ALPHA / candidates:.3g}: {ALPHA} / {candidates} candidate(s))")
    print("openness r: released " + " ".join(fmt(x) for x in v["openness_r"][0]) +
          "; candidate " + " ".join(fmt(x) for x in v["openness_r"][1]))
    print(f"winner: {v['winner']} (by {v['by']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(
        description="the headline lip-gap figures of `streamtalker evaluate -o` JSON files "
                    "side by side, or (--released, --candidate) the release rule")
    ap.add_argument("results", nargs="*", help="evaluate JSON files (table mode)")
    ap.add_argument("--released", help="Q.json,LIVE.json of the released network")
    ap.add_argument("--candidate", help="Q.json,LIVE.json of the candidate")
    ap.add_argument("--candidates", type=int, default=1,
                    help="how many networks this experiment compares with the released "
                         "one, every checkpoint counted (the sign test's level is 0.05 / N)")
    a = ap.parse_args(argv)
    if a.released or a.candidate:
        if not (a.released and a.candidate):
            ap.error("the release rule needs both --released and --candidate")
        try:
            return compare(a.released.split(","), a.candidate.split(","), a.candidates)
        except (StreamTalkerError, NotAResult) as e:  # --candidates < 1; not a result; other sets
            ap.error(str(e))
    if not a.results:
        ap.error("name at least one `streamtalker evaluate -o` JSON file")
    lines = []
    for f in a.results:
        try:
            sets = result_sets(load_result(f))
            for name, r in sets.items():
                label = Path(r["settings"].get("inputs", name)).name
                lines += ["| " + Path(f).stem + " | " + " | ".join(row) + " |"
                          for row in rows(r, label)]
            lips = [r["overall"]["lip"] for r in sets.values()]
            lines.append(f"| {Path(f).stem} | P/B/M closed, all sets: "
                         f"{sum(x['n_closed'] for x in lips)}/"
                         f"{sum(x['n_bilabials'] for x in lips)} |")
        except NotAResult as e:
            ap.error(str(e))
        except BAD_RESULT as e:
            ap.error(str(NotAResult(f, e)))
    print("| file | set | who | " + " | ".join(KEYS) + " | blinks/min |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
