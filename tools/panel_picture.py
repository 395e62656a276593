"""Screenshot of the add-on's sidebar in a real Blender GUI (run on demand, for the README).

    apt-get install xvfb                # once, and a Blender 4.5+ from blender.org
    xvfb-run -a -s "-screen 0 1600x1200x24" blender --factory-startup \
        --enable-event-simulate --python tools/panel_picture.py -- [--out docs/panel.png]

The PyPI ``bpy`` module cannot draw UI, so this runs a Blender with a GUI (4.5 or newer:
the add-on uses 4.5's API and no longer loads in Debian's ``blender`` 3.4, which drew
docs/panel.png; ``xvfb`` provides the display) with the project's venv on ``sys.path``. It
builds the demo's scene (the Face Cap head, a LibriVox sound strip, 30 fps, the mapping
matched with Auto-Match) as it is before pressing Generate, opens the 3D viewport's sidebar
with every sub-panel expanded, and, as a user would, closes the splash screen and clicks the
sidebar's StreamTalker tab (simulated events: 3.x cannot pick a tab from Python). The 3D viewport area is saved as ``--out`` (default ``out/panel.png``; never
overwritten: ``panel-2.png``, ... when it exists). Errors exit with status 1.
"""

from __future__ import annotations

import glob
import os
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for sp in glob.glob(str(ROOT / ".venv" / "lib" / "python3*" / "site-packages")):
    sys.path.append(sp)

import bpy  # noqa: E402
import numpy as np  # noqa: E402

if "bool" not in np.__dict__:   # Blender 3.4's glTF importer uses np.bool (gone in numpy 1.24)
    np.bool = bool

CLIP = ROOT / "inputs" / "speech" / "librivox" / "sense_and_sensibility_01_austen_64kb-0870.wav"
FACECAP = ROOT / "inputs" / "facecap" / "facecap.glb"


def _out_path() -> Path:
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else Path("out/panel.png")
    out = out if out.is_absolute() else ROOT / out
    stem, n = out.stem, 2
    while out.exists():
        out = out.with_name(f"{stem}-{n}{out.suffix}")
        n += 1
    return out


def build_scene() -> None:
    """Register the add-on (sub-panels open), import the head, add the strip, match."""
    import streamtalker_addon
    from streamtalker_addon import panels
    streamtalker_addon.register()
    for cls in panels.classes:
        if "DEFAULT_CLOSED" in getattr(cls, "bl_options", set()):
            cls.bl_options = set(cls.bl_options) - {"DEFAULT_CLOSED"}
            bpy.utils.unregister_class(cls)
            bpy.utils.register_class(cls)
    for ob in list(bpy.data.objects):
        bpy.data.objects.remove(ob)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    bpy.ops.import_scene.gltf(filepath=str(FACECAP))
    head = next(o for o in scene.objects if o.type == "MESH" and o.data.shape_keys is not None)
    bpy.context.view_layer.objects.active = head
    head.select_set(True)
    ed = scene.sequence_editor or scene.sequence_editor_create()
    coll = ed.strips if hasattr(ed, "strips") else ed.sequences
    strip = coll.new_sound("speech", str(CLIP), 1, 1)
    scene.frame_end = strip.frame_final_end
    scene.streamtalker.strip = strip.name
    assert bpy.ops.streamtalker.mapping_auto() == {"FINISHED"}


def main() -> None:
    out = _out_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    build_scene()
    win = bpy.context.window_manager.windows[0]
    area = max((a for a in win.screen.areas if a.type == "VIEW_3D"), key=lambda a: a.width)
    area.spaces.active.show_region_ui = True
    ui = next(r for r in area.regions if r.type == "UI")
    view = next(r for r in area.regions if r.type == "WINDOW")
    steps = []

    def ev(kind, value, x, y):
        steps.append(lambda: win.event_simulate(type=kind, value=value, x=int(x), y=int(y)))

    ev("ESC", "PRESS", 800, 500)                       # close the first-start splash
    ev("ESC", "RELEASE", 800, 500)
    if hasattr(ui, "active_panel_category"):           # Blender 4.x can pick the tab
        steps.append(lambda: setattr(ui, "active_panel_category", "StreamTalker"))
    else:                                              # the 4th tab (Item, View, Tool, ...)
        tab = lambda: (ui.x + ui.width - 12, ui.y + ui.height - 188)  # noqa: E731
        steps.append(lambda: win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=tab()[0], y=tab()[1]))
        steps.append(lambda: win.event_simulate(type="LEFTMOUSE", value="PRESS", x=tab()[0], y=tab()[1]))
        steps.append(lambda: win.event_simulate(type="LEFTMOUSE", value="RELEASE", x=tab()[0], y=tab()[1]))
    ev("MOUSEMOVE", "NOTHING", area.x + 200, area.y + 200)

    def frame_head():
        with bpy.context.temp_override(window=win, area=area, region=view):
            bpy.ops.view3d.view_selected()
            bpy.ops.view3d.view_axis(type="FRONT")
            bpy.ops.view3d.view_selected()
    steps.append(frame_head)
    steps += [lambda: None] * 3                        # let the UI draw

    def shoot():
        try:
            for a in win.screen.areas:
                a.tag_redraw()
            if steps:
                steps.pop(0)()
                return 0.3
            fd, full = tempfile.mkstemp(suffix=".png")   # the whole window, removed after
            os.close(fd)
            with bpy.context.temp_override(window=win, area=area):
                bpy.ops.screen.screenshot(filepath=str(full))
            img = bpy.data.images.load(str(full))
            W, H = img.size
            px = np.array(img.pixels[:], np.float32).reshape(H, W, 4)
            x0, y0 = area.x - win.x, area.y - win.y
            crop = px[y0:y0 + area.height, x0:x0 + area.width]
            pic = bpy.data.images.new("panel", crop.shape[1], crop.shape[0], alpha=True)
            pic.pixels.foreach_set(crop.ravel())
            pic.filepath_raw, pic.file_format = str(out), "PNG"
            pic.save()
            os.remove(full)
            print(f"panel picture: {out} ({crop.shape[1]} x {crop.shape[0]} px, Blender "
                  f"{bpy.app.version_string})")
            sys.stdout.flush()
            os._exit(0)
        except Exception:
            traceback.print_exc()
            os._exit(1)

    bpy.app.timers.register(shoot, first_interval=1.0)


try:
    main()
except Exception:
    traceback.print_exc()
    os._exit(1)
