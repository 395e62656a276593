"""``streamtalker evaluate``: the argument parser and the handler (thin: the work is in
:mod:`model_core.evaluation.evaluate`). ARKit checkpoints get the lip-sync table on the real
clips; vertex checkpoints (VOCASET/BIWI) get LVE / FDD / MVE per speaker."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import InputNotFoundError, SettingError
from ..evaluation.evaluate import (FETCH_HINT, _check_seeds, build_eval_set, default_inputs_dir,
                                   evaluate_model, evaluate_teacher, evaluate_vertices,
                                   format_sets, format_table, save_results)
from ..io.files import atomic_write, check_writable
from .common import add_sampler_arguments, sampler_settings

__all__ = ["add_evaluate_parser", "cmd_evaluate", "vertex_evaluate"]


def add_vertex_eval_arguments(p) -> None:
    """The vertex-model options of ``streamtalker evaluate`` (an argument group on ``p``)."""
    g = p.add_argument_group("vertex checkpoints (VOCASET/BIWI): LVE, FDD, MVE per speaker")
    g.add_argument("--data", default=None,
                   help="data folder (vertices_npy/, wav/, templates.pkl)")
    g.add_argument("--dataset", default=None, choices=["vocaset", "biwi"])
    g.add_argument("--split", default="test",
                   help="split (default test; BIWI: test_a | test_b | val)")
    g.add_argument("--lip-idx", default=None,
                   help="lip vertex indices: BIWI regions/lve.txt, FLAME_masks.pkl, or .npy")
    g.add_argument("--upper-idx", default=None,
                   help="upper-face vertex indices: BIWI regions/fdd.txt, FLAME_masks.pkl, .npy")
    g.add_argument("--lip-keys", default="lips", help="keys of a .pkl mask file (default lips)")
    g.add_argument("--upper-keys", default="forehead+eye_region",
                   help="keys of a .pkl mask file, '+'-joined (default forehead+eye_region)")
    g.add_argument("--style", default="own",
                   help="'own' (the subject's style if it was trained on, else unknown), "
                        "'unknown', a subject name or an index")
    g.add_argument("--max-sequences", type=int, default=None)


VERTEX_EVAL_REQUIRED = ("data", "dataset", "lip_idx", "upper_idx")


def _parse_seeds(text: str) -> list[int]:
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        seeds = [int(p) for p in parts]
    except ValueError:
        raise SettingError(f"--seeds must be comma-separated integers such as 0,1,2, got "
                         f"{text!r}") from None
    return _check_seeds(seeds)


def add_evaluate_parser(sub) -> argparse.ArgumentParser:
    """Register the ``evaluate`` subcommand on an argparse subparsers object.

    Usage: ``streamtalker evaluate [--checkpoint P | --teacher] [--inputs DIR]
    [--items GLOB] [--seeds 0,1,2] [--device cpu] [--beside-quality] [--rig oculus|vrm|mmd]
    [--preset quality|live] [--chunk-frames K] [--lookahead-ms L] [--steps N] [--guidance G]
    [--blink-temperature T] ...
    [-o results.json] [--force] [--strict]``. The handler is :func:`cmd_evaluate`
    (``args.func``); it returns the exit status and raises FileNotFoundError,
    FileExistsError, ValueError or CheckpointError with one-line messages.

    Returns:
        the new subparser.
    """
    p = sub.add_parser(
        "evaluate", help="lip-sync metrics on the real test speech (or LVE/FDD/MVE)",
        description="Evaluate a checkpoint on the real speech in inputs/ (fetched by "
                    "tools/fetch_inputs.py): jawOpen correlation with the teacher reference, "
                    "bilabial closure, open-vowel jaw, per-channel MAE, blink rate and seed "
                    "diversity, with the must-hold checks. Prints a Markdown table. A vertex "
                    "checkpoint is evaluated on a VOCASET/BIWI split instead: LVE, FDD and "
                    "MVE per speaker and overall (first seed of --seeds).")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--checkpoint", default=None,
                     help="model checkpoint (.safetensors with its .json); default: the "
                          "bundled model")
    who.add_argument("--teacher", action="store_true",
                     help="evaluate the procedural teacher itself (the reference's ceiling)")
    p.add_argument("--inputs", default=None,
                   help="inputs folder (default: <project root>/inputs)")
    p.add_argument("--heldout", action="append", default=None, metavar="DIR",
                   help="also evaluate this synthetic held-out set (from `streamtalker "
                        "make-evalset`; repeatable: English v3 and multilingual v4 sets) and "
                        "print the sets side by side")
    p.add_argument("--head", default=None,
                   help="ARKit head .glb the lip gap is measured on (default: the Face Cap "
                        "head in <project root>/inputs/facecap, from tools/fetch_facecap.py)")
    p.add_argument("--items", action="append", default=None, metavar="GLOB",
                   help="only clips whose name matches (e.g. 'cards/*'); repeatable")
    p.add_argument("--seeds", default="0,1,2", help="sampling seeds, comma-separated "
                                                    "(default 0,1,2)")
    add_sampler_arguments(p)
    p.add_argument("--beside-quality", action="store_true",
                   help="also evaluate the model's best-quality setting (--preset quality, "
                        "the other sampler options kept) and print the two side by side: "
                        "what a low-latency setting (--preset live, --chunk-frames, "
                        "--lookahead-ms) costs")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--rig", default=None, choices=["oculus", "vrm", "mmd"],
                   help="also score a viseme or vowel face rig (the model's frames through "
                        "the fitted map): PP on P/B/M, open and rounded vowels, beside the "
                        "teacher's viseme track")
    p.add_argument("-o", "--out", default=None, help="write the results as JSON to this file")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 1 when a must-hold check fails")
    add_vertex_eval_arguments(p)
    p.set_defaults(func=cmd_evaluate)
    return p


def cmd_evaluate(args) -> int:
    """Handler of ``streamtalker evaluate``: prints the table, writes JSON with ``-o``.

    Returns:
        0, or 1 with ``--strict`` when a check does not pass.

    Raises:
        FileExistsError: ``-o`` exists without ``--force`` (checked before any work).
        FileNotFoundError: inputs missing (run ``tools/fetch_inputs.py``), checkpoint or
            output folder missing.
        ValueError: bad ``--seeds`` / ``--steps`` / ``--items``; vertex options with an ARKit
            model, or a vertex checkpoint without them (see
            :func:`model_core.cli.vertex.vertex_evaluate`).
        model_core.errors.CheckpointError: the checkpoint cannot be loaded.
    """
    seeds = _parse_seeds(args.seeds)
    settings = sampler_settings(args)
    out = Path(args.out) if args.out else None
    if out is not None:
        check_writable(out, args.force, make_folders=False)
    from ..runtime.checkpoint import describe_checkpoint
    if args.checkpoint and describe_checkpoint(args.checkpoint).kind == "vertex":
        return vertex_evaluate(args, seeds[0], out)
    given = [f"--{k.replace('_', '-')}" for k in VERTEX_EVAL_REQUIRED if getattr(args, k, None)]
    if given:
        raise SettingError(f"{' '.join(given)} are for vertex checkpoints; "
                         f"{args.checkpoint or 'the bundled model'} is an ARKit model")
    inputs = Path(args.inputs) if args.inputs else default_inputs_dir()
    if not inputs.is_dir():
        raise InputNotFoundError(f"evaluation inputs folder {inputs} is missing: {FETCH_HINT}")
    heldouts = [Path(h) for h in (getattr(args, "heldout", None) or [])]
    for heldout in heldouts:
        if not heldout.is_dir():
            raise InputNotFoundError(f"held-out set {heldout} is missing: make it with "
                                    f"`streamtalker make-evalset {heldout}`")
    from ..evaluation.arkit_head import load_head
    head = load_head(getattr(args, "head", None))
    progress = sys.stderr.isatty()
    model = None
    if not getattr(args, "teacher", False):
        from .. import load_model
        model = load_model(args.checkpoint, device=args.device)
    source = "teacher" if model is None else str(args.checkpoint or "default")

    beside = getattr(args, "beside_quality", False) and model is not None
    quality = settings.replace(chunk_frames=None, lookahead_ms=None, preset="quality")
    if model is not None:   # a setting the model does not take: refused before any work
        for st in (settings, quality) if beside else (settings,):
            st.resolve(model.config)

    def run(folder: Path, names, st) -> dict:
        rig = getattr(args, "rig", None)
        if model is None:
            res = evaluate_teacher(build_eval_set(folder, 30.0, names=names), seeds, head=head,
                                   rig=rig)
        else:
            res = evaluate_model(model, build_eval_set(folder, model.fps, names=names), seeds,
                                 progress=progress, head=head, rig=rig, settings=st)
        res["settings"]["checkpoint"] = source
        res["settings"]["inputs"] = str(folder)
        return res

    from ..evaluation.rig_checks import format_rig
    results = run(inputs, args.items, settings)
    print(format_table(results))
    if "rig" in results:
        print("\n" + format_rig(results["rig"]))
    sets = {"real clips": results}
    for k, heldout in enumerate(heldouts):
        res = run(heldout, None, settings)
        results["heldout" if k == 0 else f"heldout_{k + 1}"] = res
        print(f"\nSynthetic held-out set {heldout}:\n")
        print(format_table(res))
        if "rig" in res:
            print("\n" + format_rig(res["rig"]))
        sets[f"held-out {heldout.name}"] = res
    if beside:
        # the same sets at the best-quality setting, for the side-by-side table
        results["beside_quality"] = {"real clips": run(inputs, args.items, quality)}
        print("\nAt the best-quality setting:\n")
        print(format_table(results["beside_quality"]["real clips"]))
        for heldout in heldouts:
            res = run(heldout, None, quality)
            results["beside_quality"][f"held-out {heldout.name}"] = res
            print(f"\nSynthetic held-out set {heldout}, best-quality setting:\n")
            print(format_table(res))
        sets = {label: r for (name, a), (_, b) in zip(sets.items(),
                                                       results["beside_quality"].items())
                for label, r in ((name, a), (f"{name} [best quality]", b))}
    if heldouts or beside:
        print("\n" + format_sets(sets))
    if out is not None:
        save_results(results, out, force=args.force)
        print(f"{out}: results of {len(results['items'])} clips x {len(seeds)} seeds")
    return 1 if args.strict and not results["all_pass"] else 0


# -- evaluate (vertex checkpoints) ---------------------------------------------------------

def vertex_evaluate(args, seed: int, out: Path | None) -> int:
    """``streamtalker evaluate`` for a vertex checkpoint: generate every sequence of the split
    (``args.checkpoint``, ``args.data``, ``args.dataset``, ``args.split``, ``args.style``,
    ``args.steps``, ``args.guidance``, ``args.device``, ``args.max_sequences``; the ARKit
    options ``--inputs``, ``--items`` and ``--strict`` do not apply) with ``seed`` and print LVE, FDD
    and MVE per speaker and overall (``model_core.evaluation.metrics``); write JSON to ``out`` (the
    caller has checked it may be written). Returns 0.

    Raises:
        ValueError: a required option missing (named), or a checkpoint trained on the other
        data set; FileNotFoundError: data, regions or checkpoint files missing.
    """
    from .. import load_model
    from ..vertex import load_region, load_split

    missing = [f"--{k.replace('_', '-')}" for k in VERTEX_EVAL_REQUIRED if not getattr(args, k)]
    if missing:
        raise SettingError(f"{args.checkpoint} is a vertex checkpoint: evaluating it needs "
                         f"{' '.join(missing)} (a VOCASET/BIWI folder and its lip and "
                         f"upper-face regions; docs/vertex_training.md)")

    vm = load_model(args.checkpoint, device=args.device)
    if vm.dataset and vm.dataset != args.dataset:
        raise SettingError(f"{args.checkpoint} was trained on {vm.dataset}, not {args.dataset}: "
                         f"pass --dataset {vm.dataset} and its data")
    seqs = load_split(args.data, args.dataset, args.split, max_sequences=args.max_sequences)
    V = seqs[0].vertices.shape[1]
    lip = load_region(args.lip_idx, args.lip_keys, n_vertices=V)
    upper = load_region(args.upper_idx, args.upper_keys, n_vertices=V)
    kw = {k: v for k, v in (("steps", args.steps), ("guidance", getattr(args, "guidance", None)))
          if v is not None}
    by_subject: dict[str, tuple[list, list, list]] = {}
    for s in seqs:
        if args.style == "own":
            style = s.subject if s.subject in vm.subjects else None
        elif args.style == "unknown":
            style = None
        else:
            style = int(args.style) if args.style.isdigit() else args.style
        pred = vm.generate(s.samples, 16000, s.template, seed=seed, style=style, **kw)
        T = min(len(pred), len(s.vertices))
        d = by_subject.setdefault(s.subject, ([], [], []))
        d[0].append(pred[:T])
        d[1].append(s.vertices[:T])
        d[2].append(s.template)
    results = {"checkpoint": str(args.checkpoint), "dataset": args.dataset, "split": args.split,
               "seed": seed, "speakers": {}}
    allp, allg, allt = [], [], []
    for subj, (p, g, t) in sorted(by_subject.items()):
        results["speakers"][subj] = evaluate_vertices(p, g, t, lip, upper)["overall"]
        allp += p
        allg += g
        allt += t
    res = evaluate_vertices(allp, allg, allt, lip, upper)
    results["overall"], results["units"] = res["overall"], res["units"]
    print(f"{'speaker':<28} {'seqs':>5} {'frames':>7} {'LVE':>12} {'FDD':>12} {'MVE':>12}")
    for name, r in list(results["speakers"].items()) + [("overall", results["overall"])]:
        print(f"{name:<28} {r['n_sequences']:>5} {r['n_frames']:>7} {r['lve']:>12.4e} "
              f"{r['fdd']:>12.4e} {r['mve']:>12.4e}")
    print("LVE, FDD: squared native units; MVE: native units")
    if out is not None:
        atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2)))
        print(f"{out}: LVE / FDD / MVE of {results['overall']['n_sequences']} sequences")
    return 0
