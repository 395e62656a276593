"""What goes into a zip and what a built zip must hold: the manifest, the vendored part of
``model_core`` (:data:`VENDORED`), the licence, the wheels (:func:`stage`), and the checks of
a built zip (:func:`check_contents`)."""

from __future__ import annotations

import os
import re
import shutil
import tomllib
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name

from .common import ADDON_DIR, MANIFEST, MODEL_CORE_DIR, ROOT, BuildError
from .wheels import (BUNDLED_WHEELS, NEVER_BUNDLED, PYTHONS, WHEEL_DIR, is_pinned, parse_wheel,
                     wheel_fits_python, wheel_platforms)

#: Files every zip must hold (paths inside the zip).
REQUIRED = ("blender_manifest.toml", "__init__.py", "LICENSE",
            "model_core/__init__.py", "model_core/weights/default.safetensors",
            "model_core/weights/default.json")
#: What of model_core goes into the zip (paths relative to model_core/): the layers that run
#: inside Blender. tests/test_layers.py checks that none of them imports anything else.
VENDORED = ("__init__.py", "face.py", "errors.py", "interrupt.py", "io", "runtime", "vertex", "live", "weights")
LICENSE_CANDIDATES = (ROOT / "LICENSE", ROOT / "COPYING", ROOT / "LICENSE.txt",
                      Path("/usr/share/common-licenses/GPL-3"))
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.egg-info", ".pytest_cache",
                                 "*.tmp", ".*.swp")


def library_version() -> str:
    """``model_core.__version__`` (read from ``model_core/__init__.py``, not imported): the one
    version of StreamTalker."""
    text = (MODEL_CORE_DIR / "__init__.py").read_text(encoding="utf-8")
    m = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    if m is None:
        raise BuildError(f"{MODEL_CORE_DIR / '__init__.py'} has no __version__ = \"...\" line")
    return m.group(1)


def manifest_info(manifest: Path = MANIFEST) -> dict:
    """The parsed ``blender_manifest.toml``.

    Raises:
        BuildError: missing or not valid TOML, no ``id``/``version``, or (the add-on's own
            manifest) a version other than ``model_core.__version__``.
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
    if Path(manifest) == MANIFEST and info["version"] != library_version():
        raise BuildError(f"{manifest} says version {info['version']!r}, model_core.__version__ "
                         f"{library_version()!r}: set the manifest's version to model_core's")
    for k in ("wheels", "platforms"):
        if k in info:
            raise BuildError(f"{manifest} sets '{k}': remove it (build_addon.py writes "
                             f"'wheels' and 'platforms' from BUNDLED_WHEELS and PLATFORMS)")
    return info


def _license_file() -> Path:
    for p in LICENSE_CANDIDATES:
        if p.is_file():
            return p
    raise BuildError("no licence text found: add the GPL-3.0 text as LICENSE at the project "
                     "root (the manifest declares GPL-3.0-or-later)")


def _manifest_with(text: str, platforms: list[str], wheels: list[str]) -> str:
    """The manifest text with top-level ``platforms`` and ``wheels`` inserted before its
    first table (so they stay top-level keys)."""
    def arr(xs):
        return "[\n" + "".join(f'  "{x}",\n' for x in xs) + "]"
    block = (f"# Written by build_addon.py from BUNDLED_WHEELS and PLATFORMS.\n"
             f"platforms = {arr(platforms)}\nwheels = {arr(wheels)}\n\n")
    m = re.search(r"^\[", text, flags=re.M)
    return text + "\n" + block if m is None else text[:m.start()] + block + text[m.start():]


def stage(dest: Path, wheels: dict[str, list[Path]] | None = None) -> Path:
    """Copy what goes into the zip into the new folder ``dest``: the add-on, the Blender side
    of ``model_core`` (:data:`VENDORED`, with its weights) inside it, ``LICENSE``, and the
    ``wheels`` (``{platform: [paths]}`` from :func:`fetch_wheels`) into ``wheels/`` with the
    manifest's ``platforms`` and ``wheels`` written. Returns ``dest``.

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
    if (dest / WHEEL_DIR).exists():
        raise BuildError(f"{ADDON_DIR}/{WHEEL_DIR} exists: remove it (build_addon.py puts "
                         f"the wheels there from its cache)")
    for name in VENDORED:
        src, out = MODEL_CORE_DIR / name, dest / "model_core" / name
        if src.is_dir():
            shutil.copytree(src, out, ignore=_IGNORE)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)
    shutil.copyfile(_license_file(), dest / "LICENSE")
    if wheels:
        (dest / WHEEL_DIR).mkdir()
        names = []
        for p in sorted({p for ps in wheels.values() for p in ps}, key=lambda p: p.name):
            shutil.copyfile(p, dest / WHEEL_DIR / p.name)
            names.append(f"./{WHEEL_DIR}/{p.name}")
        mf = dest / "blender_manifest.toml"
        mf.write_text(_manifest_with(mf.read_text(encoding="utf-8"), list(wheels), names),
                      encoding="utf-8")
    return dest


def zip_name(info: dict | None = None, platform: str | None = None) -> str:
    """``<id>-<version>-<platform>.zip`` (``linux-x64`` -> ``linux_x64``, as Blender's
    ``--split-platforms`` names them); ``<id>-<version>.zip`` without a platform."""
    info = info or manifest_info()
    tail = f"-{platform.replace('-', '_')}" if platform else ""
    return f"{info['id']}-{info['version']}{tail}.zip"


def zip_manifest(zip_path: str | os.PathLike) -> dict:
    """The manifest inside a built zip, with Blender's ``[build.generated]`` values
    (``platforms``, ``wheels``) moved to the top level, as Blender reads them.

    Raises:
        BuildError: no readable manifest.
    """
    try:
        with zipfile.ZipFile(zip_path) as z:
            info = tomllib.loads(z.read("blender_manifest.toml").decode("utf-8"))
    except (KeyError, zipfile.BadZipFile, tomllib.TOMLDecodeError, OSError) as e:
        raise BuildError(f"{zip_path} has no readable blender_manifest.toml ({e})") from None
    info.update(info.get("build", {}).get("generated", {}))
    return info


def check_contents(zip_path: str | os.PathLike, platform: str | None = None) -> list[str]:
    """The zip's file names, after checking it: the :data:`REQUIRED` files are there; for a
    platform zip, the manifest's ``platforms`` is ``[platform]``, every wheel it lists is in
    the zip and every wheel in the zip is listed, each fits the platform, every project of
    :data:`BUNDLED_WHEELS` has a wheel of its pinned version for every Python of
    :data:`PYTHONS`, and nothing of :data:`NEVER_BUNDLED` is there.

    Raises:
        BuildError: what is wrong, naming the zip and the file.
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
    if platform is None:
        return names
    info = zip_manifest(zip_path)
    if info.get("platforms") != [platform]:
        raise BuildError(f"{zip_path}: its manifest says platforms = {info.get('platforms')}, "
                         f"expected [{platform!r}]")
    listed = [w[2:] if w.startswith("./") else w for w in info.get("wheels", [])]
    inside = [n for n in names if n.endswith(".whl")]
    if sorted(listed) != sorted(inside):
        raise BuildError(f"{zip_path}: the manifest's wheels and the zip's .whl files differ "
                         f"(listed, not in the zip: {sorted(set(listed) - set(inside))}; in "
                         f"the zip, not listed: {sorted(set(inside) - set(listed))})")
    for w in listed:
        fits = wheel_platforms(w)
        if "any" not in fits and platform not in fits:
            raise BuildError(f"{zip_path}: {w} is not a {platform} wheel")
        if parse_wheel(w)[0] in {canonicalize_name(n) for n in NEVER_BUNDLED}:
            raise BuildError(f"{zip_path} bundles {w}: numpy comes with Blender and torch is "
                             f"never bundled")
    for project, version in BUNDLED_WHEELS:
        for python in PYTHONS:
            if not [w for w in listed if is_pinned(w, project, version)
                    and wheel_fits_python(w, python)]:
                raise BuildError(f"{zip_path} has no {project} {version} wheel for Python "
                                 f"{python}")
    return names
