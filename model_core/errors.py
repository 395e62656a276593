"""The errors a user can fix (layer 0 of docs/architecture.md).

:class:`StreamTalkerError` is the one user-facing base type: its message is one sentence
that names the file or setting and says what to do. The library, the CLIs and the Blender
add-on raise subclasses of it for everything a user can act on, and catch it to show the
message (the add-on's report line, the CLI's ``error:`` line). Each subclass also derives
from the built-in type callers already expect (``ValueError``, ``RuntimeError``).
"""


class StreamTalkerError(Exception):
    """A problem the user can fix; the message says what and how."""


class AudioError(StreamTalkerError, ValueError):
    """Audio that cannot be used: unreadable file, empty, non-finite samples, bad shape/dtype."""


class CheckpointError(StreamTalkerError, ValueError):
    """A checkpoint that cannot be loaded: truncated, wrong format version, mismatched shapes."""


class SettingError(StreamTalkerError, ValueError):
    """A setting or argument out of its range or of the wrong type (fps, threads, seed,
    sampler settings, backend, device); the message names it and the range."""


class InputNotFoundError(StreamTalkerError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class OutputExistsError(StreamTalkerError, FileExistsError):
    """An output file exists and overwriting was not asked for (``--force``)."""


class FileWriteError(StreamTalkerError, OSError):
    """A file could not be written (no space, no permission, a missing folder); the message
    names the path."""


class FileReadError(StreamTalkerError, OSError):
    """A file the user named could not be read (no permission, a folder where a file was
    expected, an I/O error); the message names the path. ``io.files.read_error`` makes the
    subclass that is also the OS's own type (PermissionError, IsADirectoryError, ...)."""


class DataError(StreamTalkerError, ValueError):
    """A file's contents cannot be used: malformed, of another format, the wrong shape or
    version (a point cache, a rig-maps or mapping file, a capture table); the message names
    the file and what it expected."""


class ConfigError(StreamTalkerError, ValueError):
    """A configuration (a training TOML, a model config) with an unknown or invalid setting;
    the message names the file or setting."""


class SceneError(StreamTalkerError, ValueError):
    """The Blender scene is not as the operation needs (a mesh without shape keys, a line or
    action that no longer exists); the message says what to change."""


class InputIsADirectoryError(FileReadError, IsADirectoryError):
    """A folder was named where a file was expected."""
