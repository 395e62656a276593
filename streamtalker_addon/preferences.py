"""Add-on preferences: where shape-key mapping presets live, and the Install Dependencies
button (torch, scipy, ... into the extension's own folder, see :mod:`.deps`)."""

from __future__ import annotations

import os

import bpy
from bpy.props import IntProperty, StringProperty
from bpy.types import AddonPreferences, Operator

from . import deps

ADDON_ID = __package__


class STREAMTALKER_OT_install_deps(Operator):
    """Download and install the Python packages StreamTalker needs (torch CPU, scipy, soxr,
    soundfile, safetensors, tqdm; about 250 MB to download, 1.1 GB on disk) into the
    extension's own folder, in the background. Blender's numpy is kept"""

    bl_idname = "streamtalker.install_deps"
    bl_label = "Install Dependencies"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context):
        if deps.state.status == "running":
            cls.poll_message_set("the dependencies are being installed")
            return False
        return True

    def execute(self, context):
        try:
            deps.check_numpy()
            deps.start_install(deps.deps_dir(ADDON_ID, create=True))
        except deps.DepsError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        if not bpy.app.timers.is_registered(deps.redraw_timer):
            bpy.app.timers.register(deps.redraw_timer, first_interval=0.5)
        self.report({"INFO"}, "StreamTalker: installing dependencies in the background")
        return {"FINISHED"}


def draw_deps(layout) -> None:
    """The Dependencies box: what is missing, the button, progress or the last error."""
    box = layout.box()
    box.label(text="Dependencies", icon="PACKAGE")
    st = deps.state
    if st.status == "running":
        box.progress(factor=st.fraction, type="BAR", text=f"Installing... {st.fraction:.0%}")
        box.label(text=st.message[:110])
        return
    missing = deps.missing_modules()
    if missing:
        box.label(text=f"Missing Python packages: {', '.join(missing)}", icon="ERROR")
        box.label(text="Needs internet: about 250 MB download, 1.1 GB in this extension's folder.")
    else:
        box.label(text="All Python packages found (torch, scipy, soxr, soundfile, ...)",
                  icon="CHECKMARK")
    if st.status == "failed":
        col = box.column(align=True)
        col.alert = True
        words, line = st.message.split(), ""
        for w in words:  # wrap the error message
            if len(line) + len(w) > 90:
                col.label(text=line)
                line = ""
            line = f"{line} {w}".strip()
        if line:
            col.label(text=line)
    elif st.status == "done":
        box.label(text="Installed: the model is ready to use", icon="CHECKMARK")
    box.operator(STREAMTALKER_OT_install_deps.bl_idname,
                 text="Install Dependencies" if missing else "Reinstall Dependencies",
                 icon="IMPORT")


class STREAMTALKER_AP_preferences(AddonPreferences):
    bl_idname = ADDON_ID

    preset_dir: StringProperty(name="Mapping Presets", subtype="DIR_PATH",
                               description="Folder for shape-key mapping presets (JSON); "
                                           "empty: the add-on's user folder")
    live_device: StringProperty(name="Live Input Device",
                                description="Microphone for Live (PortAudio device name or "
                                            "index); empty: the default input")
    cpu_threads: IntProperty(name="CPU Threads", default=0, min=0, max=256,
                             description="CPU threads the model uses for Generate, Live and "
                                         "bake; 0 = automatic (half the cores, at most 4, "
                                         "leaving the rest to Blender)")

    def draw(self, context):
        col = self.layout.column()
        col.prop(self, "preset_dir")
        col.prop(self, "live_device")
        col.prop(self, "cpu_threads")
        draw_deps(self.layout)


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


classes = (STREAMTALKER_OT_install_deps, STREAMTALKER_AP_preferences)


def register() -> None:
    for c in classes:
        bpy.utils.register_class(c)
    try:  # dependencies installed by the button earlier
        deps.add_to_sys_path(deps.deps_dir(ADDON_ID, create=False))
    except Exception as e:  # never block registration
        print(f"StreamTalker: dependency folder not added to sys.path ({e})")


def unregister() -> None:
    if bpy.app.timers.is_registered(deps.redraw_timer):
        bpy.app.timers.unregister(deps.redraw_timer)
    deps.remove_from_sys_path()
    for c in reversed(classes):
        bpy.utils.unregister_class(c)
