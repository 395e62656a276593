"""The add-on's user-facing errors. All are :class:`model_core.errors.StreamTalkerError`
(the project's one user-facing base type), so one ``except StreamTalkerError`` reports any of
them -- or model_core's own (unreadable audio, a bad checkpoint, a live-input failure) -- as
the one sentence the user sees. No ``bpy`` here.
"""

from __future__ import annotations

try:    # the installed extension: model_core vendored inside the add-on (see core.py)
    from .model_core.errors import (AudioError, CheckpointError, DataError, InputNotFoundError,
                                    SceneError, SettingError, StreamTalkerError)
except ModuleNotFoundError as _e:   # a development checkout: the project's top-level model_core
    if _e.name != f"{__package__}.model_core":
        raise
    from model_core.errors import (AudioError, CheckpointError, DataError, InputNotFoundError,
                                   SceneError, SettingError, StreamTalkerError)

__all__ = ["AudioError", "CheckpointError", "DataError", "InputNotFoundError", "PlanError",
           "SceneError", "SettingError", "SourceError", "StreamTalkerError"]


class SourceError(StreamTalkerError, ValueError):
    """The audio source cannot be used (file, strip, frame rate)."""


class PlanError(StreamTalkerError, ValueError):
    """What to generate cannot be decided: no or a wrong target, no mapping, no model, or
    another job is running."""
