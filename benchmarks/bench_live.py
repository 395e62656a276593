"""Live microphone latency, end to end, through the virtual microphone (run on demand).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_live.py [--seconds 60] [--checkpoint P]
        [--preset both|quality|live] [--assume-live K,L] [--blocksize N]
        [--consumer loop --backend torch|onnx]

Real LibriVox speech (inputs/speech/librivox, looped) is written into a PulseAudio pipe
source at real-time pace (tests/virtual_mic.py); model_core.live.engine.LiveEngine captures it via
ALSA ``pulse`` -> PortAudio. The consumer is, by default, the add-on itself: the ``bpy``
module with streamtalker_addon registered, the real Face Cap head, ``live.start_live`` and
the add-on's ``jobs.drain`` timer callback called every ``live.DRAIN_INTERVAL`` (5 ms;
timers do not fire in the ``bpy`` module), which sets the head's 52 shape-key values to the
newest frame; after a drain that changed keys the depsgraph is evaluated
(``view_layer.update()``: the CPU part of the redraw Blender would do next, the shape keys
applied to the mesh; drawing itself needs a window).
``--consumer loop`` uses a bare loop over ``LiveEngine.poll`` instead (no Blender).

Settings: ``--preset`` runs the model's best-quality setting (``quality``: what Generate
uses), its low-latency setting (``live``: what Live uses by default), or ``both`` (default),
each in a fresh process, and prints them side by side. ``--assume-live 1,20`` declares a live
setting (1-frame chunks, 20 ms look-ahead, look-ahead range from 0) on a model that has none,
in memory (the bundled v3.5: timing does not depend on the weights).

The parts, per chunk of frames (p50 / p95 / max, ms):

* device: the write time of the audio sample that completed the chunk (the writer logs
  (samples written, time) per 10 ms block; capture is lossless so capture index = write
  index) -> the PortAudio callback that delivered it (PulseAudio, ALSA, PortAudio, the
  audio block size);
* ring + wake: callback -> the worker took the block from the ring buffer;
* model: resampling + ``session.push``;
* hand-over: frames ready -> applied by the consumer (the drain interval);
* drain: the consumer's call itself (poll, strengths, 52 key values, tag_redraw);
* depsgraph: the evaluation after a drain that changed keys (Blender consumer);
* end to end: sample written -> keys set.

Per frame: from the sample at the frame's own time being written into the microphone to
that frame's shape-key values being set (so including the chunk wait and the look-ahead), and
to the depsgraph evaluated after. Also dropped audio and the backlog (samples waiting when
the worker woke) per 10 s window, and the machine's load and busiest processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

#: The parts of the latency table, in order: (key, label).
PARTS = (("device", "device (PulseAudio, PortAudio)"), ("ring", "ring + worker wake"),
         ("model", "model (resample + push)"), ("handover", "hand-over (drain interval)"),
         ("drain", "drain call (main thread)"), ("depsgraph", "depsgraph (redraw's CPU)"),
         ("chunk", "end to end per chunk"), ("frame", "per frame, keys set"),
         ("frame_eval", "per frame, mesh evaluated"))


def assume_live(model, spec: str | None) -> None:
    """Declare the live setting ``spec`` ("K,L") on ``model``'s config in memory (a model
    whose checkpoint has none: timing does not depend on the weights)."""
    if not spec:
        return
    k, la = spec.split(",")
    cfg = getattr(model, "config", None) or model.model.config
    cfg.min_lookahead_ms = 0.0
    cfg.live_chunk_frames, cfg.live_lookahead_ms = int(k), float(la)
    cfg.validate()


def _latency(args):
    """--device-latency as LiveEngine takes it (None: the engine's default)."""
    v = args.device_latency
    if v is None or v in ("low", "high"):
        return v
    return float(v)


def machine_state() -> str:
    """Load average and the busiest processes (what else was running)."""
    la = os.getloadavg()
    try:
        ps = subprocess.run(["ps", "-eo", "pcpu,ni,args", "--sort=-pcpu"], capture_output=True,
                            text=True, timeout=10).stdout.splitlines()[1:6]
    except (OSError, subprocess.SubprocessError):
        ps = []
    me = os.getpid()
    lines = [f"load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}; {os.cpu_count()} cores; "
             f"busiest processes (%CPU, nice, command):"]
    lines += ["    " + p.strip()[:110] for p in ps if str(me) not in p]
    return "\n".join(lines)


class LoopConsumer:
    """A bare loop over LiveEngine.poll standing in for the add-on's timer."""
    name = "poll loop"

    def __init__(self, model, args, device):
        from model_core.live.engine import LiveEngine
        from model_core.runtime.settings import SamplerSettings
        self.engine = LiveEngine(model, device=device, ring_s=4.0, blocksize=args.blocksize,
                                 samplerate=args.samplerate, device_latency=_latency(args),
                                 settings=SamplerSettings(preset=args.preset))
        self.engine.start()
        self.events, self.drains, self.evals = [], [], []

    def drain(self):
        t0 = time.monotonic()
        evs = self.engine.poll()
        if evs:
            t_set = time.monotonic()
            self.engine.applied(evs, t_set)
            self.events += [(e, t_set, t_set) for e in evs]
            self.drains.append(time.monotonic() - t0)

    def stop(self):
        self.engine.stop()


class BlenderConsumer:
    """The add-on's Live on the real Face Cap head: ``live.start_live`` + ``jobs.drain``,
    then the depsgraph evaluated as Blender's redraw would."""
    name = "Blender add-on drain, Face Cap head"

    def __init__(self, model, args, device):
        sys.path.insert(0, str(ROOT / "tests" / "blender"))
        from bl_helpers import import_bpy, import_facecap
        bpy = import_bpy()
        import streamtalker_addon
        from streamtalker_addon import core, jobs, live
        if not hasattr(bpy.types.Scene, "streamtalker"):
            streamtalker_addon.register()
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        scene.render.fps, scene.render.fps_base = round(model.fps), 1.0
        head = import_facecap(bpy)
        bpy.context.view_layer.objects.active = head
        if args.checkpoint:
            scene.streamtalker.model_source = "FILE"
            scene.streamtalker.checkpoint = str(args.checkpoint)
        # the model the add-on will run (its cache), with the assumed live setting
        assume_live(core.load_model_cached(str(Path(args.checkpoint).resolve())
                                           if args.checkpoint else None, "cpu", 0),
                    args.assume_live)
        self.bpy, self.jobs, self.events, self.drains, self.evals = bpy, jobs, [], [], []
        self.session = live.start_live(bpy.context, device=device, use_timer=False,
                                       preset=args.preset, ring_s=4.0,
                                       blocksize=args.blocksize, samplerate=args.samplerate,
                                       device_latency=_latency(args))
        self.engine = self.session.engine
        applied = self.engine.applied
        self._new = []

        def record(evs, t_set=None):   # called by the add-on's drain after the keys are set
            t_set = time.monotonic() if t_set is None else t_set
            self._new += [(e, t_set) for e in evs]
            applied(evs, t_set)

        self.engine.applied = record

    def drain(self):
        t0 = time.monotonic()
        self.jobs.drain()
        t1 = time.monotonic()
        if self._new:
            self.drains.append(t1 - t0)
            self.bpy.context.view_layer.update()     # what the redraw evaluates first
            t2 = time.monotonic()
            self.evals.append(t2 - t1)
            self.events += [(e, t_set, t2) for e, t_set in self._new]
            self._new = []

    def stop(self):
        self.jobs.cancel_active("live")


def measure(args) -> dict:
    """One run at ``args.preset``: the per-part latencies and the run's facts (a dict)."""
    import model_core as mc
    import virtual_mic
    if args.drain_hz is None:
        from streamtalker_addon.live import DRAIN_INTERVAL
        args.drain_hz = 1.0 / DRAIN_INTERVAL
    clips = sorted((ROOT / "inputs" / "speech" / "librivox").glob("*.wav"))
    speech = np.concatenate([mc.load_audio(p) for p in clips])
    reps = int(np.ceil(args.seconds * 16000 / len(speech)))
    speech = np.tile(speech, reps)[:int(args.seconds * 16000)]
    model = mc.load_model(args.checkpoint, backend=args.backend)
    assume_live(model, args.assume_live)
    before = machine_state()

    with tempfile.TemporaryDirectory() as d, virtual_mic.VirtualMic(Path(d)) as mic:
        consumer = (BlenderConsumer if args.consumer == "blender" else LoopConsumer)(
            model, args, mic.device)
        eng = consumer.engine
        mic.start_writer(speech, lead_s=1.0, tail_s=1.0)
        t_end = time.monotonic() + 1.0 + args.seconds + 1.5
        period = 1.0 / args.drain_hz
        while time.monotonic() < t_end and eng.running:
            time.sleep(period)
            consumer.drain()
        consumer.stop()
        events = consumer.events
        written = np.array(mic.written, np.float64)
        if eng.state == "failed":
            raise SystemExit(f"bench_live: {eng.error}")
    idx, tw = written[:, 0], written[:, 1]
    parts = {k: [] for k, _ in PARTS}
    for e, t_set, t_eval in events:
        if e.end_index > idx[-1]:
            continue
        t_written = float(tw[np.searchsorted(idx, e.end_index)])
        parts["device"].append(e.t_capture - t_written)
        parts["ring"].append(e.t_taken - e.t_capture)
        parts["model"].append(e.t_ready - e.t_taken)
        parts["handover"].append(t_set - e.t_ready)
        parts["chunk"].append(t_set - t_written)
    parts["drain"] = list(consumer.drains)
    parts["depsgraph"] = list(consumer.evals)
    # per frame: frame j is the face at j / fps; the sample at that time was written at
    # t_written(j / fps * rate) -> its shape-key value was set at t_set (includes the chunk
    # wait and the look-ahead, i.e. the algorithmic latency)
    fps = float(getattr(eng, "fps", None) or model.fps)
    j = 0
    for e, t_set, t_eval in events:
        for _ in range(len(e.frames)):
            s_j = int(round(j / fps * eng.samplerate))
            j += 1
            if s_j <= idx[-1]:
                t_w = float(tw[np.searchsorted(idx, s_j)])
                parts["frame"].append(t_set - t_w)
                parts["frame_eval"].append(t_eval - t_w)
    st = eng.stats
    t0 = st.t_started
    b = np.array(list(st.backlog))
    windows = []
    for w0 in np.arange(0, b[-1, 0] - t0, 10.0):
        sel = b[(b[:, 0] - t0 >= w0) & (b[:, 0] - t0 < w0 + 10)]
        if len(sel):
            windows.append((float(w0), int(sel[:, 1].max()), float(sel[:, 1].mean())))
    used = getattr(eng, "model", None) or model   # the add-on loads (and picks) its own
    used = getattr(used, "model", used) if not hasattr(used, "backend") else used
    rs = eng.session_settings
    stats = {k: ([float(np.percentile(v, 50) * 1e3), float(np.percentile(v, 95) * 1e3),
                  float(np.max(v) * 1e3), len(v)] if len(v) else None)
             for k, v in parts.items()}
    return {"preset": args.preset, "chunk_frames": rs.chunk_frames,
            "lookahead_ms": rs.lookahead_ms, "algorithmic_ms": eng.latency_ms,
            "seconds": args.seconds, "checkpoint": str(args.checkpoint or "default"),
            "assume_live": args.assume_live, "backend": getattr(used, "backend", "?"),
            "device": eng.device_name, "samplerate": eng.samplerate,
            "blocksize": args.blocksize, "device_latency": args.device_latency,
            "consumer": consumer.name, "drain_hz": args.drain_hz,
            "chunks": len(parts["chunk"]), "frames": st.frames, "dropped_s": st.dropped_s,
            "status_flags": st.status_flags, "windows": windows, "parts": stats,
            "machine_before": before, "machine_after": machine_state()}


def print_run(r: dict) -> None:
    print(f"live benchmark: {r['seconds']:g} s of LibriVox speech through the virtual "
          f"microphone, model {r['checkpoint']} ({r['backend']} backend"
          f"{', live setting assumed ' + r['assume_live'] if r['assume_live'] else ''}), "
          f"device {r['device']!r} at {r['samplerate']:g} Hz, blocks "
          f"{r['blocksize'] or 'default (10 ms)'}, PortAudio latency "
          f"{r['device_latency'] or 'default'}, consumer: {r['consumer']} at "
          f"{r['drain_hz']:g} Hz")
    print(f"setting {r['preset']}: {r['chunk_frames']}-frame chunks, {r['lookahead_ms']:g} ms "
          f"look-ahead (algorithmic latency {r['algorithmic_ms']:.0f} ms); chunks "
          f"{r['chunks']}, frames {r['frames']}, dropped audio {r['dropped_s']:.3f} s, "
          f"status flags {r['status_flags']}")
    print(f"{'ms':>30} {'p50':>8} {'p95':>8} {'max':>8}")
    for k, label in PARTS:
        v = r["parts"][k]
        if v:
            print(f"{label:>30} {v[0]:8.1f} {v[1]:8.1f} {v[2]:8.1f}")
    print("backlog (samples waiting when the worker woke), max / mean per 10 s window:")
    for w0, mx, mean in r["windows"]:
        print(f"  {w0:5.0f}-{w0 + 10:<5.0f} s: max {mx:6d}  mean {mean:8.1f}")
    print("before the run: " + r["machine_before"])
    print("after the run: " + r["machine_after"])


def print_side_by_side(runs: list[dict]) -> None:
    """The Markdown table of several runs: p50 / p95 per part."""
    heads = [f"{r['preset']} ({r['chunk_frames']} fr + {r['lookahead_ms']:g} ms)" for r in runs]
    print("\n| ms, p50 / p95 | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(runs))
    for k, label in PARTS:
        cells = [(f"{r['parts'][k][0]:.1f} / {r['parts'][k][1]:.1f}" if r["parts"][k] else "–")
                 for r in runs]
        if any(c != "–" for c in cells):
            print(f"| {label} | " + " | ".join(cells) + " |")
    print("| algorithmic (chunk + look-ahead) | " +
          " | ".join(f"{r['algorithmic_ms']:.0f}" for r in runs) + " |")
    print("| dropped audio, s | " + " | ".join(f"{r['dropped_s']:.3f}" for r in runs) + " |")
    print("| backlog max, first / last 10 s window, samples | " + " | ".join(
        f"{r['windows'][0][1]} / {r['windows'][-1][1]}" for r in runs) + " |")
    if len(runs) == 2 and runs[0]["parts"]["frame"] and runs[1]["parts"]["frame"]:
        a, b = runs[0]["parts"]["frame"], runs[1]["parts"]["frame"]
        print(f"\nper frame p95: {heads[1]} / {heads[0]} = {b[1] / a[1]:.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="seconds of speech (default 60)")
    ap.add_argument("--checkpoint", default=None, help="model (default: the bundled one)")
    ap.add_argument("--preset", choices=["both", "quality", "live"], default="both",
                    help="the model setting: best quality, low latency, or both (default), "
                         "each in a fresh process")
    ap.add_argument("--assume-live", default=None, metavar="K,L",
                    help="declare this live setting (chunk frames, look-ahead ms) on a model "
                         "that has none, in memory (e.g. 1,20 for the bundled v3.5)")
    ap.add_argument("--blocksize", type=int, default=None,
                    help="audio samples per PortAudio callback (default: the engine's, 10 ms)")
    ap.add_argument("--device-latency", default=None,
                    help="PortAudio's suggested input latency: low, high or seconds (default: "
                         "the engine's)")
    ap.add_argument("--samplerate", type=float, default=None,
                    help="device rate in Hz (default: the engine's, 16000 first); 48000 "
                         "adds the resampler to the path")
    ap.add_argument("--drain-hz", type=float, default=None,
                    help="consumer rate (default: the add-on's, 1 / live.DRAIN_INTERVAL)")
    ap.add_argument("--consumer", choices=["blender", "loop"], default="blender",
                    help="blender: the add-on's drain on the Face Cap head (default); "
                         "loop: a bare poll loop")
    ap.add_argument("--backend", choices=["torch", "onnx"], default=None,
                    help="the model's backend (loop consumer only; the add-on picks its own)")
    ap.add_argument("--json", default=None, help="also write the results here (JSON)")
    args = ap.parse_args(argv)
    if args.backend and args.consumer != "loop":
        ap.error("--backend needs --consumer loop (the add-on loads its own model)")
    import virtual_mic
    why = virtual_mic.missing()
    if why:
        print(f"bench_live: {why}; {virtual_mic.INSTALL_HINT}", file=sys.stderr)
        return 2
    if args.preset != "both":
        r = measure(args)
        print_run(r)
        if args.json:
            Path(args.json).write_text(json.dumps(r))
        return 0
    runs = []
    with tempfile.TemporaryDirectory() as d:
        for preset in ("quality", "live"):
            out = Path(d) / f"{preset}.json"
            argv2 = [a for a in (argv if argv is not None else sys.argv[1:])]
            cmd = [sys.executable, __file__, *argv2, "--preset", preset, "--json", str(out)]
            subprocess.run(cmd, check=True)
            runs.append(json.loads(out.read_text()))
            print(flush=True)
    print_side_by_side(runs)
    if args.json:
        Path(args.json).write_text(json.dumps(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
