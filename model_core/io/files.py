"""Small file helpers shared by every writer in model_core.

Outputs are never overwritten in place: :func:`atomic_write` writes to a hidden temporary
file beside the target and renames it over the target only once it is complete, so an
interrupted write leaves the old file (or nothing) and never a half-written one.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path
from typing import Callable


def _naming(e: OSError, p: Path, what: str = "cannot write") -> OSError:
    """The same kind of OSError, naming ``p`` (never a hidden temporary file)."""
    reason = e.strerror or str(e)
    err = type(e)(e.errno, f"{what} {p}: {reason}") if e.errno else type(e)(f"{what} {p}: {reason}")
    return err


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, then rename it to
    ``path`` (creating the parent folder). The temporary file is removed on failure.

    Existence checks (refusing to overwrite) are the caller's: the error messages differ
    per output kind.

    Raises:
        OSError (its subclasses kept: PermissionError, NotADirectoryError, ...): the file
        could not be written; the message names ``path``, never the temporary file.
    """
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _naming(e, p) from None
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}{p.suffix}")
    try:
        write(tmp)
        os.replace(tmp, p)
    except OSError as e:
        if tmp.name not in str(e) and str(e.filename or "") != str(tmp):
            raise
        raise _naming(e, p) from None
    finally:
        try:
            if tmp.exists():
                tmp.unlink()
        except OSError:
            pass
    return p


def check_writable(path: str | os.PathLike, overwrite: bool = False,
                   make_folders: bool = True) -> Path:
    """Check, before any work, that ``path`` can be written: not a folder, not an existing
    file unless ``overwrite``, and its folder (or, with ``make_folders``, the nearest existing
    folder above it, where the missing ones would be created) accepts a new file (a probe
    file is created and removed there). Creates nothing that stays.

    Returns:
        ``path`` as a Path.
    Raises:
        IsADirectoryError: ``path`` is a folder.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        FileNotFoundError: its folder does not exist and ``make_folders`` is False.
        NotADirectoryError: a component of the folder is a file.
        PermissionError / OSError: the folder does not accept a new file (read-only, no
            permission, ...). Every message names ``path``.
    """
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a folder; give a file name")
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} already exists; choose another name or pass --force")
    folder = p.parent if str(p.parent) else Path(".")
    if not make_folders and not folder.is_dir():
        raise FileNotFoundError(f"folder {folder} of the output file does not exist")
    while not folder.exists():
        if folder.parent == folder:
            break
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"cannot write {p}: {folder} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".probe", dir=folder)
    except OSError as e:
        raise _naming(e, p) from None
    os.close(fd)
    os.unlink(probe)
    return p


def read_toml(path: str | os.PathLike, what: str = "config") -> dict:
    """Parse a TOML file.

    Raises:
        FileNotFoundError: no such file; ValueError: invalid TOML (naming the file).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {p}")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{p}: invalid TOML ({e})") from None
