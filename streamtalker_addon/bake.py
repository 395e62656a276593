"""Batch bake: lip-sync every sound strip of a .blend and save the result to a new file.

Usage (headless, with the ``bpy`` module, from the project root)::

    python -m streamtalker_addon.bake IN.blend -o OUT.blend [--force] [--scene S]
                                      [--checkpoint P] [--device cpu|cuda] [--seed N]
                                      [--threads N]

or inside Blender: ``blender -b IN.blend --python-expr "import sys;
from streamtalker_addon import bake; sys.exit(bake.main(['IN.blend', '-o', 'OUT.blend']))"``.

For every sound strip (of every scene, or of ``--scene S``) with a target mesh -- the
strip's ``streamtalker_target`` property, else the active object of the scene's first view
layer -- it generates a new shape-key action named after the strip (previous actions kept,
see :mod:`.keyframes`), then saves everything to OUT. It prints one line per strip (and a
``note`` line for muted strips and strips that play nothing of their file).

Nothing the user has is replaced without being asked, and no bake is lost:

* IN is never written. OUT is checked before any work: it must end in ``.blend``, its
  folder must be writable, and an existing OUT is replaced only with ``--force`` (and only
  when it is a .blend file). Blender's ``OUT.blend1`` backup is never made or touched: OUT
  is written to a hidden file beside it and renamed over it.
* OUT is written only when at least one strip baked. A bake in which some strips failed, or
  which was stopped with Ctrl+C, does not replace an existing OUT: what did bake is saved to
  a new recovery file ``OUT-stem.partial[-N].blend`` beside it, named on the last line.

Exit status: 0 all strips baked; 1 some or all failed, none found, or interrupted (130 for
Ctrl+C); 2 bad arguments or an unusable IN/OUT. Errors are one line on stderr, never a
traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from dataclasses import dataclass

from .errors import StreamTalkerError


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
    from . import compat
    obj = compat.strip_target(strip)
    if obj is None and len(scene.view_layers):
        obj = scene.view_layers[0].objects.active
    return obj.name if obj is not None else ""


#: The first bytes of a .blend: plain, zstd- (4.x+) or gzip-compressed (older).
BLEND_MAGIC = (b"BLENDER", b"\x28\xb5\x2f\xfd", b"\x1f\x8b")


class BakeError(StreamTalkerError, ValueError):
    """A bad argument or an unusable IN/OUT (exit status 2); the message is one sentence."""


def _is_blend(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(8)
    return any(head.startswith(m) for m in BLEND_MAGIC)


def check_input(in_path: str) -> str:
    """The real path of IN, a readable .blend file.

    Raises:
        BakeError: missing, a folder, empty, unreadable or not a Blender file.
    """
    src = os.path.realpath(in_path)
    if not os.path.exists(src):
        raise BakeError(f"input file not found: {in_path}")
    if os.path.isdir(src):
        raise BakeError(f"the input {in_path} is a folder, not a .blend file")
    try:
        size = os.path.getsize(src)
        ok = size > 0 and _is_blend(src)
    except OSError as e:
        raise BakeError(f"cannot read the input {in_path}: {e.strerror}") from None
    if size == 0:
        raise BakeError(f"the input {in_path} is empty (0 bytes), not a .blend file")
    if not ok:
        raise BakeError(f"the input {in_path} is not a Blender file")
    return src


def check_output(out_path: str, src: str, force: bool = False) -> str:
    """The real path of OUT, checked before any work (its folder is created if missing).

    Raises:
        BakeError: not a ``.blend`` name, the same file as IN, a folder, existing without
            ``force`` (or existing and not a .blend file), or a folder that cannot be written.
    """
    dst = os.path.realpath(out_path)
    if not out_path.lower().endswith(".blend"):
        raise BakeError(f"the output must be a .blend file: {out_path} (name it OUT.blend)")
    if dst == src:
        raise BakeError("the output must be a different file from the input (IN is never "
                        "overwritten)")
    if os.path.isdir(dst):
        raise BakeError(f"the output {out_path} is a folder; give a .blend file name")
    if os.path.exists(dst):
        if not force:
            raise BakeError(f"the output {out_path} already exists: choose another -o, or pass "
                            f"--force to replace it")
        try:
            is_blend = _is_blend(dst)
        except OSError as e:
            raise BakeError(f"cannot read the existing output {out_path}: {e.strerror}") from None
        if not is_blend:
            raise BakeError(f"the output {out_path} exists and is not a Blender file; it is not "
                            f"replaced, even with --force")
    folder = os.path.dirname(dst)
    try:
        os.makedirs(folder, exist_ok=True)
        import tempfile
        fd, probe = tempfile.mkstemp(prefix=".streamtalker-probe-", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise BakeError(f"cannot write the output {out_path}: its folder {folder} is not "
                        f"writable ({e.strerror})") from None
    return dst


def recovery_path(dst: str) -> str:
    """A new file beside OUT for a partial bake: ``stem.partial.blend``, ``stem.partial-2.blend``
    ... (never an existing file)."""
    stem = dst[:-len(".blend")]
    for i in range(1, 1000):
        p = f"{stem}.partial{'' if i == 1 else f'-{i}'}.blend"
        if not os.path.exists(p):
            return p
    raise BakeError(f"too many partial bakes beside {dst}; remove some")


def _quiet_fds():
    """Context manager: C-level stdout/stderr go to a buffer (Blender's own 'Error: ...'
    lines while opening a bad file); yields a list that receives the captured text."""
    import contextlib
    import tempfile

    @contextlib.contextmanager
    def cm():
        out: list[str] = []
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        with tempfile.TemporaryFile() as buf:
            os.dup2(buf.fileno(), 1)
            os.dup2(buf.fileno(), 2)
            try:
                yield out
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                for fd in saved:
                    os.close(fd)
                buf.seek(0)
                out.append(buf.read().decode("utf-8", "replace"))
    return cm()


def _open(src: str, in_path: str) -> None:
    import bpy
    with _quiet_fds():
        try:
            bpy.ops.wm.open_mainfile(filepath=src)
            err = ""
        except RuntimeError as e:
            err = str(e)
    if err:
        why = err.strip().splitlines()[-1] if err.strip() else "unknown error"
        why = why.removeprefix("Error: ")
        raise BakeError(f"cannot open the input {in_path}: it is damaged or not a Blender file "
                        f"({why.replace(src, in_path)})")


def _save(dst: str, final: str, shown: str) -> None:
    """Save the open file to ``final`` through a hidden file beside it (no .blend1 backup is
    made: the hidden name never exists before). Errors name ``shown``, never the hidden file."""
    import bpy
    folder, name = os.path.split(final)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp.blend")
    try:
        with _quiet_fds():
            bpy.ops.wm.save_as_mainfile(filepath=tmp, copy=True)
        if not os.path.isfile(tmp):
            raise OSError("Blender did not write the file")
        os.replace(tmp, final)
    except (RuntimeError, OSError) as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise BakeError(f"could not save {shown}: {msg.replace(tmp, shown)}") from None
    finally:
        for p in (tmp, tmp + "1", tmp + "@"):
            if os.path.exists(p):
                try:
                    os.remove(p)
                except OSError:
                    pass


@dataclass
class BakeOutcome:
    """What :func:`bake_file` did: the per-strip results, where the file went ('' = not
    written), whether that is a recovery file, and whether Ctrl+C stopped it."""

    results: list
    saved: str = ""
    recovery: bool = False
    interrupted: bool = False


def bake_file(in_path: str, out_path: str, scene_name: str | None = None,
              checkpoint: str | None = None, device: str | None = None,
              seed: int | None = None, log=print, force: bool = False,
              threads: int | None = None) -> BakeOutcome:
    """Open ``in_path``, bake every sound strip, save to ``out_path`` (rules in the module
    docstring); returns a :class:`BakeOutcome`.

    Raises:
        BakeError: bad IN/OUT (checked before any work), unknown scene, or the file could not
            be saved.
    """
    import bpy

    from . import audio_source, core, jobs, worker
    from .planning import plan_generation

    src = check_input(in_path)
    dst = check_output(out_path, src, force)
    _ensure_registered()
    _open(src, in_path)
    scenes = list(bpy.data.scenes)
    if scene_name is not None:
        scenes = [s for s in scenes if s.name == scene_name]
        if not scenes:
            raise BakeError(f"no scene called '{scene_name}' in {in_path} (scenes: "
                            f"{', '.join(s.name for s in bpy.data.scenes)})")
    out = BakeOutcome(results=[])
    results = out.results
    for scene in scenes:
        if device:
            scene.streamtalker.device = device
        if seed is not None:
            scene.streamtalker.seed = seed
    todo = [(scene, strip) for scene in scenes for strip in audio_source.sound_strips(scene)]
    # Ctrl+C sets ``stop`` (a KeyboardInterrupt could be dropped in a weakref callback and the
    # bake would run on): checked between strips, and run_to_end cancels the running one
    with core.mc_submodule("interrupt").StopOnCtrlC(threading.Event()) as stop:
        for scene, strip in todo:
            if stop.is_set():
                break
            r = StripResult(scene=scene.name, strip=strip.name, target=_target_for(scene, strip))
            results.append(r)
            if not r.target:
                r.error = ("no target mesh: set the strip's StreamTalker target, or make "
                           "the head the scene's active object")
                log(r.line())
                continue
            try:
                plan = plan_generation(bpy.context, scene, strip, r.target, checkpoint)
                if threads is not None:
                    plan.settings.threads = threads
                for w in plan.warnings:
                    log(f"  note    {scene.name} / {strip.name}: {w}")
                job = jobs.start(plan.job(undo=False), use_timer=False)
                jobs.run_to_end(stop=stop)
            except StreamTalkerError as e:
                r.error = str(e)
                log(r.line())
                continue
            except (RuntimeError, ValueError, OSError, ReferenceError) as e:
                r.error = worker.friendly_error(e)
                log(r.line())
                continue
            for n in job.notes:
                log(f"  note    {scene.name} / {strip.name}: {n}")
            if job.state == "finished":  # done before Ctrl+C stopped it: kept
                r.ok, r.action = True, job.writer.action_name
                r.frames, r.keys = job.writer.n_frames, len(job.writer.targets)
                log(r.line())
            elif not stop.is_set():
                r.error = job.error or job.state
                log(r.line())
    if stop.is_set():
        out.interrupted = True
        jobs.cancel_active()  # the strip being baked leaves nothing half-written
        started = {(r.scene, r.strip) for r in results}
        for r in results:
            if not r.ok and not r.error:
                r.error = "stopped by Ctrl+C"
        results += [StripResult(scene=sc.name, strip=st.name, error="stopped by Ctrl+C")
                    for sc, st in todo if (sc.name, st.name) not in started]
        log("  stopped (Ctrl+C): saving the strips baked so far")
    n_ok = sum(r.ok for r in results)
    if n_ok == 0:
        return out  # nothing baked: OUT is not written
    complete = n_ok == len(results) and not out.interrupted
    if complete or not os.path.exists(dst):
        out.saved = dst
        _save(dst, dst, out_path)
    else:  # a partial bake never replaces an existing OUT
        out.saved, out.recovery = recovery_path(dst), True
        _save(dst, out.saved, out.saved)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m streamtalker_addon.bake",
                                 description="Lip-sync every sound strip of a .blend file "
                                             "and save the result to a new file.")
    ap.add_argument("input", help="the .blend file to read (never written)")
    ap.add_argument("-o", "--output", required=True, help="the .blend file to write")
    ap.add_argument("--force", action="store_true",
                    help="replace OUT when it exists (only by a bake where every strip baked)")
    ap.add_argument("--scene", help="only this scene (default: all scenes)")
    ap.add_argument("--checkpoint", help="model checkpoint (default: each scene's choice)")
    ap.add_argument("--device", choices=["cpu", "cuda"], help="override each scene's device")
    ap.add_argument("--seed", type=int, help="override each scene's seed")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for the model (default 0: automatic)")
    args = ap.parse_args(argv)
    if args.threads is not None and args.threads < 0:
        print(f"bake: error: --threads must be 0 (automatic) or more, got {args.threads}",
              file=sys.stderr)
        return 2
    print(f"StreamTalker bake: {args.input} -> {args.output}", flush=True)
    try:
        out = bake_file(args.input, args.output, args.scene, args.checkpoint, args.device,
                        args.seed, force=args.force, threads=args.threads,
                        log=lambda line: print(line, flush=True))
    except BakeError as e:
        print(f"bake: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bake: stopped (Ctrl+C); {args.output} not written", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001  (one line, never a traceback)
        print(f"bake: error: unexpected {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    results = out.results
    failed = [r for r in results if not r.ok]
    n_ok = len(results) - len(failed)
    for r in failed:
        print(f"bake: failed: {r.scene} / {r.strip}: {r.error}", file=sys.stderr)
    if not results:
        print(f"bake: error: no sound strips found in {args.input}; {args.output} not written",
              file=sys.stderr)
        return 1
    if not out.saved:
        print(f"bake: error: no strip baked; {args.output} not written", file=sys.stderr)
        return 130 if out.interrupted else 1
    what = f"{n_ok} of {len(results)} strip(s) baked"
    if out.recovery:
        print(f"StreamTalker bake: {what}; {args.output} kept as it was, this partial bake "
              f"saved as {out.saved}")
    else:
        print(f"StreamTalker bake: {what}; saved {args.output}")
    if out.interrupted:
        return 130
    return 1 if failed else 0


if __name__ == "__main__":
    _status = main()
    if "bpy" in sys.modules:  # the bpy module can hang or abort at exit: compat.exit_process
        from . import compat, jobs
        jobs.shutdown()  # the model thread stops before the process ends
        compat.exit_process(_status)
    sys.exit(_status)
