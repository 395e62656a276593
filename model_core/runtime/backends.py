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
``"torch"`` for CUDA; on the CPU ``"onnx"`` (2.2x faster than torch there, a third of its
memory: docs/benchmarks.md) wherever the model has a current ONNX export beside it or is
one (the bundled one ships one; ``streamtalker export-onnx`` makes one) or torch is not
installed, and ``"torch"``
for a checkpoint with no export yet where torch is installed (a freshly trained one, a
pretrained speech encoder's, which cannot be exported).
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
            ``"torch"`` for a CUDA device; on the CPU ``"onnx"`` when ``path`` is an export or
            has a current one beside it (:func:`~model_core.runtime.onnx_files.current_export`,
            the cache not consulted) or torch is not importable, else ``"torch"``.
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
        if str(device).startswith("cuda"):
            backend = "torch"
        elif not torch_available():
            backend = "onnx"
        else:
            from .onnx_files import current_export
            # beside the checkpoint only: the choice never depends on what a cache holds
            backend = "onnx" if current_export(path, cached=False) is not None else "torch"
    if backend == "onnx" and str(device) != "cpu":
        raise SettingError(f"the onnx backend runs on the CPU only, not device {device!r}; use "
                         f"backend='torch' (--backend torch) for CUDA")
    return backend
