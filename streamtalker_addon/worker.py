"""Background generation: a worker thread runs the model, the main thread writes keys.

Threading rule: only the main thread touches ``bpy`` data. The :class:`Worker` thread
reads the audio (:class:`~.audio_source.AudioSource`), loads the model (cached), runs a
streaming session at the scene's fps and puts messages on a :class:`queue.Queue`:

* ``("model", channel_names)`` once the model is loaded and the audio read,
* ``("frames", array float32 [n, D])`` as frames become ready,
* ``("progress", fraction 0..1)``,
* ``("note", sentence)`` for something the user should know (kept in ``GenerateJob.notes``),
* ``("done", None)`` / ``("error", message)`` / ``("cancelled", None)`` at the end.

:class:`GenerateJob` (main thread) owns the worker and a
:class:`~.keyframes.ShapeKeyActionWriter`. :func:`drain` is the ``bpy.app.timers``
callback: it empties the queue of the active job and writes keys. Timers never fire in the
PyPI ``bpy`` module, so tests (and ``wait`` mode) call :func:`drain` / :func:`run_to_end`
themselves.
"""

from __future__ import annotations

import atexit
import importlib
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field

from . import mapping as mapping_mod
from .audio_source import AudioSource, SourceError
from .core import ModelCoreMissing, load_model_cached, model_core_module

#: Seconds between timer calls while a job runs.
DRAIN_INTERVAL = 0.1
#: Audio pushed into the session per step (samples); results do not depend on it.
PUSH_BLOCK = 8000


@dataclass
class ModelSettings:
    """How to run the model (plain data, copied from the panel on the main thread).

    Attributes:
        checkpoint: checkpoint path, or "" for the bundled default.
        device: "cpu" or "cuda".
        seed: sampling seed. style: identity index or None. steps: DDIM steps or None.
        strengths: {region: factor} (see :func:`mapping.apply_strength`).
        n_vertices: mesh vertices of a vertex checkpoint, None for ARKit ones.
        rig: for a vertex checkpoint, the mesh's rig from :func:`keyframes.read_rig`
            (basis [V, 3], deltas [K, V, 3], names [K]): the vertex frames are fitted onto
            these shape keys (``model_core.vertex.retarget``); None for ARKit checkpoints.
        threads: CPU threads the model uses (the preference "CPU Threads"); 0 = automatic
            (:func:`.core.set_threads`).
    """

    checkpoint: str = ""
    device: str = "cpu"
    seed: int = 0
    style: int | None = None
    steps: int | None = None
    strengths: dict = field(default_factory=dict)
    n_vertices: int | None = None
    rig: dict | None = None
    threads: int = 0


def friendly_error(e: BaseException) -> str:
    """One sentence for the user; the traceback goes to the console only."""
    mc = None
    try:
        mc = model_core_module()
    except ModelCoreMissing:
        pass
    if isinstance(e, SourceError):
        return str(e)
    if isinstance(e, ModelCoreMissing):
        return str(e)
    if mc is not None and isinstance(e, mc.CheckpointError):
        return f"the model could not be loaded: {e}"
    if mc is not None and isinstance(e, mc.AudioError):
        return f"unsupported audio: {e}"
    if isinstance(e, FileNotFoundError):
        return str(e)
    if isinstance(e, (ValueError, OSError)):
        return str(e)
    traceback.print_exception(type(e), e, e.__traceback__)
    return f"unexpected error ({type(e).__name__}: {e}); details in the system console"


class Worker(threading.Thread):
    """Runs one generation off the main thread. Never touches bpy.

    Args:
        source: the audio to read; settings: model settings; fps: output frame rate;
        out: the queue messages go to.
    """

    def __init__(self, source: AudioSource, settings: ModelSettings, out: queue.Queue):
        super().__init__(name="StreamTalker worker", daemon=True)
        self.source = source
        self.settings = settings
        self.out = out
        self.cancel_event = threading.Event()

    def run(self) -> None:
        try:
            s = self.settings
            try:
                model = load_model_cached(s.checkpoint or None, s.device, threads=s.threads)
            except FileNotFoundError as e:
                raise SourceError(f"the model could not be loaded: {e}") from None
            samples = self.source.read()
            for note in self.source.notes:
                self.out.put(("note", note))
            kw = dict(seed=s.seed, style=s.style, steps=s.steps, fps=self.source.fps)
            if s.rig is not None:  # a vertex model: fit its meshes onto the rig's keys
                if not hasattr(model, "codec"):
                    raise SourceError("internal error: a rig was read for an ARKit model")
                retarget = importlib.import_module(model_core_module().__name__ + ".vertex.retarget")
                session = retarget.RetargetSession(
                    model.stream(s.rig["basis"], **kw),
                    retarget.ShapeKeyRetargeter(s.rig["basis"], s.rig["deltas"]))
                self.out.put(("model", list(s.rig["names"])))
            else:
                if hasattr(model, "codec"):
                    raise SourceError("a vertex model needs the mesh's shape keys read first; "
                                      "run Generate from the panel")
                session = model.stream(**kw)
                self.out.put(("model", list(model.channel_names)))
            n = len(samples)
            for i in range(0, n, PUSH_BLOCK):
                if self.cancel_event.is_set():
                    self.out.put(("cancelled", None))
                    return
                frames = session.push(samples[i:i + PUSH_BLOCK])
                if len(frames):
                    self.out.put(("frames", frames))
                self.out.put(("progress", min(1.0, (i + PUSH_BLOCK) / n)))
            frames = session.flush()
            if len(frames):
                self.out.put(("frames", frames))
            self.out.put(("done", None))
        except BaseException as e:  # reported to the main thread, never raised here
            self.out.put(("error", friendly_error(e)))


class GenerateJob:
    """One generation, driven from the main thread.

    Args:
        key: the mesh's Key datablock; targets: {channel: shape key name};
        source: :class:`AudioSource`; settings: :class:`ModelSettings`;
        action_name: name for the new action; undo: push one undo step when done.

    States: ``running`` -> ``finished`` | ``failed`` (``error`` holds why) | ``cancelled``.
    The new action is created by :meth:`start`; any end but ``finished`` removes it and
    restores the previous action, so no half-written data is left.
    """

    def __init__(self, key, targets: dict, source: AudioSource, settings: ModelSettings,
                 action_name: str | None = None, undo: bool = True):
        self.key_name = key.name
        self.targets = dict(targets)
        self.source = source
        self.settings = settings
        self.action_name = action_name or source.label
        self.undo = undo
        self.queue: queue.Queue = queue.Queue()
        self.worker: Worker | None = None
        self.writer = None
        self.state = "new"
        self.error = ""
        self.progress = 0.0
        self.channels: list[str] | None = None
        self.notes: list[str] = []
        self.action = None
        self.started = time.monotonic()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker thread. The new action is created when the model has loaded
        (first ``model`` message), so a model or audio failure leaves no data behind."""
        self.state = "running"
        self.worker = Worker(self.source, self.settings, self.queue)
        self.worker.start()

    @property
    def running(self) -> bool:
        return self.state == "running"

    def _ensure_writer(self, channels: list[str]) -> None:
        import bpy

        from .keyframes import ShapeKeyActionWriter

        missing = [c for c in self.targets if c not in channels]
        cols = [(channels.index(c), k) for c, k in self.targets.items() if c in channels]
        if not cols:
            raise SourceError("the model's channels match none of the mapped shape keys "
                              f"(model outputs {', '.join(channels[:4])}...)")
        if missing:
            print(f"StreamTalker: {len(missing)} mapped channel(s) are not model outputs: "
                  f"{', '.join(missing)}")
        key = bpy.data.shape_keys.get(self.key_name)
        if key is None:
            raise SourceError(f"the shape keys '{self.key_name}' were removed while generating")
        self.channels = channels
        self.writer = ShapeKeyActionWriter(key, self.action_name, cols,
                                           self.source.first_frame,
                                           source=f"{self.source.label} seed={self.settings.seed}")

    def drain(self) -> bool:
        """Apply every message waiting in the queue (main thread). True while running."""
        if self.state != "running":
            return False
        try:
            while True:
                try:
                    kind, payload = self.queue.get_nowait()
                except queue.Empty:
                    break
                if kind == "model":
                    self._ensure_writer(payload)
                elif kind == "frames":
                    if self.settings.strengths and self.settings.rig is None:
                        payload = mapping_mod.apply_strength(payload, self.channels,
                                                             self.settings.strengths)
                    self.writer.append(payload)
                elif kind == "progress":
                    self.progress = float(payload)
                elif kind == "note":
                    self.notes.append(str(payload))
                    print(f"StreamTalker: note: {payload}")
                elif kind == "done":
                    self._finish()
                    return False
                elif kind == "error":
                    self._fail(payload)
                    return False
                elif kind == "cancelled":
                    self._abort("cancelled")
                    return False
        except ReferenceError as e:
            self._fail(f"the target changed while generating ({e}); nothing was written")
            return False
        except SourceError as e:
            self._fail(str(e))
            return False
        except Exception as e:
            self._fail(friendly_error(e))
            return False
        return True

    def _finish(self) -> None:
        expected = self.source.n_frames
        if self.writer is None:
            self._fail("the model produced no frames")
            return
        if expected is not None and self.writer.n_frames != expected:
            self._fail(f"internal error: {self.writer.n_frames} frames for {expected} "
                       f"audible frames; nothing was written")
            return
        self.action = self.writer.finish()
        self.progress = 1.0
        self.state = "finished"
        if self.undo:
            push_undo(f"StreamTalker: lip-sync '{self.source.label}'")

    def _fail(self, message: str) -> None:
        self.error = message
        self._abort("failed")

    def _abort(self, state: str) -> None:
        if self.worker is not None:
            self.worker.cancel_event.set()
        if self.writer is not None and not self.writer.done:
            self.writer.abort()
        self.state = state

    def cancel(self) -> None:
        """Stop the worker, remove the partial action, restore the previous one."""
        if self.state != "running":
            return
        self._abort("cancelled")

    def wait(self, timeout: float | None = None, poll: float = 0.02) -> str:
        """Drain until the job ends (main thread blocks); returns the final state."""
        t0 = time.monotonic()
        while self.drain():
            if timeout is not None and time.monotonic() - t0 > timeout:
                self.cancel()
                self.error = f"timed out after {timeout:.0f} s"
                self.state = "failed"
                break
            time.sleep(poll)
        if self.worker is not None:
            self.worker.join(timeout=5)
        return self.state

    @property
    def summary(self) -> str:
        if self.state == "finished":
            return (f"{self.writer.n_frames} frames x {len(self.writer.targets)} shape keys "
                    f"keyed from frame {self.source.first_frame} into action "
                    f"'{self.writer.action_name}'")
        if self.state == "failed":
            return self.error
        return self.state


def push_undo(message: str) -> None:
    """One undo step for the whole generation (tagging the data first so it is stored)."""
    import bpy

    try:
        bpy.context.view_layer.update()
    except Exception:
        pass
    try:
        bpy.ops.ed.undo_push(message=message)
    except Exception as e:  # no undo stack in this context: not fatal
        print(f"StreamTalker: could not push an undo step ({e})")


# ---------------------------------------------------------------------------------------
# The active job and the timer that drains it

_active: GenerateJob | None = None
_last: GenerateJob | None = None


def active_job() -> GenerateJob | None:
    """The running job, if any."""
    return _active if (_active is not None and _active.running) else None


def last_job() -> GenerateJob | None:
    """The most recent job (running or ended), for the panel's status line."""
    return _active or _last


def start_job(job: GenerateJob, use_timer: bool = True) -> GenerateJob:
    """Start ``job`` as the active job and register the drain timer.

    Raises:
        RuntimeError: another job is running.
    """
    global _active
    if active_job() is not None:
        raise RuntimeError("a generation is already running")
    job.start()
    _active = job
    if use_timer:
        import bpy
        if not bpy.app.timers.is_registered(drain):
            bpy.app.timers.register(drain, first_interval=DRAIN_INTERVAL)
    return job


def drain() -> float | None:
    """The ``bpy.app.timers`` callback: apply the active job's waiting frames.

    Returns the delay until the next call while a job runs, None when it ended (the timer
    unregisters itself). Tests call it in a loop: ``while worker.drain() is not None: ...``.
    """
    global _active, _last
    job = _active
    if job is None:
        return None
    still = job.drain()
    _tag_redraw()
    if still:
        return DRAIN_INTERVAL
    _last, _active = job, None
    if job.state == "failed":
        print(f"StreamTalker: generation failed: {job.error}")
    return None


def run_to_end(timeout: float | None = None, poll: float = 0.02) -> GenerateJob | None:
    """Call :func:`drain` until the active job ends; returns that job (tests, ``wait``)."""
    job = _active
    t0 = time.monotonic()
    while drain() is not None:
        if timeout is not None and time.monotonic() - t0 > timeout:
            cancel_active()
            break
        time.sleep(poll)
    if job is not None and job.worker is not None:
        job.worker.join(timeout=5)
    return job


def shutdown(timeout: float = 10.0) -> None:
    """Cancel the running job and wait for its thread (add-on unregister, interpreter exit)."""
    job = _active or _last
    cancel_active()
    if job is not None and job.worker is not None and job.worker.is_alive():
        job.worker.cancel_event.set()
        job.worker.join(timeout)


atexit.register(shutdown)


def cancel_active() -> bool:
    """Cancel the running job (Cancel button, Esc, unregister, file load). True if one ran."""
    global _active, _last
    job = _active
    if job is None:
        return False
    was = job.running
    job.cancel()
    _last, _active = job, None
    try:
        import bpy
        if bpy.app.timers.is_registered(drain):
            bpy.app.timers.unregister(drain)
    except Exception:
        pass
    return was


def _tag_redraw() -> None:
    try:
        import bpy
        wm = bpy.context.window_manager
        for win in wm.windows:
            for area in win.screen.areas:
                if area.type in {"VIEW_3D", "PROPERTIES"}:
                    area.tag_redraw()
    except Exception:
        pass
