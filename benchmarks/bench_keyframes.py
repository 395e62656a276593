"""Keyframe-writer benchmark: 52 shape keys x 18 000 frames (10 minutes at 30 fps).

Run: ``.venv/bin/python benchmarks/bench_keyframes.py [--frames N] [--baseline-frames M]``

Headless with the ``bpy`` module, on a mesh with 52 ARKit shape keys (the real Face Cap head
when ``inputs/facecap/facecap.glb`` is there, else a generated triangle with 52 keys):

* **writer**: :class:`streamtalker_addon.keyframes.ShapeKeyActionWriter` given all frames
  at once (one ``keyframe_points.add`` + ``foreach_set("co")`` per curve), and the same
  writer fed in 0.5 s batches (as the background worker does, geometric flushes);
* **baseline**: the naive ``key_block.value = v; key_block.keyframe_insert("value", frame=f)``
  loop, measured in the same run on a subset (``--baseline-frames`` frames x 52 keys),
  since it is slow.

Prints keys per second for each and the writer/baseline ratio (target: >= 500 000 keys/s).
A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FACECAP = ROOT / "inputs" / "facecap" / "facecap.glb"


def _target(bpy):
    """A mesh object with Basis + 52 ARKit shape keys; returns (object, [(column, key)])."""
    from model_core.face import ARKIT_52
    from streamtalker_addon.mapping import match_channels

    bpy.ops.wm.read_factory_settings(use_empty=True)
    if FACECAP.exists():
        bpy.ops.import_scene.gltf(filepath=str(FACECAP))
        obj = next(o for o in bpy.data.objects if o.type == "MESH" and o.data.shape_keys)
        obj.data.shape_keys.animation_data_clear()
        what = "Face Cap head (2694 vertices)"
    else:
        mesh = bpy.data.meshes.new("bench")
        mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
        obj = bpy.data.objects.new("bench", mesh)
        bpy.context.scene.collection.objects.link(obj)
        obj.shape_key_add(name="Basis")
        for n in ARKIT_52:
            obj.shape_key_add(name=n)
        what = "generated triangle (Face Cap head not fetched)"
    found = match_channels(ARKIT_52, [k.name for k in obj.data.shape_keys.key_blocks])
    targets = [(ARKIT_52.index(c), k) for c, k in found.items()]
    assert len(targets) == 52, f"only {len(targets)} ARKit shape keys matched"
    return obj, targets, what


def bench_writer(bpy, obj, targets, values, batch: int | None):
    from streamtalker_addon.keyframes import ShapeKeyActionWriter

    key = obj.data.shape_keys
    t0 = time.perf_counter()
    w = ShapeKeyActionWriter(key, "bench", targets, first_frame=1)
    if batch is None:
        w.append(values)
    else:
        for i in range(0, len(values), batch):
            w.append(values[i:i + batch])
    action = w.finish()
    dt = time.perf_counter() - t0
    return dt, action


def bench_baseline(bpy, obj, targets, values):
    key = obj.data.shape_keys
    key.animation_data_clear()
    blocks = [(key.key_blocks[k], c) for c, k in targets]
    t0 = time.perf_counter()
    for i, row in enumerate(values):
        for kb, c in blocks:
            kb.value = float(row[c])
            kb.keyframe_insert("value", frame=i + 1)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=18000, help="frames to key (default 18000)")
    ap.add_argument("--baseline-frames", type=int, default=300,
                    help="frames for the keyframe_insert baseline (default 300)")
    args = ap.parse_args(argv)
    try:
        import bpy
    except ImportError:
        print("bench_keyframes: the `bpy` module is missing; run `bash tools/setup.sh`",
              file=sys.stderr)
        return 1
    from streamtalker_addon.keyframes import action_fcurves

    rng = np.random.default_rng(0)
    values = rng.random((args.frames, 52), dtype=np.float32)
    obj, targets, what = _target(bpy)
    n_keys = args.frames * len(targets)
    print(f"target: {what}; {len(targets)} shape keys x {args.frames} frames = {n_keys:,} keys; "
          f"Blender {bpy.app.version_string}")

    dt_all, action = bench_writer(bpy, obj, targets, values, None)
    fcs = action_fcurves(action, obj.data.shape_keys.animation_data)
    assert len(fcs) == 52 and all(len(fc.keyframe_points) == args.frames for fc in fcs)
    print(f"writer, all frames at once : {dt_all:8.3f} s  {n_keys / dt_all:14,.0f} keys/s")
    batch = 15  # 0.5 s of 30 fps frames per worker message
    dt_b, _ = bench_writer(bpy, obj, targets, values, batch)
    print(f"writer, {batch}-frame batches  : {dt_b:8.3f} s  {n_keys / dt_b:14,.0f} keys/s")

    nb = min(args.baseline_frames, args.frames)
    dt_base = bench_baseline(bpy, obj, targets, values[:nb])
    base_rate = nb * len(targets) / dt_base
    print(f"baseline keyframe_insert   : {dt_base:8.3f} s  {base_rate:14,.0f} keys/s "
          f"({nb} frames x {len(targets)} keys)")
    print(f"ratio writer / baseline    : {n_keys / dt_all / base_rate:8.1f}x (all at once), "
          f"{n_keys / dt_b / base_rate:.1f}x (batched)")
    target = 500_000
    print(f"target >= {target:,} keys/s: {'met' if n_keys / dt_all >= target else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
