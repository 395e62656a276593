"""Live microphone in Blender: the head's shape keys follow the voice in the viewport.

:class:`LiveJob` (main thread, a job of :mod:`.jobs`) owns a
:class:`model_core.live.LiveEngine` (PortAudio callback -> ring buffer -> worker thread
running the model through model_core's one driver) and, while Record is on, a
:class:`~.keyframes.ShapeKeyActionWriter` keying every frame into a NEW action from the
scene's current frame (same nothing-lost rules as Generate: the previous action keeps a fake
user and :func:`keyframes.restore_previous` swaps it back; the recorded action is kept when
Record stops, when Live stops and when the device fails mid-take).

Its ``drain`` (called by :func:`.jobs.drain` every :data:`DRAIN_INTERVAL` s) takes the ready
frames, sets the mapped shape keys to the NEWEST frame (``key_block.value``, strengths
applied), appends all frames to the recording, and records the hand-over time for the
latency figure. The operators are in :mod:`.operators`, the panel in :mod:`.panels`, the
device property in :mod:`.properties`.
"""

from __future__ import annotations

import os
import tempfile
import time

import bpy

from . import jobs
from . import mapping as mapping_mod
from .core import ModelCoreMissing, mc_submodule
from .errors import CheckpointError, PlanError, SettingError, StreamTalkerError
from .worker import friendly_error, load_session_model

#: Seconds between timer calls while Live runs: 5 ms, Blender's event-loop granularity, so a
#: frame waits at most ~5 ms for the main thread once the model made it (a call with nothing
#: new costs a lock and an empty deque; the viewport is redrawn only when keys changed).
DRAIN_INTERVAL = 1 / 200


class LiveJob:
    """One Live run on one mesh (main thread): a job of :mod:`.jobs`, kind ``"live"``.

    Args:
        obj: target mesh object; targets: {channel: shape key}; settings:
        :class:`~.planning.ModelSettings`; fps: scene fps (frames are produced at this rate
        so Record keys one frame per scene frame); device: input device name/index or None.
    Raises (from :meth:`start`): a StreamTalkerError with the user message (no device,
        refused sample rate, device error, model not loadable).
    """

    kind = "live"
    drain_interval = DRAIN_INTERVAL

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
        self.redraw = False      # set by drain when keys changed
        self.started = time.monotonic()

    def start(self) -> "LiveJob":
        """Load the model, open the input device and start the engine (main thread).

        Raises:
            PlanError: model_core missing, the model not loadable, no channel mapped, a
            setting the model does not take (named);
            model_core.live.LiveError: no input device, refused sample rate, device error.
        """
        try:
            live_mod = mc_submodule("live")
        except ModelCoreMissing as e:
            raise PlanError(str(e)) from None
        s = self.settings
        try:
            model = load_session_model(s)
        except StreamTalkerError as e:   # a CheckpointError, a missing file, a bad setting
            raise PlanError(f"the model could not be loaded: {e}") from None
        channels = list(model.channel_names)
        self.channels = channels
        self.cols = [(channels.index(c), k) for c, k in self.targets.items() if c in channels]
        if not self.cols:
            raise PlanError("the model's channels match none of the mapped shape keys")
        try:
            self.engine = live_mod.LiveEngine(model, device=self.device, fps=self.fps,
                                              **s.stream_kwargs(model, live=True),
                                              **self.engine_kw)
        except SettingError as e:
            raise PlanError(f"Live cannot run with these settings: {e}") from None
        try:
            self.engine.start()
        except SettingError as e:   # a setting the model does not take (style, fps, ...)
            self.engine = None
            raise PlanError(f"Live cannot run with these settings: {e}") from None
        except BaseException:
            self.engine = None
            raise
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
        export = mc_submodule("io.frames")
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
            why = e if isinstance(e, ReferenceError) else friendly_error(e)
            where = (f"its {w.n_frames} frames are saved in {path}" if path else
                     "its frames could not be saved either")
            raise TakeNotKeyed(f"the take could not be keyed ({why}); {where}") from None
        self.recorded_action = w.action_name
        jobs.push_undo(f"StreamTalker: live take '{w.action_name}'")
        return w.action_name

    # -- main-thread drain --------------------------------------------------------------------
    def drain(self) -> bool:
        """Apply the frames waiting (main thread). True while running."""
        self.redraw = False
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
                self.redraw = True
                eng.applied(events)
        except ReferenceError as e:
            self._end("failed", f"the target changed while live ({e})")
            return False
        except Exception as e:  # noqa: BLE001  (one sentence for the user, the take kept)
            self._end("failed", friendly_error(e))
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

    cancel = stop     # the job manager's cancel: a Live take is never thrown away

    def join(self, timeout: float | None = None) -> None:
        """Wait for the engine's threads (they end when the job stops)."""
        if self.engine is not None:
            self.engine.stop(timeout or 5.0)

    @property
    def summary(self) -> str:
        if self.state == "failed":
            return self.error
        extra = f"; recorded '{self.recorded_action}'" if self.recorded_action else ""
        return f"live {self.state}: {self.frames_applied} frames{extra}"


class TakeNotKeyed(StreamTalkerError, ValueError):
    """A recording could not be keyed; the message names the file its frames went to."""


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


def expected_latency(context=None, preset: str | None = None) -> tuple[float, int, float]:
    """(algorithmic latency ms, chunk frames, look-ahead ms) Live will run the scene's model
    at: ``preset`` (default: the preference "Live Latency", :func:`.preferences.live_preset`)
    resolved against the model's config (read from its JSON: cheap enough for a panel).

    Raises:
        ModelCoreMissing; FileNotFoundError / CheckpointError: no or an unreadable model.
    """
    from .core import describe
    from .preferences import live_preset
    context = context or bpy.context
    s = context.scene.streamtalker
    info = describe(s.checkpoint if s.model_source == "FILE" else None)
    st = mc_submodule("runtime.settings").SamplerSettings(
        preset=preset or live_preset(context)).resolve(info.config)
    return st.latency_ms(info.config), st.chunk_frames, st.lookahead_ms


def start_live(context, target: str = "", device: str | None = None, use_timer: bool = True,
               preset: str | None = None, **engine_kw) -> LiveJob:
    """Plan (:func:`.planning.plan_live`), open the device and start Live as the active job.

    Args:
        preset: ``"live"`` or ``"quality"``: overrides the preference "Live Latency"
            (scripts, tests); engine_kw: :class:`model_core.live.LiveEngine` options.

    Raises:
        StreamTalkerError: no target / mapping / model, a vertex model and a mesh of another
            topology, a job running, no input device, refused sample rate, device error (the
            message is for the user).
    """
    from .planning import plan_live
    obj, targets, settings, fps = plan_live(context, target)
    if preset is not None:
        settings.live_preset = preset
    dev = input_device(context) if device is None else device
    job = LiveJob(obj, targets, settings, fps, device=dev or None, **engine_kw)
    return jobs.start(job, use_timer=use_timer)
