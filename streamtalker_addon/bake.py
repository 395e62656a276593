"""Batch bake: lip-sync every sound strip of a .blend and save the result to a new file.

Usage (headless, with the ``bpy`` module, from the project root)::

    python -m streamtalker_addon.bake IN.blend -o OUT.blend [--scene S] [--checkpoint P]
                                      [--device cpu|cuda] [--seed N]

or inside Blender: ``blender -b IN.blend --python-expr "import sys;
from streamtalker_addon import bake; sys.exit(bake.main(['IN.blend', '-o', 'OUT.blend']))"``.

For every sound strip (of every scene, or of ``--scene S``) with a target mesh -- the
strip's ``streamtalker_target`` property, else the active object of the scene's first view
layer -- it generates a new shape-key action named after the strip (previous actions kept,
see :mod:`.keyframes`), then saves everything to OUT, never over IN. It prints one line per
strip and exits 0 when all baked, 1 when any strip failed (naming it and why), 2 on bad
arguments (missing IN, OUT equal to IN, unknown scene).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass


@dataclass
class StripResult:
    """Outcome of one strip: ``ok`` with the action name and counts, or ``error``."""

    scene: str
    strip: str
    target: str = ""
    ok: bool = False
    action: str = ""
    frames: int = 0
    keys: int = 0
    error: str = ""

    def line(self) -> str:
        where = f"{self.scene} / {self.strip}"
        if self.ok:
            return (f"  ok      {where} -> {self.target}: action '{self.action}', "
                    f"{self.frames} frames x {self.keys} shape keys")
        return f"  FAILED  {where}: {self.error}"


def _ensure_registered() -> None:
    import bpy
    if not hasattr(bpy.types.Scene, "streamtalker"):
        from . import register
        register()


def _target_for(scene, strip) -> str:
    obj = getattr(strip, "streamtalker_target", None)
    if obj is None:
        try:
            obj = strip.get("streamtalker_target")
        except (TypeError, AttributeError):
            obj = None
    if obj is None and len(scene.view_layers):
        obj = scene.view_layers[0].objects.active
    return obj.name if obj is not None else ""


def bake_file(in_path: str, out_path: str, scene_name: str | None = None,
              checkpoint: str | None = None, device: str | None = None,
              seed: int | None = None, log=print) -> list[StripResult]:
    """Open ``in_path``, bake every sound strip, save to ``out_path``; returns the results.

    Raises:
        ValueError: ``out_path`` is ``in_path``, ``in_path`` missing, unknown scene, or the
            file could not be saved.
    """
    import bpy

    from . import audio_source, worker
    from .audio_source import SourceError
    from .operators import plan_generation

    src, dst = os.path.realpath(in_path), os.path.realpath(out_path)
    if not os.path.isfile(src):
        raise ValueError(f"input file not found: {in_path}")
    if src == dst:
        raise ValueError("the output must be a different file from the input (IN is never "
                         "overwritten)")
    _ensure_registered()
    bpy.ops.wm.open_mainfile(filepath=src)
    scenes = list(bpy.data.scenes)
    if scene_name is not None:
        scenes = [s for s in scenes if s.name == scene_name]
        if not scenes:
            raise ValueError(f"no scene called '{scene_name}' in {in_path} (scenes: "
                             f"{', '.join(s.name for s in bpy.data.scenes)})")
    results: list[StripResult] = []
    for scene in scenes:
        if device:
            scene.streamtalker.device = device
        if seed is not None:
            scene.streamtalker.seed = seed
        for strip in audio_source.sound_strips(scene):
            r = StripResult(scene=scene.name, strip=strip.name, target=_target_for(scene, strip))
            results.append(r)
            if not r.target:
                r.error = ("no target mesh: set the strip's StreamTalker target, or make the "
                           "head the scene's active object")
                log(r.line())
                continue
            try:
                plan = plan_generation(bpy.context, scene, strip, r.target, checkpoint)
                for w in plan.warnings:
                    log(f"  note    {scene.name} / {strip.name}: {w}")
                job = worker.start_job(plan.job(undo=False), use_timer=False)
                worker.run_to_end()
            except SourceError as e:
                r.error = str(e)
                log(r.line())
                continue
            if job.state == "finished":
                r.ok, r.action = True, job.writer.action_name
                r.frames, r.keys = job.writer.n_frames, len(job.writer.targets)
            else:
                r.error = job.error or job.state
            log(r.line())
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    try:
        bpy.ops.wm.save_as_mainfile(filepath=dst, copy=True)
    except RuntimeError as e:
        raise ValueError(f"could not save {out_path}: {e}") from None
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m streamtalker_addon.bake",
                                 description="Lip-sync every sound strip of a .blend file "
                                             "and save the result to a new file.")
    ap.add_argument("input", help="the .blend file to read (never written)")
    ap.add_argument("-o", "--output", required=True, help="the .blend file to write")
    ap.add_argument("--scene", help="only this scene (default: all scenes)")
    ap.add_argument("--checkpoint", help="model checkpoint (default: each scene's choice)")
    ap.add_argument("--device", choices=["cpu", "cuda"], help="override each scene's device")
    ap.add_argument("--seed", type=int, help="override each scene's seed")
    args = ap.parse_args(argv)
    print(f"StreamTalker bake: {args.input} -> {args.output}")
    try:
        results = bake_file(args.input, args.output, args.scene, args.checkpoint,
                            args.device, args.seed)
    except ValueError as e:
        print(f"bake: error: {e}", file=sys.stderr)
        return 2
    failed = [r for r in results if not r.ok]
    print(f"StreamTalker bake: {len(results) - len(failed)} of {len(results)} strip(s) baked; "
          f"saved {args.output}")
    if not results:
        print("bake: error: no sound strips found", file=sys.stderr)
        return 1
    if failed:
        for r in failed:
            print(f"bake: failed: {r.scene} / {r.strip}: {r.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
