"""Operators: Generate, Cancel, Restore Previous, and the mapping tools.

Every user-facing failure is an ``ERROR`` report with one clear sentence (no traceback) and
leaves the file as it was. Buttons that cannot run say why through ``poll_message_set``.
"""

from __future__ import annotations

import os

import bpy
from bpy.props import BoolProperty, StringProperty
from bpy.types import Operator

from . import audio_source, keyframes, worker
from . import mapping as mapping_mod
from .audio_source import SourceError
from .core import ModelCoreMissing, arkit_names, checkpoint_vertices, default_checkpoint_path
from .properties import auto_fill_mapping, get_mapping, set_mapping, shape_key_names


class Plan:
    """What a Generate will do, checked on the main thread before anything is written.

    Attributes: obj (target mesh object), key (its Key datablock), targets ({channel: shape
    key}), unmatched (channels with no shape key), source (AudioSource), settings
    (worker.ModelSettings), warnings (sentences to report).
    """

    def __init__(self, obj, targets, unmatched, source, settings, warnings):
        self.obj, self.key = obj, obj.data.shape_keys
        self.targets, self.unmatched = targets, unmatched
        self.source, self.settings, self.warnings = source, settings, warnings

    def job(self, undo: bool = True) -> worker.GenerateJob:
        return worker.GenerateJob(self.key, self.targets, self.source, self.settings,
                                  action_name=self.source.label, undo=undo)


def target_object(context, name: str = ""):
    """The target mesh: the object called ``name``, else the active object.

    Raises:
        SourceError: no such object, not a mesh, a mesh without shape keys, or shape keys
            linked from a library (an action on them would not be saved: the message says
            how to fix it).
    """
    if name:
        obj = bpy.data.objects.get(name)
        if obj is None:
            raise SourceError(f"there is no object called '{name}'")
    else:
        obj = context.view_layer.objects.active if context.view_layer else None
        if obj is None:
            raise SourceError("no active object: select the head mesh with shape keys")
    if obj.type != "MESH":
        raise SourceError(f"'{obj.name}' is a {obj.type.lower()}, not a mesh: select the head "
                          f"mesh with shape keys")
    if obj.data.shape_keys is None or len(obj.data.shape_keys.key_blocks) < 2:
        raise SourceError(f"mesh '{obj.name}' has no shape keys to animate (it needs ARKit-"
                          f"style shape keys such as jawOpen)")
    try:
        keyframes.check_editable(obj.data.shape_keys, obj.name)
    except keyframes.NotEditable as e:
        raise SourceError(str(e)) from None
    return obj


def resolve_mapping(obj, channels) -> tuple[dict[str, str], list[str]]:
    """({channel: shape key}, unmatched channels) for ``obj``: its stored mapping list, or
    an automatic match stored now when the list is empty (not stored on a linked object or a
    library override, whose list cannot grow). Rows naming shape keys the mesh no longer has
    count as unmatched.

    Raises:
        SourceError: no channel matches any shape key.
    """
    keys = set(shape_key_names(obj))
    if len(obj.streamtalker.mapping) == 0:
        if obj.library is None and obj.override_library is None:
            auto_fill_mapping(obj, channels)
            stored = get_mapping(obj)
        else:
            stored = mapping_mod.match_channels(channels, sorted(keys))
    else:
        stored = get_mapping(obj)
    targets = {c: k for c, k in stored.items() if c in channels and k in keys}
    unmatched = [c for c in channels if c not in targets]
    if not targets:
        sample = ", ".join(sorted(keys)[:6]) + (", ..." if len(keys) > 6 else "")
        raise SourceError(f"none of the model's {len(channels)} channels matches a shape key "
                          f"of '{obj.name}' (its keys: {sample}); rename the shape keys or "
                          f"edit the mapping under Target")
    return targets, unmatched


def model_settings(scene_settings, checkpoint: str | None = None) -> "worker.ModelSettings":
    """worker.ModelSettings from ``scene.streamtalker`` (``checkpoint``: a path that
    overrides the scene's model choice, as ``bake --checkpoint`` does).

    Raises:
        SourceError: the checkpoint file (or the bundled default) does not exist or its
            config cannot be read, or model_core cannot be imported.
    """
    s = scene_settings
    if checkpoint or s.model_source == "FILE":
        if not (checkpoint or s.checkpoint):
            raise SourceError("no checkpoint file chosen (Model > Checkpoint File)")
        path = os.path.normpath(bpy.path.abspath(checkpoint or s.checkpoint))
        if not os.path.exists(path):
            raise SourceError(f"the model could not be loaded: checkpoint file not found: {path}")
        try:
            n_vertices = checkpoint_vertices(path)
        except (OSError, ValueError) as e:   # CheckpointError is a ValueError
            raise SourceError(f"the model could not be loaded: {e}") from None
    else:
        n_vertices = None
        path = ""
        try:
            default = default_checkpoint_path()
        except ModelCoreMissing as e:
            raise SourceError(str(e)) from None
        if not default.exists():
            raise SourceError(f"the bundled default model is not installed ({default}); "
                              f"choose Model > Checkpoint File")
    from .preferences import cpu_threads
    return worker.ModelSettings(checkpoint=path, device=s.device, seed=int(s.seed),
                                style=None if s.style < 0 else int(s.style),
                                steps=int(s.steps) or None, strengths=s.strengths(),
                                n_vertices=n_vertices, threads=cpu_threads())


def pick_strip(scene, name: str):
    """The sound strip ``name``; with no name, the scene's only sound strip.

    Raises:
        SourceError: no such strip, no sound strips, or several and none chosen.
    """
    strips = audio_source.sound_strips(scene)
    if name:
        strip = audio_source.find_strip(scene, name)
        if strip is None:
            raise SourceError(f"there is no sound strip called '{name}' in scene '{scene.name}'")
        return strip
    if not strips:
        raise SourceError(f"scene '{scene.name}' has no sound strip: add one in the Video "
                          f"Sequencer, or choose Source > Audio File")
    if len(strips) > 1:
        raise SourceError(f"scene '{scene.name}' has {len(strips)} sound strips: choose one "
                          f"under Source")
    return strips[0]


def plan_generation(context, scene=None, strip=None, target: str = "",
                    checkpoint: str | None = None) -> Plan:
    """Check everything a Generate needs and return a :class:`Plan` (nothing is written).

    Args:
        scene: default ``context.scene``; strip: a sound strip (else the panel's choice);
        target: object name (else the active object); checkpoint: overrides the model.
    Raises:
        SourceError: the first problem found, as a sentence for the user.
    """
    scene = scene or context.scene
    s = scene.streamtalker
    warnings = []
    obj = target_object(context, target)
    try:
        channels = list(arkit_names())
    except ModelCoreMissing as e:
        raise SourceError(str(e)) from None
    fps = audio_source.scene_fps(scene)
    w = audio_source.check_fps(fps)
    if w:
        warnings.append(w)
    if strip is not None or s.source == "STRIP":
        strip = strip or pick_strip(scene, s.strip)
        source = audio_source.strip_source(scene, strip)
        if strip.mute:
            warnings.append(f"strip '{strip.name}' is muted (silent in playback); it is keyed "
                            f"all the same")
    else:
        source = audio_source.file_source(scene, s.filepath)
    settings = model_settings(s, checkpoint)
    n_vertices = settings.n_vertices
    if n_vertices is not None:
        # a vertex model: its meshes are fitted onto every unmuted shape key of the mesh
        if len(obj.data.vertices) != n_vertices:
            raise SourceError(f"mesh '{obj.name}' has {len(obj.data.vertices)} vertices but the "
                              f"vertex model makes {n_vertices}-vertex meshes: choose a mesh "
                              f"with the training data's topology (e.g. FLAME, 5023, for "
                              f"VOCASET) or an ARKit checkpoint")
        try:
            settings.rig = keyframes.read_rig(obj)
        except ValueError as e:
            raise SourceError(str(e)) from None
        targets = {name: name for name in settings.rig["names"]}
        unmatched = []
    else:
        targets, unmatched = resolve_mapping(obj, channels)
        if unmatched:
            warnings.append(f"{len(unmatched)} of {len(channels)} channels have no shape key "
                            f"on '{obj.name}' and are not keyed: {', '.join(unmatched)}")
    return Plan(obj, targets, unmatched, source, settings, warnings)


def _busy_message() -> str | None:
    return "a generation is running: wait or press Cancel" if worker.active_job() else None


class STREAMTALKER_OT_generate(Operator):
    """Lip-sync the active mesh's shape keys from the chosen sound strip or audio file
    (a new action; the previous one is kept)"""

    bl_idname = "streamtalker.generate"
    bl_label = "Generate Lip Sync"
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
        except SourceError as e:
            self.report({"ERROR"}, str(e))
            return None
        for w in plan.warnings:
            self.report({"WARNING"}, w)
        try:
            return worker.start_job(plan.job(), use_timer=use_timer)
        except RuntimeError as e:
            self.report({"ERROR"}, str(e))
            return None

    def execute(self, context):
        job = self._start(context, use_timer=not self.wait)
        if job is None:
            return {"CANCELLED"}
        if not self.wait:
            self.report({"INFO"}, f"StreamTalker: generating '{job.source.label}' in the background")
            return {"FINISHED"}
        worker.run_to_end()
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
            worker.cancel_active()
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


class STREAMTALKER_OT_cancel(Operator):
    """Stop the running generation, remove its partial action and restore the previous one"""

    bl_idname = "streamtalker.cancel"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        if worker.active_job() is None:
            cls.poll_message_set("no generation is running")
            return False
        return True

    def execute(self, context):
        worker.cancel_active()
        self.report({"INFO"}, "StreamTalker: cancelled; the previous animation is back")
        return {"FINISHED"}


def _active_key(context):
    obj = context.view_layer.objects.active if context.view_layer else None
    if obj is None or obj.type != "MESH" or obj.data.shape_keys is None:
        return None
    return obj.data.shape_keys


class STREAMTALKER_OT_restore_previous(Operator):
    """Put back the action a StreamTalker generation replaced (the generated one is kept)"""

    bl_idname = "streamtalker.restore_previous"
    bl_label = "Restore Previous Action"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        key = _active_key(context)
        ad = key.animation_data if key is not None else None
        if ad is None or ad.action is None or keyframes.PROP_PREVIOUS not in ad.action:
            cls.poll_message_set("the active mesh's shape-key action was not made by StreamTalker")
            return False
        if worker.active_job() is not None:
            cls.poll_message_set("a generation is running")
            return False
        return True

    def execute(self, context):
        try:
            gen, prev = keyframes.restore_previous(_active_key(context))
        except ValueError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
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
            channels = arkit_names()
        except ModelCoreMissing as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        found = auto_fill_mapping(obj, channels)
        missing = mapping_mod.unmatched(channels, found)
        if not found:
            self.report({"WARNING"}, f"no shape key of '{obj.name}' matches a model channel "
                                     f"by name: pick the shape keys in the list")
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
            p = mapping_mod.save_preset(bpy.path.abspath(self.filepath), get_mapping(obj))
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
            preset = mapping_mod.load_preset(bpy.path.abspath(self.filepath))
            channels = arkit_names()
        except (FileNotFoundError, ValueError, ModelCoreMissing) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        keys = set(shape_key_names(obj))
        found = {c: k for c, k in preset.items() if c in channels and k in keys}
        missing_keys = sorted({k for c, k in preset.items() if k not in keys})
        set_mapping(obj, channels, found)
        if missing_keys:
            self.report({"WARNING"}, f"preset loaded; '{obj.name}' lacks {len(missing_keys)} of "
                                     f"its shape keys: {', '.join(missing_keys[:10])}")
        else:
            self.report({"INFO"}, f"preset loaded: {len(found)} channels mapped")
        return {"FINISHED"}


classes = (STREAMTALKER_OT_generate, STREAMTALKER_OT_cancel, STREAMTALKER_OT_restore_previous,
           STREAMTALKER_OT_mapping_auto, STREAMTALKER_OT_mapping_save, STREAMTALKER_OT_mapping_load)


def register() -> None:
    for c in classes:
        bpy.utils.register_class(c)


def unregister() -> None:
    for c in reversed(classes):
        bpy.utils.unregister_class(c)
