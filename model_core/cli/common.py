"""Helpers shared by the ``streamtalker`` subcommands (argument types and options)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["add_backend_argument", "add_threads_argument", "style_arg", "template_arg"]


def add_threads_argument(p) -> None:
    """``--threads N`` (CPU threads torch computes with; default 1, model_core.runtime.device)."""
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the model (default 1: fastest here, and graceful on a "
                        "busy machine)")


def add_backend_argument(p) -> None:
    """``--backend torch|onnx`` (model_core.runtime.backends; default: torch when it is
    installed, else onnx)."""
    p.add_argument("--backend", choices=("torch", "onnx"), default=None,
                   help="where the network runs: torch, or onnx (onnxruntime on the CPU, no "
                        "torch needed; the checkpoint's NAME.onnx/ export, see export-onnx). "
                        "Default: torch when it is installed, else onnx")


def style_arg(style: str | None):
    """--style: None, an int index, or (vertex models) a subject name."""
    if style is None:
        return None
    try:
        return int(style)
    except ValueError:
        return style


def template_arg(spec: str | None, checkpoint, n_vertices: int):
    """--template: a .npy [V, 3] / [3V], or templates.pkl:SUBJECT -> float32 [V, 3].

    Raises:
        ValueError: missing, or not a mesh of ``n_vertices`` x 3 numbers;
        FileNotFoundError: no such file.
    """
    import numpy as np
    if not spec:
        raise ValueError(f"{checkpoint} is a vertex checkpoint: pass --template, the speaker's "
                         f"neutral mesh (a .npy [V, 3] or templates.pkl:SUBJECT)")
    path, _, subject = spec.rpartition(":") if ".pkl:" in spec else (spec, "", "")
    if path.endswith(".pkl"):
        from ..vertex import load_templates
        tpls = load_templates(path)
        if subject not in tpls:
            raise ValueError(f"{path}: no subject {subject!r} (it has {', '.join(sorted(tpls))})")
        t = tpls[subject]
    else:
        if not Path(path).is_file():
            raise FileNotFoundError(f"template file not found: {path}")
        t = np.asarray(np.load(path), np.float32)
    if t.size != 3 * n_vertices:
        raise ValueError(f"{spec}: the template must be [{n_vertices}, 3] for {checkpoint}, got "
                         f"shape {t.shape}")
    return t.reshape(-1, 3)
