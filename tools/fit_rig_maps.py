"""Fit the maps from ARKit-52 weights to viseme and vowel rigs and write them as data.

``.venv/bin/python tools/fit_rig_maps.py [-o model_core/weights/rig_maps.json] [--force]
[--utterances 400] [--seed 0] [--no-model]``

Synthesizes ``--utterances`` English utterances (eSpeak NG and Festival, training-split
sentences), makes the procedural teacher's ARKit curves and the phone-class targets of each
shape set, fits the softmax maps (:func:`model_core.training.rigmaps.fit_rig_maps`; the
regularisation is chosen on the bundled default model's output for the held-out
utterances, unless ``--no-model``), prints the held-out fit error beside the linear
alternatives', and writes the JSON that :mod:`model_core.runtime.rigs` reads. Re-run it
when the teacher's viseme classes change (a class without a shape is refused, naming the
table to extend) or to refit for another model. An existing output is never replaced
without ``--force``. Takes about 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from model_core.io.files import atomic_write, check_writable
    from model_core.runtime.rigs import RIG_MAPS_PATH, load_rig_maps
    from model_core.training.rigmaps import fit_rig_maps, paired_utterances

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default=str(RIG_MAPS_PATH),
                    help="output JSON (default: the one model_core ships)")
    ap.add_argument("--force", action="store_true", help="replace OUT if it exists")
    ap.add_argument("--utterances", type=int, default=400,
                    help="synthetic utterances, 20 %% of them held out (default 400)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-model", dest="model", action="store_false",
                    help="choose the regularisation on the teacher's held-out curves instead "
                         "of the default model's output")
    args = ap.parse_args(argv)
    out = check_writable(Path(args.out), args.force)
    t0 = time.perf_counter()

    def progress(i, n):
        if i % 50 == 0 or i == n:
            print(f"fit_rig_maps: {i}/{n} utterances ({time.perf_counter() - t0:.0f} s)",
                  flush=True)

    utts = paired_utterances(args.utterances, args.seed, progress=progress)
    model = None
    if args.model:
        from model_core import load_model
        model = load_model(None)
    maps = fit_rig_maps(utts, model=model)
    text = json.dumps(maps, ensure_ascii=False, indent=1)
    atomic_write(out, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))
    load_rig_maps(out)          # the runtime reads what was written
    d = maps["data"]
    print(f"\n{out}: fitted on {d['train']} utterances ({d['frames_train']} frames), held out "
          f"{d['heldout']} ({d['frames_heldout']} frames); {time.perf_counter() - t0:.0f} s")
    for name, s in maps["sets"].items():
        print(f"\n{name} (lam {s['lam']:g}, chosen on the {d['lambda_chosen_on']}): held-out "
              f"RMSE / mean R^2")
        for label, c in s["comparison"].items():
            cells = "; ".join(f"{who} {e['rmse']:.3f} / {e['r2_mean']:.3f}" for who, e in c.items())
            print(f"  {label:28s} {cells}")
        who = "model" if "model" in s["fit"] else "teacher"
        r2 = s["fit"][who]["r2_per_shape"]
        print(f"  R^2 per shape ({who}): " + ", ".join(f"{k} {v:.2f}" for k, v in r2.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
