"""Print the headline lip-gap figures of `streamtalker evaluate -o` JSON files side by side:
per set (the main inputs and every --heldout set) the model and the teacher on the same
phones, then the languages that hold issue 20's per-language rule; per file, the P/B/M
closed over all its sets (the model card's rule compares candidates by it after the
must-hold checks).

Usage: .venv/bin/python tools/eval_summary.py results.json [more.json ...]
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model_core.evaluation.evaluate import language_pass  # noqa: E402

KEYS = ("closure", "open_closed_ratio", "openness_r", "openness_r_no_ah", "rounding",
        "front_rounding", "false_seals")


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


def main() -> int:
    print("| file | set | who | " + " | ".join(KEYS) + " | blinks/min |")
    for f in sys.argv[1:]:
        res = json.loads(Path(f).read_text())
        sets = {"main": res}
        sets.update({k: v for k, v in res.items() if k.startswith("heldout")})
        for name, r in sets.items():
            label = Path(r["settings"].get("inputs", name)).name
            for row in rows(r, label):
                print("| " + Path(f).stem + " | " + " | ".join(row) + " |")
        lips = [r["overall"]["lip"] for r in sets.values()]
        print(f"| {Path(f).stem} | P/B/M closed, all sets: "
              f"{sum(x['n_closed'] for x in lips)}/{sum(x['n_bilabials'] for x in lips)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
