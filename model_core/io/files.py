"""Small file helpers shared by every writer in model_core.

Outputs are never overwritten in place: :func:`atomic_write` writes to a hidden temporary
file beside the target and renames it over the target only once it is complete, so an
interrupted write leaves the old file (or nothing) and never a half-written one.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Callable

from ..errors import (ConfigError, DataError, FileReadError, FileWriteError,
                      InputIsADirectoryError, InputNotFoundError, OutputExistsError)


_WRITE_ERRORS: dict[type, type] = {FileExistsError: OutputExistsError}


def write_error(kind: type[OSError]) -> type[OSError]:
    """The user-facing form of an OSError type: a subclass of both
    :class:`~model_core.errors.FileWriteError` (a StreamTalkerError: the CLI and the add-on
    show its one line) and ``kind`` (so ``except PermissionError`` still catches it);
    :class:`~model_core.errors.OutputExistsError` for FileExistsError."""
    cls = _WRITE_ERRORS.get(kind)
    if cls is None:
        cls = _WRITE_ERRORS[kind] = type(f"FileWrite{kind.__name__}", (FileWriteError, kind),
                                         {"__module__": __name__})
    return cls


_READ_ERRORS: dict[type, type] = {FileNotFoundError: InputNotFoundError,
                                  IsADirectoryError: InputIsADirectoryError}


def read_error(e: OSError, path: str | os.PathLike, what: str = "cannot read") -> OSError:
    """``e`` (an OSError from opening or reading the user's file ``path``) as a
    StreamTalkerError of the same kind naming ``path``: :class:`~model_core.errors.FileReadError`
    and ``type(e)`` (InputNotFoundError for FileNotFoundError), so the CLI and the add-on show
    its one line and ``except PermissionError`` still catches it."""
    kind = type(e) if type(e).__module__ == "builtins" else OSError
    cls = _READ_ERRORS.get(kind)
    if cls is None:
        cls = _READ_ERRORS[kind] = (FileReadError if kind is OSError else
                                    type(f"FileRead{kind.__name__}", (FileReadError, kind), {}))
    reason = e.strerror or str(e) or type(e).__name__
    return cls(e.errno, f"{what} {path}: {reason}") if e.errno else cls(f"{what} {path}: {reason}")


def _naming(e: OSError, p: Path, what: str = "cannot write") -> OSError:
    """The same kind of OSError, naming ``p`` (never a hidden temporary file), as a
    StreamTalkerError (:func:`write_error`)."""
    reason = e.strerror or str(e) or type(e).__name__
    kind = write_error(type(e))
    return kind(e.errno, f"{what} {p}: {reason}") if e.errno else kind(f"{what} {p}: {reason}")


def _claim(tmp: Path, p: Path) -> None:
    """Rename ``tmp`` to ``p`` only if ``p`` does not exist, atomically (a no-clobber rename):
    a hard link, then the temporary name is removed; where the file system has no hard
    links, ``p`` is first created exclusively (``O_EXCL``), then replaced.

    Raises:
        FileExistsError: ``p`` exists (another program wrote it since it was checked).
    """
    try:
        os.link(tmp, p)
    except FileExistsError:
        raise OutputExistsError(errno.EEXIST, f"{p} already exists (it was written while this "
                                            f"one was being made); choose another name or pass "
                                            f"--force") from None
    except OSError as e:
        if e.errno not in _NO_LINKS:
            raise
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            raise OutputExistsError(errno.EEXIST, f"{p} already exists (it was written while "
                                                f"this one was being made); choose another "
                                                f"name or pass --force") from None
        os.close(fd)
        os.replace(tmp, p)
        return
    os.unlink(tmp)


#: errno values of a file system without hard links (FAT, some network shares).
_NO_LINKS = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOSYS,
             getattr(errno, "ENOTSUP", errno.EPERM), getattr(errno, "EOPNOTSUPP", errno.EPERM)}


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None],
                 overwrite: bool = True) -> Path:
    """Write ``path`` through a temporary file: ``write(tmp)`` fills a hidden file beside
    ``path`` (creating the parent folder), which is then renamed to ``path``. The one way
    model_core writes an output:

    * ``path`` is claimed when it is written: with ``overwrite`` False, a file that appeared
      at ``path`` since it was checked is never replaced (a no-clobber rename,
      :func:`_claim`), it is a ``FileExistsError``;
    * every OSError names ``path`` (never the temporary file), disk full included;
    * no temporary file is left, whatever happens -- also when ``write`` made a file of
      another name from the temporary one (``numpy.savez`` appends ``.npz``).

    Existence checks before any work are the caller's (:func:`check_writable`): the error
    messages differ per output kind.

    Raises:
        OSError (its subclasses kept: PermissionError, NotADirectoryError,
        FileExistsError, ...): the file could not be written; the message names ``path``.
    """
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _naming(e, p) from None
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}{p.suffix}")
    try:
        write(tmp)
        if not tmp.is_file():
            raise FileNotFoundError(errno.ENOENT, "the writer made no file")
        if overwrite:
            os.replace(tmp, p)
        else:
            _claim(tmp, p)
    except OSError as e:
        if str(p) in str(e) and tmp.name not in str(e):
            raise
        raise _naming(e, p) from None
    finally:
        for left in p.parent.glob(glob.escape(tmp.name) + "*"):
            try:
                left.unlink()
            except OSError:
                pass
    return p


def write_new_file(path: str | os.PathLike, write: Callable[[Path], None], tag: str) -> Path:
    """Write what could not go to ``path`` to a new file named after it -- the named
    fallback of every output that must not be lost (a live take, a partial bake):
    ``STEM.TAG.EXT``, then ``STEM.TAG-2.EXT``, ... beside ``path``; where that folder does
    not take it (full, read-only, gone), the same names in the current folder, then in the
    system's temporary folder. Each name is claimed when it is written (never replacing a
    file, :func:`atomic_write` with ``overwrite=False``).

    Args:
        path: the output that could not be written; write: as for :func:`atomic_write`;
        tag: what the file is, e.g. ``"partial"`` or ``"recovered-20250101-120000"``.
    Returns:
        the file written.
    Raises:
        OSError: no folder took it; the message names each folder and why.
    """
    p = Path(path)
    stem = p.name[:-len(p.suffix)] if p.suffix else p.name
    tried = []
    for folder in dict.fromkeys([p.parent, Path.cwd(), Path(tempfile.gettempdir())]):
        if not folder.is_dir():
            tried.append(f"{folder}: not a folder")
            continue
        for i in range(1, 1000):
            cand = folder / f"{stem}.{tag}{'' if i == 1 else f'-{i}'}{p.suffix}"
            if cand.exists() or cand.is_symlink():
                continue
            try:
                return atomic_write(cand, write, overwrite=False)
            except FileExistsError:
                continue
            except OSError as e:
                tried.append(f"{e.strerror or e}" if str(folder) in str(e) else
                             f"{folder}: {e.strerror or e}")
                break
    raise FileWriteError(errno.EIO, f"nothing could be saved for {p}: no folder took a "
                             f"{tag} file ({'; '.join(tried)})")


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
        raise write_error(IsADirectoryError)(f"{p} is a folder; give a file name")
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p} already exists; choose another name or pass --force")
    folder = p.parent if str(p.parent) else Path(".")
    if not make_folders and not folder.is_dir():
        raise write_error(FileNotFoundError)(f"folder {folder} of the output file does not "
                                             f"exist")
    while not folder.exists():
        if folder.parent == folder:
            break
        folder = folder.parent
    if not folder.is_dir():
        raise write_error(NotADirectoryError)(f"cannot write {p}: {folder} is a file, not a folder")
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
        InputNotFoundError (a FileNotFoundError): no such file; ConfigError (a ValueError):
        invalid TOML (naming the file); FileReadError: unreadable.
    """
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"{what} not found: {p}")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML ({e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not a text file ({e.reason})") from None
    except OSError as e:
        raise read_error(e, p, f"cannot read the {what}") from None


def read_versioned_json(path: str | os.PathLike, fmt: str, version: int, what: str,
                        fix: str = "") -> dict:
    """Read one of StreamTalker's own JSON files (a mapping preset, the face-rig maps): a
    JSON object whose ``"format"`` is ``fmt`` and whose ``"version"`` is at most ``version``.

    Args:
        path: the file; fmt: its expected ``"format"``; version: the newest version this
            code reads; what: the file's kind for messages ("mapping preset"); fix: a
            sentence appended to the messages of a broken file (how to make a new one).
    Returns:
        the parsed object (a dict).
    Raises:
        InputNotFoundError: no such file; DataError: not JSON, not text, another format or
        a newer version (naming the file); FileReadError: unreadable.
    """
    p = Path(path)
    tail = f"; {fix}" if fix else ""
    if not p.is_file():
        raise InputNotFoundError(f"{what} not found: {p}{tail}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{p} is not a JSON {what} ({e}){tail}") from None
    except OSError as e:
        raise read_error(e, p, f"cannot read the {what}") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise DataError(f"{p} is not a StreamTalker {what} (expected \"format\": \"{fmt}\")"
                        f"{tail}")
    if int(data.get("version", 0)) > version:
        raise DataError(f"{p} was written by a newer StreamTalker ({what} version "
                        f"{data.get('version')})")
    return data

