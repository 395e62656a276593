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


def model_core_module():
    """The ``model_core`` package: the vendored copy, else the top-level one.

    Raises:
        ModelCoreMissing: neither imports; the message names the missing dependency.
    """
    pkg = __package__ or "streamtalker_addon"
    try:
        return importlib.import_module(f"{pkg}.model_core")
    except ModuleNotFoundError as e:
        if e.name != f"{pkg}.model_core":
            raise ModelCoreMissing(f"the bundled model library needs the Python package "
                                   f"'{e.name}', which is not installed in Blender's Python: open "
                                   f"Preferences > Add-ons > StreamTalker and press Install "
                                   f"Dependencies") from None
    try:
        return importlib.import_module("model_core")
    except ModuleNotFoundError as e:
        what = "model_core" if e.name == "model_core" else e.name
        raise ModelCoreMissing(f"StreamTalker's model library could not be imported: the "
                               f"Python package '{what}' is not installed where Blender "
                               f"can import it") from None


def mc_submodule(name: str):
    """``model_core.<name>`` (e.g. ``"runtime.checkpoint"``) of the copy
    :func:`model_core_module` found.

    Raises:
        ModelCoreMissing: as :func:`model_core_module`.
    """
    return importlib.import_module(f"{model_core_module().__name__}.{name}")


def arkit_names() -> tuple[str, ...]:
    """The 52 ARKit channel names (``model_core.face.ARKIT_52``)."""
    return tuple(model_core_module().ARKIT_52)


def default_checkpoint_path() -> Path:
    """Where the bundled default model lives (it may not exist yet)."""
    return Path(mc_submodule("runtime.checkpoint").DEFAULT_CHECKPOINT)


def checkpoint_vertices(path: str | None) -> int | None:
    """Mesh vertices a vertex checkpoint decodes to, or None for an ARKit checkpoint (and for
    the bundled default, ``path`` None or ""). Reads only the JSON beside the weights.

    Raises:
        ModelCoreMissing; FileNotFoundError / model_core.CheckpointError: unreadable config.
    """
    if not path:
        return None
    vertex = importlib.import_module(model_core_module().__name__ + ".vertex")
    return vertex.vertex_checkpoint_vertices(Path(os.path.expanduser(str(path))))


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
    """``model_core.load_model(path, device)`` (for a vertex checkpoint
    ``model_core.vertex.VertexModel.load``), cached by (path, file mtime, device); sets the
    CPU thread count first (:func:`set_threads`, ``threads`` 0 = automatic).

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
        if model is None:
            if checkpoint_vertices(path) is not None:
                vertex = importlib.import_module(mc.__name__ + ".vertex")
                model = vertex.VertexModel.load(p, device=device)
            else:
                model = mc.load_model(None if not path else p, device=device, threads=n_threads)
            _models.clear()  # keep one model in memory
            _models[key] = model
        return model


def clear_cache() -> None:
    """Forget cached models (on unregister)."""
    with _lock:
        _models.clear()
