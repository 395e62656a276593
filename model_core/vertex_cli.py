"""``streamtalker`` subcommands for vertex-space models; :func:`add_vertex_parsers` adds them.

* ``evaluate --checkpoint P --data DIR --dataset vocaset|biwi --lip-idx FILE --upper-idx
  FILE`` with a vertex checkpoint: LVE / FDD / MVE per speaker and overall
  (:func:`vertex_evaluate`; the options come from :func:`add_vertex_eval_arguments`).
* ``retarget VERTS.npy --basis BASIS.npy --deltas DELTAS.npy -o weights.npz``: bounded
  least squares onto shape keys (``model_core.retarget``).
* ``export-cache VERTS.npy -o out.pc2|out.mdd --fps F``: point caches for Blender's Mesh
  Cache modifier (``model_core.pointcache``).

Training on vertex data is ``streamtalker train CONFIG.toml`` with ``[data] vertices`` (one
training loop for every kind of data: :mod:`model_core.train`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .fileio import atomic_write

__all__ = ["add_vertex_eval_arguments", "add_vertex_parsers", "vertex_evaluate"]


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


def add_vertex_parsers(sub) -> None:
    """Add ``retarget`` and ``export-cache`` to an argparse subparsers object; each sets
    ``func`` (args -> exit status). Vertex evaluation is ``streamtalker evaluate`` with a
    vertex checkpoint (:func:`add_vertex_eval_arguments`, :func:`vertex_evaluate`)."""
    p = sub.add_parser("retarget", help="vertex sequence -> shape-key weights (bounded LSQ)")
    p.add_argument("vertices", help=".npy float [T, V, 3] (or [T, 3V])")
    p.add_argument("--basis", required=True,
                   help=".npy [V, 3] basis, or an .npz with 'basis', 'deltas' [K, V, 3] "
                        "and optional 'names'")
    p.add_argument("--deltas", default=None, help=".npy [K, V, 3] shape key - basis")
    p.add_argument("--names", default=None, help="text file, one shape-key name a line")
    p.add_argument("-o", "--output", required=True, help="weights .npz (weights [T, K], names)")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_retarget)

    p = sub.add_parser("export-cache", help="vertex sequence -> MDD / PC2 point cache")
    p.add_argument("vertices", help=".npy float [T, V, 3] (or [T, 3V]), or .npz with 'vertices'")
    p.add_argument("-o", "--output", required=True, help="out.pc2 or out.mdd")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate (MDD times)")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_export_cache)


# -- helpers ------------------------------------------------------------------------------

def _load_vertices(path) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"vertices file not found: {p}")
    a = np.load(p)
    if isinstance(a, np.lib.npyio.NpzFile):
        if "vertices" not in a:
            raise ValueError(f"{p}: an .npz needs a 'vertices' array")
        a = a["vertices"]
    a = np.asarray(a, np.float32)
    if a.ndim == 2 and a.shape[1] % 3 == 0:
        a = a.reshape(a.shape[0], -1, 3)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"{p}: expected vertices [T, V, 3] or [T, 3V], got {a.shape}")
    return a


# -- evaluate (vertex checkpoints) ---------------------------------------------------------

def vertex_evaluate(args, seed: int, out: Path | None) -> int:
    """``streamtalker evaluate`` for a vertex checkpoint: generate every sequence of the split
    (``args.checkpoint``, ``args.data``, ``args.dataset``, ``args.split``, ``args.style``,
    ``args.steps``, ``args.guidance``, ``args.device``, ``args.max_sequences``; the ARKit
    options ``--inputs``, ``--items`` and ``--strict`` do not apply) with ``seed`` and print LVE, FDD
    and MVE per speaker and overall (``model_core.metrics``); write JSON to ``out`` (the
    caller has checked it may be written). Returns 0.

    Raises:
        ValueError: a required option missing (named), or a checkpoint trained on the other
        data set; FileNotFoundError: data, regions or checkpoint files missing.
    """
    from .evaluate import evaluate_vertices
    from .vertex import VertexModel, load_region, load_split

    missing = [f"--{k.replace('_', '-')}" for k in VERTEX_EVAL_REQUIRED if not getattr(args, k)]
    if missing:
        raise ValueError(f"{args.checkpoint} is a vertex checkpoint: evaluating it needs "
                         f"{' '.join(missing)} (a VOCASET/BIWI folder and its lip and "
                         f"upper-face regions; docs/vertex_training.md)")

    vm = VertexModel.load(args.checkpoint, device=args.device)
    if vm.dataset and vm.dataset != args.dataset:
        raise ValueError(f"{args.checkpoint} was trained on {vm.dataset}, not {args.dataset}: "
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


# -- retarget / export-cache --------------------------------------------------------------

def cmd_retarget(args) -> int:
    from .retarget import fit_shape_key_weights

    out = Path(args.output)
    if out.exists() and not args.force:
        raise FileExistsError(f"{out} already exists (use --force)")
    verts = _load_vertices(args.vertices)
    names = None
    bp = Path(args.basis)
    if not bp.is_file():
        raise FileNotFoundError(f"basis file not found: {bp}")
    if bp.suffix == ".npz":
        z = np.load(bp)
        if "basis" not in z or "deltas" not in z:
            raise ValueError(f"{bp}: an .npz needs 'basis' and 'deltas'")
        basis, deltas = z["basis"], z["deltas"]
        names = [str(n) for n in z["names"]] if "names" in z else None
    else:
        if args.deltas is None:
            raise ValueError("--deltas is required when --basis is a .npy")
        basis, deltas = np.load(bp), np.load(args.deltas)
    if args.names:
        names = [ln.strip() for ln in Path(args.names).read_text().splitlines() if ln.strip()]
    K = np.asarray(deltas).shape[0]
    names = names or [f"key{i:03d}" for i in range(K)]
    if len(names) != K:
        raise ValueError(f"{len(names)} names for {K} shape keys")
    w, info = fit_shape_key_weights(verts, basis, deltas, return_info=True)
    atomic_write(out, lambda tmp: np.savez(tmp, weights=w, names=np.array(names)))
    print(f"{out}: weights [{w.shape[0]}, {w.shape[1]}], {info['n_bounded']} frames hit the "
          f"[0, 1] bounds, mean RMS residual {float(info['residual'].mean()):.4g}")
    return 0


def cmd_export_cache(args) -> int:
    from .pointcache import write_point_cache

    verts = _load_vertices(args.vertices)
    p = write_point_cache(args.output, verts, args.fps, overwrite=args.force)
    print(f"{p}: {verts.shape[0]} frames x {verts.shape[1]} vertices")
    return 0
