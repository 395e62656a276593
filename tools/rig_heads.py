"""Viseme and vowel test heads made from the Face Cap head (headless, the ``bpy`` module).

``.venv/bin/python tools/rig_heads.py --rig oculus|vrm|mmd -o out/oculus-head.blend
[--clip WAV] [--force]``

The Face Cap head (``inputs/facecap/facecap.glb``, ``tools/fetch_facecap.py``) carries the
52 ARKit morph targets. :func:`build_rig_head` turns it into a head of another rig kind
(:data:`model_core.face.RIG_KINDS`) whose shape keys are named as that rig names them:

* each **mouth shape** (``viseme_PP``; ``aa``; ``あ``) is a new shape key equal to the basis
  plus the ARKit deltas weighted by the shape's recipe,
  :func:`model_core.training.rigmaps.shape_recipes`: the ARKit weights the procedural
  teacher holds in the middle of a long phone of that class (its articulatory targets,
  ``model_core.training.teacher.VISEME_TARGETS``, with the bilabial contact for ``PP``:
  the documented viseme -> ARKit recipe of this project);
* **blinks and brows**: the viseme head (Oculus, like a Ready Player Me avatar) keeps the
  ARKit upper-face keys (``eyeBlink_L``, ``browInnerUp`` ...); the vowel heads get the
  kind's own keys (VRM ``blink``; MMD ``まばたき``, ``上``, ``下``), each the sum of the
  ARKit deltas it stands for;
* every ARKit mouth key is removed (and for vowel heads every ARKit key), so nothing ARKit
  is left for the add-on to find: it must detect the rig by the new names.

The command line writes a .blend with the head (active, named ``<Kind>Head``) and the clip as
a sound strip at frame 1 of a 30 fps scene: the input of ``python -m streamtalker_addon.bake``.
An existing output is never replaced without ``--force``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FACECAP = ROOT / "inputs" / "facecap" / "facecap.glb"
CLIP = ROOT / "inputs" / "speech" / "librivox" / "sense_and_sensibility_01_austen_64kb-0870.wav"


def _co(kb, n: int) -> np.ndarray:
    a = np.empty(n * 3, np.float32)
    kb.data.foreach_get("co", a)
    return a.reshape(n, 3)


def build_rig_head(obj, kind: str) -> dict[str, str]:
    """Turn an ARKit head (``obj``, a mesh whose shape keys match the 52 ARKit names) into a
    head of the rig kind ``kind`` in place (see the module docstring). Main thread.

    Returns:
        {new shape-key name: what it is made of} (for the record).
    Raises:
        ValueError: ``kind`` is ARKit or unknown, or the head lacks ARKit keys a shape needs.
    """
    from model_core.face import ARKIT_52, UPPER_FACE_CHANNELS, match_names, rig_kind
    from model_core.training.rigmaps import shape_recipes

    k = rig_kind(kind)
    if not k.shape_set:
        raise ValueError("build_rig_head makes viseme and vowel heads; the head is ARKit already")
    key = obj.data.shape_keys
    n = len(obj.data.vertices)
    basis = _co(key.reference_key, n)
    names = [kb.name for kb in key.key_blocks if kb != key.reference_key]
    found = match_names(ARKIT_52, names)               # ARKit channel -> shape key
    deltas = {c: _co(key.key_blocks[sk], n) - basis for c, sk in found.items()}
    recipes = shape_recipes(k.shape_set)
    made: dict[str, str] = {}

    def add(name: str, weights: dict[str, float]) -> None:
        need = [c for c, w in weights.items() if w and c not in deltas]
        if need:
            raise ValueError(f"'{obj.name}' lacks the ARKit shape keys {need} for {name!r}")
        co = basis + sum(w * deltas[c] for c, w in weights.items() if w)
        kb = obj.shape_key_add(name=name, from_mix=False)
        kb.data.foreach_set("co", co.astype(np.float32).ravel())
        made[kb.name] = " + ".join(f"{w:.2f} {c}" for c, w in weights.items() if w) or "basis"

    for channel, sid in zip(k.shapes, k.shape_ids):
        r = recipes[sid]
        add(channel, {c: float(r[i]) for i, c in enumerate(ARKIT_52) if r[i] > 0})
    keep_upper = k.name == "oculus"          # a Ready Player Me style head keeps them
    if not keep_upper:
        for channel, src in k.passthrough:
            if channel not in ARKIT_52:      # the kind's own blink / brow keys
                add(channel, {c: 1.0 for c in src})
    drop = {sk for c, sk in found.items() if not (keep_upper and c in UPPER_FACE_CHANNELS)}
    for kb in list(key.key_blocks):
        if kb.name in drop:
            obj.shape_key_remove(kb)
    return made


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rig", required=True, choices=["oculus", "vrm", "mmd"])
    ap.add_argument("-o", "--out", required=True, help="the .blend to write")
    ap.add_argument("--clip", default=str(CLIP), help="speech clip for the sound strip")
    ap.add_argument("--force", action="store_true", help="replace OUT if it exists")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    if out.suffix != ".blend":
        print(f"rig_heads: {out} must end in .blend", file=sys.stderr)
        return 2
    if out.exists() and not args.force:
        print(f"rig_heads: {out} exists (use --force to replace it)", file=sys.stderr)
        return 2
    for p, how in ((FACECAP, "tools/fetch_facecap.py"), (Path(args.clip), "tools/fetch_inputs.py")):
        if not p.exists():
            print(f"rig_heads: {p} is missing: run `.venv/bin/python {how}`", file=sys.stderr)
            return 2
    import bpy
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    before = set(bpy.data.objects)
    bpy.ops.import_scene.gltf(filepath=str(FACECAP))
    heads = [o for o in bpy.data.objects if o not in before and o.type == "MESH"
             and o.data.shape_keys is not None]
    head = heads[0]
    made = build_rig_head(head, args.rig)
    head.name = f"{args.rig.capitalize()}Head"
    bpy.context.view_layer.objects.active = head
    head.select_set(True)
    ed = scene.sequence_editor_create()
    strips = ed.strips if hasattr(ed, "strips") else ed.sequences
    strip = strips.new_sound("speech", str(Path(args.clip).resolve()), 1, 1)
    scene.frame_start, scene.frame_end = 1, int(strip.frame_final_end) - 1
    out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(out), check_existing=False)
    print(f"{out}: '{head.name}' with {len(made)} new shape keys: " + "; ".join(
        f"{k} = {v}" for k, v in made.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
