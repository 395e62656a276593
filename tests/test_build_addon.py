"""build_addon.py (the extension zip passes Blender's validator, vendors model_core and the
default weights, never overwrites) and the add-on's dependency installer
(streamtalker_addon/deps.py: the pip command lines, numpy left alone, sys.path handling,
the offline error and the staging swap), all without downloading anything.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import os
import sys
import threading
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import build_addon  # noqa: E402
from streamtalker_addon import deps  # noqa: E402  (no bpy needed)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """One zip for the module's tests."""
    return build_addon.build(tmp_path_factory.mktemp("dist"))


# -- the zip ------------------------------------------------------------------------------
def test_zip_passes_blenders_validator_and_is_named_after_the_manifest(built):
    info = build_addon.manifest_info()
    assert built.name == f"{info['id']}-{info['version']}.zip" == "streamtalker-0.1.0.zip"
    out = build_addon.validate(built)
    assert "Success" in out


def test_zip_vendors_model_core_weights_and_licence(built):
    with zipfile.ZipFile(built) as z:
        names = set(z.namelist())
        weights = z.read("model_core/weights/default.safetensors")
        card = z.read("model_core/weights/default.json")
        lic = z.read("LICENSE").decode("utf-8", "replace")
    for r in build_addon.REQUIRED:
        assert r in names, r
    assert weights == (ROOT / "model_core/weights/default.safetensors").read_bytes()
    assert card == (ROOT / "model_core/weights/default.json").read_bytes()
    assert "GNU GENERAL PUBLIC LICENSE" in lic
    # every module of the add-on and of model_core's Blender side is in the zip, and nothing
    # of training, evaluation or the CLIs (they never run inside Blender)
    for p in (ROOT / "streamtalker_addon").rglob("*.py"):
        if "__pycache__" not in p.parts:
            assert p.relative_to(ROOT / "streamtalker_addon").as_posix() in names, p
    blender_side = {"__init__.py", "face.py", "errors.py", "io", "runtime", "vertex", "live"}
    for p in (ROOT / "model_core").rglob("*.py"):
        if "__pycache__" in p.parts:
            continue
        rel = p.relative_to(ROOT / "model_core")
        inside = "model_core/" + rel.as_posix() in names
        assert inside == (rel.parts[0] in blender_side), (rel, inside)
    for left_out in ("training", "evaluation", "cli"):
        assert not [n for n in names if n.startswith(f"model_core/{left_out}/")], left_out
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith("streamtalker_addon/")]  # add-on at the root


def test_build_refuses_to_overwrite_and_force_replaces_atomically(built, tmp_path):
    out = tmp_path / "d"
    first = build_addon.build(out)
    before = first.read_bytes()
    os.utime(first, (1_000_000_000, 1_000_000_000))
    with pytest.raises(build_addon.BuildError, match="already exists: not overwriting"):
        build_addon.build(out)
    assert first.read_bytes() == before and first.stat().st_mtime == 1_000_000_000
    assert build_addon.main(["-o", str(out)]) == 2  # the CLI says so and fails
    second = build_addon.build(out, force=True)
    assert second == first and second.stat().st_mtime > 1_000_000_000
    assert sorted(p.name for p in out.iterdir()) == ["streamtalker-0.1.0.zip"]  # no temp left


def test_missing_validator_is_a_clear_error(tmp_path):
    with pytest.raises(build_addon.BuildError, match="blender_ext.py not found"):
        build_addon.find_blender_ext(tmp_path / "nope.py")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(build_addon.BuildError, match="rejected"):
        build_addon.validate(bad)


# -- the dependency installer -------------------------------------------------------------
def _name(req: str) -> str:
    return req.split(";")[0].split("==")[0].strip().lower().replace("_", "-")


def test_pip_commands_pin_everything_and_never_install_numpy(tmp_path):
    for platform in ("linux", "win32", "darwin"):
        cmds = deps.pip_commands(str(tmp_path), platform=platform)
        assert len(cmds) == 2
        for c in cmds:
            assert c[:4] == [sys.executable, "-m", "pip", "install"]
            assert "--no-deps" in c and "--only-binary=:all:" in c
            assert c[c.index("--target") + 1] == str(tmp_path)
            reqs = [a for a in c[4:] if "==" in a]
            assert reqs and all(_name(r) != "numpy" for r in reqs)
            assert not [a for a in c if a.lower().startswith("numpy")]
        torch_cmd = cmds[0]
        if platform == "darwin":
            assert torch_cmd[-1] == "torch==2.13.0"
            assert torch_cmd[torch_cmd.index("--index-url") + 1] == deps.PYPI_INDEX
        else:
            assert torch_cmd[-1] == "torch==2.13.0+cpu"
            assert torch_cmd[torch_cmd.index("--index-url") + 1] == deps.TORCH_CPU_INDEX
    assert all("==" in r for r in deps.REQUIREMENTS)


def test_pinned_set_is_complete():
    """Installed with --no-deps, the list must hold every dependency of torch and of the
    model's modules except numpy (checked against the metadata installed here)."""
    from packaging.requirements import Requirement
    pinned = {_name(r): r.split(";")[0].split("==")[1] for r in deps.REQUIREMENTS}
    pinned["torch"] = deps.TORCH_VERSION
    env = {"platform_system": "Linux", "sys_platform": "linux", "extra": ""}
    for name, version in pinned.items():
        if name == "colorama":
            continue  # Windows only
        dist = md.distribution(name)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            dep = req.name.lower().replace("_", "-")
            assert dep == "numpy" or dep in pinned, f"{name} needs {dep}, which is not pinned"
    for mod in deps.MODULES:  # every module the model imports is covered
        assert mod in pinned or mod.replace("_", "-") in pinned


def test_numpy_check():
    assert deps.check_numpy("1.26.4") == "1.26.4"
    assert deps.check_numpy("2.3.1") == "2.3.1"
    deps.check_numpy()  # this environment's numpy
    for bad in ("1.24.3", "2.7.0"):
        with pytest.raises(deps.DepsError, match="outside the range"):
            deps.check_numpy(bad)


def test_sys_path_is_appended_once_and_removed(tmp_path):
    d = tmp_path / "deps"
    assert deps.add_to_sys_path(str(d)) is False  # not there yet
    d.mkdir()
    (d / "streamtalker_probe_a.py").write_text("X = 1\n")
    try:
        assert deps.add_to_sys_path(str(d)) and deps.add_to_sys_path(str(d))
        assert sys.path.count(str(d)) == 1 and sys.path[-1] == str(d)  # after site-packages
        import streamtalker_probe_a
        assert streamtalker_probe_a.X == 1
        import numpy
        assert not numpy.__file__.startswith(str(d))
    finally:
        deps.remove_from_sys_path()
    assert str(d) not in sys.path


def _clean_pip_env() -> dict:
    """This process's environment without pip settings (variables and configuration files)
    that could find wheels locally or elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def test_offline_install_fails_clearly_and_leaves_the_target_alone(tmp_path):
    target = tmp_path / "ext_user" / "deps"
    target.mkdir(parents=True)
    (target / "old_marker.txt").write_text("previous install")
    dead = "http://127.0.0.1:9/simple"  # the discard port: connection refused
    cmds = deps.pip_commands("{target}", torch_index=dead, index=dead)
    env = _clean_pip_env()
    env["PIP_NO_CACHE_DIR"] = "1"
    lines = []
    with pytest.raises(deps.DepsError, match="could not reach the package index") as e:
        deps.install(str(target), cmds, env=env, on_progress=lambda f, m, line: lines.append(line))
    assert dead in str(e.value) and "Install Dependencies again" in str(e.value)
    assert sorted(p.name for p in target.parent.iterdir()) == ["deps"]  # no staging left
    assert (target / "old_marker.txt").read_text() == "previous install"


def test_explain_failure_messages():
    assert "offline" in deps.explain_failure("... NewConnectionError(...) ...", 1, "X")
    msg = deps.explain_failure("ERROR: No matching distribution found for torch==2.13.0+cpu",
                               1, "https://download.pytorch.org/whl/cpu")
    assert "no wheel for this Python/platform" in msg and "torch==2.13.0+cpu" in msg
    assert "exit status 3" in deps.explain_failure("boom\nlast line", 3, "X")


def _tiny_wheel(folder: Path) -> Path:
    """A pure-Python wheel ``streamtalker_probe_pkg-1.0`` built by hand (no network)."""
    files = {
        "streamtalker_probe_pkg/__init__.py": b"VALUE = 7\n",
        "streamtalker_probe_pkg-1.0.dist-info/METADATA":
            b"Metadata-Version: 2.1\nName: streamtalker-probe-pkg\nVersion: 1.0\n",
        "streamtalker_probe_pkg-1.0.dist-info/WHEEL":
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for n, data in files.items():
        h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{n},sha256={h},{len(data)}")
    record.append("streamtalker_probe_pkg-1.0.dist-info/RECORD,,")
    files["streamtalker_probe_pkg-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    whl = folder / "streamtalker_probe_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    return whl


def test_background_install_swaps_in_and_adds_to_sys_path(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _tiny_wheel(wheels)
    target = tmp_path / "ext_user" / "deps"
    target.mkdir(parents=True)
    (target / "old_marker.txt").write_text("replaced")
    cmd = [sys.executable, "-m", "pip", "install", "--target", "{target}", "--no-deps",
           "--no-index", "--find-links", str(wheels), "--disable-pip-version-check",
           "--progress-bar", "off", "streamtalker-probe-pkg==1.0"]
    try:
        th = deps.start_install(str(target), [cmd], env=_clean_pip_env())
        th.join(300)
        assert deps.state.status == "done", deps.state.message
        assert deps.state.fraction == 1.0 and deps.state.finished >= deps.state.started
        assert any("Successfully installed" in line for line in deps.state.log)
        assert not (target / "old_marker.txt").exists()  # the old folder was replaced
        assert sorted(p.name for p in target.parent.iterdir()) == ["deps"]
        assert str(target) in sys.path
        import streamtalker_probe_pkg
        assert streamtalker_probe_pkg.VALUE == 7
    finally:
        deps.remove_from_sys_path()
        deps.state.status = "idle"
        sys.modules.pop("streamtalker_probe_pkg", None)
    assert str(target) not in sys.path


def test_a_second_install_while_one_runs_is_refused(monkeypatch):
    ev = threading.Event()
    running = threading.Thread(target=ev.wait)
    running.start()
    monkeypatch.setattr(deps, "_thread", running)
    try:
        with pytest.raises(deps.DepsError, match="already being installed"):
            deps.start_install("/nonexistent", [["true"]])
    finally:
        ev.set()
        running.join()
