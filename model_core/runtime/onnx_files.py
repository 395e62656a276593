"""Where ONNX exports live and how they are recognised (no torch, no onnxruntime): the
export folder ``NAME.onnx/`` beside a checkpoint ``NAME.safetensors``, its files, the
SHA-256 of the source checkpoint an export records, and the cache for exports made on the
fly. Used by :mod:`.onnx_export` (writing) and :mod:`.onnx_backend` (reading).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# the export folder's layout (format, files, model.json checks) is defined beside the
# checkpoint reader, which recognises an export folder too (describe_checkpoint)
from .checkpoint import (CODEC_FILE, DEFAULT_CHECKPOINT, EXPORT_FILES,  # noqa: F401
                         EXPORT_FORMAT, REEXPORT_HINT, checkpoint_paths, is_export_dir,
                         read_export_meta)


def export_dir_for(checkpoint: str | os.PathLike | None = None) -> Path:
    """The export folder that belongs beside a checkpoint: ``NAME.onnx`` for
    ``NAME.safetensors`` (None: the bundled default's, ``weights/default.onnx``)."""
    w, _ = checkpoint_paths(DEFAULT_CHECKPOINT if checkpoint is None else checkpoint)
    return w.with_name(w.name[:-len(".safetensors")] + ".onnx")


def checkpoint_digest(checkpoint: str | os.PathLike | None = None) -> str:
    """SHA-256 (hex) of a checkpoint's weights file followed by its JSON config (and a vertex
    model's codec, ``NAME.codec.safetensors``, when there is one): what an export records as
    its source, so a re-trained checkpoint is never run with old graphs.

    Raises:
        FileNotFoundError: the weights or the config is missing.
    """
    from .checkpoint import codec_path

    ckpt = DEFAULT_CHECKPOINT if checkpoint is None else checkpoint
    files = list(checkpoint_paths(ckpt))
    if codec_path(ckpt).is_file():
        files.append(codec_path(ckpt))
    h = hashlib.sha256()
    for p in files:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def cache_root() -> Path:
    """Where exports made on the fly are kept: ``$STREAMTALKER_CACHE/onnx``, else
    ``$XDG_CACHE_HOME/streamtalker/onnx``, else ``~/.cache/streamtalker/onnx``."""
    if os.environ.get("STREAMTALKER_CACHE"):
        return Path(os.environ["STREAMTALKER_CACHE"]) / "onnx"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "streamtalker" / "onnx"


def matching_export(wpath: Path, digest: str) -> Path | None:
    """``NAME.onnx`` beside the checkpoint ``wpath``, else its folder in the cache, when
    exported from a checkpoint of SHA-256 ``digest`` (:func:`checkpoint_digest`); else None."""
    for folder in (export_dir_for(wpath), cache_root() / digest[:24]):
        if is_export_dir(folder):
            try:
                meta = read_export_meta(folder)
            except (OSError, ValueError):
                continue
            if meta.get("source", {}).get("sha256") == digest:
                return folder
    return None
