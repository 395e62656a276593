"""The installed copy: build the Linux zip with build_addon.py (bundled wheels, from the
wheel cache), install it with Blender's own extension system into a fresh temporary Blender
user folder -- with torch unimportable, the network unreachable and the test environment's
own copies of the bundled packages hidden, so everything comes from the zip -- register it,
run Generate Lip Sync from the installed copy (its vendored ``model_core`` and bundled
default model, not the project's) on the real Face Cap head and a real LibriVox clip, then
uninstall and check that nothing is left behind.

Everything Blender-side runs in a fresh interpreter (``bpy`` module) with ``HOME`` and
``BLENDER_USER_RESOURCES`` pointing into the test's temporary folder, so the user's own
Blender configuration is never touched. Two runs: the install itself (wheels installed by
Blender for this Python, imported from the extension's site-packages, onnxruntime runs a
graph, the preferences draw, uninstall cleans up), and Generate without torch, whose keys
must equal the onnx command line's frames (1e-5) and, where the test environment has torch
(not Blender 5.2's), the torch backend's (1e-3).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bl_helpers import facecap_path, speech_path
from wheelcache import build_addon, wheels_or_skip

#: Top-level modules the zip's wheels provide (the Blender process imports them from the
#: extension's site-packages only; none may be left behind after uninstalling).
BUNDLED_MODULES = ("onnxruntime", "soxr", "soundfile", "_soundfile", "_soundfile_data",
                   "sounddevice", "_sounddevice", "_sounddevice_data", "cffi", "_cffi_backend",
                   "pycparser", "flatbuffers", "google", "packaging", "typing_extensions")

PRELUDE = textwrap.dedent(r'''
    # -- before anything else: this environment's site-packages reduced to what Blender
    #    itself ships (bpy and its requirements), so torch and everything the extension
    #    needs besides can only come from the zip; and no network
    import importlib.abc, importlib.machinery, os, site, socket, sys
    BUNDLED = set(json.loads(sys.argv[-1]))
    HIDDEN = {os.path.realpath(p) for p in site.getsitepackages() + [site.getusersitepackages()]}
    #: What Blender's own Python has in its site-packages (the bpy wheel's requirements).
    SHIPPED = {"bpy", "numpy", "requests", "certifi", "charset_normalizer", "idna", "urllib3",
               "zstandard", "cython", "Cython", "pyximport", "cattrs", "attr", "attrs",
               "_distutils_hack"}
    #: Never importable: torch (optional, never bundled) and the project's own packages
    #: (an editable install would otherwise resolve them).
    REFUSED = {"torch", "model_core", "streamtalker_addon"}

    class Gate(importlib.abc.MetaPathFinder):
        """Top-level modules: those Blender ships as usual; others only from outside the
        environment's site-packages (the standard library, the extension's own site-packages
        where Blender installs the bundled wheels)."""
        def find_spec(self, name, path=None, target=None):
            if "." in name or name in SHIPPED:
                return None
            if name in REFUSED or name.startswith("torch"):
                raise ModuleNotFoundError(f"No module named {name!r} (the test hides it)",
                                          name=name)
            outside = [p for p in sys.path if os.path.realpath(p or ".") not in HIDDEN]
            spec = importlib.machinery.PathFinder.find_spec(name, outside)
            if spec is not None:
                return spec
            if importlib.machinery.PathFinder.find_spec(name, sorted(HIDDEN)) is not None:
                raise ModuleNotFoundError(f"No module named {name!r}: neither shipped with "
                                          f"Blender nor bundled in the zip", name=name)
            return None

    sys.meta_path.insert(0, Gate())
    NET = []

    def _refuse(self, address, *a):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            NET.append(repr(address))
            raise OSError(101, "Network is unreachable (the test has no network)")
        return _connect(self, address, *a)
    _connect = socket.socket.connect
    socket.socket.connect = _refuse
    socket.socket.connect_ex = lambda self, address: _refuse(self, address) or 0

    def _no_dns(host, *a, **k):
        NET.append(f"getaddrinfo {host!r}")
        raise socket.gaierror(-3, "Temporary failure in name resolution (the test has no "
                                  "network)")
    socket.getaddrinfo = _no_dns
''')

SCRIPT = "import json, sys\n" + PRELUDE + textwrap.dedent(r'''
    import importlib, time, types
    import bpy, addon_utils

    mode, zip_path, glb, wav, user_dir, report_path, tiny_onnx = sys.argv[-8:-1]
    rep = {"mode": mode, "python": list(sys.version_info[:2])}
    ext_root = bpy.utils.user_resource("EXTENSIONS")
    rep["ext_root_in_tmp"] = os.path.realpath(ext_root).startswith(os.path.realpath(user_dir))
    rep["online_access"] = bool(getattr(bpy.app, "online_access", False))
    try:
        import torch  # noqa: F401
        rep["torch_importable"] = True
    except ImportError:
        rep["torch_importable"] = False

    # 1. install from the zip, as Preferences > Get Extensions > Install from Disk does
    r = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                 enable_on_install=True)
    rep["install"] = sorted(r)
    mod = "bl_ext.user_default.streamtalker"
    rep["enabled"] = mod in bpy.context.preferences.addons
    pkg_dir = os.path.join(ext_root, "user_default", "streamtalker")
    rep["vendored_files"] = all(os.path.isfile(os.path.join(pkg_dir, *p.split("/"))) for p in (
        "model_core/__init__.py", "model_core/weights/default.safetensors",
        "model_core/weights/default.json", "LICENSE"))
    rep["no_installer"] = not os.path.exists(os.path.join(pkg_dir, "deps.py"))

    # 2. the bundled packages import from the extension's own site-packages (Blender
    #    installed the wheels of this Python), numpy is this environment's ("Blender's")
    site_dir = os.path.realpath(os.path.join(ext_root, ".local"))
    rep["modules"] = {}
    for m in ("onnxruntime", "soxr", "soundfile", "sounddevice", "cffi", "flatbuffers",
              "google.protobuf", "packaging", "typing_extensions"):
        try:
            mm = importlib.import_module(m)
            f = os.path.realpath(getattr(mm, "__file__", None) or list(mm.__path__)[0])
            rep["modules"][m] = [f.startswith(site_dir), getattr(mm, "__version__", "")]
        except Exception as e:  # reported, asserted by the test
            rep["modules"][m] = [False, f"{type(e).__name__}: {e}"]
    import onnxruntime.capi.onnxruntime_pybind11_state as ort_binary
    rep["ort_binary"] = os.path.basename(ort_binary.__file__)
    import numpy
    rep["numpy_from_ext"] = os.path.realpath(numpy.__file__).startswith(site_dir)
    import onnxruntime
    sess = onnxruntime.InferenceSession(tiny_onnx, providers=["CPUExecutionProvider"])
    x = numpy.array([[-1.0, 2.0, -3.0], [4.0, -5.0, 6.0]], numpy.float32)
    rep["onnx_relu"] = sess.run(None, {"x": x})[0].tolist()

    # the preferences draw the runtime box, without any install button
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
    rep["prefs_operators"] = [c[1][0] for c in calls if c[0] == "operator"]
    rep["prefs_labels"] = [c[2].get("text", "") for c in calls if c[0] == "label"]

    # 3. the user's steps: import the head, add the clip as a sound strip, Generate
    if mode == "generate":
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
        while job is not None and jobs.drain() is not None:
            assert time.monotonic() - t0 < 600, "generation did not end"
            time.sleep(0.01)
        if job is not None:
            job.worker.join(10)
            rep["state"], rep["error"] = job.state, job.error
            rep["n_frames"] = job.source.n_frames
        keyframes = importlib.import_module(mod + ".keyframes")
        found = keyframes.line_strips(head.data.shape_keys)   # the line, on the NLA
        fcs = keyframes.action_fcurves(found[0][1].action) if found else []
        rep["n_fcurves"] = len(fcs)
        rep["n_keys"] = sum(len(fc.keyframe_points) for fc in fcs)
        by_key = {fc.data_path.split('"')[1]: [k.co[1] for k in fc.keyframe_points]
                  for fc in fcs}
        rep["keys"] = {it.channel: by_key.get(it.shape_key) for it in head.streamtalker.mapping}
        mc = core.model_core_module()
        rep["model_core_used"] = mc.__name__
        rep["model_core_file_in_ext"] = os.path.realpath(mc.__file__).startswith(
            os.path.realpath(pkg_dir))
        rep["default_ckpt_in_ext"] = os.path.realpath(
            str(core.default_checkpoint_path())).startswith(os.path.realpath(pkg_dir))
        rep["project_model_core_imported"] = "model_core" in sys.modules
        rep["torch_imported"] = any(m == "torch" or m.startswith("torch.") for m in sys.modules)

    # 4. uninstall through Blender's extension system
    repos = bpy.context.preferences.extensions.repos
    idx = [i for i, rp in enumerate(repos) if rp.module == "user_default"][0]
    rep["uninstall"] = sorted(bpy.ops.extensions.package_uninstall(repo_index=idx,
                                                                   pkg_id="streamtalker"))
    rep["after_enabled"] = mod in bpy.context.preferences.addons
    rep["after_classes"] = [n for n in dir(bpy.types) if n.startswith("STREAMTALKER_")]
    rep["after_scene_prop"] = hasattr(bpy.types.Scene, "streamtalker")
    tops = {m.split(".")[0] for m in BUNDLED}
    rep["left_behind"] = sorted(
        os.path.join(d, n) for d, dirs, files in os.walk(user_dir) for n in dirs + files
        if "streamtalker" in n.lower() or n.split("-")[0] in tops
        or n.split("-")[0].split(".")[0] in tops)
    rep["network_attempts"] = NET
    with open(report_path, "w") as f:
        json.dump(rep, f)
    print("DONE")
    if bpy.app.version < (5, 0):  # the bpy 4.5 module can hang at exit (see compat.py)
        sys.stdout.flush()
        os._exit(0)
''')


#: A one-node ONNX graph, Relu on a float [2, 3] (IR 8, opset 17), as written by
#: ``onnx.helper.make_model`` (69 bytes; embedded so that environments without the ``onnx``
#: package run the check too).
TINY_ONNX = ("CAg6OwoMCgF4EgF5IgRSZWx1EgFnWhMKAXgSDgoMCAESCAoCCAIKAggDYhMKAXkSDgoMCAESCAoCCAIK"
             "AggDQgQKABAR")


def _tiny_onnx(path) -> str:
    """Write :data:`TINY_ONNX` to ``path``; returns the path as a string."""
    import base64
    path.write_bytes(base64.b64decode(TINY_ONNX))
    return str(path)


@pytest.fixture(scope="module")
def linux_zip(tmp_path_factory):
    """The Linux zip, built once from the wheel cache."""
    wheels_or_skip("linux-x64")
    return build_addon().build(tmp_path_factory.mktemp("dist"), offline=True)


def _run_installed(mode: str, zip_path, tmp_path) -> dict:
    """Run SCRIPT in a fresh interpreter in ``mode`` ("install" or "generate"); its report."""
    user_dir = tmp_path / "blender_user"
    user_dir.mkdir()
    script = tmp_path / "installed_copy.py"
    script.write_text(SCRIPT)
    report = tmp_path / "report.json"
    env = dict(os.environ, HOME=str(tmp_path / "home"), BLENDER_USER_RESOURCES=str(user_dir),
               OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    r = subprocess.run([sys.executable, str(script), mode, str(zip_path), str(facecap_path()),
                        str(speech_path()), str(user_dir), str(report),
                        _tiny_onnx(tmp_path / "relu.onnx"), json.dumps(BUNDLED_MODULES)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert r.returncode == 0 and "DONE" in r.stdout, r.stdout[-4000:] + r.stderr[-4000:]
    return json.loads(report.read_text())


def _check_install_and_uninstall(rep: dict) -> None:
    assert rep["ext_root_in_tmp"]
    assert rep["torch_importable"] is False
    assert rep["install"] == ["FINISHED"] and rep["enabled"]
    assert rep["vendored_files"] and rep["no_installer"]
    for m, (from_ext, info) in rep["modules"].items():
        assert from_ext, f"{m} did not come from the extension's bundled wheels: {info}"
    py = "%d%d" % sys.version_info[:2]  # the wheel of this Python was installed
    assert rep["python"] == list(sys.version_info[:2]) and f"cpython-{py}" in rep["ort_binary"]
    assert not rep["numpy_from_ext"]  # Blender's numpy, never a bundled one
    assert rep["onnx_relu"] == [[0.0, 2.0, 0.0], [4.0, 0.0, 6.0]]
    assert rep["prefs_operators"] == []
    ort = dict(build_addon().BUNDLED_WHEELS)["onnxruntime"]
    assert any(t.startswith(f"CPU: ONNX Runtime {ort}") for t in rep["prefs_labels"]), \
        rep["prefs_labels"]
    assert rep["uninstall"] == ["FINISHED"]
    assert not rep["after_enabled"] and rep["after_classes"] == []
    assert not rep["after_scene_prop"]
    assert rep["left_behind"] == [], rep["left_behind"]
    assert rep["network_attempts"] == []


def test_installed_zip_brings_its_wheels_and_uninstalls_cleanly(linux_zip, tmp_path):
    """No torch, no network: the wheels Blender installs from the zip are the ones imported;
    onnxruntime runs a graph; uninstalling removes the extension and its wheels."""
    rep = _run_installed("install", linux_zip, tmp_path)
    _check_install_and_uninstall(rep)


def _cli_frames(wav, out, backend: str) -> dict:
    from model_core.cli import main
    assert main(["generate", str(wav), "-o", str(out), "--seed", "0", "--fps", "30",
                 "--backend", backend]) == 0
    z = np.load(out)
    return dict(zip([str(n) for n in z["names"]], z["weights"].T))


def test_installed_copy_generates_without_torch_the_onnx_command_lines_frames(linux_zip,
                                                                              tmp_path):
    from model_core.runtime.backends import BACKENDS, torch_available
    if "onnx" not in BACKENDS:
        pytest.skip(f"needs model_core's onnx backend (issue 14: load_model(path, device, "
                    f"backend='onnx')); this model_core runs {BACKENDS} only, and without "
                    f"torch the installed copy has nothing to run the model on")
    rep = _run_installed("generate", linux_zip, tmp_path)
    _check_install_and_uninstall(rep)
    assert rep["generate"] == ["FINISHED"]
    assert rep["state"] == "finished", rep["error"]
    assert rep["n_frames"] == 213  # 7.1 s at 30 fps
    assert rep["n_fcurves"] == 52 and rep["n_keys"] == 52 * 213
    assert rep["model_core_used"] == "bl_ext.user_default.streamtalker.model_core"
    assert rep["model_core_file_in_ext"] and rep["default_ckpt_in_ext"]
    assert not rep["project_model_core_imported"] and not rep["torch_imported"]
    keys = {ch: np.asarray(v) for ch, v in rep["keys"].items()}
    assert len(keys) == 52 and all(v is not None for v in rep["keys"].values())
    assert keys["jawOpen"].max() - keys["jawOpen"].min() > 0.2  # the jaw moves
    onnx_cli = _cli_frames(speech_path(), tmp_path / "onnx.npz", "onnx")
    # (torch's frames where this test environment has torch: Blender 5.2's has none)
    torch_cli = (_cli_frames(speech_path(), tmp_path / "torch.npz", "torch")
                 if torch_available() else None)
    for ch, k in keys.items():
        n = min(len(k), len(onnx_cli[ch]))
        assert abs(len(k) - len(onnx_cli[ch])) <= 1, (ch, len(k), len(onnx_cli[ch]))
        np.testing.assert_allclose(k[:n], onnx_cli[ch][:n], rtol=0, atol=1e-5, err_msg=ch)
        if torch_cli is not None:
            np.testing.assert_allclose(k[:n], torch_cli[ch][:n], rtol=0, atol=1e-3,
                                       err_msg=ch)
