"""StreamTalker model core: streaming autoregressive diffusion for speech-driven facial
animation (after StreamingTalker, arXiv 2511.14223). Never imports ``bpy``.

Public API::

    model = model_core.load_model(path=None, device="cpu", threads=None)  # threads: 1 by default
    session = model.stream(seed=0, style=None)
    frames = session.push(samples)   # float32 mono 16 kHz -> [n_new, D]
    frames = session.flush()
    frames = model.generate(audio, sample_rate, seed=0)   # [round(duration * fps), D]
"""

from .face import ARKIT_52
from .io.audio import AudioFileReader, AudioWarning, load_audio, MODEL_SAMPLE_RATE
from .runtime.checkpoint import load_checkpoint, save_checkpoint
from .runtime.config import ModelConfig
from .errors import AudioError, CheckpointError
from .runtime.model import StreamTalkerModel
from .runtime.session import StreamingSession
from .runtime.device import DEFAULT_THREADS, set_threads

__version__ = "0.1.0"


def load_model(path=None, device="cpu", threads: int | None = None) -> StreamTalkerModel:
    """Load a model: ``path`` to a checkpoint, or None for the bundled default.

    Args:
        path: checkpoint (``X.safetensors`` with ``X.json`` beside it), or None.
        device: ``"cpu"`` or ``"cuda"``.
        threads: CPU threads torch computes with (intra-op), an integer in 1..cores; None
            applies the default, 1 (:mod:`model_core.runtime.device` says why). Process-wide, as in
            :func:`set_threads`, which changes it later without reloading.
    Raises:
        ValueError: a bad ``threads`` or device; see
        :func:`model_core.runtime.checkpoint.load_checkpoint` for the other errors.
    """
    set_threads(threads)
    return load_checkpoint(path, device)


__all__ = ["ARKIT_52", "AudioError", "AudioFileReader", "AudioWarning", "CheckpointError",
           "DEFAULT_THREADS", "ModelConfig", "StreamTalkerModel", "StreamingSession", "load_audio",
           "load_model", "save_checkpoint", "set_threads", "MODEL_SAMPLE_RATE", "__version__"]
