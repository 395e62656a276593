"""Planning: what a Generate, a bake or a Live run will do -- the target mesh, the shape
keys each model channel drives, the audio source, the frame range and the model settings --
checked on the main thread before anything is written (docs/architecture.md, "The Blender
add-on"). The ARKit-or-vertex decision comes from ``model_core.describe_checkpoint``
(:func:`.core.describe`), made once here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import bpy

from . import audio_source, keyframes
from . import mapping as mapping_mod
from .core import (ModelCoreMissing, arkit_names, backend_for, default_checkpoint_path,
                   describe, mc_submodule)
from .errors import PlanError, SourceError, StreamTalkerError
from .properties import auto_fill_mapping, get_mapping, mapping_rig, object_rig, shape_key_names


@dataclass
class ModelSettings:
    """How to run the model (plain data, copied from the panel on the main thread).

    Attributes:
        checkpoint: checkpoint path, or "" for the bundled default.
        device: "cpu" or "cuda".
        seed: sampling seed. style: identity index or None. steps: DDIM steps or None.
        blink_rate: the panel's Blink Rate, a factor on the model's ``blink_temperature``
            (1 = the model's default; see :meth:`stream_kwargs`); 1 for a vertex model.
        strengths: {region: factor} (see :func:`mapping.apply_strength`); empty for a
            vertex model.
        kind: the checkpoint's kind (``describe_checkpoint``): "arkit" or "vertex".
        channels: the model's output channels (for a vertex model, the rig's shape keys
            once :func:`plan_generation` has read the rig).
        n_vertices: mesh vertices of a vertex checkpoint, None for ARKit ones.
        rig: for a vertex checkpoint, the mesh's rig from :func:`keyframes.read_rig`
            (basis [V, 3], deltas [K, V, 3], names [K]): the vertex frames are fitted onto
            these shape keys (``model_core.vertex.retarget``); None for ARKit checkpoints.
        threads: CPU threads the model uses (the preference "CPU Threads"); 0 = automatic
            (:func:`.core.set_threads`).
        face_rig: the target's rig kind (``model_core.face.RIG_KINDS``): ``"arkit"`` drives
            the keys with the model's own weights; ``"oculus"``, ``"vrm"``, ``"mmd"`` with
            them converted (``model_core.runtime.rigs.RiggedModel``, see
            :func:`.worker.load_session_model`); set by the plan from the target mesh.
        live_preset: the chunk / look-ahead pair Live runs at (the preference "Live
            Latency"): ``"live"``, the model's low-latency setting, or ``"quality"``.
            Generate and bake always use ``"quality"``.
    """

    checkpoint: str = ""
    device: str = "cpu"
    seed: int = 0
    style: int | None = None
    steps: int | None = None
    blink_rate: float = 1.0
    strengths: dict = field(default_factory=dict)
    kind: str = "arkit"
    channels: list = field(default_factory=list)
    n_vertices: int | None = None
    rig: dict | None = None
    threads: int = 0
    face_rig: str = "arkit"
    live_preset: str = "live"

    def sampler(self, model, live: bool = False):
        """The ``model_core`` :class:`SamplerSettings` these settings give: steps, the
        preset (Live's choice for ``live``, else the best quality), and, when Blink Rate is
        not 1, ``blink_temperature`` = Blink Rate x the model's default for that preset
        (``model.config.preset_blink_temperature``), at most
        ``runtime.settings.MAX_TEMPERATURE``
        (:func:`~model_core.runtime.settings.scale_temperature`)."""
        settings = mc_submodule("runtime.settings")
        preset = self.live_preset if live else "quality"
        blink = None
        if self.blink_rate != 1.0 and self.kind == "arkit":
            blink = settings.scale_temperature(self.blink_rate,
                                               model.config.preset_blink_temperature(preset))
        return settings.SamplerSettings(steps=self.steps, blink_temperature=blink, preset=preset)

    def stream_kwargs(self, model, live: bool = False) -> dict:
        """The keywords of ``model.stream`` (and of ``LiveEngine``) these settings give, for
        Generate, Bake and Live alike: seed, style and ``settings`` (:meth:`sampler`)."""
        return dict(seed=self.seed, style=self.style, settings=self.sampler(model, live))



class Plan:
    """What a Generate will do, checked on the main thread before anything is written.

    Attributes: obj (target mesh object), key (its Key datablock), targets ({channel: shape
    key}), unmatched (channels with no shape key), source (AudioSource), settings
    (:class:`ModelSettings`), warnings (sentences to report).
    """

    def __init__(self, obj, targets, unmatched, source, settings, warnings):
        self.obj, self.key = obj, obj.data.shape_keys
        self.targets, self.unmatched = targets, unmatched
        self.source, self.settings, self.warnings = source, settings, warnings

    def job(self, undo: bool = True):
        """A :class:`~.worker.GenerateJob` for this plan (start it with :func:`.jobs.start`)."""
        from .worker import GenerateJob
        return GenerateJob(self.key, self.targets, self.source, self.settings,
                           action_name=self.source.label, undo=undo)


def strip_target(scene, strip):
    """The mesh object a sound strip drives in Bake and Generate All: its StreamTalker
    target (``strip.streamtalker_target``), else the active object of the scene's first
    view layer; None when neither is set."""
    from . import compat
    obj = compat.strip_target(strip)
    if obj is None and len(scene.view_layers):
        obj = scene.view_layers[0].objects.active
    return obj


def strips_for(scene, obj) -> list:
    """The sound strips of ``scene`` that drive ``obj``, in timeline order: those whose
    StreamTalker target is ``obj``, and those with no target (they drive the selected head,
    as in Generate). What Generate All bakes for the selected head."""
    from . import compat
    return [st for st in audio_source.sound_strips(scene)
            if (compat.strip_target(st) or obj) == obj]


def target_object(context, name: str = ""):
    """The target mesh: the object called ``name``, else the active object.

    Raises:
        PlanError: no such object, not a mesh, a mesh without shape keys, or shape keys
            linked from a library (an action on them would not be saved: the message says
            how to fix it).
    """
    if name:
        obj = bpy.data.objects.get(name)
        if obj is None:
            raise PlanError(f"there is no object called '{name}'")
    else:
        obj = context.view_layer.objects.active if context.view_layer else None
        if obj is None:
            raise PlanError("no active object: select the head mesh with shape keys")
    if obj.type != "MESH":
        raise PlanError(f"'{obj.name}' is a {obj.type.lower()}, not a mesh: select the head "
                          f"mesh with shape keys")
    if obj.data.shape_keys is None or len(obj.data.shape_keys.key_blocks) < 2:
        raise PlanError(f"mesh '{obj.name}' has no shape keys to animate (it needs ARKit-"
                          f"style shape keys such as jawOpen, or visemes / vowels such as "
                          f"viseme_PP or aa)")
    try:
        keyframes.check_editable(obj.data.shape_keys, obj.name)
    except keyframes.NotEditable as e:
        raise PlanError(str(e)) from None
    ad = obj.data.shape_keys.animation_data
    if ad is not None and ad.use_tweak_mode:
        raise PlanError(f"the shape keys of '{obj.name}' are in NLA tweak mode: leave it first "
                        f"(Nonlinear Animation editor: Tab), then generate")
    return obj


def resolve_mapping(obj, channels, rig: str = "arkit") -> tuple[dict[str, str], list[str]]:
    """({channel: shape key}, unmatched channels) for ``obj``: its stored mapping list, or
    an automatic match stored now when the list is empty (not stored on a linked object or a
    library override, whose list cannot grow). Rows naming shape keys the mesh no longer has
    count as unmatched. ``channels`` are of the rig kind ``rig``.

    Raises:
        PlanError: no channel matches any shape key; the stored list was made for another
            rig kind (never replaced here: the message says how to redo it).
    """
    keys = set(shape_key_names(obj))
    if len(obj.streamtalker.mapping) == 0:
        if obj.library is None and obj.override_library is None:
            auto_fill_mapping(obj, channels, rig)
            stored = get_mapping(obj)
        else:
            stored = mapping_mod.match_channels(channels, sorted(keys), rig)
    elif mapping_rig(obj) != rig:
        raise PlanError(f"the shape-key mapping of '{obj.name}' was made for "
                        f"{mapping_mod.rig_label(mapping_rig(obj))}, but its Rig is "
                        f"{mapping_mod.rig_label(rig)}: press Auto-Match under Target (it "
                        f"replaces the list) or set Rig back")
    else:
        stored = get_mapping(obj)
    targets = {c: k for c, k in stored.items() if c in channels and k in keys}
    unmatched = [c for c in channels if c not in targets]
    if not targets:
        sample = ", ".join(sorted(keys)[:6]) + (", ..." if len(keys) > 6 else "")
        raise PlanError(f"none of the model's {len(channels)} channels matches a shape key "
                          f"of '{obj.name}' (its keys: {sample}); rename the shape keys or "
                          f"edit the mapping under Target")
    return targets, unmatched


def model_settings(scene_settings, checkpoint: str | None = None) -> ModelSettings:
    """:class:`ModelSettings` from ``scene.streamtalker`` (``checkpoint``: a path that
    overrides the scene's model choice, as ``bake --checkpoint`` does).

    Raises:
        PlanError: the checkpoint file (or the bundled default) does not exist or its
            config cannot be read, model_core cannot be imported, or the device is CUDA
            and torch is not importable.
    """
    s = scene_settings
    if checkpoint or s.model_source == "FILE":
        if not (checkpoint or s.checkpoint):
            raise PlanError("no checkpoint file chosen (Model > Checkpoint File)")
        path = os.path.normpath(bpy.path.abspath(checkpoint or s.checkpoint))
        if not os.path.exists(path):
            raise PlanError(f"the model could not be loaded: checkpoint file not found: {path}")
    else:
        path = ""
        try:
            default = default_checkpoint_path()
        except ModelCoreMissing as e:
            raise PlanError(str(e)) from None
        if not default.exists():
            raise PlanError(f"the bundled default model is not installed ({default}); "
                            f"choose Model > Checkpoint File")
    try:
        info = describe(path)
    except ModelCoreMissing as e:
        raise PlanError(str(e)) from None
    except StreamTalkerError as e:   # a CheckpointError, a missing or unreadable file
        raise PlanError(f"the model could not be loaded: {e}") from None
    try:
        backend_for(s.device)   # CUDA needs torch (not bundled)
    except StreamTalkerError as e:
        raise PlanError(str(e)) from None
    from .preferences import cpu_threads, live_preset
    return ModelSettings(checkpoint=path, device=s.device, seed=int(s.seed),
                         style=None if s.style < 0 else int(s.style),
                         steps=int(s.steps) or None,
                         blink_rate=1.0 if info.kind == "vertex" else float(s.blink_rate),
                         # region strengths are for ARKit channels: a vertex model's are
                         # the mesh's own shape keys
                         strengths={} if info.kind == "vertex" else s.strengths(),
                         kind=info.kind, channels=list(info.channel_names),
                         n_vertices=info.n_vertices, threads=cpu_threads(),
                         live_preset=live_preset())


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


def read_vertex_rig(obj, settings) -> dict:
    """For a vertex model: check that ``obj``'s topology is the model's, read its rig
    (:func:`keyframes.read_rig`: basis, deltas and names of every unmuted shape key) into
    ``settings.rig`` and ``settings.channels``, and return the targets {key: key} -- the
    model's meshes are fitted onto those keys.

    Raises:
        PlanError: another vertex count (naming both), or no usable shape keys.
    """
    n_vertices = settings.n_vertices
    if len(obj.data.vertices) != n_vertices:
        raise PlanError(f"mesh '{obj.name}' has {len(obj.data.vertices)} vertices but the "
                        f"vertex model makes {n_vertices}-vertex meshes: choose a mesh "
                        f"with the training data's topology (e.g. FLAME, 5023, for "
                        f"VOCASET) or an ARKit checkpoint")
    try:
        settings.rig = keyframes.read_rig(obj)
    except StreamTalkerError as e:
        raise PlanError(str(e)) from None
    settings.channels = list(settings.rig["names"])
    return {name: name for name in settings.rig["names"]}


def plan_generation(context, scene=None, strip=None, target: str = "",
                    checkpoint: str | None = None) -> Plan:
    """Check everything a Generate needs and return a :class:`Plan` (nothing is written).

    Args:
        scene: default ``context.scene``; strip: a sound strip (else the panel's choice);
        target: object name (else the active object); checkpoint: overrides the model.
    Raises:
        SourceError / PlanError: the first problem found, as a sentence for the user.
    """
    scene = scene or context.scene
    s = scene.streamtalker
    warnings = []
    obj = target_object(context, target)
    fps = audio_source.scene_fps(scene)
    w = audio_source.check_fps(fps)
    if w:
        warnings.append(w)
    if strip is not None or s.source == "STRIP":
        strip = strip or pick_strip(scene, s.strip)
        source = audio_source.strip_source(scene, strip)
        silenced = audio_source.playback(scene, strip).silenced
        if silenced:
            warnings.append(f"strip '{strip.name}' is silent in playback ({silenced}); it is "
                            f"keyed all the same")
    else:
        source = audio_source.file_source(scene, s.filepath)
    source.line = source.line or source.label
    settings = model_settings(s, checkpoint)
    if settings.kind == "vertex":
        targets, unmatched = read_vertex_rig(obj, settings), []
    else:
        targets, unmatched = _face_rig_mapping(obj, settings)
        channels = settings.channels
        if unmatched and settings.face_rig == "arkit":
            warnings.append(f"{len(unmatched)} of {len(channels)} channels have no shape key "
                            f"on '{obj.name}' and are not keyed: {', '.join(unmatched)}")
        elif settings.face_rig != "arkit":
            w = _rig_warning(obj, settings, targets)
            if w:
                warnings.append(w)
    return Plan(obj, targets, unmatched, source, settings, warnings)


def _face_rig_mapping(obj, settings) -> tuple[dict[str, str], list[str]]:
    """For an ARKit model: the target's rig kind into ``settings.face_rig`` (and its
    channels into ``settings.channels`` when it is not ARKit), then :func:`resolve_mapping`.

    Raises:
        PlanError: as :func:`resolve_mapping`; a viseme or vowel rig and a model that does
            not make the 52 ARKit weights.
    """
    rig, _detected = object_rig(obj)
    settings.face_rig = rig
    if rig != "arkit":
        if list(settings.channels) != list(arkit_names()):
            raise PlanError(f"'{obj.name}' is {mapping_mod.rig_label(rig)}, which is driven "
                            f"from the 52 ARKit weights, but this model makes "
                            f"{len(settings.channels)} other channels: choose an ARKit "
                            f"checkpoint (or the bundled model), or set Rig to ARKit")
        settings.channels = mapping_mod.rig_channels(rig)
    return resolve_mapping(obj, settings.channels, rig)


def _rig_warning(obj, settings, targets) -> str:
    """A sentence when a viseme or vowel rig lacks some of its mouth shapes, else ''."""
    missing, n_shapes = mapping_mod.mouth_shapes_missing(settings.face_rig, targets)
    if not missing:
        return ""
    return (f"'{obj.name}' is driven as {mapping_mod.rig_label(settings.face_rig)}; "
            f"{len(missing)} of its {n_shapes} mouth shapes have no shape key and are not "
            f"keyed: {', '.join(missing)}")


def plan_live(context, target: str = ""):
    """Check what Live needs: ``(obj, targets, settings, fps)`` for the target mesh, its
    mapping onto the model's channels and the model settings (nothing is started).

    Raises:
        PlanError: another job is running, no target / mapping / model, or a vertex model
            and a mesh of another topology.
    """
    from . import jobs
    busy = jobs.active_job()
    if busy is not None:
        raise PlanError("Live is already running" if busy.kind == "live" else
                        "a generation is running: wait or press Cancel")
    scene = context.scene
    obj = target_object(context, target)
    settings = model_settings(scene.streamtalker)
    if settings.kind == "vertex":
        targets = read_vertex_rig(obj, settings)
    else:
        targets, _unmatched = _face_rig_mapping(obj, settings)
    return obj, targets, settings, audio_source.scene_fps(scene)


def mapping_channels(scene, obj) -> tuple[str, list[str]]:
    """(rig kind, channels) the mapping list of ``obj`` maps: for an ARKit target the
    scene's model's channels (:func:`model_channels`), for a viseme or vowel rig the kind's
    channels (``RigKind.channels``).

    Raises:
        PlanError: model_core cannot be imported.
    """
    try:
        rig, _detected = object_rig(obj)
    except ModelCoreMissing as e:
        raise PlanError(str(e)) from None
    if rig == "arkit":
        return rig, model_channels(scene)
    return rig, mapping_mod.rig_channels(rig)


def model_channels(scene) -> list[str]:
    """The output channels of the scene's chosen model (what the mapping list maps); the
    ARKit-52 names when the model cannot be described (none chosen yet, unreadable) or
    makes meshes.

    Raises:
        PlanError: model_core cannot be imported.
    """
    try:
        info = describe(scene.streamtalker.checkpoint if
                        scene.streamtalker.model_source == "FILE" else None)
        if info.kind != "vertex":
            return list(info.channel_names)
    except ModelCoreMissing as e:
        raise PlanError(str(e)) from None
    except (OSError, ValueError):
        pass
    try:
        return list(arkit_names())
    except ModelCoreMissing as e:
        raise PlanError(str(e)) from None
