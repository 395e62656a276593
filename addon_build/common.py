"""What every part of the build shares: the project's paths and the one error type."""

from __future__ import annotations

from pathlib import Path

#: The project root (the folder holding build_addon.py).
ROOT = Path(__file__).resolve().parents[1]
ADDON_DIR = ROOT / "streamtalker_addon"
MODEL_CORE_DIR = ROOT / "model_core"
MANIFEST = ADDON_DIR / "blender_manifest.toml"


class BuildError(RuntimeError):
    """The extension could not be built or did not validate (message: one sentence)."""
