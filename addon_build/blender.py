"""Blender's own extension tool, ``blender_ext.py`` (inside the ``bpy`` module and every
Blender install): finding it, running it, validating a zip or a source folder with it."""

from __future__ import annotations

import glob
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from .common import BuildError


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
