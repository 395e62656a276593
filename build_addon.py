"""Build the installable Blender extension: one zip per platform (add-on + vendored
model_core + weights + the bundled wheels of its Python dependencies).

``python build_addon.py [-o dist/] [--force] [--platform linux-x64 ...] [--wheel-cache DIR]
[--offline] [--download-only] [--update-lock] [--blender-ext PATH]`` writes, for each platform in
:data:`PLATFORMS` (Blender's ``--split-platforms`` convention and names)::

    dist/streamtalker-<version>-linux_x64.zip
    dist/streamtalker-<version>-windows_x64.zip
    dist/streamtalker-<version>-macos_arm64.zip
    dist/streamtalker-<version>-macos_x64.zip

(version from ``streamtalker_addon/blender_manifest.toml``). Each zip holds

* the add-on package ``streamtalker_addon/`` at the zip's root (manifest, ``__init__.py``, ...),
* a copy of the part of the bpy-free library that runs inside Blender as ``model_core/``
  inside it (:data:`VENDORED`: the package facade, ``face``, ``errors``, ``interrupt``, ``io``,
  ``runtime``, ``vertex``, ``live`` -- not ``training``, ``evaluation`` or ``cli``; see
  docs/architecture.md), with everything in ``model_core/weights/``: the bundled default
  model ``default.safetensors`` + ``default.json`` and, where present, its ONNX graphs
  (``*.onnx`` / a ``default.onnx/`` folder) that the onnxruntime backend runs (the add-on
  imports ``<addon>.model_core`` first, see ``streamtalker_addon/core.py``),
* ``wheels/*.whl``: the wheels of :data:`BUNDLED_WHEELS` (onnxruntime and its run-time
  requirements flatbuffers, packaging, protobuf; soxr; soundfile + cffi, pycparser,
  typing_extensions; sounddevice) for that platform and for both Pythons of
  :data:`PYTHONS` (3.11: Blender 4.2-5.0; 3.13: Blender 5.1+), listed in the zip's manifest
  (``wheels``, ``platforms``). Blender installs the ones matching its own Python when the
  extension is installed; nothing is downloaded at run time. Not bundled: numpy (Blender
  ships it; every bundled wheel works with numpy 1.26 and 2.x), torch (optional: the add-on
  uses it only where it happens to be importable, for CUDA), and onnxruntime's optional
  extras (sympy + mpmath for ``symbolic``, ml_dtypes for ``quantization``: onnxruntime
  imports and runs sessions without them),
* ``LICENSE`` (the project's ``LICENSE``/``COPYING`` if present, else the GPL-3 text from
  ``/usr/share/common-licenses/GPL-3``; the manifest says GPL-3.0-or-later).

onnxruntime is pinned to 1.23.2: the last release with macOS x86_64 wheels (1.24+ have
``macosx_14_0_arm64`` only), and its wheels are about 40 % smaller than 1.32.0's (Linux
17.0 MB against 27.8 MB per Python), which keeps every zip under 60 MB.

**Wheels** are downloaded at build time by ``pip download --only-binary=:all: --no-deps
--platform ... --python-version ... --implementation cp --abi ...`` into a cache folder
(:func:`default_wheel_cache`: ``$STREAMTALKER_WHEEL_CACHE``, else
``$XDG_CACHE_HOME/streamtalker/wheels``, else ``~/.cache/streamtalker/wheels``), never into
the project and never committed. A build first resolves from the cache alone
(``--no-index --find-links``) and asks the package index only for what is missing
(``--offline``: never). pip checks each download against the sha256 the index publishes;
the build then checks every wheel it bundles against the sha256 recorded in
``tools/wheels.sha256`` (:data:`WHEEL_HASHES`; ``--update-lock`` records new ones after a
pin changes) and that it is a readable zip whose ``METADATA`` names the pinned project and
version.

The zips are made by Blender's own ``blender_ext.py build --split-platforms`` and each is
checked with ``blender_ext.py validate`` and by :func:`check_contents` (the manifest's
``platforms``/``wheels`` agree with the zip; every pinned project has a wheel for every
Python; no numpy or torch). Both scripts ship inside the ``bpy`` module
(``<site-packages>/bpy/5.0/scripts/addons_core/bl_pkg/cli/blender_ext.py``) and in every
Blender install (``<blender>/<version>/scripts/addons_core/bl_pkg/cli/``).

An existing zip is never overwritten: the build refuses (exit status 2, before building
anything) unless ``--force`` is given, and then each new zip is written to a temporary file
and renamed over the old one. Errors are one clear sentence on stderr (exit status 2),
raised as :class:`BuildError` by :func:`build` for callers such as the tests.

This file is the command line; the work is in the package ``addon_build/`` beside it, by job
(``wheels``: the pins and the wheel cache, wheel tags read with ``packaging``; ``blender``:
Blender's ``blender_ext.py``; ``zips``: staging and checking zips; ``build``: one zip per
platform). Its public names are importable from here (``build_addon.BUNDLED_WHEELS``,
``build_addon.build_all`` ...).
"""

from __future__ import annotations

import argparse
import sys
import zipfile

from addon_build.blender import find_blender_ext, validate
from addon_build.build import build, build_all
from addon_build.common import ADDON_DIR, MANIFEST, MODEL_CORE_DIR, ROOT, BuildError
from addon_build.wheels import (BUNDLED_WHEELS, NEVER_BUNDLED, PLATFORMS, PYTHONS, WHEEL_DIR,
                                WHEEL_HASHES, check_hashes, check_wheel, default_wheel_cache,
                                fetch_wheels, is_pinned, parse_wheel, read_hashes, sha256_of,
                                wheel_fits_python, wheel_platforms, write_hashes)
from addon_build.zips import (REQUIRED, VENDORED, check_contents, manifest_info, stage,
                              zip_manifest, zip_name)

__all__ = ["ADDON_DIR", "BUNDLED_WHEELS", "BuildError", "MANIFEST", "MODEL_CORE_DIR",
           "NEVER_BUNDLED", "PLATFORMS", "PYTHONS", "REQUIRED", "ROOT", "VENDORED", "WHEEL_DIR",
           "WHEEL_HASHES", "build", "build_all", "check_contents", "check_hashes", "check_wheel",
           "default_wheel_cache", "fetch_wheels", "find_blender_ext", "is_pinned",
           "manifest_info", "parse_wheel", "read_hashes", "sha256_of", "stage", "validate",
           "wheel_fits_python", "wheel_platforms", "write_hashes", "zip_manifest", "zip_name",
           "main"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default=str(ROOT / "dist"),
                    help="output folder (default: dist/)")
    ap.add_argument("--force", action="store_true", help="replace existing zips")
    ap.add_argument("--platform", action="append", choices=list(PLATFORMS),
                    help="build only this platform (repeatable; default: all of "
                         f"{', '.join(PLATFORMS)})")
    ap.add_argument("--wheel-cache", default=None,
                    help=f"wheel cache folder (default: {default_wheel_cache()})")
    ap.add_argument("--offline", action="store_true",
                    help="never ask the package index: every wheel must be in the cache")
    ap.add_argument("--download-only", action="store_true",
                    help="only fill the wheel cache for the chosen platforms, build nothing")
    ap.add_argument("--update-lock", action="store_true",
                    help=f"record the sha256 of wheels not yet in {WHEEL_HASHES.name} (after "
                         f"changing BUNDLED_WHEELS)")
    ap.add_argument("--blender-ext", default=None,
                    help="path of blender_ext.py (default: the one inside the bpy module)")
    args = ap.parse_args(argv)
    platforms = args.platform or list(PLATFORMS)
    try:
        if args.download_only:
            wheels = fetch_wheels(platforms, PYTHONS, args.wheel_cache, offline=args.offline,
                                  update_lock=args.update_lock)
            for p, ws in wheels.items():
                mb = sum(w.stat().st_size for w in ws) / 1e6
                print(f"build_addon: {p}: {len(ws)} wheels, {mb:.1f} MB in "
                      f"{args.wheel_cache or default_wheel_cache()}")
            return 0
        paths = build_all(args.out, force=args.force, platforms=platforms,
                          wheel_cache=args.wheel_cache, offline=args.offline,
                          blender_ext=args.blender_ext, update_lock=args.update_lock)
    except BuildError as e:
        print(f"build_addon: {e}", file=sys.stderr)
        return 2
    for p, path in paths.items():   # build_all checked each zip (check_contents)
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        wheels = [n.rsplit("/", 1)[-1] for n in names if n.endswith(".whl")]
        print(f"build_addon: {path} ({path.stat().st_size / 1e6:.1f} MB, {len(names)} files, "
              f"{len(wheels)} wheels for Python {' and '.join(PYTHONS)}; passed Blender's "
              f"extension validator)")
        for w in wheels:
            print(f"    {w}")
    print(f"build_addon: vendored model_core's Blender side ({', '.join(VENDORED)}) and the "
          f"default weights; numpy (Blender's) and torch are not bundled")
    print("build_addon: install in Blender with Edit > Preferences > Get Extensions > "
          "Install from Disk, choosing the zip named after your platform")
    return 0


if __name__ == "__main__":
    sys.exit(main())
