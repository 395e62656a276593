"""Live microphone latency, end to end, through the virtual microphone (run on demand).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_live.py [--seconds 60] [--checkpoint P]
        [--consumer loop --backend torch|onnx]

Real LibriVox speech (inputs/speech/librivox, looped) is written into a PulseAudio pipe
source at real-time pace (tests/virtual_mic.py); model_core.live.engine.LiveEngine captures it via
ALSA ``pulse`` -> PortAudio. The consumer is, by default, the add-on itself: the ``bpy``
module with streamtalker_addon registered, the real Face Cap head, ``live.start_live`` and
the add-on's ``jobs.drain`` timer callback called every ``live.DRAIN_INTERVAL`` (5 ms;
timers do not fire in the ``bpy`` module), which sets the head's 52 shape-key values to the
newest frame.
``--consumer loop`` uses a bare loop over ``LiveEngine.poll`` instead (no Blender). Per
chunk of frames:

* end to end: the write time of the audio sample that completed the chunk (the writer logs
  (samples written, time) per 10 ms block; capture is lossless so capture index = write
  index) -> frames applied by the consumer;
* split: audio buffering (written -> taken by the worker: PulseAudio, PortAudio, ring),
  model (resample + session.push), hand-over (ready -> applied).

The model's algorithmic latency (chunk + look-ahead) comes on top and is printed too.
Prints p50/p95 of each, dropped audio and the backlog (samples waiting) per 10 s window.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


class LoopConsumer:
    """A bare loop over LiveEngine.poll standing in for the add-on's timer."""
    name = "poll loop"

    def __init__(self, model, checkpoint, device):
        from model_core.live.engine import LiveEngine
        self.engine = LiveEngine(model, device=device, ring_s=4.0)
        self.engine.start()
        self.events = []

    def drain(self):
        evs = self.engine.poll()
        if evs:
            t_set = time.monotonic()
            self.engine.applied(evs, t_set)
            self.events += [(e, t_set) for e in evs]

    def stop(self):
        self.engine.stop()


class BlenderConsumer:
    """The add-on's Live on the real Face Cap head: ``live.start_live`` + ``jobs.drain``."""
    name = "Blender add-on drain, Face Cap head"

    def __init__(self, model, checkpoint, device):
        sys.path.insert(0, str(ROOT / "tests" / "blender"))
        from bl_helpers import import_bpy, import_facecap
        bpy = import_bpy()
        import streamtalker_addon
        from streamtalker_addon import jobs, live
        if not hasattr(bpy.types.Scene, "streamtalker"):
            streamtalker_addon.register()
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        scene.render.fps, scene.render.fps_base = round(model.fps), 1.0
        head = import_facecap(bpy)
        bpy.context.view_layer.objects.active = head
        if checkpoint:
            scene.streamtalker.model_source = "FILE"
            scene.streamtalker.checkpoint = str(checkpoint)
        self.jobs, self.events = jobs, []
        self.session = live.start_live(bpy.context, device=device, use_timer=False, ring_s=4.0)
        self.engine = self.session.engine
        applied = self.engine.applied

        def record(evs, t_set=None):   # called by the add-on's drain after the keys are set
            t_set = time.monotonic() if t_set is None else t_set
            self.events += [(e, t_set) for e in evs]
            applied(evs, t_set)

        self.engine.applied = record

    def drain(self):
        self.jobs.drain()

    def stop(self):
        self.jobs.cancel_active("live")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="seconds of speech (default 60)")
    ap.add_argument("--checkpoint", default=None, help="model (default: the bundled one)")
    ap.add_argument("--drain-hz", type=float, default=None,
                    help="consumer rate (default: the add-on's, 1 / live.DRAIN_INTERVAL)")
    ap.add_argument("--consumer", choices=["blender", "loop"], default="blender",
                    help="blender: the add-on's drain on the Face Cap head (default); "
                         "loop: a bare poll loop")
    ap.add_argument("--backend", choices=["torch", "onnx"], default=None,
                    help="the model's backend (loop consumer only; the add-on picks its own)")
    args = ap.parse_args(argv)
    if args.backend and args.consumer != "loop":
        ap.error("--backend needs --consumer loop (the add-on loads its own model)")

    import model_core as mc
    import virtual_mic
    if args.drain_hz is None:
        from streamtalker_addon.live import DRAIN_INTERVAL
        args.drain_hz = 1.0 / DRAIN_INTERVAL

    why = virtual_mic.missing()
    if why:
        print(f"bench_live: {why}; {virtual_mic.INSTALL_HINT}", file=sys.stderr)
        return 2
    clips = sorted((ROOT / "inputs" / "speech" / "librivox").glob("*.wav"))
    speech = np.concatenate([mc.load_audio(p) for p in clips])
    reps = int(np.ceil(args.seconds * 16000 / len(speech)))
    speech = np.tile(speech, reps)[:int(args.seconds * 16000)]
    model = mc.load_model(args.checkpoint, backend=args.backend)

    rows = []
    with tempfile.TemporaryDirectory() as d, virtual_mic.VirtualMic(Path(d)) as mic:
        consumer = (BlenderConsumer if args.consumer == "blender" else LoopConsumer)(
            model, args.checkpoint, mic.device)
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
            print(f"bench_live: {eng.error}", file=sys.stderr)
            return 1
    idx, tw = written[:, 0], written[:, 1]
    for e, t_set in events:
        if e.end_index > idx[-1]:
            continue
        t_written = float(tw[np.searchsorted(idx, e.end_index)])
        rows.append(((e.t_taken - t_written) * 1e3, (e.t_ready - e.t_taken) * 1e3,
                     (t_set - e.t_ready) * 1e3, (t_set - t_written) * 1e3))
    rows = np.array(rows)
    # per frame: frame j is the face at j / fps; the sample at that time was written at
    # t_written(j / fps * rate) -> its shape-key value was set at t_set (includes the chunk
    # wait and the look-ahead, i.e. the algorithmic latency)
    fps = float(getattr(eng, "fps", None) or model.fps)
    per_frame, j = [], 0
    for e, t_set in events:
        for _ in range(len(e.frames)):
            s_j = int(round(j / fps * eng.samplerate))
            j += 1
            if s_j <= idx[-1]:
                per_frame.append((t_set - float(tw[np.searchsorted(idx, s_j)])) * 1e3)
    per_frame = np.array(per_frame)
    st = eng.stats
    t0 = st.t_started
    b = np.array(list(st.backlog))
    used = getattr(eng, "model", None) or model   # the add-on loads (and picks) its own
    print(f"live benchmark: {args.seconds:g} s of LibriVox speech through the virtual "
          f"microphone, model {args.checkpoint or 'default'} ({used.backend} backend), "
          f"device {eng.device_name!r} at "
          f"{eng.samplerate:g} Hz, consumer: {consumer.name} at {args.drain_hz:g} Hz")
    print(f"chunks {len(rows)}, frames {st.frames}, dropped audio {st.dropped_s:.3f} s, "
          f"status flags {st.status_flags}; algorithmic latency (chunk + look-ahead) "
          f"{eng.latency_ms:.0f} ms on top")
    print(f"{'ms':>24} {'p50':>8} {'p95':>8} {'max':>8}")
    for j, name in enumerate(("audio buffering", "model", "hand-over", "end to end")):
        c = rows[:, j]
        print(f"{name:>24} {np.percentile(c, 50):8.1f} {np.percentile(c, 95):8.1f} {c.max():8.1f}")
    print(f"{'per frame (its sample':>24}")
    print(f"{'written -> key set)':>24} {np.percentile(per_frame, 50):8.1f} "
          f"{np.percentile(per_frame, 95):8.1f} {per_frame.max():8.1f}   "
          f"(includes the algorithmic latency; {len(per_frame)} frames)")
    print("backlog (samples waiting when the worker woke), max per 10 s window:")
    for w0 in np.arange(0, b[-1, 0] - t0, 10.0):
        sel = b[(b[:, 0] - t0 >= w0) & (b[:, 0] - t0 < w0 + 10)]
        if len(sel):
            print(f"  {w0:5.0f}-{w0 + 10:<5.0f} s: max {int(sel[:, 1].max()):6d}  "
                  f"mean {sel[:, 1].mean():8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
