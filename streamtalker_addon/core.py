"""Access to :mod:`model_core` from the add-on, and a cache of loaded models.

The installed extension vendors ``model_core`` inside the add-on package
(``<addon>/model_core``); a development checkout imports the top-level ``model_core`` of the
project. :func:`model_core_module` tries the vendored copy first. Nothing here imports
``bpy``; importing this module does not import torch.

The installed extension brings its Python dependencies as bundled wheels (onnxruntime,
soxr, soundfile, sounddevice; see build_addon.py), which Blender installs with it: nothing
is downloaded at run time. The model runs on onnxruntime on the CPU; torch is optional and
used only where it happens to be importable and the user picks a CUDA device
(:func:`backend_for`).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from pathlib import Path
from .errors import InputNotFoundError, SettingError


class ModelCoreMissing(ImportError):
    """model_core (or one of its dependencies such as torch) cannot be imported."""


_lock = threading.Lock()
_models: dict = {}


def _missing(name: str, dep: str) -> ModelCoreMissing:
    if name != "model_core":
        return ModelCoreMissing(
            f"the bundled model library needs the Python package '{dep}', which Blender did "
            f"not install with the extension: reinstall StreamTalker from the zip built for "
            f"this platform (streamtalker-<version>-linux_x64 / windows_x64 / macos_arm64 / macos_x64.zip)")
    return ModelCoreMissing(f"StreamTalker's model library could not be imported: the Python "
                            f"package '{dep}' is not installed where Blender can import it")


def model_core_package():
    """The ``model_core`` package -- the vendored copy, else the top-level one -- without
    its runtime: cheap (no torch), for what only reads files (:func:`describe`).

    Raises:
        ModelCoreMissing: neither copy imports.
    """
    pkg = __package__ or "streamtalker_addon"
    for name in (f"{pkg}.model_core", "model_core"):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise _missing(name, e.name) from None
    raise _missing("model_core", "model_core")


def model_core_module():
    """The ``model_core`` package (see :func:`model_core_package`) with its runtime
    importable (numpy, soxr, soundfile, onnxruntime, ...; never torch).

    Raises:
        ModelCoreMissing: no copy imports, or a dependency of the runtime is missing; the
            message names the missing package.
    """
    mc = model_core_package()
    try:
        importlib.import_module(f"{mc.__name__}.runtime.inference")
    except ModuleNotFoundError as e:
        raise _missing(mc.__name__, e.name) from None
    return mc


def mc_submodule(name: str):
    """``model_core.<name>`` (e.g. ``"runtime.checkpoint"``) of the copy
    :func:`model_core_module` found.

    Raises:
        ModelCoreMissing: as :func:`model_core_module`.
    """
    return importlib.import_module(f"{model_core_module().__name__}.{name}")


def mc_light(name: str):
    """``model_core.<name>`` for a module that imports without model_core's runtime
    dependencies (pure Python or numpy: ``face``, ``io.files``, ``runtime.backends``,
    ``runtime.settings``), unlike :func:`mc_submodule`.

    Raises:
        ModelCoreMissing: no model_core at all.
    """
    return importlib.import_module(f"{model_core_package().__name__}.{name}")


def face():
    """``model_core.face`` (names, the name matcher, regions, the frame-count rule): pure
    Python, so it imports even where model_core's dependencies are missing.

    Raises:
        ModelCoreMissing: no model_core at all.
    """
    return mc_light("face")


def arkit_names() -> tuple[str, ...]:
    """The 52 ARKit channel names (``model_core.face.ARKIT_52``)."""
    return tuple(face().ARKIT_52)


def default_checkpoint_path() -> Path:
    """Where the bundled default model lives (it may not exist yet)."""
    return Path(mc_submodule("runtime.checkpoint").DEFAULT_CHECKPOINT)


_described: dict = {}


def describe(path: str | None):
    """:func:`model_core.describe_checkpoint` of ``path`` (None or "" = the bundled
    default): kind (``"arkit"``, ``"vertex"``, ``"latent"``), channel names, fps, vertex
    count. Reads only the JSON, once per (path, modification time): cheap enough for a
    panel's draw.

    Raises:
        ModelCoreMissing; FileNotFoundError / model_core.CheckpointError: no or an unreadable
        config.
    """
    mc = model_core_package()
    ckpt = importlib.import_module(f"{mc.__name__}.runtime.checkpoint")
    p = Path(os.path.expanduser(str(path))) if path else None
    try:
        stamp = os.stat(ckpt.checkpoint_paths(p or ckpt.DEFAULT_CHECKPOINT)[1]).st_mtime_ns
    except OSError:
        stamp = None
    key = (str(p), stamp)
    info = _described.get(key)
    if info is None:
        info = mc.describe_checkpoint(p)
        _described.clear()
        _described[key] = info
    return info


def set_threads(threads: int = 0) -> int:
    """Apply the preference "CPU Threads" through model_core's one thread rule; returns the
    number to run with (also passed to ``load_model``, which gives it to onnxruntime).

    Where torch is already imported (a torch model is loaded),
    :func:`model_core.runtime.device.set_threads` also sets torch's intra-op threads
    (process-wide, also for threads started later); otherwise the count is only checked
    (``runtime.device.check_threads``) and torch is not imported for it: a torch model
    loaded later gets the count from ``load_model``.

    Args:
        threads: 0 = automatic (``runtime.device.default_threads``, the library's and the
            command line's rule: one intra-op thread, the fastest on a busy machine, or
            ``OMP_NUM_THREADS`` when it is set); >= 1 exactly that many (at most the CPU
            cores).
    Raises:
        ValueError: ``threads`` is negative or more than the cores, naming the preference.
    """
    threads = int(threads)
    mc = model_core_module()
    device = mc_submodule("runtime.device")
    apply = mc.set_threads if "torch" in sys.modules else device.check_threads
    try:
        return apply(None if threads == 0 else threads)
    except SettingError:
        raise SettingError(f"CPU Threads must be 0 (automatic) or 1..{device.available_cores()}"
                         f" (the CPU cores here), got {threads} (Preferences > Add-ons > "
                         f"StreamTalker > CPU Threads)") from None


def torch_available() -> bool:
    """Whether torch can be imported here: ``model_core.runtime.backends.torch_available``
    (found on ``sys.path``, not imported). The extension never bundles torch."""
    return bool(mc_light("runtime.backends").torch_available())


def backend_for(device: str, path=None) -> str:
    """The inference backend for a device setting and a model (``path``: a checkpoint, None
    for the bundled default): the library's one rule
    (``model_core.runtime.backends.resolve_backend``): ``"torch"`` for CUDA (torch must be
    importable); on the CPU ``"onnx"`` (onnxruntime, bundled) for every model kind: ARKit,
    latent and vertex (a vertex model's export carries its PCA codec).

    Raises:
        ValueError: CUDA where torch is not importable (the message names the setting).
    """
    if str(device).startswith("cuda"):
        if not torch_available():
            raise SettingError("Device is set to GPU (CUDA), which needs PyTorch with CUDA in "
                             "Blender's Python, and PyTorch is not installed: set Device to "
                             "CPU (StreamTalker's Model panel); the CPU runs the bundled "
                             "ONNX Runtime")
    return mc_submodule("runtime.backends").resolve_backend(None, device, path)


def load_model_cached(path: str | None, device: str = "cpu", threads: int = 0):
    """``model_core.load_model(path, device, backend=...)`` (a StreamTalkerModel, or a
    VertexModel for a vertex checkpoint) on the backend :func:`backend_for` picks, cached by
    (path, file mtime, device, threads: onnxruntime's count is fixed per loaded model); sets
    the CPU thread count first (:func:`set_threads`, ``threads`` 0 = automatic).

    Thread-safe: the worker thread calls it. ``path`` None or "" means the bundled default.

    Raises:
        ModelCoreMissing: model_core or one of its bundled dependencies missing.
        FileNotFoundError: no checkpoint there (for the default: not bundled yet).
        model_core.CheckpointError: a file that is not a loadable checkpoint (for example
            a ``.safetensors`` checkpoint without its ONNX export when torch is missing:
            the message names the conversion command).
        ValueError: unknown or unavailable device (CUDA without torch).
    """
    mc = model_core_module()
    backend_for(device)  # CUDA without torch: say so before loading anything
    if path:
        p = Path(os.path.expanduser(str(path))).resolve()
        if not p.exists():
            raise InputNotFoundError(f"checkpoint file not found: {p}")
    else:
        p = Path(mc_submodule("runtime.checkpoint").DEFAULT_CHECKPOINT)
        if not p.exists():
            raise InputNotFoundError(f"the bundled default model is not installed ({p}); "
                                    f"choose a checkpoint file under Model")
    n_threads = set_threads(threads)
    key = (str(p), p.stat().st_mtime_ns, str(device), n_threads)  # onnx: threads per model
    with _lock:
        model = _models.get(key)
        if model is None:   # model_core's one loader: an ARKit or a vertex model
            # backend None: load_model applies the one rule (backend_for's) with the model
            model = mc.load_model(p if path else None, device=device, threads=n_threads)
            _models.clear()  # keep one model in memory
            _models[key] = model
        return model


def clear_cache() -> None:
    """Forget cached models and checkpoint descriptions (on unregister)."""
    with _lock:
        _models.clear()
    _described.clear()
