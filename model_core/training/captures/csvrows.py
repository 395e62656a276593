"""CSV plumbing shared by the Live Link Face and the generic readers: rows with their line
numbers, numeric columns (errors naming line and column), columns into ARKit-52 order."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from ...face import ARKIT_52


def _read_csv(path: Path) -> tuple[int, list[str], list[int], list[list[str]]]:
    """(header line number, header, row line numbers, rows); blank lines skipped; every row
    checked to have the header's number of fields."""
    if not path.exists():
        raise FileNotFoundError(f"animation file not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give a .csv / .npz / .json file")
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise ValueError(f"{path}: binary data, not a CSV text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e}); save the CSV as UTF-8") from None
    lines = text.splitlines()
    hline = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if hline is None:
        raise ValueError(f"{path}: the file is empty; expected a header row and one row per frame")
    first = lines[hline]
    delim = "," if "," in first else ";" if ";" in first else "\t" if "\t" in first else ","
    reader = csv.reader(io.StringIO(text), delimiter=delim, skipinitialspace=True)
    header, line_nos, rows = None, [], []
    try:
        for fields in reader:
            ln = reader.line_num
            if not fields or all(not f.strip() for f in fields):
                continue
            if header is None:
                header = [f.strip() for f in fields]
                while header and not header[-1]:
                    header.pop()
                continue
            if len(fields) > len(header) and all(not f.strip() for f in fields[len(header):]):
                fields = fields[:len(header)]               # trailing separators
            if len(fields) != len(header):
                raise ValueError(f"{path}, line {ln}: {len(fields)} fields but the header has "
                                 f"{len(header)} columns (a truncated or corrupt row? delete "
                                 f"or fix that line)")
            line_nos.append(ln)
            rows.append(fields)
    except csv.Error as e:
        raise ValueError(f"{path}, line {reader.line_num}: unreadable CSV ({e})") from None
    if not rows:
        raise ValueError(f"{path}: a header but no data rows; expected one row per frame")
    return hline + 1, header, line_nos, rows


def _numeric(path: Path, header, line_nos, rows, cols: Sequence[int]) -> np.ndarray:
    """float64 [T, len(cols)] from the given columns; errors name line and column."""
    if not cols:
        return np.zeros((len(rows), 0))
    try:
        out = np.array([[r[c] for c in cols] for r in rows], dtype=str).astype(np.float64)
    except ValueError:
        for ln, r in zip(line_nos, rows):
            for c in cols:
                try:
                    float(r[c])
                except ValueError:
                    raise ValueError(f"{path}, line {ln}: column {header[c]!r} holds "
                                     f"{r[c]!r}, not a number") from None
        raise
    bad = ~np.isfinite(out)
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        raise ValueError(f"{path}, line {line_nos[i]}: column {header[cols[j]]!r} is "
                         f"{rows[i][cols[j]]!r}; weights must be finite numbers")
    return out


def _to_arkit(values: np.ndarray, pairs: list[tuple[int, int]], cols: Sequence[int]) -> np.ndarray:
    """Columns of ``values`` (positions ``cols``) placed into [T, 52] ARKit order, clipped."""
    frames = np.zeros((values.shape[0], len(ARKIT_52)), np.float32)
    where = {c: j for j, c in enumerate(cols)}
    for pos, ai in pairs:
        frames[:, ai] = values[:, where[pos]]
    return np.clip(frames, 0.0, 1.0)
