"""The onnxruntime backend: torch-free inference on the CPU (numpy + onnxruntime).

:class:`OnnxModel` runs the graphs that :mod:`model_core.runtime.onnx_export` writes
(``condition.onnx`` once per chunk, ``denoise.onnx`` per DDIM step, ``timestep.onnx`` once
per session and timestep); everything else -- the session, the DDIM loop, the log-mel front
end, resampling (soxr) -- is the numpy code the torch backend uses too
(:class:`~model_core.runtime.inference.InferenceModel`), and the noise comes from the same
:class:`~model_core.runtime.ddim.NoiseGenerator` (torch's random stream, reproduced in numpy),
so both backends give the same frames to float rounding.

Where the graphs live (:func:`resolve_export`): an export folder ``NAME.onnx/`` beside the
checkpoint ``NAME.safetensors`` (the bundled default ships one: ``weights/default.onnx/``),
or an export folder given directly as the path. An export records the SHA-256 of the
checkpoint it came from; a missing or stale one is exported into a cache folder when torch
is importable, else the error names the command that makes it (``streamtalker export-onnx``); the folder's layout is :mod:`.onnx_files`'s.
This module never imports torch (only :func:`resolve_export`'s cache step does, through
:mod:`model_core.runtime.onnx_export`, when torch is there).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from .backends import torch_available
from .config import ModelConfig
from .device import check_threads
from .inference import InferenceModel, Normalization
from .onnx_files import (REEXPORT_HINT, cache_root, checkpoint_digest, export_dir_for,
                         is_export_dir, matching_export, read_export_meta)

def resolve_export(path: str | os.PathLike | None = None) -> Path:
    """The export folder to run ``path`` with on the onnx backend.

    Args:
        path: an export folder (``model.json`` inside), a checkpoint (``NAME.safetensors``
            and ``NAME.json``), or None for the bundled default.
    Returns:
        the folder: ``path`` itself; else ``NAME.onnx`` beside the checkpoint when it was
        exported from this very checkpoint (same SHA-256); else, when torch is importable, a
        folder under :func:`cache_root` named by the checkpoint's digest (exported there the
        first time).
    Raises:
        CheckpointError: no current export and no torch to make one (the message names the
            ``streamtalker export-onnx`` command), or a broken export folder.
        FileNotFoundError: no checkpoint there.
    """
    if path is not None and is_export_dir(path):
        read_export_meta(path)
        return Path(path)
    from .checkpoint import describe_checkpoint
    wpath = describe_checkpoint(path).path
    digest = checkpoint_digest(wpath)
    found = matching_export(wpath, digest)
    if found is not None:
        return found
    beside = export_dir_for(wpath)
    stale = is_export_dir(beside)           # there, but exported from another version
    cached = cache_root() / digest[:24]
    if not torch_available():
        if stale:
            raise CheckpointError(
                f"{beside} was exported from another version of {wpath.name} (its SHA-256 "
                f"differs); re-export it where torch is installed: `streamtalker export-onnx "
                f"{wpath} -o {beside} --force`")
        raise CheckpointError(
            f"{wpath}: no ONNX export beside it ({beside.name}/), and torch is not installed "
            f"to make one. Run `streamtalker export-onnx {wpath} -o {beside}` where torch is "
            f"installed (pip install torch onnx), then load it again")
    from .onnx_export import export_checkpoint   # torch: only here, and only when importable
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=cached.name + ".", dir=cached.parent))
    try:
        export_checkpoint(wpath, tmp, overwrite=True)
        try:
            os.rename(tmp, cached)
        except OSError:             # another process made it first
            if not is_export_dir(cached):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cached


class OnnxModel(InferenceModel):
    """A model on the onnxruntime backend (CPU). Same public API as
    :class:`~model_core.runtime.model.StreamTalkerModel` for ARKit and latent models:
    ``stream``, ``generate``, ``fps``, ``sample_rate``, ``channel_names``, ``dim``,
    ``latency_ms``, ``config``. Build with ``model_core.load_model(..., backend="onnx")`` or
    :meth:`load`.

    Args:
        folder: an export folder (:data:`EXPORT_FILES`).
        threads: onnxruntime intra-op threads, None (the default, 1: see
            :mod:`model_core.runtime.device`) or 1..cores.
    Raises:
        CheckpointError: a broken export (named); ImportError: onnxruntime is not installed;
        ValueError: a bad ``threads``.
    """

    backend = "onnx"

    def __init__(self, folder: str | os.PathLike, threads: int | None = None):
        folder = Path(folder)
        meta = read_export_meta(folder)
        try:
            config = ModelConfig.from_dict(meta["config"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{folder / 'model.json'}: bad config ({e})") from None
        super().__init__(config)
        self.folder = folder
        self.threads = check_threads(threads)
        try:
            with np.load(folder / "normalization.npz") as z:
                norm = [np.asarray(z[k], np.float32) for k in ("data_mean", "data_std",
                                                               "rest_pose")]
        except Exception as e:   # noqa: BLE001  (OSError, EOFError, BadZipFile, KeyError, ...)
            why = str(e) or type(e).__name__
            raise CheckpointError(f"{folder / 'normalization.npz'}: unreadable ({why}); "
                                  f"{REEXPORT_HINT}") from None
        if any(a.shape != (config.dim,) or not np.isfinite(a).all() for a in norm):
            raise CheckpointError(f"{folder / 'normalization.npz'}: expected finite float32 "
                                  f"[{config.dim}] arrays; {REEXPORT_HINT}")
        self._norm = Normalization(*norm, clip01=config.output_kind == "arkit")
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ImportError("the onnx backend needs onnxruntime: pip install onnxruntime "
                              "(or use backend='torch')") from e
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._sessions = {}
        for name in ("condition", "denoise", "timestep"):
            try:
                self._sessions[name] = ort.InferenceSession(
                    str(folder / f"{name}.onnx"), opts, providers=["CPUExecutionProvider"])
            except Exception as e:   # onnxruntime raises its own Fail/InvalidGraph types
                raise CheckpointError(f"{folder / (name + '.onnx')}: onnxruntime cannot load "
                                      f"it ({e}); {REEXPORT_HINT}") from None
        self._cond_inputs = {i.name for i in self._sessions["condition"].get_inputs()}

    @property
    def normalization(self) -> Normalization:
        return self._norm

    def timestep_cache(self, timesteps: list[int]) -> dict:
        """{t: the head's timestep embedding, float32 [1, 1, head_dim]}."""
        run = self._sessions["timestep"].run
        return {t: run(None, {"t": np.array([t], np.int64)})[0] for t in timesteps}

    def chunk_denoiser(self, cond_in: dict, drop_audio: np.ndarray, t_cache: dict):
        """See :meth:`InferenceModel.chunk_denoiser`: ``condition.onnx`` runs here, once;
        the returned function runs ``denoise.onnx``."""
        feeds = {k: np.ascontiguousarray(v) for k, v in cond_in.items() if k in self._cond_inputs}
        if "drop_audio" in self._cond_inputs:
            feeds["drop_audio"] = np.asarray(drop_audio, bool)
        base = self._sessions["condition"].run(None, feeds)[0]
        B = len(drop_audio)
        run = self._sessions["denoise"].run

        def denoise(x: np.ndarray, t: int) -> np.ndarray:
            temb = t_cache[t]
            x_t = np.ascontiguousarray(np.repeat(x, B, axis=0) if B > 1 else x, np.float32)
            return run(None, {"base": base, "x_t": x_t, "temb": temb})[0]
        return denoise
