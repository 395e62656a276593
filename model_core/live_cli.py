"""``streamtalker live``: live microphone -> frames in the terminal and a Live Link Face CSV.

``streamtalker live [--device NAME] [--seconds S] [--out FILE.csv] [--checkpoint P]
[--samplerate HZ] [--seed S] [--list-devices]`` prints frames per second, the measured
latency (captured -> frame ready, ms), dropped audio and a level meter once per ~0.25 s, and
writes every frame (Live Link Face layout) at the end. Same engine as the Blender add-on
(:class:`model_core.live.LiveEngine`). Errors: one line, exit status 2.
"""

from __future__ import annotations

import sys
import time


def add_live_parser(sub):
    """Register the ``live`` sub-command on an argparse sub-parsers object."""
    p = sub.add_parser("live", help="animate live microphone input (ARKit-52 weights)",
                       description="Stream the microphone through the model; print fps, "
                                   "latency and the input level; optionally write a CSV.")
    p.add_argument("--device", default=None, help="input device name or index (default: the default input)")
    p.add_argument("--seconds", type=float, default=None, help="stop after S seconds (default: Ctrl+C)")
    p.add_argument("--out", default=None, help="write the frames here (.csv Live Link Face, .npz or .json)")
    p.add_argument("--checkpoint", default=None, help="model checkpoint (default: the bundled model)")
    p.add_argument("--samplerate", type=float, default=None, help="device rate in Hz (default: 16000, else the device's)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    p.set_defaults(func=cmd_live)
    return p


def cmd_live(args) -> int:
    """Run ``streamtalker live``; returns the exit status (LiveError -> 2 with one line)."""
    from pathlib import Path

    from . import load_model
    from .export import FORMATS, write_frames
    from .live import LiveError, level_meter, list_input_devices, run_live

    try:
        if args.list_devices:
            for d in list_input_devices():
                print(f"{d['index']:3d}  {d['name']}  ({d['channels']} ch, "
                      f"{d['default_samplerate']:g} Hz)")
            return 0
        out = Path(args.out) if args.out else None
        if out is not None:
            if out.suffix.lower() not in FORMATS:
                raise ValueError(f"{out}: unknown output format {out.suffix!r}; use one of "
                                 f"{', '.join(FORMATS)}")
            if out.exists() and not args.force:
                raise FileExistsError(f"{out} already exists; choose another name or pass --force")
        from .vertex import vertex_checkpoint_vertices
        if args.checkpoint and vertex_checkpoint_vertices(args.checkpoint) is not None:
            raise ValueError(f"{args.checkpoint} is a vertex model: live input needs an ARKit "
                             f"checkpoint (or the bundled model); use `streamtalker generate` "
                             f"for vertex models")
        model = load_model(args.checkpoint)
        state = {"t": time.monotonic(), "n": 0}
        tty = sys.stdout.isatty()

        def show(eng, events):
            state["n"] += sum(len(e.frames) for e in events)
            now = time.monotonic()
            if now - state["t"] < 0.25:
                return
            fps = state["n"] / (now - state["t"])
            st = eng.stats
            line = (f"{fps:5.1f} fps  latency {st.latency_ms:6.1f} ms  dropped "
                    f"{st.dropped_s:5.2f} s  level {st.level_db:6.1f} dB "
                    f"[{level_meter(st.level_db)}]")
            print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)
            state["t"], state["n"] = now, 0

        try:
            frames, eng = run_live(model, device=args.device, seconds=args.seconds,
                                   on_frames=show, samplerate=args.samplerate, seed=args.seed)
        except KeyboardInterrupt:
            frames, eng = None, None
        if tty:
            print()
        if eng is not None:
            p = eng.stats.percentiles()
            print(f"live: {len(frames)} frames from {eng.device_name!r} at {eng.samplerate:g} Hz; "
                  f"latency p50 {p['total'][50]:.1f} ms p95 {p['total'][95]:.1f} ms "
                  f"(+ algorithmic {eng.latency_ms:.0f} ms); dropped {eng.stats.dropped_s:.2f} s")
            if out is not None:
                write_frames(out, frames, list(model.channel_names), model.fps,
                             overwrite=args.force)
                print(f"wrote {out}")
        return 0
    except LiveError as e:
        print(f"streamtalker live: error: {e}", file=sys.stderr)
        return 2
