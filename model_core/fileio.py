"""Small file helpers shared by every writer in model_core.

Outputs are never overwritten in place: :func:`atomic_write` writes to a hidden temporary
file beside the target and renames it over the target only once it is complete, so an
interrupted write leaves the old file (or nothing) and never a half-written one.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Callable


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, then rename it to
    ``path`` (creating the parent folder). The temporary file is removed on failure.

    Existence checks (refusing to overwrite) are the caller's: the error messages differ
    per output kind.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}{p.suffix}")
    try:
        write(tmp)
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
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
