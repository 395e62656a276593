"""Where ONNX exports live and how they are recognised (no torch, no onnxruntime): the
export folder ``NAME.onnx/`` beside a checkpoint ``NAME.safetensors``, its files, the
SHA-256 of the source checkpoint an export records, and the cache for exports made on the
fly. Used by :mod:`.onnx_export` (writing) and :mod:`.onnx_backend` (reading).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import CheckpointError
from .checkpoint import DEFAULT_CHECKPOINT, checkpoint_paths

#: The ``format`` of an export folder's ``model.json``.
EXPORT_FORMAT = "streamtalker-onnx/2"
#: The files of an export folder (graphs, config, normalization).
EXPORT_FILES = ("condition.onnx", "denoise.onnx", "timestep.onnx", "model.json",
                "normalization.npz")
#: A vertex model's export also holds its PCA motion codec, under this name.
CODEC_FILE = "codec.safetensors"


def export_dir_for(checkpoint: str | os.PathLike | None = None) -> Path:
    """The export folder that belongs beside a checkpoint: ``NAME.onnx`` for
    ``NAME.safetensors`` (None: the bundled default's, ``weights/default.onnx``)."""
    w, _ = checkpoint_paths(DEFAULT_CHECKPOINT if checkpoint is None else checkpoint)
    return w.with_name(w.name[:-len(".safetensors")] + ".onnx")


def is_export_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding an export's ``model.json`` (of any content)."""
    p = Path(path)
    return p.is_dir() and (p / "model.json").is_file()


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


#: How to replace a damaged or outdated export (the end of the errors that find one).
REEXPORT_HINT = ("re-export with `streamtalker export-onnx CHECKPOINT -o NEW_FOLDER` (needs "
                 "torch), or reinstall the add-on if it is the bundled model")


def read_export_meta(folder: str | os.PathLike) -> dict:
    """The ``model.json`` of an export folder, checked: the format and every file present.

    Raises:
        CheckpointError: not an export (no or unreadable ``model.json``, another format) or
            a file of :data:`EXPORT_FILES` missing, naming the folder and the fix.
    """
    p = Path(folder)
    try:
        meta = json.loads((p / "model.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{p}: not an ONNX export of a StreamTalker model ({e}); make "
                              f"one with `streamtalker export-onnx CHECKPOINT -o {p}`") from None
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise CheckpointError(f"{p / 'model.json'}: format {meta.get('format') if isinstance(meta, dict) else None!r} "
                              f"is not {EXPORT_FORMAT!r}; {REEXPORT_HINT}")
    missing = [f for f in EXPORT_FILES if not (p / f).is_file()]
    if missing:
        raise CheckpointError(f"{p}: incomplete ONNX export, missing {', '.join(missing)}; "
                              f"{REEXPORT_HINT}")
    return meta


def cache_root() -> Path:
    """Where exports made on the fly are kept: ``$STREAMTALKER_CACHE/onnx``, else
    ``$XDG_CACHE_HOME/streamtalker/onnx``, else ``~/.cache/streamtalker/onnx``."""
    if os.environ.get("STREAMTALKER_CACHE"):
        return Path(os.environ["STREAMTALKER_CACHE"]) / "onnx"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "streamtalker" / "onnx"
