"""StreamTalker model core: streaming autoregressive diffusion for speech-driven facial
animation (after StreamingTalker, arXiv 2511.14223). Never imports ``bpy``.

Public API::

    model = model_core.load_model(path=None, device="cpu", threads=None, backend=None)
    session = model.stream(seed=0, style=None)   # or settings=SamplerSettings(preset="live")
    frames = session.push(samples)   # float32 mono 16 kHz -> [n_new, D]
    frames = session.flush()
    frames = model.generate(audio, sample_rate, seed=0)   # [round(duration * fps), D]
    info = model_core.describe_checkpoint(path)           # kind, channels, fps (JSON only)
    rigged = model_core.RiggedModel(model, "oculus")      # viseme / vowel rigs: "vrm", "mmd"
    frames = rigged.generate(audio, sample_rate)          # columns: rigged.channel_names

The package is layered (docs/architecture.md): :mod:`.face` and :mod:`.errors` at the bottom,
then :mod:`.io`, :mod:`.runtime`, :mod:`.vertex`, :mod:`.live` (what runs inside Blender),
then :mod:`.training`, :mod:`.evaluation` and :mod:`.cli`. Importing this package is cheap:
the names below that need torch load their module on first use, and with
``backend="onnx"`` (the default where torch is not installed) nothing imports torch.
"""

from __future__ import annotations

import importlib

from .errors import AudioError, CheckpointError, SettingError, StreamTalkerError
from .face import ARKIT_52

#: The one version of StreamTalker: pyproject.toml reads it, and
#: streamtalker_addon/blender_manifest.toml (a literal, as Blender reads it) is checked against
#: it (tests/test_one_source.py, build_addon.py).
__version__ = "0.1.0"

#: Public names and the module each comes from (imported on first use).
_LAZY = {
    "AudioFileReader": ".io.audio", "AudioWarning": ".io.audio", "load_audio": ".io.audio",
    "MODEL_SAMPLE_RATE": ".io.audio",
    "load_checkpoint": ".runtime.checkpoint", "save_checkpoint": ".runtime.checkpoint",
    "describe_checkpoint": ".runtime.checkpoint", "CheckpointInfo": ".runtime.checkpoint",
    "ModelConfig": ".runtime.config",
    "StreamTalkerModel": ".runtime.model", "OnnxModel": ".runtime.onnx_backend",
    "InferenceModel": ".runtime.inference",
    "StreamingSession": ".runtime.session", "SamplerSettings": ".runtime.settings",
    "Session": ".runtime.driver", "run": ".runtime.driver",
    "DEFAULT_THREADS": ".runtime.device", "set_threads": ".runtime.device",
    "RiggedModel": ".runtime.rigs", "RigSession": ".runtime.rigs",
    "RigConverter": ".runtime.rigs", "RIG_KINDS": ".face", "detect_rig": ".face",
}


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def load_model(path=None, device="cpu", threads: int | None = None, backend: str | None = None):
    """Load a model of any kind: the one loader (:func:`describe_checkpoint` decides).

    Args:
        path: checkpoint (``X.safetensors`` with ``X.json`` beside it), or None for the
            bundled default; for the onnx backend also an export folder (``model.json``
            inside, from ``streamtalker export-onnx``).
        device: ``"cpu"`` or ``"cuda"`` (torch only).
        threads: CPU threads the network computes with (intra-op), an integer in 1..cores;
            None applies the default, 1 (:mod:`model_core.runtime.device` says why). torch:
            process-wide, as in :func:`set_threads`; onnx: this model's sessions.
        backend: where the network runs (:mod:`model_core.runtime.backends`): ``"torch"``,
            ``"onnx"`` (onnxruntime on the CPU, no torch needed), or None: torch for CUDA and
            for a pretrained speech encoder, else onnx
            (:func:`model_core.runtime.backends.resolve_backend`). The onnx backend runs the export folder ``NAME.onnx/``
            beside ``NAME.safetensors`` (the bundled default ships one); see
            :func:`model_core.runtime.onnx_backend.resolve_export` for a missing one.
    Returns:
        torch: a :class:`~model_core.runtime.model.StreamTalkerModel` for ARKit (and
        codec-less latent) checkpoints, a :class:`~model_core.vertex.model.VertexModel` for
        vertex checkpoints (``NAME.codec.safetensors`` beside them); onnx: an
        :class:`~model_core.runtime.onnx_backend.OnnxModel` (ARKit and latent models), or a
        ``VertexModel`` around one (vertex exports). Same ``stream`` / ``generate`` API.
    Raises:
        ValueError: a bad ``threads``, device or backend; FileNotFoundError / CheckpointError: see
        :func:`model_core.runtime.checkpoint.load_checkpoint` and, for onnx, a missing export
        without torch to make one (the message names the command).
    """
    from .runtime.backends import resolve_backend
    from .runtime.checkpoint import describe_checkpoint, load_checkpoint
    from .runtime.device import set_threads

    if path is not None:
        from .runtime.onnx_files import is_export_dir
        if is_export_dir(path):
            if backend not in (None, "onnx"):
                raise SettingError(f"{path} is an ONNX export: it runs on the onnx backend "
                                 f"(leave out backend, or give the .safetensors checkpoint "
                                 f"to run on torch)")
            backend = "onnx"
    if resolve_backend(backend, device, path) == "onnx":
        from .runtime.onnx_backend import OnnxModel, resolve_export
        from .runtime.onnx_files import CODEC_FILE
        folder = resolve_export(path)
        model = OnnxModel(folder, threads)
        if not (folder / CODEC_FILE).is_file():
            return model
        from .vertex.codec import PCACodec
        from .vertex.model import VertexModel
        return VertexModel.of(model, PCACodec.load(folder / CODEC_FILE))
    set_threads(threads)
    if path is not None and describe_checkpoint(path).kind == "vertex":
        from .vertex.model import VertexModel
        return VertexModel.load(path, device)
    return load_checkpoint(path, device)


__all__ = ["ARKIT_52", "AudioError", "AudioFileReader", "AudioWarning", "CheckpointError",
           "CheckpointInfo", "DEFAULT_THREADS", "InferenceModel", "ModelConfig", "OnnxModel",
           "Session", "StreamTalkerError", "StreamTalkerModel", "StreamingSession", "describe_checkpoint", "load_audio",
           "load_model", "run", "save_checkpoint", "set_threads", "MODEL_SAMPLE_RATE",
           "__version__"]
