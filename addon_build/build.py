"""One zip per platform: staged, built by Blender's ``blender_ext.py build
--split-platforms``, validated and checked, then put in place without clobbering
(:func:`build_all`, :func:`build`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .blender import _run_ext, find_blender_ext, validate
from .common import ROOT, BuildError
from .wheels import PLATFORMS, PYTHONS, fetch_wheels
from .zips import check_contents, manifest_info, stage, zip_name


def build_all(out_dir: str | os.PathLike = ROOT / "dist", force: bool = False,
              platforms=tuple(PLATFORMS), wheel_cache: str | os.PathLike | None = None,
              offline: bool = False, blender_ext: str | os.PathLike | None = None,
              log=print, update_lock: bool = False) -> dict[str, Path]:
    """Build, validate and check one zip per platform; returns ``{platform: zip path}``
    (``out_dir/<id>-<version>-<platform>.zip``).

    Args:
        out_dir: folder for the zips (created).
        force: replace existing zips (atomically: temp file, then rename).
        platforms: Blender platforms to build (keys of :data:`PLATFORMS`).
        wheel_cache: the wheel cache (default :func:`default_wheel_cache`).
        offline: never ask the package index; the cache must hold every wheel.
        blender_ext: path of ``blender_ext.py`` (default: found, see :func:`find_blender_ext`).
        update_lock: record the sha256 of wheels not yet in :data:`WHEEL_HASHES` (see
            :func:`fetch_wheels`).
    Raises:
        BuildError: a zip exists and ``force`` is false (checked before anything is built);
            a wheel is missing; a source is missing; Blender's build or validate step
            fails; a zip fails :func:`check_contents`.
    """
    info = manifest_info()
    platforms = list(dict.fromkeys(platforms))
    if not platforms:
        raise BuildError("no platform to build: name at least one of " + ", ".join(PLATFORMS))
    for p in platforms:
        if p not in PLATFORMS:
            raise BuildError(f"unknown platform {p!r}: choose from {', '.join(PLATFORMS)}")
    out_dir = Path(out_dir)
    dests = {p: out_dir / zip_name(info, p) for p in platforms}
    existing = [str(d) for d in dests.values() if d.exists()]
    if existing and not force:
        raise BuildError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}"
                         f": not overwriting (pass --force to replace, or choose another "
                         f"--out folder)")
    ext = find_blender_ext(blender_ext)
    wheels = fetch_wheels(platforms, PYTHONS, wheel_cache, offline=offline, log=log,
                          update_lock=update_lock)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="streamtalker-build-") as td:
        built: dict[str, Path] = {}
        for p in platforms:
            # one staging folder per platform: a pure-Python wheel that pip picks for one
            # platform only (sounddevice's Linux wheel) must not leak into the others
            work = Path(td) / p
            src = stage(work / info["id"], {p: wheels[p]})
            r = _run_ext(ext, "validate", str(src))
            if r.returncode != 0 or "Success" not in r.stdout:
                raise BuildError(f"Blender's extension validator rejected the add-on sources "
                                 f"for {p}: {(r.stdout + r.stderr).strip()}")
            r = _run_ext(ext, "build", "--split-platforms", "--source-dir", str(src),
                         "--output-filepath", str(work / zip_name(info)))
            z = work / zip_name(info, p)
            if r.returncode != 0 or not z.exists():
                raise BuildError(f"Blender's extension build failed for {p}: "
                                 f"{(r.stdout + r.stderr).strip()}")
            validate(z, ext)
            check_contents(z, p)
            built[p] = z
        for p in platforms:
            _place(built[p], dests[p], force)
    return dests


def _place(tmp_zip: Path, dest: Path, force: bool) -> None:
    """Move a finished zip to ``dest``: renamed over an old one with ``force``; else
    created only if absent (never clobbers a zip made meanwhile)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}-", suffix=".zip.tmp", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(tmp_zip, tmp)
        shutil.copymode(tmp_zip, tmp)  # the umask's mode, not mkstemp's private 0600
        if force:
            os.replace(tmp, dest)
            return
        try:  # atomic "create if absent"
            os.link(tmp, dest)
        except FileExistsError:
            raise BuildError(f"{dest} appeared while building: not overwriting it") from None
        except OSError:  # filesystem without hard links
            if dest.exists():
                raise BuildError(f"{dest} already exists: not overwriting it") from None
            os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def build(out_dir: str | os.PathLike = ROOT / "dist", force: bool = False,
          blender_ext: str | os.PathLike | None = None, platform: str = "linux-x64",
          wheel_cache: str | os.PathLike | None = None, offline: bool = False) -> Path:
    """Build one platform's zip (default: Linux x86_64, the platform the tests run on);
    returns its path. See :func:`build_all`."""
    return build_all(out_dir, force=force, platforms=[platform], wheel_cache=wheel_cache,
                     offline=offline, blender_ext=blender_ext)[platform]
