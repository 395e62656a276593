"""Add-on properties: scene settings, per-object shape-key mapping, per-strip target.

* ``scene.streamtalker`` (:class:`STREAMTALKER_PG_scene`): source, model and strengths.
* ``object.streamtalker.mapping`` (:class:`STREAMTALKER_PG_mapping_item` list): model
  channel -> shape key of that mesh, filled by auto-matching, editable in the panel.
* ``strip.streamtalker_target``: the mesh a sound strip drives in batch bake (else the
  scene's active object).
* ``window_manager.streamtalker_live`` (:class:`STREAMTALKER_PG_live`): Live's input device
  (not saved with the file).
"""

from __future__ import annotations


import bpy
from bpy.props import (CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)
from bpy.types import PropertyGroup

from . import compat, core
from . import mapping as mapping_mod


_strip_type = compat.strip_type


def _blink_rate_max() -> float:
    """The Blink Rate slider's end: the largest factor on the bundled model's blink
    temperature (the larger of its two presets' defaults) within
    ``runtime.settings.MAX_TEMPERATURE`` (2.0 for a default of 1.0:
    ``max_temperature_factor``); a larger factor would be clipped. Without a readable bundled
    model, as for a default of 1; without model_core (nothing can run then, and the add-on
    must still register to say so), 1."""
    try:
        settings = core.mc_light("runtime.settings")
    except ImportError:     # ModelCoreMissing included
        return 1.0
    try:
        cfg = core.describe(None).config
        default = max(cfg.preset_blink_temperature(p) for p in settings.PRESETS)
    except (OSError, ValueError):
        default = 1.0
    return settings.max_temperature_factor(default)


def _is_mesh(self, obj) -> bool:
    return obj.type == "MESH"


class STREAMTALKER_PG_mapping_item(PropertyGroup):
    """One model channel and the shape key it drives ('' = not mapped)."""

    channel: StringProperty(name="Channel", description="Model output channel (ARKit name)")
    shape_key: StringProperty(name="Shape Key",
                              description="Shape key this channel drives; empty: not keyed")


#: The Rig menu: Auto (told from the shape-key names) or one kind of
#: ``model_core.face.RIG_KINDS`` (the identifier is the kind's name in upper case).
RIG_ITEMS = [
    ("AUTO", "Auto", "Tell the rig from the shape-key names (ARKit, Oculus visemes, VRM or "
                     "MMD vowels)"),
    ("ARKIT", "ARKit", "52 ARKit blendshapes (jawOpen, mouthClose, ...): the model's own "
                       "channels"),
    ("OCULUS", "Visemes (Oculus)", "The 15 Oculus/Meta visemes viseme_sil ... viseme_U "
                                   "(Ready Player Me; VRChat's vrc.v_sil ... vrc.v_ou)"),
    ("VRM", "Vowels (VRM)", "VRM's aa ih ou ee oh (VRoid's Fcl_MTH_A ... Fcl_MTH_O)"),
    ("MMD", "Vowels (MMD)", "MMD's あ い う え お (or a i u e o)"),
]


class STREAMTALKER_PG_object(PropertyGroup):
    mapping: CollectionProperty(type=STREAMTALKER_PG_mapping_item)
    mapping_index: IntProperty(default=0)
    rig: EnumProperty(
        name="Rig", default="AUTO", items=RIG_ITEMS,
        description="What kind of shape keys this mesh has: the model's ARKit weights are "
                    "converted for viseme and vowel rigs; pick one to map your own shape "
                    "keys by hand")
    mapping_rig: StringProperty(
        name="Mapping Rig", default="", options={"HIDDEN"},
        description="The rig kind the mapping list was made for ('' = ARKit, lists made "
                    "before face rigs)")


class STREAMTALKER_PG_scene(PropertyGroup):
    source: EnumProperty(
        name="Source", default="STRIP",
        items=[("STRIP", "Sound Strip", "A sound strip of this scene's sequencer"),
               ("FILE", "Audio File", "An audio file, keyed from the scene's start frame")])
    strip: StringProperty(name="Strip", description="Sound strip to lip-sync")
    filepath: StringProperty(name="Audio File", subtype="FILE_PATH",
                             description="wav/flac/ogg/mp3 file to lip-sync")
    model_source: EnumProperty(
        name="Model", default="DEFAULT",
        items=[("DEFAULT", "Bundled Default", "The model shipped with the add-on"),
               ("FILE", "Checkpoint File", "A .safetensors checkpoint of your own")])
    checkpoint: StringProperty(name="Checkpoint", subtype="FILE_PATH",
                               description="Model checkpoint (.safetensors with its .json)")
    device: EnumProperty(name="Device", default="cpu",
                         items=[("cpu", "CPU", "Run on the CPU with the bundled ONNX Runtime"),
                                ("cuda", "GPU (CUDA)", "Run on an NVIDIA GPU with PyTorch (needs "
                                 "PyTorch with CUDA installed in Blender's Python; not "
                                 "bundled)")])
    steps: IntProperty(name="DDIM Steps", default=0, min=0, max=200,
                       description="Sampling steps; 0 uses the model's default")
    seed: IntProperty(name="Seed", default=0, min=0, description="Same seed, same animation")
    style: IntProperty(name="Style", default=-1, min=-1,
                       description="Speaking-style index of the model; -1: neutral (unknown)")
    strength_lips: FloatProperty(name="Lips", default=1.0, min=0.0, soft_max=2.0,
                                 description="Scale of jaw, mouth, cheek puff and tongue")
    strength_brows: FloatProperty(name="Brows", default=1.0, min=0.0, soft_max=2.0)
    strength_eyes: FloatProperty(name="Eyes", default=1.0, min=0.0, soft_max=2.0,
                                 description="Scale of eye look, squint and wide")
    strength_blinks: FloatProperty(name="Blinks", default=1.0, min=0.0, soft_max=2.0)
    blink_rate: FloatProperty(
        name="Blink Rate", default=1.0, min=0.0, max=_blink_rate_max(),
        description="How often the face blinks: scales the random noise that starts a blink "
                    "(the model's blink temperature); 1 = the model's default, higher blinks "
                    "more often, 0 hardly ever. The lips do not change (ARKit models only)")

    def strengths(self) -> dict[str, float]:
        """{region: factor}, only the regions not at 1.0."""
        out = {r: float(getattr(self, f"strength_{r}")) for r in mapping_mod.strength_regions()}
        return {r: v for r, v in out.items() if v != 1.0}


# -- mapping helpers (main thread) --------------------------------------------------------

def shape_key_names(obj) -> list[str]:
    """Shape keys of a mesh object except the reference key; [] if none."""
    if obj is None or obj.type != "MESH" or obj.data.shape_keys is None:
        return []
    key = obj.data.shape_keys
    ref = key.reference_key.name if key.reference_key else None
    return [kb.name for kb in key.key_blocks if kb.name != ref]


def auto_fill_mapping(obj, channels, rig: str = "arkit") -> dict[str, str]:
    """Match ``channels`` (of the rig kind ``rig``) to ``obj``'s shape keys and store the
    result in its mapping list (every channel listed; unmatched ones with an empty shape
    key). Returns the matches."""
    found = mapping_mod.match_channels(channels, shape_key_names(obj), rig)
    set_mapping(obj, channels, found, rig)
    return found


def set_mapping(obj, channels, found: dict[str, str], rig: str = "arkit") -> None:
    """Store ``found`` ({channel: shape key}) as ``obj``'s mapping list over ``channels``
    (of the rig kind ``rig``)."""
    coll = obj.streamtalker.mapping
    coll.clear()
    for c in channels:
        item = coll.add()
        item.channel = c
        item.shape_key = found.get(c, "")
    obj.streamtalker.mapping_rig = "" if rig == "arkit" else rig


def mapping_rig(obj) -> str:
    """The rig kind ``obj``'s mapping list was made for (``"arkit"`` for lists made before
    face rigs)."""
    return obj.streamtalker.mapping_rig or "arkit"


def object_rig(obj) -> tuple[str, bool]:
    """(rig kind, detected): the Rig menu's kind, or with Auto the kind its shape-key names
    are (:func:`.mapping.detect_rig`)."""
    choice = obj.streamtalker.rig
    if choice != "AUTO":
        return choice.lower(), False
    return mapping_mod.detect_rig(shape_key_names(obj)).kind, True


def get_mapping(obj) -> dict[str, str]:
    """{channel: shape key} of ``obj``'s mapping list (mapped rows only)."""
    return {it.channel: it.shape_key for it in obj.streamtalker.mapping if it.shape_key}


class STREAMTALKER_PG_live(PropertyGroup):
    device: StringProperty(name="Input Device", default="",
                           description="Microphone (PortAudio device name or index); empty: "
                                       "the default input")


classes = (STREAMTALKER_PG_mapping_item, STREAMTALKER_PG_object, STREAMTALKER_PG_scene,
           STREAMTALKER_PG_live)


def register() -> None:
    for c in classes:
        bpy.utils.register_class(c)
    bpy.types.Scene.streamtalker = PointerProperty(type=STREAMTALKER_PG_scene)
    bpy.types.Object.streamtalker = PointerProperty(type=STREAMTALKER_PG_object)
    bpy.types.WindowManager.streamtalker_live = PointerProperty(type=STREAMTALKER_PG_live)
    _strip_type().streamtalker_target = PointerProperty(
        type=bpy.types.Object, name="StreamTalker Target", poll=_is_mesh,
        description="Mesh this sound strip lip-syncs in batch bake (default: the active object)")


def unregister() -> None:
    del _strip_type().streamtalker_target
    del bpy.types.WindowManager.streamtalker_live
    del bpy.types.Object.streamtalker
    del bpy.types.Scene.streamtalker
    for c in reversed(classes):
        bpy.utils.unregister_class(c)
