"""Exceptions raised by model_core. All derive from the built-in types callers expect."""


class AudioError(ValueError):
    """Audio that cannot be used: unreadable file, empty, non-finite samples, bad shape/dtype."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: truncated, wrong format version, mismatched shapes."""
