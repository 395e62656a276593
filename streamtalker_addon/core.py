"""Access to :mod:`model_core` from the add-on, and a cache of loaded models.

The installed extension vendors ``model_core`` inside the add-on package
(``<addon>/model_core``); a development checkout imports the top-level ``model_core`` of the
project. :func:`model_core_module` tries the vendored copy first. Nothing here imports
``bpy``; importing this module does not import torch (that happens on first use).
"""

from __future__ import annotations

import importlib
import os
import threading
from pathlib import Path


class ModelCoreMissing(ImportError):
    """model_core (or one of its dependencies such as torch) cannot be imported."""


_lock = threading.Lock()
_models: dict = {}


def _missing(name: str, dep: str) -> ModelCoreMissing:
    if name != "model_core":
        return ModelCoreMissing(
            f"the bundled model library needs the Python package '{dep}', which is not "
            f"installed in Blender's Python: open Preferences > Add-ons > StreamTalker and "
            f"press Install Dependencies")
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
    importable (torch, numpy, soxr, ...).

    Raises:
        ModelCoreMissing: no copy imports, or a dependency of the runtime is missing; the
            message names the missing package.
    """
    mc = model_core_package()
    try:
        importlib.import_module(f"{mc.__name__}.runtime.model")
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


def face():
    """``model_core.face`` (names, the name matcher, regions, the frame-count rule): pure
    Python, so it imports even where model_core's dependencies are missing.

    Raises:
        ModelCoreMissing: no model_core at all.
    """
    return importlib.import_module(f"{model_core_package().__name__}.face")


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
    """Apply the preference "CPU Threads" through model_core's one thread rule
    (:func:`model_core.runtime.device.set_threads`; process-wide, also for threads started later);
    returns the number set.

    Args:
        threads: 0 = automatic (model_core's default: one intra-op thread, the fastest on a
            busy machine, or ``OMP_NUM_THREADS`` when it is set); >= 1 exactly that many (at
            most the CPU cores).
    Raises:
        ValueError: ``threads`` is negative or more than the cores, naming the preference.
    """
    threads = int(threads)
    mc = model_core_module()
    if threads == 0:
        env = os.environ.get("OMP_NUM_THREADS", "")
        want = int(env) if env.isdigit() and int(env) > 0 else None
        if want is not None:
            want = min(want, mc_submodule("runtime.device").available_cores())
        return mc.set_threads(want)
    try:
        return mc.set_threads(threads)
    except ValueError:
        raise ValueError(f"CPU Threads must be 0 (automatic) or 1..{mc_submodule('runtime.device').available_cores()}"
                         f" (the CPU cores here), got {threads} (Preferences > Add-ons > "
                         f"StreamTalker > CPU Threads)") from None


def load_model_cached(path: str | None, device: str = "cpu", threads: int = 0):
    """``model_core.load_model(path, device)`` (a StreamTalkerModel, or a VertexModel for a
    vertex checkpoint), cached by (path, file mtime, device); sets the CPU thread count first
    (:func:`set_threads`, ``threads`` 0 = automatic).

    Thread-safe: the worker thread calls it. ``path`` None or "" means the bundled default.

    Raises:
        ModelCoreMissing: model_core or torch missing.
        FileNotFoundError: no checkpoint there (for the default: not bundled yet).
        model_core.CheckpointError: a file that is not a loadable checkpoint.
        ValueError: unknown or unavailable device.
    """
    mc = model_core_module()
    n_threads = set_threads(threads)
    if path:
        p = Path(os.path.expanduser(str(path))).resolve()
        if not p.exists():
            raise FileNotFoundError(f"checkpoint file not found: {p}")
    else:
        p = Path(mc_submodule("runtime.checkpoint").DEFAULT_CHECKPOINT)
        if not p.exists():
            raise FileNotFoundError(f"the bundled default model is not installed ({p}); "
                                    f"choose a checkpoint file under Model")
    key = (str(p), p.stat().st_mtime_ns, str(device))
    with _lock:
        model = _models.get(key)
        if model is None:   # model_core's one loader: an ARKit or a vertex model
            model = mc.load_model(None if not path else p, device=device, threads=n_threads)
            _models.clear()  # keep one model in memory
            _models[key] = model
        return model


def clear_cache() -> None:
    """Forget cached models and checkpoint descriptions (on unregister)."""
    with _lock:
        _models.clear()
    _described.clear()
