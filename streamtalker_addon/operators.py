"""Operators: Generate, Generate All, Cancel, Restore Previous, the mapping tools and Live
(start, stop, record). They plan with :mod:`.planning` and run jobs through :mod:`.jobs`.

Every user-facing failure is an ``ERROR`` report with one clear sentence (no traceback) and
leaves the file as it was. Buttons that cannot run say why through ``poll_message_set``.
"""

from __future__ import annotations

import os

import bpy
from bpy.props import BoolProperty, StringProperty
from bpy.types import Operator

from . import audio_source, jobs, keyframes, live, worker
from . import mapping as mapping_mod
from .errors import StreamTalkerError
from .planning import mapping_channels, pick_strip, plan_generation, strips_for
from .properties import (auto_fill_mapping, get_mapping, mapping_rig, object_rig, set_mapping,
                         shape_key_names)


def _busy_message() -> str | None:
    job = jobs.active_job()
    if job is None:
        return None
    return ("Live is running: stop it first" if job.kind == "live" else
            "a generation is running: wait or press Cancel")


class _GenerateBase:
    """Generate and Generate All: plan, start the job, run it in the background (modal, Esc
    cancels) or to the end (``wait``, background mode)."""

    bl_options = {"REGISTER"}  # one undo step is pushed when the keys are written

    wait: BoolProperty(name="Wait", default=False, options={"SKIP_SAVE", "HIDDEN"},
                       description="Run to the end before returning (scripts, batch bake)")
    strip: StringProperty(name="Strip", default="", options={"SKIP_SAVE", "HIDDEN"},
                          description="Sound strip name (default: the panel's choice)")
    target: StringProperty(name="Target", default="", options={"SKIP_SAVE", "HIDDEN"},
                           description="Target object name (default: the active object)")

    @classmethod
    def poll(cls, context):
        why = _busy_message()
        if why is None:
            obj = context.view_layer.objects.active if context.view_layer else None
            if obj is None:
                why = "select the head mesh (it needs shape keys)"
            elif obj.type != "MESH":
                why = f"'{obj.name}' is not a mesh: select the head mesh"
            elif obj.data.shape_keys is None:
                why = f"'{obj.name}' has no shape keys"
            elif (context.scene.streamtalker.source == "STRIP"
                  and not audio_source.sound_strips(context.scene)):
                why = "the scene has no sound strip (or choose Source > Audio File)"
        if why:
            cls.poll_message_set(why)
            return False
        return True

    def _plan(self, context):
        scene = context.scene
        strip = None
        if self.strip:
            strip = pick_strip(scene, self.strip)
        return plan_generation(context, scene, strip, self.target)

    def _start(self, context, use_timer: bool):
        try:
            plan = self._plan(context)
        except StreamTalkerError as e:
            self.report({"ERROR"}, str(e))
            return None
        for w in plan.warnings:
            self.report({"WARNING"}, w)
        try:
            return jobs.start(plan.job(), use_timer=use_timer)
        except StreamTalkerError as e:
            self.report({"ERROR"}, str(e))
            return None

    @staticmethod
    def _what(job) -> str:
        return f"'{job.source.label}'"

    def execute(self, context):
        job = self._start(context, use_timer=not self.wait)
        if job is None:
            return {"CANCELLED"}
        if not self.wait:
            self.report({"INFO"}, f"StreamTalker: generating {self._what(job)} in the background")
            return {"FINISHED"}
        jobs.run_to_end()
        for n in job.notes:
            self.report({"WARNING"}, n)
        if job.state != "finished":
            self.report({"ERROR"}, job.error or f"generation {job.state}")
            return {"CANCELLED"}
        self.report({"INFO"}, job.summary)
        return {"FINISHED"}

    def invoke(self, context, event):
        if bpy.app.background or self.wait:
            return self.execute(context)
        job = self._start(context, use_timer=True)
        if job is None:
            return {"CANCELLED"}
        self._job = job
        self._timer = context.window_manager.event_timer_add(0.2, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = self._job
        if event.type == "ESC" and job.running:
            jobs.cancel_active("generate")
        if job.running:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        for n in job.notes:
            self.report({"WARNING"}, n)
        if job.state == "finished":
            self.report({"INFO"}, job.summary)
            return {"FINISHED"}
        if job.state == "cancelled":
            self.report({"WARNING"}, "StreamTalker: cancelled; the previous animation is back")
        else:
            self.report({"ERROR"}, job.error)
        return {"CANCELLED"}


class STREAMTALKER_OT_generate(_GenerateBase, Operator):
    """Lip-sync the active mesh's shape keys from the chosen sound strip or audio file
    (a new action, placed as that line's strip on the head's StreamTalker NLA track; the
    previous version is kept)"""

    bl_idname = "streamtalker.generate"
    bl_label = "Generate Lip Sync"


class STREAMTALKER_OT_generate_all(_GenerateBase, Operator):
    """Lip-sync every sound strip of the scene that drives the selected head (its Bake
    Target, or none set), one line after the other, each onto the head's StreamTalker NLA
    track at its own frames"""

    bl_idname = "streamtalker.generate_all"
    bl_label = "Generate All"

    @classmethod
    def poll(cls, context):
        why = _busy_message()
        if why is None:
            obj = context.view_layer.objects.active if context.view_layer else None
            if obj is None or obj.type != "MESH" or obj.data.shape_keys is None:
                why = "select the head mesh (it needs shape keys)"
            elif not strips_for(context.scene, obj):
                why = f"no sound strip of this scene drives '{obj.name}'"
        if why:
            cls.poll_message_set(why)
            return False
        return True

    @staticmethod
    def _what(job) -> str:
        return f"{len(job.plans)} lines"

    def _start(self, context, use_timer: bool):
        scene = context.scene
        obj = context.view_layer.objects.active if context.view_layer else None
        if obj is None:
            self.report({"ERROR"}, "no active object: select the head mesh with shape keys")
            return None
        strips = strips_for(scene, obj)
        if not strips:
            self.report({"ERROR"}, f"no sound strip of scene '{scene.name}' drives "
                                   f"'{obj.name}' (set the strips' Bake Target)")
            return None
        plans = []
        for st in strips:
            try:
                plan = plan_generation(context, scene, st, obj.name)
            except StreamTalkerError as e:
                plans.append((st.name, str(e)))
                continue
            for w in plan.warnings:
                self.report({"WARNING"}, w)
            plans.append((st.name, plan))
        try:
            return jobs.start(worker.GenerateAllJob(plans), use_timer=use_timer)
        except StreamTalkerError as e:
            self.report({"ERROR"}, str(e))
            return None


class STREAMTALKER_OT_cancel(Operator):
    """Stop the running generation, remove its partial action and restore the previous one"""

    bl_idname = "streamtalker.cancel"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        if jobs.active_job("generate") is None:
            cls.poll_message_set("no generation is running")
            return False
        return True

    def execute(self, context):
        jobs.cancel_active("generate")
        self.report({"INFO"}, "StreamTalker: cancelled; the previous animation is back")
        return {"FINISHED"}


def _active_key(context):
    obj = context.view_layer.objects.active if context.view_layer else None
    if obj is None or obj.type != "MESH" or obj.data.shape_keys is None:
        return None
    return obj.data.shape_keys


def panel_line(context) -> str | None:
    """The line the panel's Source names on the active head's NLA ("scene/strip", or the
    audio file's name), when that line is there; else None."""
    key = _active_key(context)
    if key is None:
        return None
    scene = context.scene
    s = scene.streamtalker
    if s.source == "STRIP":
        strips = audio_source.sound_strips(scene)
        name = s.strip or (strips[0].name if len(strips) == 1 else "")
        line = f"{scene.name}/{name}" if name else ""
    else:
        line = os.path.splitext(os.path.basename(bpy.path.abspath(s.filepath)))[0] \
            if s.filepath else ""           # the file's name: its line (audio_source.file_source)
    return line if line and keyframes.line_strips(key, line) else None


class STREAMTALKER_OT_restore_previous(Operator):
    """Put back the previous version of the chosen line (Source) on the head's NLA; a line
    generated once is taken off it (the generated action is kept either way)"""

    bl_idname = "streamtalker.restore_previous"
    bl_label = "Restore Previous"
    bl_options = {"REGISTER", "UNDO"}

    line: StringProperty(name="Line", default="", options={"SKIP_SAVE", "HIDDEN"},
                         description="The line ('Scene/strip'); default: the one under Source")

    @classmethod
    def poll(cls, context):
        key = _active_key(context)
        ad = key.animation_data if key is not None else None
        legacy = ad is not None and ad.action is not None and \
            keyframes.PROP_PREVIOUS in ad.action and keyframes.PROP_LINE not in ad.action
        if key is None or (not legacy and not keyframes.line_strips(key)):
            cls.poll_message_set("the active mesh has no line generated by StreamTalker")
            return False
        if jobs.active_job() is not None:
            cls.poll_message_set("a generation or Live is running")
            return False
        return True

    def execute(self, context):
        key = _active_key(context)
        line = self.line or panel_line(context)
        if line is None and keyframes.line_strips(key):
            self.report({"ERROR"}, "the line chosen under Source was not generated on this "
                                   "head: choose its strip under Source")
            return {"CANCELLED"}
        try:
            gen, prev = keyframes.restore_previous(key, line)
        except StreamTalkerError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        if line is not None and not prev:
            self.report({"INFO"}, f"line '{line}' taken off the NLA; '{gen}' is kept")
        else:
            self.report({"INFO"}, f"restored '{prev or '(no action)'}'; '{gen}' is kept")
        return {"FINISHED"}


def _mesh_poll(cls, context) -> bool:
    if _active_key(context) is None:
        cls.poll_message_set("select a mesh with shape keys")
        return False
    return True


class STREAMTALKER_OT_mapping_auto(Operator):
    """Match the model's channels to the active mesh's shape keys by name"""

    bl_idname = "streamtalker.mapping_auto"
    bl_label = "Auto-Match Shape Keys"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return _mesh_poll(cls, context)

    def execute(self, context):
        obj = context.view_layer.objects.active
        try:
            rig, channels = mapping_channels(context.scene, obj)
        except StreamTalkerError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        found = auto_fill_mapping(obj, channels, rig)
        missing = mapping_mod.unmatched(channels, found)
        if not found:
            self.report({"WARNING"}, f"no shape key of '{obj.name}' matches a model channel "
                                     f"by name: pick the shape keys in the list")
        elif rig != "arkit":
            lacking, n_shapes = mapping_mod.mouth_shapes_missing(rig, found)
            n = n_shapes - len(lacking)
            self.report({"INFO"} if not lacking else {"WARNING"},
                        f"{mapping_mod.rig_label(rig)}: {n} of {n_shapes} mouth shapes "
                        f"matched, and {len(found) - n} blink, brow or eye channels")
        elif missing:
            self.report({"WARNING"}, f"matched {len(found)} of {len(channels)} channels; "
                                     f"unmatched: {', '.join(missing)}")
        else:
            self.report({"INFO"}, f"matched all {len(channels)} channels")
        return {"FINISHED"}


class STREAMTALKER_OT_mapping_save(Operator):
    """Save the active mesh's shape-key mapping as a JSON preset"""

    bl_idname = "streamtalker.mapping_save"
    bl_label = "Save Mapping Preset"
    bl_options = {"REGISTER"}

    filepath: StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        if not _mesh_poll(cls, context):
            return False
        if len(context.view_layer.objects.active.streamtalker.mapping) == 0:
            cls.poll_message_set("the mapping is empty: press Auto-Match first")
            return False
        return True

    def invoke(self, context, event):
        from .preferences import preset_dir
        obj = context.view_layer.objects.active
        self.filepath = os.path.join(preset_dir(context), f"{bpy.path.clean_name(obj.name)}.json")
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        if not self.filepath:
            self.report({"ERROR"}, "no file chosen for the preset")
            return {"CANCELLED"}
        obj = context.view_layer.objects.active
        try:
            p = mapping_mod.save_preset(bpy.path.abspath(self.filepath), get_mapping(obj),
                                        rig=mapping_rig(obj))
        except OSError as e:
            self.report({"ERROR"}, f"could not save the preset: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"mapping saved to {p}")
        return {"FINISHED"}


class STREAMTALKER_OT_mapping_load(Operator):
    """Load a JSON mapping preset onto the active mesh (shape keys it lacks stay unmatched)"""

    bl_idname = "streamtalker.mapping_load"
    bl_label = "Load Mapping Preset"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        return _mesh_poll(cls, context)

    def invoke(self, context, event):
        from .preferences import preset_dir
        self.filepath = preset_dir(context) + os.sep
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        obj = context.view_layer.objects.active
        try:
            preset, rig = mapping_mod.read_preset(bpy.path.abspath(self.filepath))
            if object_rig(obj)[0] != rig:     # the preset says what rig its channels are of
                obj.streamtalker.rig = rig.upper()
            rig, channels = mapping_channels(context.scene, obj)
        except (ImportError, StreamTalkerError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        keys = set(shape_key_names(obj))
        found = {c: k for c, k in preset.items() if c in channels and k in keys}
        missing_keys = sorted({k for c, k in preset.items() if k not in keys})
        set_mapping(obj, channels, found, rig)
        if missing_keys:
            self.report({"WARNING"}, f"preset loaded; '{obj.name}' lacks {len(missing_keys)} of "
                                     f"its shape keys: {', '.join(missing_keys[:10])}")
        else:
            self.report({"INFO"}, f"preset loaded: {len(found)} channels mapped")
        return {"FINISHED"}


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
        job = jobs.active_job()
        if job is not None:
            cls.poll_message_set("Live is running" if job.kind == "live" else
                                 "a generation is running")
            return False
        return True

    def execute(self, context):
        try:
            sess = live.start_live(context, self.target, self.device or None,
                                   use_timer=not bpy.app.background)
        except StreamTalkerError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        self.report({"INFO"}, f"StreamTalker: live from {sess.engine.device_name!r}")
        return {"FINISHED"}


class _WhileLive:
    """Mixin: an operator that needs Live running; its poll says ``not_running`` otherwise."""

    not_running = "Live is not running"

    @classmethod
    def poll(cls, context):
        if jobs.active_job("live") is None:
            cls.poll_message_set(cls.not_running)
            return False
        return True


class STREAMTALKER_OT_live_stop(_WhileLive, Operator):
    """Stop live input (a recording in progress is kept as a new action)"""

    bl_idname = "streamtalker.live_stop"
    bl_label = "Stop Live"
    bl_options = {"REGISTER"}

    def execute(self, context):
        sess = jobs.active_job("live")
        jobs.cancel_active("live")
        self.report({"INFO"}, sess.summary if sess else "stopped")
        return {"FINISHED"}


class STREAMTALKER_OT_live_record(_WhileLive, Operator):
    """Start or stop keying the live performance into a new action at the current frame"""

    bl_idname = "streamtalker.live_record"
    bl_label = "Record"
    bl_options = {"REGISTER"}
    not_running = "start Live first"

    def execute(self, context):
        sess = jobs.active_job("live")
        try:
            if sess.recording:
                name = sess.stop_record()
                self.report({"INFO"}, f"recorded into '{name}'" if name else "nothing recorded")
            else:
                name = sess.start_record(context.scene)
                self.report({"INFO"}, f"recording into '{name}'")
        except (ReferenceError, StreamTalkerError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        except Exception as e:  # noqa: BLE001  (a bug: a report with its traceback)
            self.report({"ERROR"}, f"Record failed: {worker.friendly_error(e)}")
            return {"CANCELLED"}
        return {"FINISHED"}


classes = (STREAMTALKER_OT_generate, STREAMTALKER_OT_generate_all, STREAMTALKER_OT_cancel,
           STREAMTALKER_OT_restore_previous,
           STREAMTALKER_OT_mapping_auto, STREAMTALKER_OT_mapping_save, STREAMTALKER_OT_mapping_load,
           STREAMTALKER_OT_live_start, STREAMTALKER_OT_live_stop, STREAMTALKER_OT_live_record)


#: Blender's register / unregister for :data:`classes` (unregister in reverse order).
register, unregister = bpy.utils.register_classes_factory(classes)
