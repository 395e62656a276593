"""build_addon.py: the per-platform extension zips (Blender's validator passes; model_core's
Blender side, the default weights and the pinned wheels of both Pythons are inside and listed
in the manifest; no numpy or torch), the wheel cache (reused offline, damaged files named),
never overwriting, and an add-on that installs and downloads nothing at run time.

The Linux zip is built from the wheel cache (tools/test.sh's set-up fills it; filled here from
PyPI when empty; skipped only when it is empty and PyPI is unreachable, see wheelcache.py).
"""

from __future__ import annotations

import ast
import os
import shutil
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from wheelcache import build_addon, wheels_or_skip

ROOT = Path(__file__).resolve().parents[1]
ba = build_addon()
from addon_build import wheels  # noqa: E402  (importable once build_addon() put ROOT on sys.path)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The Linux zip, built once for the module's tests from the cached wheels."""
    wheels_or_skip("linux-x64")
    path = ba.build(tmp_path_factory.mktemp("dist"), offline=True)
    print(f"\nbuild_addon: {path.name}: {path.stat().st_size / 1e6:.1f} MB")
    return path


# -- the zip ------------------------------------------------------------------------------
@pytest.mark.slow   # builds the extension zip
def test_linux_zip_passes_blenders_validator_and_is_named_for_its_platform(built):
    info = ba.manifest_info()
    assert built.name == f"{info['id']}-{info['version']}-linux_x64.zip" \
        == "streamtalker-0.1.0-linux_x64.zip"
    out = ba.validate(built)
    assert "Success" in out


@pytest.mark.slow   # builds the extension zip
def test_zip_bundles_the_pinned_wheels_of_both_pythons_and_lists_them(built):
    names = ba.check_contents(built, "linux-x64")  # the build's own check, run again
    info = ba.zip_manifest(built)
    assert info["platforms"] == ["linux-x64"]
    listed = sorted(w.removeprefix("./") for w in info["wheels"])
    inside = sorted(n for n in names if n.endswith(".whl"))
    assert listed == inside and all(n.startswith("wheels/") for n in inside)
    # the manifest Blender reads at install time says the same at the top level
    with zipfile.ZipFile(built) as z:
        raw = tomllib.loads(z.read("blender_manifest.toml").decode())
    assert raw["platforms"] == ["linux-x64"] and sorted(raw["wheels"]) == sorted(info["wheels"])
    projects = {ba.parse_wheel(n)[0] for n in inside}
    assert projects == {canonicalize_name(p) for p, _ in ba.BUNDLED_WHEELS}
    assert not projects & {"numpy", "torch", "sympy", "mpmath"}
    for project, version in ba.BUNDLED_WHEELS:
        mine = [n for n in inside if ba.is_pinned(n, project, version)]
        for python in ("3.11", "3.13"):
            fits = [n for n in mine if ba.wheel_fits_python(n, python)]
            assert len(fits) == 1, (project, python, mine)  # exactly one per Python
        for n in mine:
            assert ba.wheel_platforms(n) & {"any", "linux-x64"}, n
    size_mb = built.stat().st_size / 1e6
    print(f"\n{built.name}: {size_mb:.1f} MB, {len(inside)} wheels")
    assert size_mb < 100, f"{built.name} is {size_mb:.1f} MB"
    # the source manifest itself lists none: the build writes them from BUNDLED_WHEELS
    src = tomllib.loads((ROOT / "streamtalker_addon/blender_manifest.toml").read_text())
    assert "wheels" not in src and "platforms" not in src


@pytest.mark.slow   # builds the extension zip
def test_zip_vendors_model_core_weights_and_licence(built):
    with zipfile.ZipFile(built) as z:
        names = set(z.namelist())
        weights = z.read("model_core/weights/default.safetensors")
        card = z.read("model_core/weights/default.json")
        lic = z.read("LICENSE").decode("utf-8", "replace")
    for r in ba.REQUIRED:
        assert r in names, r
    assert weights == (ROOT / "model_core/weights/default.safetensors").read_bytes()
    assert card == (ROOT / "model_core/weights/default.json").read_bytes()
    assert "GNU GENERAL PUBLIC LICENSE" in lic
    # the default model's ONNX graphs travel with it, whatever their layout
    for p in (ROOT / "model_core/weights").rglob("*"):
        if p.is_file() and "__pycache__" not in p.parts:
            assert "model_core/weights/" + p.relative_to(ROOT / "model_core/weights").as_posix() \
                in names, p
    # every module of the add-on and of model_core's Blender side is in the zip, and nothing
    # of training, evaluation or the CLIs (they never run inside Blender)
    for p in (ROOT / "streamtalker_addon").rglob("*.py"):
        if "__pycache__" not in p.parts:
            assert p.relative_to(ROOT / "streamtalker_addon").as_posix() in names, p
    blender_side = {"__init__.py", "face.py", "errors.py", "interrupt.py", "io", "runtime", "vertex", "live"}
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
    assert "deps.py" not in names


@pytest.mark.slow   # builds the extension zip
def test_build_refuses_to_overwrite_and_force_replaces_atomically(built, tmp_path):
    out = tmp_path / "d"
    first = ba.build(out, offline=True)
    before = first.read_bytes()
    os.utime(first, (1_000_000_000, 1_000_000_000))
    with pytest.raises(ba.BuildError, match="already exists?: not overwriting"):
        ba.build(out, offline=True)
    assert first.read_bytes() == before and first.stat().st_mtime == 1_000_000_000
    assert ba.main(["-o", str(out), "--platform", "linux-x64", "--offline"]) == 2
    second = ba.build(out, force=True, offline=True)
    assert second == first and second.stat().st_mtime > 1_000_000_000
    assert sorted(p.name for p in out.iterdir()) == ["streamtalker-0.1.0-linux_x64.zip"]


@pytest.mark.slow   # builds the extension zip
def test_an_empty_cache_offline_and_a_damaged_wheel_are_clear_errors(built, tmp_path):
    with pytest.raises(ba.BuildError, match="no complete wheel set for linux-x64.*"
                                            "--download-only"):
        ba.fetch_wheels(["linux-x64"], cache=tmp_path / "empty", offline=True)
    # a cache holding one truncated wheel: the build names the file and the fix
    cache = tmp_path / "cache"
    cache.mkdir()
    good = wheels_or_skip("linux-x64")
    for w in good:
        try:
            os.link(w, cache / w.name)
        except OSError:
            shutil.copyfile(w, cache / w.name)
    victim = next(w for w in good if w.name.startswith("soxr-"))
    (cache / victim.name).unlink()
    (cache / victim.name).write_bytes(victim.read_bytes()[:5000])
    with pytest.raises(ba.BuildError, match=f"{victim.name}.*delete"):
        ba.build(tmp_path / "out", wheel_cache=cache, offline=True)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.slow   # builds the extension zip
def test_wheels_are_checked_against_the_recorded_sha256(built, tmp_path, monkeypatch):
    """Every bundled wheel's sha256 is in tools/wheels.sha256 (checked against PyPI's
    published hashes when it was written); a cached wheel that differs, or one not recorded,
    stops the build with the file and the fix."""
    recorded = ba.read_hashes()
    good = wheels_or_skip("linux-x64")
    for w in good:
        assert recorded[w.name] == ba.sha256_of(w), w.name
    lock = tmp_path / "wheels.sha256"
    victim = next(w for w in good if w.name.startswith("packaging-"))
    ba.write_hashes({**recorded, victim.name: "0" * 64}, lock)
    monkeypatch.setattr(wheels, "WHEEL_HASHES", lock)   # where fetch_wheels reads it
    with pytest.raises(ba.BuildError, match=f"{victim.name} has sha256 .* records 0000.*delete"):
        ba.fetch_wheels(["linux-x64"], offline=True)
    ba.write_hashes({n: h for n, h in recorded.items() if n != victim.name}, lock)
    with pytest.raises(ba.BuildError, match=f"{victim.name} has no sha256 .*--update-lock"):
        ba.fetch_wheels(["linux-x64"], offline=True)
    ba.fetch_wheels(["linux-x64"], offline=True, update_lock=True)  # records it again
    assert ba.read_hashes(lock)[victim.name] == ba.sha256_of(victim)
    assert ba.read_hashes(lock) == {n: h for n, h in recorded.items()}


def test_missing_validator_is_a_clear_error(tmp_path):
    with pytest.raises(ba.BuildError, match="blender_ext.py not found"):
        ba.find_blender_ext(tmp_path / "nope.py")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ba.BuildError, match="rejected"):
        ba.validate(bad)


def test_wheel_names_map_to_blender_platforms_and_pythons():
    p, f = ba.wheel_platforms, ba.wheel_fits_python
    assert p("cffi-2.1.1-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl") \
        == {"linux-x64"}
    assert p("protobuf-7.36.2-cp310-abi3-macosx_10_9_universal2.whl") \
        == {"macos-x64", "macos-arm64"}
    assert p("sounddevice-0.5.6-py3-none-win_amd64.whl") == {"windows-x64"}
    assert p("cffi-2.1.1-cp311-cp311-macosx_10_15_x86_64.whl") == {"macos-x64"}
    assert p("packaging-26.4-py3-none-any.whl") == {"any"}
    assert p("onnxruntime-1.23.2-cp313-cp313-macosx_13_0_arm64.whl") == {"macos-arm64"}
    assert p("onnxruntime-1.23.2-cp313-cp313-macosx_13_0_x86_64.whl") == {"macos-x64"}
    assert f("soxr-1.1.0-cp312-abi3-win_amd64.whl", "3.13")
    assert not f("soxr-1.1.0-cp312-abi3-win_amd64.whl", "3.11")
    assert f("onnxruntime-1.32.0-cp311-cp311-win_amd64.whl", "3.11")
    assert not f("onnxruntime-1.32.0-cp311-cp311-win_amd64.whl", "3.13")
    assert f("flatbuffers-25.12.19-py2.py3-none-any.whl", "3.13")
    assert not f("onnxruntime-1.32.0-cp313-cp313t-manylinux_2_28_x86_64.whl", "3.13")
    assert not f("onnxruntime-1.23.2-cp311-cp311d-manylinux_2_28_x86_64.whl", "3.11")
    assert f("typing_extensions-4.16.0-py3-none-any.whl", "3.11")
    assert ba.is_pinned("typing_extensions-4.16.0-py3-none-any.whl", "typing-extensions",
                        "4.16.0")
    assert not ba.is_pinned("typing_extensions-4.16.0-py3-none-any.whl", "typing_extensions",
                            "4.15.0")
    with pytest.raises(ba.BuildError, match="not a wheel"):
        ba.parse_wheel("numpy-1.26.4.tar.gz")


def test_pins_exclude_numpy_and_torch_and_name_every_platform():
    pinned = {canonicalize_name(p) for p, _ in ba.BUNDLED_WHEELS}
    assert not pinned & {canonicalize_name(n) for n in ba.NEVER_BUNDLED}
    assert {"onnxruntime", "soxr", "soundfile", "sounddevice"} <= pinned
    assert set(ba.PLATFORMS) == {"linux-x64", "windows-x64", "macos-arm64", "macos-x64"}
    assert ba.PYTHONS == ("3.11", "3.13")


# -- nothing installs or downloads at run time --------------------------------------------
def test_the_addon_has_no_installer_and_no_network_code():
    """No dependency installer, no pip, no sockets or URL fetching in the add-on (Blender's
    rules for extensions: self-contained, nothing downloaded), and no process started but
    Blender itself."""
    addon = ROOT / "streamtalker_addon"
    assert not (addon / "deps.py").exists()
    banned = {"subprocess", "urllib", "urllib.request", "http", "http.client", "socket",
              "requests", "pip", "ensurepip"}
    # The one process the add-on starts: Blender itself (its own binary, or the Python
    # running the bpy module), for the mixdown of a retimed strip, which crashes Blender
    # now and then (audio_source.isolated_mixdown); nothing else may import subprocess.
    allowed = {("audio_source.py", "subprocess")}
    for p in addon.rglob("*.py"):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            else:
                continue
            for m in mods:
                if (p.name, m) in allowed:
                    continue
                assert m not in banned and m.split(".")[0] not in banned, (p, m)
        text = p.read_text(encoding="utf-8")
        assert "install_deps" not in text and "Install Dependencies" not in text, p
    # the child it starts runs Blender's binary or the bpy module's Python, and no pip
    child = (addon / "audio_source.py").read_text(encoding="utf-8")
    assert "bpy.app.binary_path" in child and "sys.executable" in child
    assert "pip" not in child and "install" not in child


def test_cuda_needs_torch_and_the_cpu_runs_onnx(monkeypatch):
    """The CPU runs on the bundled ONNX Runtime (one backend per device, whatever the model
    kind: tests/blender/test_blender_vertex.py runs a vertex model there), with or without
    torch; CUDA needs torch."""
    from streamtalker_addon import core
    assert core.backend_for("cpu") == "onnx"
    monkeypatch.setattr(core, "torch_available", lambda: True)
    assert core.backend_for("cuda") == "torch"
    monkeypatch.setattr(core, "torch_available", lambda: False)
    with pytest.raises(ValueError, match="PyTorch is not installed: set Device to CPU"):
        core.backend_for("cuda")
    assert core.backend_for("cpu") == "onnx"


def test_the_test_environment_runs_the_onnxruntime_the_zips_bundle():
    """tools/setup.sh installs the pinned onnxruntime, so the CLI's frames and an installed
    add-on's are computed by the same library (releases differ by ~1e-5 on real clips)."""
    import onnxruntime
    assert onnxruntime.__version__ == dict(ba.BUNDLED_WHEELS)["onnxruntime"], \
        "the installed onnxruntime is not build_addon's pin: run tools/setup.sh"
