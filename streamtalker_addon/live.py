"""Live microphone in Blender: the head's shape keys follow the voice in the viewport.

:class:`LiveSession` (main thread) owns a :class:`model_core.live.engine.LiveEngine` (PortAudio
callback -> ring buffer -> worker thread running the model) and, while Record is on, a
:class:`~.keyframes.ShapeKeyActionWriter` keying every frame into a NEW action from the
scene's current frame (same nothing-lost rules as Generate: the previous action keeps a fake
user and :func:`keyframes.restore_previous` swaps it back; the recorded action is kept when
Record stops, when Live stops and when the device fails mid-take).

:func:`drain` is the ``bpy.app.timers`` callback (every :data:`DRAIN_INTERVAL` s): it takes
the ready frames, sets the mapped shape keys to the NEWEST frame (``key_block.value``,
strengths applied), appends all frames to the recording, and records the hand-over time for
the latency figure. Timers never fire in the PyPI ``bpy`` module: tests call :func:`drain`.

Operators: ``streamtalker.live_start``, ``streamtalker.live_stop``,
``streamtalker.live_record`` (toggle). Panel: ``STREAMTALKER_PT_live`` (level meter,
latency ms, dropped audio, device). The input device comes from the add-on preferences
(``live_device``) when that property exists, else ``WindowManager.streamtalker_live.device``;
empty means the default input.
"""

from __future__ import annotations

import importlib
import os
import tempfile
import time

import bpy
from bpy.props import StringProperty
from bpy.types import Operator, Panel, PropertyGroup

from . import mapping as mapping_mod
from . import worker
from .audio_source import SourceError, scene_fps
from .core import ModelCoreMissing, arkit_names, load_model_cached, model_core_module

#: Seconds between timer calls while Live runs: 5 ms, Blender's event-loop granularity, so a
#: frame waits at most ~5 ms for the main thread once the model made it (a call with nothing
#: new costs a lock and an empty deque; the viewport is redrawn only when keys changed).
DRAIN_INTERVAL = 1 / 200


class LiveSession:
    """One Live run on one mesh (main thread).

    Args:
        obj: target mesh object; targets: {channel: shape key}; settings:
        :class:`worker.ModelSettings`; fps: scene fps (frames are produced at this rate so
        Record keys one frame per scene frame); device: input device name/index or None.
    Raises (from :meth:`start`): :class:`SourceError` with the user message (no device,
        refused sample rate, device error, model not loadable).
    """

    def __init__(self, obj, targets: dict, settings, fps: float, device=None, **engine_kw):
        self.obj_name = obj.name
        self.key_name = obj.data.shape_keys.name
        self.targets = dict(targets)
        self.settings = settings
        self.fps = float(fps)
        self.device = device or None
        self.engine_kw = engine_kw
        self.engine = None
        self.writer = None
        self.recorded_action = ""
        self.error = ""
        self.state = "new"
        self.frames_applied = 0

    def start(self) -> "LiveSession":
        try:
            mc = model_core_module()
            live_mod = _live_module()
        except ModelCoreMissing as e:
            raise SourceError(str(e)) from None
        s = self.settings
        try:
            model = load_model_cached(s.checkpoint or None, s.device, threads=s.threads)
        except FileNotFoundError as e:
            raise SourceError(f"the model could not be loaded: {e}") from None
        except mc.CheckpointError as e:
            raise SourceError(f"the model could not be loaded: {e}") from None
        channels = list(model.channel_names)
        self.channels = channels
        self.cols = [(channels.index(c), k) for c, k in self.targets.items() if c in channels]
        if not self.cols:
            raise SourceError("the model's channels match none of the mapped shape keys")
        self.engine = live_mod.LiveEngine(model, device=self.device, fps=self.fps, seed=s.seed,
                                          style=s.style, steps=s.steps, **self.engine_kw)
        try:
            self.engine.start()
        except live_mod.LiveError as e:
            self.engine = None
            raise SourceError(str(e)) from None
        self.state = "running"
        return self

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def recording(self) -> bool:
        return self.writer is not None and not self.writer.done

    @property
    def key(self):
        from .keyframes import shape_keys_named
        return shape_keys_named(self.key_name)

    # -- record -------------------------------------------------------------------------------
    def _save_take(self, w) -> str:
        """Save a take that could not be keyed as a JSON frame file (``model_core.io.frames``:
        fps, names = shape keys, frames, meta with the first scene frame): beside the .blend,
        else in the temporary folder. Returns its path ('' when even that failed)."""
        mc = model_core_module()
        export = importlib.import_module(mc.__name__ + ".io.frames")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        dirs = [os.path.dirname(bpy.data.filepath)] if bpy.data.filepath else []
        for d in dirs + [tempfile.gettempdir()]:
            for i in range(100):
                p = os.path.join(d, f"streamtalker-take-{stamp}{'-%d' % i if i else ''}.json")
                if os.path.exists(p):
                    continue
                try:
                    export.write_frames(p, w.values(), w.names, self.fps, kind="shape_keys",
                                        meta={"first_frame": w.first_frame,
                                              "object": self.obj_name,
                                              "action": w.action_name})
                    return p
                except OSError:
                    break
        return ""

    def start_record(self, scene) -> str:
        """Start keying into a new action at ``scene.frame_current``; returns its name."""
        from .keyframes import ShapeKeyActionWriter
        if self.recording:
            return self.writer.action_name
        name = f"Live {time.strftime('%H:%M:%S')}"
        self.writer = ShapeKeyActionWriter(self.key, name, self.cols, int(scene.frame_current),
                                           source=f"live microphone {self.engine.device_name!r} "
                                                  f"seed={self.settings.seed}")
        return self.writer.action_name

    def stop_record(self) -> str:
        """Write the remaining keys; the new action is kept (fake user). Returns its name.

        Raises:
            TakeNotKeyed: the keys could not be written (the head or the action was removed
                mid-take, ...); the take's frames are saved to a file the message names.
        """
        if not self.recording:
            return self.recorded_action
        w, self.writer = self.writer, None
        if w.n_frames == 0:
            try:
                w.abort()  # nothing recorded: put the previous action back, no empty action
            except ReferenceError:
                pass
            return ""
        try:
            w.finish()
        except Exception as e:  # noqa: BLE001  (the take must survive any failure)
            path = self._save_take(w)
            why = e if isinstance(e, ReferenceError) else worker.friendly_error(e)
            where = (f"its {w.n_frames} frames are saved in {path}" if path else
                     "its frames could not be saved either")
            raise TakeNotKeyed(f"the take could not be keyed ({why}); {where}") from None
        self.recorded_action = w.action_name
        worker.push_undo(f"StreamTalker: live take '{w.action_name}'")
        return w.action_name

    # -- main-thread drain --------------------------------------------------------------------
    def drain(self) -> bool:
        """Apply the frames waiting (main thread). True while running."""
        if self.state != "running":
            return False
        eng = self.engine
        events = eng.poll()
        try:
            if events:
                import numpy as np
                frames = np.concatenate([e.frames for e in events])
                if self.settings.strengths:
                    frames = mapping_mod.apply_strength(frames, self.channels,
                                                        self.settings.strengths)
                if self.recording:
                    self.writer.append(frames)
                kb = self.key.key_blocks
                newest = frames[-1]
                for col, name in self.cols:
                    block = kb.get(name)
                    if block is not None:
                        block.value = float(newest[col])
                self.frames_applied += len(frames)
                eng.applied(events)
        except ReferenceError as e:
            self._end("failed", f"the target changed while live ({e})")
            return False
        except Exception as e:  # noqa: BLE001  (one sentence for the user, the take kept)
            self._end("failed", worker.friendly_error(e))
            return False
        if eng.state == "failed":
            self._end("failed", eng.error)
            return False
        return True

    def _end(self, state: str, error: str = "") -> None:
        self.error = error
        if self.engine is not None:
            self.engine.stop()
        try:
            self.stop_record()
        except TakeNotKeyed as e:
            self.error = f"{error}; {e}" if error else str(e)
            state = "failed"
        self.state = state

    def stop(self) -> None:
        """Stop input and worker; finish a recording (kept)."""
        if self.state == "running":
            self._end("stopped")

    @property
    def summary(self) -> str:
        if self.state == "failed":
            return self.error
        extra = f"; recorded '{self.recorded_action}'" if self.recorded_action else ""
        return f"live {self.state}: {self.frames_applied} frames{extra}"


class TakeNotKeyed(SourceError):
    """A recording could not be keyed; the message names the file its frames went to."""


def _live_module():
    """``model_core.live.engine`` from the model_core the add-on uses (vendored or top-level)."""
    import importlib
    return importlib.import_module(model_core_module().__name__ + ".live")


# ---------------------------------------------------------------------------------------
# The active session and its timer

_active: LiveSession | None = None
_last: LiveSession | None = None


def active_session() -> LiveSession | None:
    return _active if (_active is not None and _active.running) else None


def last_session() -> LiveSession | None:
    return _active or _last


def input_device(context=None) -> str:
    """The input device chosen in the preferences (``live_device``) or the window manager;
    '' = the default input."""
    context = context or bpy.context
    try:
        from .preferences import get_prefs
        prefs = get_prefs(context)
        if prefs is not None and getattr(prefs, "live_device", ""):
            return prefs.live_device
    except Exception:
        pass
    wm = getattr(context, "window_manager", None)
    props = getattr(wm, "streamtalker_live", None) if wm is not None else None
    return props.device if props is not None else ""


def start_live(context, target: str = "", device: str | None = None, use_timer: bool = True,
               **engine_kw) -> LiveSession:
    """Check the target and model, open the device and start Live.

    Raises:
        SourceError: no target / mapping / model, no input device, refused sample rate,
            device error (the message is for the user); a generation or Live is running.
    """
    global _active
    from .operators import model_settings, resolve_mapping, target_object
    if active_session() is not None:
        raise SourceError("Live is already running")
    if worker.active_job() is not None:
        raise SourceError("a generation is running: wait or press Cancel")
    scene = context.scene
    obj = target_object(context, target)
    try:
        channels = list(arkit_names())
    except ModelCoreMissing as e:
        raise SourceError(str(e)) from None
    targets, _unmatched = resolve_mapping(obj, channels)
    settings = model_settings(scene.streamtalker)
    if settings.n_vertices is not None:
        raise SourceError("Live needs an ARKit checkpoint (or the bundled model); a vertex "
                          "model works with Generate Lip Sync")
    dev = input_device(context) if device is None else device
    sess = LiveSession(obj, targets, settings, scene_fps(scene), device=dev or None, **engine_kw)
    sess.start()
    _active = sess
    if use_timer and not bpy.app.timers.is_registered(drain):
        bpy.app.timers.register(drain, first_interval=DRAIN_INTERVAL)
    return sess


def drain() -> float | None:
    """Timer callback: apply the active session's frames; None (unregister) once it ended."""
    global _active, _last
    sess = _active
    if sess is None:
        return None
    before = sess.frames_applied
    still = sess.drain()
    if sess.frames_applied != before or not still:
        worker._tag_redraw()
    if still:
        return DRAIN_INTERVAL
    _last, _active = sess, None
    if sess.state == "failed":
        print(f"StreamTalker: live input stopped: {sess.error}")
    return None


def stop_live() -> bool:
    """Stop the active session (Stop button, unregister, file load). True if one ran."""
    global _active, _last
    sess = _active
    if bpy.app.timers.is_registered(drain):
        bpy.app.timers.unregister(drain)
    if sess is None:
        return False
    was = sess.running
    sess.stop()
    _last, _active = sess, None
    return was


# ---------------------------------------------------------------------------------------
# Blender classes

class STREAMTALKER_PG_live(PropertyGroup):
    device: StringProperty(name="Input Device", default="",
                           description="Microphone (PortAudio device name or index); empty: "
                                       "the default input")


class STREAMTALKER_OT_live_start(Operator):
    """Animate the active mesh's shape keys from the microphone, live"""

    bl_idname = "streamtalker.live_start"
    bl_label = "Start Live"
    bl_options = {"REGISTER"}

    target: StringProperty(default="", options={"SKIP_SAVE", "HIDDEN"})
    device: StringProperty(default="", options={"SKIP_SAVE", "HIDDEN"},
                           description="Input device (default: the preferences' choice)")

    @classmethod
    def poll(cls, context):
        if active_session() is not None:
            cls.poll_message_set("Live is running")
            return False
        if worker.active_job() is not None:
            cls.poll_message_set("a generation is running")
            return False
        return True

    def execute(self, context):
        try:
            sess = start_live(context, self.target, self.device or None,
                              use_timer=not bpy.app.background)
        except SourceError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        self.report({"INFO"}, f"StreamTalker: live from {sess.engine.device_name!r}")
        return {"FINISHED"}


class STREAMTALKER_OT_live_stop(Operator):
    """Stop live input (a recording in progress is kept as a new action)"""

    bl_idname = "streamtalker.live_stop"
    bl_label = "Stop Live"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        if active_session() is None:
            cls.poll_message_set("Live is not running")
            return False
        return True

    def execute(self, context):
        sess = _active
        stop_live()
        self.report({"INFO"}, sess.summary if sess else "stopped")
        return {"FINISHED"}


class STREAMTALKER_OT_live_record(Operator):
    """Start or stop keying the live performance into a new action at the current frame"""

    bl_idname = "streamtalker.live_record"
    bl_label = "Record"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        if active_session() is None:
            cls.poll_message_set("start Live first")
            return False
        return True

    def execute(self, context):
        sess = active_session()
        try:
            if sess.recording:
                name = sess.stop_record()
                self.report({"INFO"}, f"recorded into '{name}'" if name else "nothing recorded")
            else:
                name = sess.start_record(context.scene)
                self.report({"INFO"}, f"recording into '{name}'")
        except (ReferenceError, SourceError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        except Exception as e:  # noqa: BLE001  (one sentence, never a traceback)
            self.report({"ERROR"}, f"Record failed: {worker.friendly_error(e)}")
            return {"CANCELLED"}
        return {"FINISHED"}


class STREAMTALKER_PT_live(Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "StreamTalker"
    bl_label = "Live"
    bl_parent_id = "STREAMTALKER_PT_main"

    def draw(self, context):
        layout = self.layout
        sess = last_session()
        if sess is not None and sess.running:
            row = layout.row(align=True)
            row.operator("streamtalker.live_stop", icon="PAUSE")
            row.operator("streamtalker.live_record", depress=sess.recording,
                         text="Recording" if sess.recording else "Record", icon="REC")
            st = sess.engine.stats
            lvl = max(0.0, min(1.0, (st.level_db + 60.0) / 60.0))
            layout.progress(factor=lvl, type="BAR", text=f"Input {st.level_db:.0f} dB")
            col = layout.column(align=True)
            col.label(text=f"Latency {st.latency_ms:.0f} ms "
                           f"(+ up to {sess.engine.latency_ms:.0f} ms chunk and look-ahead)")
            col.label(text=f"Dropped audio {st.dropped_s:.2f} s")
            col.label(text=f"Device: {sess.engine.device_name}", icon="OUTLINER_DATA_SPEAKER")
        else:
            layout.operator("streamtalker.live_start", icon="REC")
            dev = input_device(context)
            layout.prop(context.window_manager.streamtalker_live, "device")
            if dev and dev != context.window_manager.streamtalker_live.device:
                layout.label(text=f"Preferences device: {dev}")
            if sess is not None and sess.state == "failed":
                layout.label(text=sess.error, icon="ERROR")
            elif sess is not None and sess.recorded_action:
                layout.label(text=f"Recorded '{sess.recorded_action}'", icon="CHECKMARK")


classes = (STREAMTALKER_PG_live, STREAMTALKER_OT_live_start, STREAMTALKER_OT_live_stop,
           STREAMTALKER_OT_live_record, STREAMTALKER_PT_live)


def register() -> None:
    for c in classes:
        bpy.utils.register_class(c)
    bpy.types.WindowManager.streamtalker_live = bpy.props.PointerProperty(type=STREAMTALKER_PG_live)


def unregister() -> None:
    stop_live()
    del bpy.types.WindowManager.streamtalker_live
    for c in reversed(classes):
        bpy.utils.unregister_class(c)
