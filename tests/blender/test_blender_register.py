"""Registration: clean unregister (no classes, properties, timers or handlers left, a running
job cancelled), and the extension builds, validates and installs through Blender's own
extension system."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from bl_helpers import ROOT


def _leftovers(bpy):
    return {
        "classes": [n for n in dir(bpy.types) if n.startswith("STREAMTALKER_")],
        "scene_prop": hasattr(bpy.types.Scene, "streamtalker"),
        "object_prop": hasattr(bpy.types.Object, "streamtalker"),
        "strip_prop": hasattr(bpy.types.Strip, "streamtalker_target"),
        "handlers": [h for h in bpy.app.handlers.load_pre if "streamtalker" in h.__module__],
    }


def test_unregister_leaves_nothing_and_cancels_a_running_job(facecap_scene, bpy_mod):
    import streamtalker_addon
    from streamtalker_addon import jobs, worker

    bpy = bpy_mod
    scene, head, strip = facecap_scene
    prev = head.data.shape_keys.animation_data.action.name
    assert bpy.ops.streamtalker.generate() == {"FINISHED"}
    job = jobs.active_job()
    assert bpy.app.timers.is_registered(jobs.drain)
    streamtalker_addon.unregister()
    try:
        assert _leftovers(bpy) == {"classes": [], "scene_prop": False, "object_prop": False,
                                   "strip_prop": False, "handlers": []}
        assert not bpy.app.timers.is_registered(jobs.drain)
        assert job.state == "cancelled" and jobs.active_job() is None
        assert head.data.shape_keys.animation_data.action.name == prev
        assert "speech" not in bpy.data.actions
    finally:
        streamtalker_addon.register()
    assert _leftovers(bpy)["scene_prop"] and len(_leftovers(bpy)["handlers"]) == 1
    job.worker.join(10)


def test_loading_a_file_cancels_the_running_job(facecap_scene, bpy_mod):
    from streamtalker_addon import jobs, preferences, worker
    bpy = bpy_mod
    bpy.ops.streamtalker.generate()
    job = jobs.active_job()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert job.state == "cancelled" and jobs.active_job() is None
    job.worker.join(10)


INSTALL = textwrap.dedent("""
    import sys, bpy, addon_utils
    zip_path = sys.argv[-1]
    r = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                 enable_on_install=True)
    print("install", r)
    mods = [m for m in bpy.context.preferences.addons.keys() if m.endswith("streamtalker")]
    print("enabled", mods)
    assert mods == ["bl_ext.user_default.streamtalker"], mods
    assert hasattr(bpy.types.Scene, "streamtalker")
    assert bpy.ops.streamtalker.generate.poll() is False
    prefs = bpy.context.preferences.addons[mods[0]].preferences
    print("prefs", prefs.bl_rna.identifier)
    assert prefs.live_latency == "LOW"      # Live runs the model's low-latency setting
    addon_utils.disable(mods[0])
    assert not hasattr(bpy.types.Scene, "streamtalker")
    print("OK")
""")


def test_extension_builds_validates_installs_and_disables(tmp_path):
    import bpy
    ext = os.path.join(bpy.utils.system_resource("SCRIPTS"), "addons_core", "bl_pkg", "cli",
                       "blender_ext.py")
    env = dict(os.environ, HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, ext, "validate", str(ROOT / "streamtalker_addon")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "Success" in r.stdout, r.stdout + r.stderr
    out = tmp_path / "streamtalker.zip"
    r = subprocess.run([sys.executable, ext, "build", "--source-dir",
                        str(ROOT / "streamtalker_addon"), "--output-filepath", str(out)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and out.exists(), r.stdout + r.stderr
    script = tmp_path / "install.py"
    script.write_text(INSTALL)
    r = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]


class _Layout:
    """Stands in for a UILayout: records every call, returns itself for sub-layouts."""

    def __init__(self, calls):
        self.calls = calls

    def __getattr__(self, name):
        def call(*args, **kw):
            self.calls.append((name, args, kw))
            for a in args[:1]:
                if name in {"prop", "prop_search"}:  # the property must exist
                    prop = args[1] if len(args) > 1 else None
                    assert prop is None or hasattr(a, prop), (a, prop)
            return self
        return call


def test_panels_draw_in_every_state(facecap_scene, bpy_mod, tmp_path):
    import types
    from streamtalker_addon import jobs, panels

    bpy = bpy_mod
    scene, head, strip = facecap_scene
    ctx = types.SimpleNamespace(scene=scene, view_layer=bpy.context.view_layer)

    def draw_all():
        calls = []
        for cls in (panels.STREAMTALKER_PT_main, panels.STREAMTALKER_PT_source,
                    panels.STREAMTALKER_PT_target, panels.STREAMTALKER_PT_model):
            cls.draw(types.SimpleNamespace(layout=_Layout(calls)), ctx)
        return calls

    names = lambda calls: [c[2].get("text", "") for c in calls if c[0] == "label"]  # noqa: E731
    draw_all()  # before anything
    bpy.ops.streamtalker.mapping_auto()
    item = head.streamtalker.mapping[0]
    panels.STREAMTALKER_UL_mapping.draw_item(None, ctx, _Layout([]), None, item, 0, None, "")
    assert "52 of 52 channels mapped" in names(draw_all())
    bpy.ops.streamtalker.generate()
    calls = draw_all()
    assert any(c[0] == "progress" for c in calls)
    jobs.run_to_end()
    labels = names(draw_all())
    assert any("keyed into NLA track 'StreamTalker', strip 'speech', frames 18-" in t
               for t in labels), labels
    assert "1 line(s) on NLA track StreamTalker" in labels
    scene.streamtalker.source = "FILE"
    scene.streamtalker.model_source = "FILE"
    draw_all()
    bpy.context.view_layer.objects.active = None
    assert "Select the head mesh" in names(draw_all())
