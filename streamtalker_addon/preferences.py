"""Add-on preferences: where shape-key mapping presets live, Live's input device and
latency, CPU threads, and what the model runs on (the bundled ONNX Runtime; PyTorch only where it is importable,
for CUDA).

The extension brings its Python packages as wheels that Blender installs with it
(build_addon.py); nothing here installs or downloads anything.
"""

from __future__ import annotations

import importlib.metadata
import os

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty
from bpy.types import AddonPreferences

ADDON_ID = __package__

#: (module, distribution) the Runtime box reports; found once per session.
_PACKAGES = (("onnxruntime", "onnxruntime"), ("soxr", "soxr"), ("soundfile", "soundfile"),
             ("sounddevice", "sounddevice"), ("torch", "torch"))
_found: dict = {}


def package_versions() -> dict[str, str | None]:
    """``{module: version or None}`` for :data:`_PACKAGES` (None: not importable); looked
    up once per session, without importing anything."""
    if not _found:
        import importlib.util
        for mod, dist in _PACKAGES:
            try:
                present = importlib.util.find_spec(mod) is not None
            except (ImportError, ValueError):
                present = False
            version = None
            if present:
                try:
                    version = importlib.metadata.version(dist)
                except importlib.metadata.PackageNotFoundError:
                    version = "?"
            _found[mod] = version
    return dict(_found)


def draw_runtime(layout) -> None:
    """The Runtime box: what runs the model, and which bundled package is missing (an
    extension installed from the wrong platform's zip)."""
    box = layout.box()
    box.label(text="Runtime", icon="SETTINGS")
    found = package_versions()
    missing = [m for m, _ in _PACKAGES if m != "torch" and found[m] is None]
    if missing:
        col = box.column(align=True)
        col.alert = True
        col.label(text=f"Missing bundled packages: {', '.join(missing)}", icon="ERROR")
        col.label(text="Reinstall StreamTalker from the zip built for this platform.")
    else:
        box.label(text=f"CPU: ONNX Runtime {found['onnxruntime']} (bundled)", icon="CHECKMARK")
    if found["torch"]:
        box.label(text=f"GPU (CUDA): PyTorch {found['torch']} found in Blender's Python")
    else:
        box.label(text="GPU (CUDA): needs PyTorch in Blender's Python (not installed)")


#: Live's latency choices: (enum id, label, description) -> the model_core sampler preset.
LIVE_LATENCY_ITEMS = [
    ("LOW", "Low Latency", "The model's low-latency setting (short chunks and look-ahead; "
                           "the same as Best Quality for a model that declares none)"),
    ("QUALITY", "Best Quality", "The model's best-quality setting, as Generate uses: the "
                                "face trails the voice by more")]
LIVE_PRESETS = {"LOW": "live", "QUALITY": "quality"}


class STREAMTALKER_AP_preferences(AddonPreferences):
    bl_idname = ADDON_ID

    preset_dir: StringProperty(name="Mapping Presets", subtype="DIR_PATH",
                               description="Folder for shape-key mapping presets (JSON); "
                                           "empty: the add-on's user folder")
    live_device: StringProperty(name="Live Input Device",
                                description="Microphone for Live (PortAudio device name or "
                                            "index); empty: the default input")
    live_latency: EnumProperty(
        name="Live Latency", default="LOW",
        items=LIVE_LATENCY_ITEMS,
        description="The model setting Live runs at: the face trails the voice by the chunk "
                    "length plus the audio look-ahead. Generate and bake always use the best "
                    "quality")
    cpu_threads: IntProperty(name="CPU Threads", default=0, min=0, max=256,
                             description="CPU threads the model uses for Generate, Live and "
                                         "bake; 0 = automatic: one thread (the fastest beside "
                                         "Blender's own work), or OMP_NUM_THREADS when it is "
                                         "set")

    def draw(self, context):
        col = self.layout.column()
        col.prop(self, "preset_dir")
        col.prop(self, "live_device")
        col.prop(self, "live_latency")
        col.prop(self, "cpu_threads")
        draw_runtime(self.layout)


def get_prefs(context=None):
    """The add-on preferences, or None when the add-on is not enabled through Blender's
    add-on system (e.g. registered directly by a script)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None


def cpu_threads(context=None) -> int:
    """The "CPU Threads" preference (0 = automatic; also when the add-on is registered by a
    script rather than enabled as an add-on)."""
    try:
        prefs = get_prefs(context)
    except AttributeError:  # no preferences in this context
        return 0
    return int(prefs.cpu_threads) if prefs is not None else 0


def live_preset(context=None) -> str:
    """The sampler preset Live runs with (model_core's ``SamplerSettings.preset``): ``"live"``
    (the preference "Live Latency" at Low Latency, also when the add-on is registered by a
    script) or ``"quality"``."""
    try:
        prefs = get_prefs(context)
    except AttributeError:  # no preferences in this context
        prefs = None
    return LIVE_PRESETS[prefs.live_latency] if prefs is not None else "live"


def preset_dir(context=None) -> str:
    """Folder for mapping presets (created): preferences, else the extension's user folder,
    else Blender's user scripts folder."""
    prefs = get_prefs(context)
    if prefs is not None and prefs.preset_dir:
        path = bpy.path.abspath(prefs.preset_dir)
    else:
        try:
            path = bpy.utils.extension_path_user(ADDON_ID, path="presets", create=True)
        except (ValueError, AttributeError):
            path = bpy.utils.user_resource("SCRIPTS", path=os.path.join("presets", "streamtalker"),
                                           create=True)
    os.makedirs(path, exist_ok=True)
    return path


classes = (STREAMTALKER_AP_preferences,)


def register() -> None:
    for c in classes:
        bpy.utils.register_class(c)


def unregister() -> None:
    for c in reversed(classes):
        bpy.utils.unregister_class(c)
