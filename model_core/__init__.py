"""StreamTalker model core: streaming autoregressive diffusion for speech-driven facial
animation (after StreamingTalker, arXiv 2511.14223). Never imports ``bpy``.

Public API::

    model = model_core.load_model(path=None, device="cpu")
    session = model.stream(seed=0, style=None)
    frames = session.push(samples)   # float32 mono 16 kHz -> [n_new, D]
    frames = session.flush()
    frames = model.generate(audio, sample_rate, seed=0)   # [round(duration * fps), D]
"""

from .arkit import ARKIT_52
from .audio import load_audio, MODEL_SAMPLE_RATE
from .checkpoint import load_checkpoint, save_checkpoint
from .config import ModelConfig
from .errors import AudioError, CheckpointError
from .model import StreamTalkerModel
from .streaming import StreamingSession

__version__ = "0.1.0"


def load_model(path=None, device="cpu") -> StreamTalkerModel:
    """Load a model: ``path`` to a checkpoint, or None for the bundled default.

    See :func:`model_core.checkpoint.load_checkpoint` for the errors raised.
    """
    return load_checkpoint(path, device)


__all__ = ["ARKIT_52", "AudioError", "CheckpointError", "ModelConfig", "StreamTalkerModel",
           "StreamingSession", "load_audio", "load_model", "save_checkpoint", "MODEL_SAMPLE_RATE",
           "__version__"]
