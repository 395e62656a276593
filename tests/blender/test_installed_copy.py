"""The installed copy: build the zip with build_addon.py, install it with Blender's own
extension system into a temporary Blender user folder, run Generate Lip Sync from the
installed copy (its vendored ``model_core`` and bundled default model, not the project's)
on the real Face Cap head and a real LibriVox clip, then uninstall and check that nothing is
left behind.

Everything Blender-side runs in a fresh interpreter (``bpy`` module) with ``HOME`` and
``BLENDER_USER_RESOURCES`` pointing into the test's temporary folder, so the user's own
Blender configuration is never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from bl_helpers import ROOT, facecap_path, speech_path

SCRIPT = textwrap.dedent(r'''
    import importlib, json, os, sys, time
    import bpy, addon_utils

    zip_path, glb, wav, user_dir, report_path = sys.argv[-5:]
    rep = {}
    ext_root = bpy.utils.user_resource("EXTENSIONS")
    rep["ext_root_in_tmp"] = os.path.realpath(ext_root).startswith(os.path.realpath(user_dir))

    # 1. install from the zip, as Preferences > Get Extensions > Install from Disk does
    r = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                 enable_on_install=True)
    rep["install"] = sorted(r)
    mod = "bl_ext.user_default.streamtalker"
    rep["enabled"] = mod in bpy.context.preferences.addons
    pkg_dir = os.path.join(ext_root, "user_default", "streamtalker")
    rep["vendored_files"] = all(os.path.isfile(os.path.join(pkg_dir, *p.split("/"))) for p in (
        "model_core/__init__.py", "model_core/weights/default.safetensors",
        "model_core/weights/default.json", "deps.py", "LICENSE"))

    # 2. the dependency folder: a module placed there is importable once the add-on is
    #    (re-)enabled, and the folder leaves sys.path when it is disabled
    deps = importlib.import_module(mod + ".deps")
    ddir = deps.deps_dir(mod, create=True)
    rep["deps_dir_in_ext_user"] = os.path.realpath(ddir).startswith(os.path.realpath(user_dir)) \
        and "streamtalker" in ddir
    with open(os.path.join(ddir, "streamtalker_probe_dep.py"), "w") as f:
        f.write("VALUE = 42\n")
    addon_utils.disable(mod)
    addon_utils.enable(mod, default_set=True)
    rep["deps_on_path"] = ddir in sys.path
    import streamtalker_probe_dep
    rep["probe"] = streamtalker_probe_dep.VALUE

    # the preferences show the Install Dependencies button, and progress while installing
    import types

    class Layout:
        def __init__(self, calls):
            self.calls = calls

        def __getattr__(self, name):
            def call(*a, **k):
                self.calls.append((name, a, k))
                return self
            return call

    prefs_cls = type(bpy.context.preferences.addons[mod].preferences)
    calls = []
    prefs_cls.draw(types.SimpleNamespace(layout=Layout(calls)), bpy.context)
    rep["prefs_buttons"] = [c[1][0] for c in calls if c[0] == "operator"]
    deps.state.status, deps.state.fraction, deps.state.message = "running", 0.4, "Collecting x"
    calls = []
    prefs_cls.draw(types.SimpleNamespace(layout=Layout(calls)), bpy.context)
    rep["prefs_progress"] = [c[2].get("factor") for c in calls if c[0] == "progress"]
    rep["install_poll_while_running"] = bpy.ops.streamtalker.install_deps.poll()
    deps.state.status = "idle"

    # 3. the user's steps: import the head, add the clip as a sound strip, Generate
    bpy.ops.import_scene.gltf(filepath=glb)
    head = [o for o in bpy.data.objects if o.type == "MESH" and o.data.shape_keys][0]
    bpy.context.view_layer.objects.active = head
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    ed = scene.sequence_editor_create()
    (ed.strips if hasattr(ed, "strips") else ed.sequences).new_sound("speech", wav, 1, 1)
    scene.streamtalker.model_source = "DEFAULT"
    jobs = importlib.import_module(mod + ".jobs")
    core = importlib.import_module(mod + ".core")
    rep["generate"] = sorted(bpy.ops.streamtalker.generate())
    job = jobs.active_job()
    t0 = time.monotonic()
    while jobs.drain() is not None:
        assert time.monotonic() - t0 < 600, "generation did not end"
        time.sleep(0.01)
    job.worker.join(10)
    rep["state"], rep["error"] = job.state, job.error
    rep["n_frames"] = job.source.n_frames
    keyframes = importlib.import_module(mod + ".keyframes")
    ad = head.data.shape_keys.animation_data
    fcs = keyframes.action_fcurves(ad.action, ad)
    rep["n_fcurves"] = len(fcs)
    rep["n_keys"] = sum(len(fc.keyframe_points) for fc in fcs)
    jaw = [fc for fc in fcs if fc.data_path == 'key_blocks["jawOpen"].value'][0]
    vals = [k.co[1] for k in jaw.keyframe_points]
    rep["jaw_range"] = [min(vals), max(vals)]
    mc = core.model_core_module()
    rep["model_core_used"] = mc.__name__
    rep["model_core_file_in_ext"] = os.path.realpath(mc.__file__).startswith(
        os.path.realpath(pkg_dir))
    rep["default_ckpt_in_ext"] = os.path.realpath(str(core.default_checkpoint_path())).startswith(
        os.path.realpath(pkg_dir))
    rep["project_model_core_imported"] = "model_core" in sys.modules

    # 4. uninstall through Blender's extension system
    repos = bpy.context.preferences.extensions.repos
    idx = [i for i, rp in enumerate(repos) if rp.module == "user_default"][0]
    rep["uninstall"] = sorted(bpy.ops.extensions.package_uninstall(repo_index=idx,
                                                                   pkg_id="streamtalker"))
    rep["after_enabled"] = mod in bpy.context.preferences.addons
    rep["after_classes"] = [n for n in dir(bpy.types) if n.startswith("STREAMTALKER_")]
    rep["after_scene_prop"] = hasattr(bpy.types.Scene, "streamtalker")
    rep["after_deps_on_path"] = ddir in sys.path
    rep["left_behind"] = sorted(
        os.path.join(d, n) for d, dirs, files in os.walk(user_dir) for n in dirs + files
        if "streamtalker" in n.lower())
    with open(report_path, "w") as f:
        json.dump(rep, f)
    print("DONE")
    if bpy.app.version < (5, 0):  # the bpy 4.5 module can hang at exit (see compat.py)
        sys.stdout.flush()
        os._exit(0)
''')


def test_installed_copy_generates_from_its_vendored_model_and_uninstalls_cleanly(tmp_path):
    sys.path.insert(0, str(ROOT))
    try:
        import build_addon
    finally:
        sys.path.remove(str(ROOT))
    zip_path = build_addon.build(tmp_path / "dist")
    user_dir = tmp_path / "blender_user"
    user_dir.mkdir()
    script = tmp_path / "installed_copy.py"
    script.write_text(SCRIPT)
    report = tmp_path / "report.json"
    env = dict(os.environ, HOME=str(tmp_path / "home"), BLENDER_USER_RESOURCES=str(user_dir),
               OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    r = subprocess.run([sys.executable, str(script), str(zip_path), str(facecap_path()),
                        str(speech_path()), str(user_dir), str(report)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert r.returncode == 0 and "DONE" in r.stdout, r.stdout[-4000:] + r.stderr[-4000:]
    rep = json.loads(report.read_text())

    assert rep["ext_root_in_tmp"]
    assert rep["install"] == ["FINISHED"] and rep["enabled"]
    assert rep["vendored_files"]
    assert rep["deps_dir_in_ext_user"] and rep["deps_on_path"] and rep["probe"] == 42
    assert rep["prefs_buttons"] == ["streamtalker.install_deps"]
    assert rep["prefs_progress"] == [0.4] and rep["install_poll_while_running"] is False

    assert rep["generate"] == ["FINISHED"]
    assert rep["state"] == "finished", rep["error"]
    assert rep["n_frames"] == 213  # 7.1 s at 30 fps
    assert rep["n_fcurves"] == 52 and rep["n_keys"] == 52 * 213
    assert rep["jaw_range"][1] - rep["jaw_range"][0] > 0.2  # the jaw moves
    assert rep["model_core_used"] == "bl_ext.user_default.streamtalker.model_core"
    assert rep["model_core_file_in_ext"] and rep["default_ckpt_in_ext"]
    assert not rep["project_model_core_imported"]

    assert rep["uninstall"] == ["FINISHED"]
    assert not rep["after_enabled"] and rep["after_classes"] == []
    assert not rep["after_scene_prop"] and not rep["after_deps_on_path"]
    assert rep["left_behind"] == [], rep["left_behind"]
