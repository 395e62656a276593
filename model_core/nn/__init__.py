"""Neural network modules of the StreamTalker model (audio encoder, condition predictor, diffusion head)."""

from .network import StreamTalkerNet

__all__ = ["StreamTalkerNet"]
