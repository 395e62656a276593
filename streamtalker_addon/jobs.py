"""The one job manager: the registry of the running job, the ``bpy.app.timers`` callback
that drains it, and cancel / shutdown -- for every kind of job (docs/architecture.md, "The
Blender add-on"):

* :class:`~.worker.GenerateJob` (``kind "generate"``: Generate Lip Sync and batch bake): a
  worker thread runs the model over a strip or file, the main thread keys the frames;
* :class:`~.live.LiveJob` (``kind "live"``): the microphone drives the shape keys, and
  Record keys them.

A job has ``kind``, ``state`` (``running`` while it runs), ``running``, ``error``,
``summary``, ``drain_interval`` (seconds between timer calls), ``drain() -> bool`` (main
thread: apply what is waiting; False once it ended), ``cancel()`` and ``join(timeout)``
(wait for its threads). One job runs at a time.

Threading rule: only the main thread touches ``bpy`` data. Timers never fire in the PyPI
``bpy`` module, so tests (and ``wait`` mode, and bake) call :func:`drain` /
:func:`run_to_end` themselves.
"""

from __future__ import annotations

import atexit
import time

from .errors import PlanError

_active = None
_last: dict = {}     # kind -> the most recent job of that kind

#: Seconds between redraws of the sidebar and the Properties editor (status lines, level
#: meter, shape-key values) while a job runs; the 3D viewport itself is redrawn at every
#: drain that changed keys (Live: every frame), without the sidebar's Python panels.
UI_REDRAW_INTERVAL = 0.1
_ui_redrawn = 0.0    # monotonic time of the last full redraw


def active_job(kind: str | None = None):
    """The running job (of ``kind`` "generate" / "live" when given), or None."""
    job = _active
    if job is None or not job.running or (kind is not None and job.kind != kind):
        return None
    return job


def last_job(kind: str | None = None):
    """The running job, else the most recent one (of ``kind`` when given), for the panels'
    status lines; None if there was none."""
    if _active is not None and (kind is None or _active.kind == kind):
        return _active
    if kind is not None:
        return _last.get(kind)
    return max(_last.values(), key=lambda j: j.started, default=None)


def start(job, use_timer: bool = True):
    """Start ``job`` as the active job and register the drain timer; returns the job.

    Raises:
        PlanError: a job is already running (the message says which).
        whatever ``job.start()`` raises (nothing is registered then).
    """
    global _active
    busy = active_job()
    if busy is not None:
        raise PlanError("Live is already running" if busy.kind == "live" else
                        "a generation is already running")
    job.start()
    _active = job
    if use_timer:
        import bpy
        if not bpy.app.timers.is_registered(drain):
            bpy.app.timers.register(drain, first_interval=job.drain_interval)
    return job


def _retire(job) -> None:
    global _active
    _last[job.kind] = job
    if _active is job:
        _active = None


def drain() -> float | None:
    """The ``bpy.app.timers`` callback: apply the active job's waiting frames.

    Returns the delay until the next call while a job runs, None when it ended (the timer
    unregisters itself). Tests call it in a loop: ``while jobs.drain() is not None: ...``.
    """
    global _ui_redrawn
    job = _active
    if job is None:
        return None
    still = job.drain()
    if job.redraw or not still:
        now = time.monotonic()
        ui = not still or now - _ui_redrawn >= UI_REDRAW_INTERVAL
        if ui:
            _ui_redrawn = now
        tag_redraw(ui=ui)
    if still:
        return job.drain_interval
    _retire(job)
    if job.state == "failed":
        print(f"StreamTalker: {job.kind} failed: {job.error}")
    return None


def run_to_end(timeout: float | None = None, poll: float = 0.02, stop=None):
    """Call :func:`drain` until the active job ends; returns that job (tests, ``wait``,
    bake). A job still running after ``timeout`` seconds, or once ``stop`` (a
    ``threading.Event``, e.g. set by the bake's Ctrl+C handler) is set, is cancelled."""
    job = _active
    t0 = time.monotonic()
    while drain() is not None:
        if ((timeout is not None and time.monotonic() - t0 > timeout)
                or (stop is not None and stop.is_set())):
            cancel_active()
            break
        time.sleep(poll)
    if job is not None:
        job.join(5)
    return job


def cancel_active(kind: str | None = None) -> bool:
    """Cancel the running job (of ``kind`` when given): Cancel / Stop buttons, Esc,
    unregister, file load. A generation's partial action is removed; a Live recording is
    kept. True if one ran."""
    job = _active
    if job is None or (kind is not None and job.kind != kind):
        return False
    was = job.running
    job.cancel()
    _retire(job)
    try:
        import bpy
        if bpy.app.timers.is_registered(drain):
            bpy.app.timers.unregister(drain)
    except Exception:
        pass
    return was


def shutdown(timeout: float = 10.0) -> None:
    """Cancel the running job and wait for its threads (add-on unregister, interpreter
    exit)."""
    job = _active
    cancel_active()
    for j in [job, *_last.values()]:
        if j is not None:
            j.join(timeout)


atexit.register(shutdown)


def push_undo(message: str) -> None:
    """One undo step for a whole job (tagging the data first so it is stored)."""
    import bpy

    try:
        bpy.context.view_layer.update()
    except Exception:
        pass
    try:
        bpy.ops.ed.undo_push(message=message)
    except Exception as e:  # no undo stack in this context: not fatal
        print(f"StreamTalker: could not push an undo step ({e})")


def tag_redraw(ui: bool = True, wm=None) -> None:
    """Redraw the 3D views (live keys) and, with ``ui``, their sidebars and the property
    editors too (progress, status, shape-key values); without ``ui`` only the 3D views' main
    region, so a Live frame does not re-run every panel's Python ``draw``.

    Args:
        wm: the window manager (default: ``bpy.context.window_manager``).
    """
    try:
        if wm is None:
            import bpy
            wm = bpy.context.window_manager
        for win in wm.windows:
            for area in win.screen.areas:
                if ui and area.type in {"VIEW_3D", "PROPERTIES"}:
                    area.tag_redraw()
                elif area.type == "VIEW_3D":
                    for region in area.regions:
                        if region.type == "WINDOW":
                            region.tag_redraw()
    except Exception:
        pass
