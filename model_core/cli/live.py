"""``streamtalker live``: live microphone -> frames in the terminal and a Live Link Face CSV.

``streamtalker live [--device NAME] [--seconds S] [--out FILE.csv] [--checkpoint P]
[--samplerate HZ] [--seed S] [--threads N] [--backend torch|onnx] [--force] [--list-devices]``
and the sampler settings (:func:`~model_core.cli.common.add_sampler_arguments`; ``--preset``
defaults to ``live``: the model's low-latency chunk size and look-ahead where it declares
them, ``--chunk-frames`` / ``--lookahead-ms`` to choose others) prints frames per second,
the measured latency (captured -> frame ready, ms), dropped audio and a level meter once per
~0.25 s. Same engine as the Blender add-on (:class:`model_core.live.engine.LiveEngine`).

The take holds exactly the frames the run showed: every frame the engine delivered, in
order, and no more (stopping does not flush the session: the audio after the last frame is
dropped, not padded with silence into frames nobody saw).

The take (``--out``): the destination is checked before recording starts; frames are written
to a temporary file as they come and saved to ``--out`` when the run ends -- after
``--seconds``, on Ctrl+C (the usual way to stop; exit 0) and on every other stop signal
exactly as on Ctrl+C (SIGTERM from ``kill`` or a service manager, SIGHUP when the terminal
closes; Windows: Ctrl+Break, the console window closing: :mod:`model_core.interrupt`), and
also when the device is lost or anything fails (exit 2, the message says where the take
went). ``--out`` is claimed when it is written: a file that appeared there during the take
is not replaced, the take goes to the recovery file. If ``--out`` cannot be written
by then, the take goes to a recovery file named in the message
(``STEM.recovered-DATE-TIME.EXT``, beside ``--out``, else in the current or temporary folder).
Errors: one line, exit status 2.
"""

from __future__ import annotations

import math
import sys
import threading
import time

from ..errors import FileWriteError, SettingError


def add_live_parser(sub):
    """Register the ``live`` sub-command on an argparse sub-parsers object."""
    from .common import add_backend_argument, add_sampler_arguments, add_threads_argument
    p = sub.add_parser("live", help="animate live microphone input (ARKit-52 weights)",
                       description="Stream the microphone through the model; print fps, "
                                   "latency and the input level; optionally record the take. "
                                   "Stop with Ctrl+C (the take is saved).")
    p.add_argument("--device", default=None, help="input device name or index (default: the default input)")
    p.add_argument("--seconds", type=float, default=None, help="stop after S seconds (default: Ctrl+C)")
    p.add_argument("--out", default=None, help="record the take here (.csv Live Link Face, .npz or .json)")
    p.add_argument("--checkpoint", default=None, help="model checkpoint (default: the bundled model)")
    p.add_argument("--samplerate", type=float, default=None,
                   help="device rate in Hz, 4000..384000 (default: 16000, else the device's)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    add_sampler_arguments(p, preset="live")
    add_threads_argument(p)
    add_backend_argument(p)
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    p.set_defaults(func=cmd_live)
    return p


def _check_args(args):
    """Validate the numbers given on the command line, by name (before anything starts);
    returns the sampler settings."""
    from ..io.audio import check_sample_rate
    from ..runtime.arguments import check_run_arguments
    from .common import sampler_settings
    if args.seconds is not None and not (math.isfinite(args.seconds) and args.seconds > 0):
        raise SettingError(f"--seconds must be a positive number of seconds (leave it out to "
                         f"record until Ctrl+C), got {args.seconds:g}")
    if args.samplerate is not None:
        check_sample_rate(args.samplerate, "--samplerate")
    check_run_arguments(args.seed, args.threads)    # the check generate and the bake use
    return sampler_settings(args)


def _say(*args, file=None, end="\n") -> None:
    """print, flushed, that never fails: after SIGHUP the terminal is gone (EIO), and a
    closed pipe raises EPIPE; the take must be saved all the same."""
    try:
        print(*args, file=file or sys.stdout, end=end, flush=True)
    except (OSError, ValueError):
        pass


def _save_take(writer, why: str) -> str:
    """Commit the take to --out, or to a recovery file when that fails; return a sentence
    saying where it went. Raises OSError when neither can be written."""
    if writer is None:
        return ""
    n, fps = writer.n_frames, writer.fps
    what = f"the take ({n} frames, {n / fps:.1f} s)"
    try:
        path = writer.commit()
        return f"{why}{what} was saved to {path}"
    except OSError as e:
        try:
            rec = writer.save_recovery()
        except OSError as e2:
            writer.close()
            raise FileWriteError(f"{what} could not be saved: {e}; recovery file: {e2}") from None
        return f"{why}{what} could not be written to {writer.path} ({e}), so it was saved to {rec}"


def cmd_live(args) -> int:
    """Run ``streamtalker live``; returns the exit status (errors: one line, exit 2).

    Raises:
        ValueError, OSError: bad settings or an unwritable --out (the caller prints them).
    """
    from pathlib import Path

    from .. import load_model
    from ..io.frames import FORMATS, FrameWriter
    from ..interrupt import StopOnCtrlC
    from ..live.engine import LiveError, level_meter, list_input_devices, run_live
    from ..runtime.backends import resolve_backend

    writer = None
    try:
        if args.list_devices:
            devices = list_input_devices()
            if not devices:
                raise LiveError("no input devices found: PortAudio sees no microphone (is one "
                                "connected? on Linux, is PulseAudio or PipeWire running, with "
                                "libasound2-plugins installed?)")
            for d in devices:
                print(f"{d['index']:3d}  {d['name']}  ({d['channels']} ch, "
                      f"{d['default_samplerate']:g} Hz)")
            return 0
        settings = _check_args(args)
        resolve_backend(args.backend)
        out = Path(args.out) if args.out else None
        if out is not None and out.suffix.lower() not in FORMATS:
            raise SettingError(f"{out}: unknown output format {out.suffix!r}; use one of "
                             f"{', '.join(FORMATS)}")
        from ..runtime.checkpoint import describe_checkpoint
        if describe_checkpoint(args.checkpoint).kind == "vertex":
            raise SettingError(f"{args.checkpoint} is a vertex model: live input needs an ARKit "
                             f"checkpoint (or the bundled model); use `streamtalker generate` "
                             f"for vertex models")
        model = load_model(args.checkpoint, threads=args.threads, backend=args.backend)
        if out is not None:   # checks --out (exists, folder, permission) before recording
            writer = FrameWriter(out, list(model.channel_names), model.fps,
                                 overwrite=args.force)
        state = {"t": time.monotonic(), "n": 0}
        tty = sys.stdout.isatty()

        def show(eng, events):
            if writer is not None:
                for ev in events:
                    writer.write(ev.frames)
            state["n"] += sum(len(e.frames) for e in events)
            now = time.monotonic()
            if now - state["t"] < 0.25:
                return
            fps = state["n"] / (now - state["t"])
            st = eng.stats
            line = (f"{fps:5.1f} fps  latency {st.latency_ms:6.1f} ms  dropped "
                    f"{st.dropped_s:5.2f} s  level {st.level_db:6.1f} dB "
                    f"[{level_meter(st.level_db)}]")
            _say(("\r" + line) if tty else line, end="" if tty else "\n")
            state["t"], state["n"] = now, 0

        stop = threading.Event()
        guard = StopOnCtrlC(stop, "streamtalker live: stopping and saving the take, please "
                                  "wait")
        try:
            with guard:
                try:
                    _, eng = run_live(model, device=args.device, seconds=args.seconds,
                                      on_frames=show, samplerate=args.samplerate,
                                      seed=args.seed, stop_event=stop, keep_frames=False,
                                      settings=settings)
                except LiveError as e:
                    if writer is None or writer.n_frames == 0:
                        raise
                    note = _save_take(writer, "")     # saved before anything is printed
                    _say("", file=sys.stderr)
                    _say(f"streamtalker live: error: {e}; {note}", file=sys.stderr)
                    return 2
                except BaseException as e:
                    if writer is None or writer.n_frames == 0:
                        raise
                    note = _save_take(writer, "")
                    _say(f"\nstreamtalker live: error: {type(e).__name__}: {e}; {note}",
                         file=sys.stderr)
                    return 2
                # the take is saved first: after SIGHUP (the terminal closed) printing can
                # fail, and nothing printed is worth the take
                note = _save_take(writer, "") if writer is not None else ""
                if tty:
                    _say("")
                p = eng.stats.percentiles()
                stopped = ""
                if stop.is_set() or eng.interrupted:
                    stopped = f" (stopped with {guard.label if stop.is_set() else 'Ctrl+C'})"
                st = eng.session_settings
                _say(f"live: {eng.stats.frames} frames from {eng.device_name!r} at "
                     f"{eng.samplerate:g} Hz{stopped}; latency p50 {p['total'][50]:.1f} ms "
                     f"p95 {p['total'][95]:.1f} ms (+ algorithmic {eng.latency_ms:.0f} ms: "
                     f"{st.chunk_frames}-frame chunks, {st.lookahead_ms:g} ms look-ahead); "
                     f"dropped {eng.stats.dropped_s:.2f} s")
                if writer is not None:
                    if writer.committed == out:
                        _say(f"wrote {out} ({writer.n_frames} frames)")
                    else:
                        _say(f"streamtalker live: error: {note}", file=sys.stderr)
                        return 2
            return 0
        finally:
            if writer is not None:
                writer.close()
    except LiveError as e:
        print(f"streamtalker live: error: {e}", file=sys.stderr)
        return 2
