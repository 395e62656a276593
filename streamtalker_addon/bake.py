"""Batch bake: lip-sync every sound strip of a .blend and save the result to a new file.

Usage (headless, with the ``bpy`` module, from the project root)::

    python -m streamtalker_addon.bake IN.blend -o OUT.blend [--force] [--scene S]
                                      [--checkpoint P] [--device cpu|cuda] [--seed N]
                                      [--threads N]

or inside Blender: ``blender -b IN.blend --python-expr "import sys;
from streamtalker_addon import bake; sys.exit(bake.main(['IN.blend', '-o', 'OUT.blend']))"``.

For every sound strip (of every scene, or of ``--scene S``) with a target mesh -- the
strip's ``streamtalker_target`` property, else the active object of the scene's first view
layer -- it generates a new shape-key action named after the strip and places it as that
line's strip on the head's "StreamTalker" NLA track, at the frames Blender plays the strip
(meta strips' trims applied, retimed strips as Blender renders them), so a head with many
lines plays each at its own frames (:mod:`.keyframes`; previous versions kept). Then it
saves everything to OUT. It prints one line per strip saying where the line went (and a
``note`` line for silent strips and strips that play nothing of their file).

Nothing the user has is replaced without being asked, and no bake is lost:

* IN is never written. OUT is checked before any work: it must end in ``.blend``, its
  folder must be writable, and an existing OUT is replaced only with ``--force`` (and only
  when it is a .blend file). OUT is claimed again when it is written
  (``model_core.io.files.atomic_write``: a no-clobber rename), so a file another bake wrote
  there meanwhile is not replaced. Blender's ``OUT.blend1`` backup is never made or
  touched: OUT is written to a hidden file beside it and renamed over it.
* OUT is written only when at least one strip baked. A bake in which some strips failed, or
  which was stopped (Ctrl+C, SIGTERM, SIGHUP: every stop signal is Ctrl+C), does not replace
  an existing OUT: what did bake is saved to a new recovery file ``OUT-stem.partial[-N].blend``
  beside it. A complete bake whose OUT was taken meanwhile goes to
  ``OUT-stem.recovered[-N].blend``. Where OUT's folder takes nothing (a full disk), the same
  names go to the current folder, else the temporary folder. The last line names the file.

Exit status: 0 all strips baked and saved to OUT; 1 some or all failed, none found, or the
bake saved elsewhere than OUT (named); 128 + the signal when
stopped (130 Ctrl+C, 143 SIGTERM, 129 SIGHUP); 2 bad arguments or an unusable IN/OUT.
Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import threading
from dataclasses import dataclass

from .errors import StreamTalkerError


@dataclass
class StripResult:
    """Outcome of one strip: ``ok`` with the action name, counts and where the line went
    (``placed``: :meth:`.keyframes.Placement.sentence`), or ``error``."""

    scene: str
    strip: str
    target: str = ""
    ok: bool = False
    action: str = ""
    frames: int = 0
    keys: int = 0
    error: str = ""
    placed: str = ""

    def line(self) -> str:
        where = f"{self.scene} / {self.strip}"
        if self.ok:
            return (f"  ok      {where} -> {self.target}: {self.placed}; {self.frames} frames "
                    f"x {self.keys} shape keys")
        return f"  FAILED  {where}: {self.error}"


def _ensure_registered() -> None:
    import bpy
    if not hasattr(bpy.types.Scene, "streamtalker"):
        from . import register
        register()


def _target_for(scene, strip) -> str:
    from .planning import strip_target
    obj = strip_target(scene, strip)
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


def _write_blend(path: str) -> None:
    """Save the open file as a copy to ``path`` (Blender writes ``path@`` and renames it).

    Raises:
        OSError: Blender could not write it (its sentence, e.g. a full disk).
    """
    import bpy
    try:
        with _quiet_fds():
            bpy.ops.wm.save_as_mainfile(filepath=path, copy=True)
    except RuntimeError as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else "Blender could not save"
        msg = msg.removeprefix("Error: ")
        if path in msg:     # never the hidden file's name: what went wrong, after it
            msg = msg.rsplit(": ", 1)[-1] if ": " in msg.split(path)[-1] else \
                "Blender could not write it"
        raise OSError(msg) from None
    if not os.path.isfile(path):
        raise OSError("Blender did not write the file")


def _save(dst: str, overwrite: bool, tag: str, try_dst: bool = True) -> tuple[str, str]:
    """Save the open file to ``dst``, claimed when it is written (``overwrite`` False: a file
    there is never replaced, :func:`model_core.io.files.atomic_write`); when ``dst`` is
    taken or cannot be written, to the new file ``dst-stem.TAG[-N].blend`` beside it, else in
    the current or the temporary folder (``write_new_file``); ``try_dst`` False goes there
    at once. Returns (the file written, why it is not ``dst``: '' when it is, or when
    ``try_dst`` was False).

    Raises:
        BakeError: nothing could be saved anywhere (the sentence names each place).
    """
    from .core import mc_submodule
    files = mc_submodule("io.files")
    why = ""
    try:
        if try_dst:
            files.atomic_write(dst, lambda tmp: _write_blend(str(tmp)), overwrite=overwrite)
            return dst, ""
    except FileExistsError:
        why = "another program wrote it during the bake"
    except OSError as e:
        why = str(e.strerror or e)
    try:
        return str(files.write_new_file(dst, lambda tmp: _write_blend(str(tmp)), tag)), why
    except OSError as e:
        raise BakeError(f"could not save the bake: {dst}: {why}; {e.strerror or e}") from None


@dataclass
class BakeOutcome:
    """What :func:`bake_file` did: the per-strip results, where the file went ('' = not
    written), whether that is a recovery file, and whether Ctrl+C stopped it."""

    results: list
    saved: str = ""
    recovery: bool = False
    interrupted: bool = False
    #: the stop signal, named ("Ctrl+C", "SIGTERM", ...) and the status to exit with
    stopped_by: str = ""
    status: int = 0
    #: why OUT itself was not written ('' when it was, or nothing was saved)
    why_not_out: str = ""


def bake_file(in_path: str, out_path: str, scene_name: str | None = None,
              checkpoint: str | None = None, device: str | None = None,
              seed: int | None = None, log=print, force: bool = False,
              threads: int | None = None) -> BakeOutcome:
    """Open ``in_path``, bake every sound strip, save to ``out_path`` (rules in the module
    docstring); returns a :class:`BakeOutcome`.

    Args:
        seed, threads: override each scene's seed and the CPU threads preference (checked
            with ``model_core.runtime.arguments.check_run_arguments``, as ``streamtalker
            generate`` checks them: the seed is any 64-bit one, not clamped to the panel's).
    Raises:
        BakeError: bad arguments or IN/OUT (checked before any work), unknown scene, or the
            bake could not be saved anywhere.
    """
    import bpy

    from . import jobs, worker
    from .core import mc_submodule
    from .planning import plan_generation

    try:
        mc_submodule("runtime.arguments").check_run_arguments(seed, threads)
    except StreamTalkerError as e:
        raise BakeError(str(e)) from None
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
    from . import audio_source
    todo = [(scene, strip) for scene in scenes for strip in audio_source.sound_strips(scene)]
    # every stop signal (Ctrl+C, SIGTERM, SIGHUP) sets ``stop`` (a KeyboardInterrupt could be
    # dropped in a weakref callback and the bake would run on; SIGTERM would end it with
    # nothing saved): checked between strips, and run_to_end cancels the running one
    guard = mc_submodule("interrupt").StopOnCtrlC(threading.Event())
    with guard as stop:
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
                if seed is not None:
                    plan.settings.seed = int(seed)
                for w in plan.warnings:
                    log(f"  note    {scene.name} / {strip.name}: {w}")
                job = jobs.start(plan.job(undo=False), use_timer=False)
                jobs.run_to_end(stop=stop)
            except StreamTalkerError as e:
                r.error = str(e)
                log(r.line())
                continue
            except ReferenceError as e:   # the strip or its target went away
                r.error = f"the target changed while baking ({e})"
                log(r.line())
                continue
            except Exception as e:  # noqa: BLE001  (a bug: its traceback, the bake goes on)
                r.error = worker.bug_report(e)
                log(r.line())
                continue
            for n in job.notes:
                log(f"  note    {scene.name} / {strip.name}: {n}")
            if job.state == "finished":  # done before a stop signal came: kept
                r.ok, r.action = True, job.writer.action_name
                r.frames, r.keys = job.writer.n_frames, len(job.writer.targets)
                r.placed = job.placement.sentence()
                log(r.line())
            elif not stop.is_set():
                r.error = job.error or job.state
                log(r.line())
        if stop.is_set():
            out.interrupted = True
            out.stopped_by = guard.label
            out.status = mc_submodule("interrupt").exit_status(guard.signum)
            jobs.cancel_active()  # the strip being baked leaves nothing half-written
            started = {(r.scene, r.strip) for r in results}
            for r in results:
                if not r.ok and not r.error:
                    r.error = f"stopped by {out.stopped_by}"
            results += [StripResult(scene=sc.name, strip=st.name,
                                    error=f"stopped by {out.stopped_by}")
                        for sc, st in todo if (sc.name, st.name) not in started]
            log(f"  stopped ({out.stopped_by}): saving the strips baked so far")
        n_ok = sum(r.ok for r in results)
        if n_ok == 0:
            return out  # nothing baked: OUT is not written
        complete = n_ok == len(results) and not out.interrupted
        # saved while the guard holds: a second signal does not cut the save short
        if complete:
            out.saved, out.why_not_out = _save(dst, force, "recovered")
        else:  # a partial bake never replaces an existing OUT
            out.saved, out.why_not_out = _save(dst, False, "partial",
                                               try_dst=not os.path.exists(dst))
        out.recovery = out.saved != dst
    return out


def _say(*args, file=None) -> None:
    """print, flushed, that never fails (after SIGHUP the terminal is gone)."""
    try:
        print(*args, file=file or sys.stdout, flush=True)
    except (OSError, ValueError):
        pass


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
    ap.add_argument("--seed", type=int, help="override each scene's seed (0..2**64-1)")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for the model, 1..cores (default: the add-on's "
                         "preference)")
    args = ap.parse_args(argv)
    from .core import mc_submodule
    try:   # before any work: the same check as `streamtalker generate`
        mc_submodule("runtime.arguments").check_run_arguments(args.seed, args.threads)
    except StreamTalkerError as e:
        _say(f"bake: error: {e}", file=sys.stderr)
        return 2
    _say(f"StreamTalker bake: {args.input} -> {args.output}")
    try:
        out = bake_file(args.input, args.output, args.scene, args.checkpoint, args.device,
                        args.seed, force=args.force, threads=args.threads, log=_say)
    except BakeError as e:
        _say(f"bake: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _say(f"bake: stopped (Ctrl+C); {args.output} not written", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001  (a bug: its traceback)
        _say(f"bake: error: unexpected {type(e).__name__}: {e}\n{traceback.format_exc()}",
             file=sys.stderr)
        return 1
    results = out.results
    failed = [r for r in results if not r.ok]
    n_ok = len(results) - len(failed)
    for r in failed:
        _say(f"bake: failed: {r.scene} / {r.strip}: {r.error}", file=sys.stderr)
    if not results:
        _say(f"bake: error: no sound strips found in {args.input}; {args.output} not written",
             file=sys.stderr)
        return 1
    if not out.saved:
        _say(f"bake: error: no strip baked; {args.output} not written", file=sys.stderr)
        return out.status if out.interrupted else 1
    what = f"{n_ok} of {len(results)} strip(s) baked"
    if out.recovery and out.why_not_out:
        _say(f"StreamTalker bake: {what}; {args.output} could not be written "
             f"({out.why_not_out}), so the bake was saved as {out.saved}")
    elif out.recovery:
        _say(f"StreamTalker bake: {what}; {args.output} kept as it was, this partial bake "
             f"saved as {out.saved}")
    else:
        _say(f"StreamTalker bake: {what}; saved {args.output}")
    if out.interrupted:
        return out.status
    return 1 if failed or out.why_not_out else 0


if __name__ == "__main__":
    _status = main()
    if "bpy" in sys.modules:  # the bpy module can hang or abort at exit: compat.exit_process
        from . import compat, jobs
        jobs.shutdown()  # the model thread stops before the process ends
        compat.exit_process(_status)
    sys.exit(_status)
