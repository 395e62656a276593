"""Inference backends: where the network's computations run (docs/architecture.md, "Where to
add things").

Two backends run the same numpy session, DDIM loop, front end and noise
(:class:`~model_core.runtime.inference.InferenceModel`); they differ only in who computes the
network's two calls per chunk -- the condition predictor once (``condition`` +
``denoise_prepare``) and the diffusion head at each DDIM step (``denoise_step``):

* ``"torch"``: :class:`~model_core.runtime.model.StreamTalkerModel` (PyTorch, CPU or CUDA;
  training, exporting and pretrained speech encoders need it);
* ``"onnx"``: :class:`~model_core.runtime.onnx_backend.OnnxModel` (onnxruntime on the CPU,
  numpy; never imports torch), running the graphs of ``streamtalker export-onnx``.

The default (:func:`resolve_backend`), the ONE rule for the library, the CLI and the add-on:
``"torch"`` for CUDA, and for a model that cannot be exported (a pretrained speech encoder);
``"onnx"`` on the CPU otherwise (2.2x faster than torch there, a third of its memory:
docs/benchmarks.md), the export beside the model used, or one made once into the cache
(:func:`~model_core.runtime.onnx_backend.resolve_export`; torch and onnx needed for that).
"""

from __future__ import annotations

import importlib.util
import sys

from ..errors import SettingError

#: The backends this build can run.
BACKENDS = ("torch", "onnx")


def torch_available() -> bool:
    """True when torch is imported or importable here: the ONE check, for the library, the
    CLI and the add-on. Cheap: torch is found on ``sys.path``, not imported (that takes
    seconds); a broken install fails later, when a torch model loads, with its ImportError."""
    if "torch" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def resolve_backend(backend: str | None = None, device="cpu", path=None) -> str:
    """The backend to run a model with.

    Args:
        backend: a name from :data:`BACKENDS`, or None for the default (the module's rule):
            ``"torch"`` for a CUDA device or a model with a pretrained speech encoder, else
            ``"onnx"``.
        device: the device the model will run on (``"cpu"``, ``"cuda"``, ``"cuda:N"``): the
            onnx backend runs on the CPU only.
        path: the model: a checkpoint, an export folder, or None for the bundled default.
    Returns:
        the backend's name.
    Raises:
        ValueError: an unknown backend, naming the ones there are; ``"onnx"`` with a device
            other than the CPU.
    """
    if backend is not None and backend not in BACKENDS:
        raise SettingError(f"unknown backend {backend!r}; this StreamTalker runs "
                         f"{', '.join(BACKENDS)}")
    if backend is None:
        backend = "torch" if str(device).startswith("cuda") or _needs_torch(path) else "onnx"
    if backend == "onnx" and str(device) != "cpu":
        raise SettingError(f"the onnx backend runs on the CPU only, not device {device!r}; use "
                         f"backend='torch' (--backend torch) for CUDA")
    return backend


def _needs_torch(path) -> bool:
    """True for a checkpoint whose network cannot be exported to ONNX (a pretrained speech
    encoder: ``speech_encoder`` in its config); False otherwise, and for an export folder,
    the bundled model or a path that is not a readable checkpoint (the loader says why)."""
    if path is None:
        return False
    from .onnx_files import is_export_dir
    if is_export_dir(path):
        return False
    try:
        from .checkpoint import describe_checkpoint
        config = describe_checkpoint(path).config
    except (OSError, ValueError):
        return False
    return bool(getattr(config, "speech_encoder", None))

