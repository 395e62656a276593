"""Generate jobs: a worker thread runs the model, the main thread writes keys.

Threading rule: only the main thread touches ``bpy`` data. The :class:`Worker` thread
reads the audio (:class:`~.audio_source.AudioSource`), loads the model
(:func:`load_session_model`: any kind; a vertex model fitted onto the rig's shape keys),
opens its session at the scene's fps and runs it with model_core's one driver
(``model_core.runtime.driver.run``), putting messages on a :class:`queue.Queue`:

* ``("model", channel_names)`` once the model is loaded and the audio read,
* ``("frames", array float32 [n, D])`` as frames become ready,
* ``("progress", fraction 0..1)``,
* ``("note", sentence)`` for something the user should know (kept in ``GenerateJob.notes``),
* ``("done", None)`` / ``("error", message)`` / ``("cancelled", None)`` at the end.

:class:`GenerateJob` (main thread) owns the worker and a
:class:`~.keyframes.ShapeKeyActionWriter`; :mod:`.jobs` runs it (registry, timer, drain).
"""

from __future__ import annotations

import queue
import threading
import time
import traceback

from . import jobs
from . import mapping as mapping_mod
from .audio_source import AudioSource
from .core import ModelCoreMissing, load_model_cached, mc_submodule
from .errors import AudioError, CheckpointError, PlanError, StreamTalkerError

#: Seconds between timer calls while a generation runs.
DRAIN_INTERVAL = 0.1
#: Audio pushed into the session per step (samples); results do not depend on it.
PUSH_BLOCK = 8000


def friendly_error(e: BaseException) -> str:
    """What the user sees for ``e``: one sentence for a :class:`StreamTalkerError` (a problem
    the user can fix); for anything else (a bug) a report that holds the traceback, which is
    also printed to the system console."""
    if isinstance(e, CheckpointError):
        return f"the model could not be loaded: {e}"
    if isinstance(e, AudioError):
        return f"unsupported audio: {e}"
    if isinstance(e, (StreamTalkerError, ModelCoreMissing)):
        return str(e)
    return bug_report(e)


def bug_report(e: BaseException) -> str:
    """The report for an unexpected exception (a bug): its type, message and traceback
    (printed to the system console too)."""
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip()
    print(tb)
    return (f"unexpected error ({type(e).__name__}: {e}), a bug in StreamTalker; please "
            f"report it with this traceback:\n{tb}")


def load_session_model(settings):
    """The model a Generate or Live job drives (any thread; cached by
    :func:`~.core.load_model_cached`): the checkpoint's model, or for a vertex model
    (``settings.kind == "vertex"``) that model fitted onto the target mesh's shape keys
    (``settings.rig``, read by the plan): a ``model_core.vertex.retarget.RetargetedModel``,
    whose sessions give shape-key weights like an ARKit model's; for a viseme or vowel rig
    (``settings.face_rig``) the ARKit model seen through it
    (``model_core.runtime.rigs.RiggedModel``). One path for every kind.

    Raises:
        PlanError: the checkpoint file is gone, or a package it needs is missing; a vertex
            model without the rig read.
        CheckpointError, ValueError, ModelCoreMissing: as ``load_model_cached``.
    """
    s = settings
    try:
        model = load_model_cached(s.checkpoint or None, s.device, threads=s.threads)
    except (FileNotFoundError, ImportError) as e:
        # ImportError: e.g. a checkpoint without its ONNX export, torch importable but not
        # the onnx package to export it with (the message says what to install)
        raise PlanError(f"the model could not be loaded: {e}") from None
    if s.kind != "vertex":
        if s.face_rig == "arkit":
            return model
        # a viseme or vowel rig: the model's ARKit weights converted (numpy, per frame)
        return mc_submodule("runtime.rigs").RiggedModel(model, s.face_rig)
    if s.rig is None:
        raise PlanError("a vertex model needs the mesh's shape keys read first; run it "
                        "from the panel")
    return mc_submodule("vertex.retarget").RetargetedModel(
        model, s.rig["basis"], s.rig["deltas"], s.rig["names"])


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
            model = load_session_model(s)
            samples = self.source.read()
            for note in self.source.notes:
                self.out.put(("note", note))
            session = model.stream(**s.stream_kwargs(model), fps=self.source.fps)
            self.out.put(("model", list(session.channel_names)))
            driver = mc_submodule("runtime.driver")
            try:
                driver.run(session, samples, PUSH_BLOCK,
                           on_frames=lambda f: self.out.put(("frames", f)),
                           cancel=self.cancel_event,
                           on_progress=lambda p: self.out.put(("progress", p)))
            except driver.Cancelled:
                self.out.put(("cancelled", None))
                return
            self.out.put(("done", None))
        except BaseException as e:  # reported to the main thread, never raised here
            self.out.put(("error", friendly_error(e)))


class GenerateJob:
    """One generation, driven from the main thread (a job of :mod:`.jobs`, kind
    ``"generate"``).

    Args:
        key: the mesh's Key datablock; targets: {channel: shape key name};
        source: :class:`AudioSource`; settings: :class:`~.planning.ModelSettings`;
        action_name: name for the new action; undo: push one undo step when done.

    States: ``running`` -> ``finished`` | ``failed`` (``error`` holds why) | ``cancelled``.
    The new action is created by :meth:`start`; any end but ``finished`` removes it and
    restores the previous action, so no half-written data is left.
    """

    kind = "generate"
    drain_interval = DRAIN_INTERVAL
    redraw = True        # the progress bar moves

    def __init__(self, key, targets: dict, source: AudioSource, settings,
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
            raise PlanError("the model's channels match none of the mapped shape keys "
                              f"(model outputs {', '.join(channels[:4])}...)")
        if missing:
            print(f"StreamTalker: {len(missing)} mapped channel(s) are not model outputs: "
                  f"{', '.join(missing)}")
        key = bpy.data.shape_keys.get(self.key_name)
        if key is None:
            raise PlanError(f"the shape keys '{self.key_name}' were removed while generating")
        self.channels = channels
        self.writer = ShapeKeyActionWriter(key, self.action_name, cols,
                                           self.source.first_frame,
                                           source=f"{self.source.label} seed={self.settings.seed}",
                                           line=self.source.line or self.source.label)

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
                    if self.settings.strengths:
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
        except StreamTalkerError as e:
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
            jobs.push_undo(f"StreamTalker: lip-sync '{self.source.label}'")

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

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker thread to end (after the job ended or was cancelled)."""
        if self.worker is not None and self.worker.is_alive():
            self.worker.join(timeout)

    @property
    def placement(self):
        """Where the line went (:class:`~.keyframes.Placement`), once finished; else None."""
        return self.writer.placement if self.writer is not None else None

    @property
    def summary(self) -> str:
        if self.state == "finished":
            return (f"{self.writer.n_frames} frames x {len(self.writer.targets)} shape keys "
                    f"keyed into {self.placement.sentence()}")
        if self.state == "failed":
            return self.error
        return self.state


class GenerateAllJob:
    """Generate All: one :class:`GenerateJob` after the other, one per planned line (a job
    of :mod:`.jobs`, kind ``"generate"``), with one undo step at the end.

    Args:
        plans: [(label, plan or the sentence why it could not be planned)] in order.
        undo: push one undo step when done.

    ``results``: [(label, job or None, error)] as the lines end. States: ``running`` ->
    ``finished`` (every line generated), ``failed`` (some failed: ``error`` says how many),
    ``cancelled``.
    """

    kind = "generate"
    drain_interval = DRAIN_INTERVAL
    redraw = True

    def __init__(self, plans: list, undo: bool = True):
        self.plans = list(plans)
        self.undo = undo
        self.results: list = []
        self.current: GenerateJob | None = None
        self.state = "new"
        self.error = ""
        self.notes: list[str] = []
        self.started = time.monotonic()
        self._next = 0

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def progress(self) -> float:
        n = max(len(self.plans), 1)
        cur = self.current.progress if self.current is not None else 0.0
        return min(1.0, (len(self.results) + cur) / n)

    def start(self) -> None:
        self.state = "running"
        self._start_next()

    def _start_next(self) -> bool:
        """Start the next line that planned; False when none is left."""
        while self._next < len(self.plans):
            label, plan = self.plans[self._next]
            self._next += 1
            if isinstance(plan, str):
                self.results.append((label, None, plan))
                continue
            job = plan.job(undo=False)
            try:
                job.start()
            except StreamTalkerError as e:
                self.results.append((label, None, str(e)))
                continue
            self.current = job
            return True
        self.current = None
        return False

    def drain(self) -> bool:
        """Drain the running line; start the next when it ends (main thread)."""
        if self.state != "running":
            return False
        job = self.current
        if job is not None and not job.drain():
            self.notes += [f"{job.source.label}: {n}" for n in job.notes]
            self.results.append((job.source.label, job, "" if job.state == "finished"
                                 else job.error or job.state))
            self.current = None
        if self.current is None and not self._start_next():
            failed = [r for r in self.results if r[2]]
            self.state = "failed" if failed else "finished"
            self.error = (f"{len(failed)} of {len(self.results)} lines failed: "
                          + "; ".join(f"{lbl}: {err}" for lbl, _, err in failed)) if failed else ""
            if self.undo and len(failed) < len(self.results):
                jobs.push_undo("StreamTalker: Generate All")
            return False
        return True

    def cancel(self) -> None:
        """Cancel the running line (its partial action removed); the finished lines stay."""
        if self.state != "running":
            return
        if self.current is not None:
            self.current.cancel()
        self.state = "cancelled"

    def join(self, timeout: float | None = None) -> None:
        for _, job, _ in self.results:
            if job is not None:
                job.join(timeout)
        if self.current is not None:
            self.current.join(timeout)

    @property
    def summary(self) -> str:
        done = [(lbl, job) for lbl, job, err in self.results if not err]
        text = f"{len(done)} of {len(self.plans)} lines generated"
        if done:
            text += ": " + "; ".join(f"'{lbl}' -> {job.placement.sentence()}"
                                     for lbl, job in done)
        if self.state == "failed":
            return f"{text}. {self.error}"
        if self.state == "cancelled":
            return f"cancelled; {text}"
        return text
