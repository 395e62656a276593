"""``streamtalker`` subcommands for vertex-space models; :func:`add_vertex_parsers` adds them.

* ``evaluate --checkpoint P --data DIR --dataset vocaset|biwi --lip-idx FILE --upper-idx
  FILE`` with a vertex checkpoint: LVE / FDD / MVE per speaker and overall
  (:func:`vertex_evaluate`; the options come from :func:`add_vertex_eval_arguments`).
* ``retarget VERTS.npy --basis BASIS.npy --deltas DELTAS.npy -o weights.npz``: bounded
  least squares onto shape keys (``model_core.vertex.retarget``).
* ``export-cache VERTS.npy -o out.pc2|out.mdd --fps F``: point caches for Blender's Mesh
  Cache modifier (``model_core.io.pointcache``).

Training on vertex data is ``streamtalker train CONFIG.toml`` with ``[data] vertices`` (one
training loop for every kind of data: :mod:`model_core.training.trainer`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DataError, InputNotFoundError, SettingError
from ..io.files import atomic_write

__all__ = ["add_vertex_parsers"]


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
        raise InputNotFoundError(f"vertices file not found: {p}")
    a = np.load(p)
    if isinstance(a, np.lib.npyio.NpzFile):
        if "vertices" not in a:
            raise DataError(f"{p}: an .npz needs a 'vertices' array")
        a = a["vertices"]
    a = np.asarray(a, np.float32)
    if a.ndim == 2 and a.shape[1] % 3 == 0:
        a = a.reshape(a.shape[0], -1, 3)
    if a.ndim != 3 or a.shape[2] != 3:
        raise DataError(f"{p}: expected vertices [T, V, 3] or [T, 3V], got {a.shape}")
    return a


# -- retarget / export-cache --------------------------------------------------------------

def cmd_retarget(args) -> int:
    from ..vertex.retarget import fit_shape_key_weights

    from ..io.files import check_writable

    out = Path(args.output)
    if out.suffix.lower() != ".npz":
        raise SettingError(f"{out}: retarget writes the weights as an .npz file (weights [T, K], "
                         f"names [K]); give -o a name ending in .npz")
    check_writable(out, args.force)      # before any work: exists, folder, permission
    verts = _load_vertices(args.vertices)
    names = None
    bp = Path(args.basis)
    if not bp.is_file():
        raise InputNotFoundError(f"basis file not found: {bp}")
    if bp.suffix == ".npz":
        z = np.load(bp)
        if "basis" not in z or "deltas" not in z:
            raise DataError(f"{bp}: an .npz needs 'basis' and 'deltas'")
        basis, deltas = z["basis"], z["deltas"]
        names = [str(n) for n in z["names"]] if "names" in z else None
    else:
        if args.deltas is None:
            raise SettingError("--deltas is required when --basis is a .npy")
        basis, deltas = np.load(bp), np.load(args.deltas)
    if args.names:
        names = [ln.strip() for ln in Path(args.names).read_text().splitlines() if ln.strip()]
    K = np.asarray(deltas).shape[0]
    names = names or [f"key{i:03d}" for i in range(K)]
    if len(names) != K:
        raise SettingError(f"{len(names)} names for {K} shape keys")
    w, info = fit_shape_key_weights(verts, basis, deltas, return_info=True)
    def write(tmp):
        with open(tmp, "wb") as f:       # a file handle: numpy adds no suffix to its name
            np.savez(f, weights=w, names=np.array(names))
    atomic_write(out, write, overwrite=args.force)
    print(f"{out}: weights [{w.shape[0]}, {w.shape[1]}], {info['n_bounded']} frames hit the "
          f"[0, 1] bounds, mean RMS residual {float(info['residual'].mean()):.4g}")
    return 0


def cmd_export_cache(args) -> int:
    from ..io.pointcache import write_point_cache

    verts = _load_vertices(args.vertices)
    p = write_point_cache(args.output, verts, args.fps, overwrite=args.force)
    print(f"{p}: {verts.shape[0]} frames x {verts.shape[1]} vertices")
    return 0
