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


def arkit_names() -> tuple[str, ...]:
    """The 52 ARKit channel names (``model_core.arkit.ARKIT_52``)."""
    return tuple(model_core_module().ARKIT_52)


def default_checkpoint_path() -> Path:
    """Where the bundled default model lives (it may not exist yet)."""
    return Path(model_core_module().checkpoint.DEFAULT_CHECKPOINT)


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


#: Most CPU threads "automatic" uses (the model gains little beyond this; Blender, the
#: viewport and other programs need the rest).
AUTO_THREADS_MAX = 4


def auto_threads(cpu_count: int | None = None) -> int:
    """The automatic CPU thread count: half the cores, at least 1, at most
    :data:`AUTO_THREADS_MAX` (2 cores -> 1, 8 -> 4, 64 -> 4)."""
    n = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, min(AUTO_THREADS_MAX, n // 2))


def set_threads(threads: int = 0) -> int:
    """Set the intra-op CPU threads the model uses (``torch.set_num_threads``; process-wide,
    also for threads started later); returns the number set.

    Args:
        threads: the preference "CPU Threads": >= 1 exactly that many; 0 = automatic:
            :func:`auto_threads`, or the ``OMP_NUM_THREADS`` environment variable when set.
            (model_core gets its own bounded default and ``threads`` setting in the same
            issue; this is the one place to switch to it.)
    Raises:
        ValueError: ``threads`` is negative.
    """
    threads = int(threads)
    if threads < 0:
        raise ValueError(f"CPU threads must be 0 (automatic) or more, got {threads} "
                         f"(Preferences > Add-ons > StreamTalker > CPU Threads)")
    if threads == 0:
        env = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else auto_threads()
    import torch
    torch.set_num_threads(threads)  # also when this thread has it: the process-wide value
    return threads


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
    set_threads(threads)
    if path:
        p = Path(os.path.expanduser(str(path))).resolve()
        if not p.exists():
            raise FileNotFoundError(f"checkpoint file not found: {p}")
    else:
        p = Path(mc.checkpoint.DEFAULT_CHECKPOINT)
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
                model = mc.load_model(None if not path else p, device=device)
            _models.clear()  # keep one model in memory
            _models[key] = model
        return model


def clear_cache() -> None:
    """Forget cached models (on unregister)."""
    with _lock:
        _models.clear()
