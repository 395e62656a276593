"""Build the installable Blender extension zip (add-on + vendored model_core + weights).

``python build_addon.py [-o dist/] [--force] [--blender-ext PATH]`` writes
``dist/streamtalker-<version>.zip`` (version from ``streamtalker_addon/blender_manifest.toml``):

* the add-on package ``streamtalker_addon/`` at the zip's root (manifest, ``__init__.py``, ...),
* a copy of the part of the bpy-free library that runs inside Blender as ``model_core/``
  inside it (:data:`VENDORED`: the package facade, ``face``, ``errors``, ``io``,
  ``runtime``, ``vertex``, ``live`` -- not ``training``, ``evaluation`` or ``cli``; see
  docs/architecture.md), with the bundled default model
  ``model_core/weights/default.safetensors`` + ``default.json`` (the add-on imports
  ``<addon>.model_core`` first, see ``streamtalker_addon/core.py``),
* ``LICENSE`` (the project's ``LICENSE``/``COPYING`` if present, else the GPL-3 text from
  ``/usr/share/common-licenses/GPL-3``; the manifest says GPL-3.0-or-later).

The zip is made by Blender's own ``blender_ext.py build`` and checked with
``blender_ext.py validate``; both scripts ship inside the ``bpy`` module
(``<site-packages>/bpy/5.0/scripts/addons_core/bl_pkg/cli/blender_ext.py``) and in every
Blender install (``<blender>/<version>/scripts/addons_core/bl_pkg/cli/``).

Python dependencies (torch, scipy, soxr, soundfile, safetensors, tqdm) are *not* bundled:
the add-on's preferences have an "Install Dependencies" button (``streamtalker_addon/deps.py``).

An existing zip is never overwritten: the build refuses (exit status 2) unless ``--force``
is given, and then the new zip is written to a temporary file and renamed over the old one.
Errors are one clear sentence on stderr (exit status 2), raised as :class:`BuildError` by
:func:`build` for callers such as the tests.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON_DIR = ROOT / "streamtalker_addon"
MODEL_CORE_DIR = ROOT / "model_core"
MANIFEST = ADDON_DIR / "blender_manifest.toml"
#: Files every zip must hold (paths inside the zip).
REQUIRED = ("blender_manifest.toml", "__init__.py", "deps.py", "LICENSE",
            "model_core/__init__.py", "model_core/weights/default.safetensors",
            "model_core/weights/default.json")
#: What of model_core goes into the zip (paths relative to model_core/): the layers that run
#: inside Blender. tests/test_layers.py checks that none of them imports anything else.
VENDORED = ("__init__.py", "face.py", "errors.py", "io", "runtime", "vertex", "live", "weights")
LICENSE_CANDIDATES = (ROOT / "LICENSE", ROOT / "COPYING", ROOT / "LICENSE.txt",
                      Path("/usr/share/common-licenses/GPL-3"))
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.egg-info", ".pytest_cache",
                                 "*.tmp", ".*.swp")


class BuildError(RuntimeError):
    """The extension could not be built or did not validate (message: one sentence)."""


def manifest_info(manifest: Path = MANIFEST) -> dict:
    """The parsed ``blender_manifest.toml``.

    Raises:
        BuildError: missing or not valid TOML, or no ``id``/``version``.
    """
    if not manifest.exists():
        raise BuildError(f"{manifest} does not exist: the add-on is missing; nothing to package")
    try:
        info = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise BuildError(f"{manifest} is not valid TOML: {e}") from None
    for k in ("id", "version"):
        if not info.get(k):
            raise BuildError(f"{manifest} has no '{k}'")
    return info


def find_blender_ext(explicit: str | os.PathLike | None = None) -> Path:
    """Path of Blender's ``blender_ext.py``: ``explicit``, else ``$BLENDER_EXT_PY``, else the
    copy inside the installed ``bpy`` module (found without importing it).

    Raises:
        BuildError: not found (the message says how to get it).
    """
    cand = explicit or os.environ.get("BLENDER_EXT_PY")
    if cand:
        p = Path(cand).expanduser()
        if not p.is_file():
            raise BuildError(f"blender_ext.py not found at {p}")
        return p
    spec = importlib.util.find_spec("bpy")
    if spec is not None and spec.origin:
        hits = sorted(glob.glob(os.path.join(os.path.dirname(spec.origin), "*", "scripts",
                                             "addons_core", "bl_pkg", "cli", "blender_ext.py")))
        if hits:
            return Path(hits[-1])
    raise BuildError("Blender's extension tool blender_ext.py was not found: install the bpy "
                     "module (`bash tools/setup.sh` installs bpy==5.0.1) or pass --blender-ext "
                     "<blender>/<version>/scripts/addons_core/bl_pkg/cli/blender_ext.py")


def _run_ext(ext: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # blender_ext.py is self-contained
    return subprocess.run([sys.executable, str(ext), *args], capture_output=True, text=True,
                          env=env)


def validate(zip_or_dir: str | os.PathLike, blender_ext: str | os.PathLike | None = None) -> str:
    """Run ``blender_ext.py validate`` on a zip or source folder; returns its output.

    Raises:
        BuildError: the validator rejects it (its message is included).
    """
    ext = find_blender_ext(blender_ext)
    r = _run_ext(ext, "validate", str(zip_or_dir))
    out = (r.stdout + r.stderr).strip()
    if r.returncode != 0 or "Success" not in r.stdout:
        raise BuildError(f"Blender's extension validator rejected {zip_or_dir}: {out}")
    return out


def _license_file() -> Path:
    for p in LICENSE_CANDIDATES:
        if p.is_file():
            return p
    raise BuildError("no licence text found: add the GPL-3.0 text as LICENSE at the project "
                     "root (the manifest declares GPL-3.0-or-later)")


def stage(dest: Path) -> Path:
    """Copy what goes into the zip into the new folder ``dest``: the add-on, the Blender side
    of ``model_core`` (:data:`VENDORED`, with its weights) inside it, and ``LICENSE``.
    Returns ``dest``.

    Raises:
        BuildError: the add-on, model_core or the bundled default model is missing.
    """
    manifest_info()
    for p in (MODEL_CORE_DIR / "__init__.py", MODEL_CORE_DIR / "weights" / "default.safetensors",
              MODEL_CORE_DIR / "weights" / "default.json"):
        if not p.is_file():
            raise BuildError(f"{p} is missing: the zip must carry model_core and the bundled "
                             f"default model")
    shutil.copytree(ADDON_DIR, dest, ignore=_IGNORE)
    if (dest / "model_core").exists():
        raise BuildError(f"{ADDON_DIR}/model_core exists: remove it (build_addon.py vendors "
                         f"the project's model_core itself)")
    for name in VENDORED:
        src, out = MODEL_CORE_DIR / name, dest / "model_core" / name
        if src.is_dir():
            shutil.copytree(src, out, ignore=_IGNORE)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)
    shutil.copyfile(_license_file(), dest / "LICENSE")
    return dest


def zip_name(info: dict | None = None) -> str:
    """``<id>-<version>.zip`` from the manifest."""
    info = info or manifest_info()
    return f"{info['id']}-{info['version']}.zip"


def check_contents(zip_path: str | os.PathLike) -> list[str]:
    """The zip's file names, after checking the :data:`REQUIRED` files are there.

    Raises:
        BuildError: a required file is missing or the zip is unreadable.
    """
    try:
        with zipfile.ZipFile(zip_path) as z:
            names = z.namelist()
            bad = z.testzip()
    except zipfile.BadZipFile as e:
        raise BuildError(f"{zip_path} is not a readable zip: {e}") from None
    if bad:
        raise BuildError(f"{zip_path}: corrupt member {bad}")
    missing = [r for r in REQUIRED if r not in names]
    if missing:
        raise BuildError(f"{zip_path} lacks {', '.join(missing)}")
    return names


def build(out_dir: str | os.PathLike = ROOT / "dist", force: bool = False,
          blender_ext: str | os.PathLike | None = None) -> Path:
    """Build, validate and check the extension zip; returns its path
    (``out_dir/<id>-<version>.zip``).

    Args:
        out_dir: folder for the zip (created).
        force: replace an existing zip (atomically: temp file, then rename).
        blender_ext: path of ``blender_ext.py`` (default: found, see :func:`find_blender_ext`).
    Raises:
        BuildError: the zip exists and ``force`` is false; a source is missing; Blender's
            build or validate step fails; the zip lacks a required file.
    """
    info = manifest_info()
    out_dir = Path(out_dir)
    dest = out_dir / zip_name(info)
    if dest.exists() and not force:
        raise BuildError(f"{dest} already exists: not overwriting it (pass --force to replace "
                         f"it, or choose another --out folder)")
    ext = find_blender_ext(blender_ext)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="streamtalker-build-") as td:
        src = stage(Path(td) / info["id"])
        r = _run_ext(ext, "validate", str(src))
        if r.returncode != 0 or "Success" not in r.stdout:
            raise BuildError(f"Blender's extension validator rejected the add-on sources: "
                             f"{(r.stdout + r.stderr).strip()}")
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}-", suffix=".zip.tmp", dir=out_dir)
        os.close(fd)
        os.unlink(tmp)  # blender_ext.py writes it
        try:
            r = _run_ext(ext, "build", "--source-dir", str(src), "--output-filepath", tmp)
            if r.returncode != 0 or not os.path.exists(tmp):
                raise BuildError(f"Blender's extension build failed: "
                                 f"{(r.stdout + r.stderr).strip()}")
            validate(tmp, ext)
            check_contents(tmp)
            if force:
                os.replace(tmp, dest)
            else:
                try:  # atomic "create if absent": never clobbers a zip made meanwhile
                    os.link(tmp, dest)
                except FileExistsError:
                    raise BuildError(f"{dest} appeared while building: not "
                                     f"overwriting it") from None
                except OSError:  # filesystem without hard links
                    if dest.exists():
                        raise BuildError(f"{dest} already exists: not overwriting it") from None
                    os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return dest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default=str(ROOT / "dist"),
                    help="output folder (default: dist/)")
    ap.add_argument("--force", action="store_true", help="replace an existing zip")
    ap.add_argument("--blender-ext", default=None,
                    help="path of blender_ext.py (default: the one inside the bpy module)")
    args = ap.parse_args(argv)
    try:
        path = build(args.out, force=args.force, blender_ext=args.blender_ext)
    except BuildError as e:
        print(f"build_addon: {e}", file=sys.stderr)
        return 2
    names = check_contents(path)
    size = path.stat().st_size / 1e6
    print(f"build_addon: {path} ({size:.1f} MB, {len(names)} files; vendored model_core's "
          f"Blender side ({', '.join(VENDORED)}) and default weights; passed Blender's "
          f"extension validator)")
    print(f"build_addon: install in Blender with Edit > Preferences > Get Extensions > "
          f"Install from Disk, then press 'Install Dependencies' in the add-on's preferences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
