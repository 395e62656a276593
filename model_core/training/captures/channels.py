"""Column and shape-key names -> ARKit-52 channels (:func:`arkit_channel_index`; the spellings
are :func:`model_core.face.arkit_name`'s), and the reports of ignored and missing columns."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence

from ...face import ARKIT_52, LIVE_LINK_FACE_ROTATIONS, arkit_name


#: Columns of a Live Link Face CSV that are known and not blendshapes (never reported).
_LLF_NON_SHAPES = {"timecode", "blendshapecount", *(r.lower() for r in LIVE_LINK_FACE_ROTATIONS)}


class ChannelIndex(dict):
    """``{column name: index into ARKIT_52}`` for the names that are ARKit channels.

    Attributes:
        unknown: names that are no ARKit-52 channel (ignored), in input order.
        duplicates: names that map to a channel an earlier name already took (ignored).
        missing: ARKit-52 names no column maps to (property).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.unknown: list[str] = []
        self.duplicates: list[str] = []

    @property
    def missing(self) -> list[str]:
        have = set(self.values())
        return [n for i, n in enumerate(ARKIT_52) if i not in have]


def _column_map(names: Sequence[str], skip: Iterable[int] = ()
                ) -> tuple[list[tuple[int, int]], list[str], list[str]]:
    """[(position in names, ARKit index)], unknown names, duplicate names."""
    skip = set(skip)
    pairs, unknown, dups, taken = [], [], [], set()
    for pos, n in enumerate(names):
        if pos in skip:
            continue
        a = arkit_name(n)
        if a is None:
            unknown.append(str(n))
            continue
        ai = ARKIT_52.index(a)
        if ai in taken:
            dups.append(str(n))
            continue
        taken.add(ai)
        pairs.append((pos, ai))
    return pairs, unknown, dups


def arkit_channel_index(names: Iterable[str]) -> ChannelIndex:
    """Map column / shape-key names in any common spelling to ARKit-52 channels.

    Args:
        names: column names (a CSV header, npz ``names``, a rig's shape keys).

    Returns:
        :class:`ChannelIndex`, a ``dict[str, int]`` from each recognised name (as given) to
        its index in ``model_core.face.ARKIT_52``; unknown names are left out and listed in
        ``.unknown``, later names for an already-mapped channel in ``.duplicates``, unmapped
        ARKit channels in ``.missing``. Spellings: see :func:`arkit_name`.
    """
    names = [str(n) for n in names]
    pairs, unknown, dups = _column_map(names)
    out = ChannelIndex((names[p], a) for p, a in pairs)
    out.unknown, out.duplicates = unknown, dups
    return out


def _shape_columns(path: Path, hline: int, header, skip, report, missing: str):
    """The header's ARKit columns, reported (:func:`_report_columns`): ``(pairs, cols)``,
    pairs ``(column, ARKit index)`` and cols their column positions.

    Raises:
        ValueError: no ARKit column, naming the file, the header line and ``missing`` (what
            the user should do).
    """
    pairs, unknown, dups = _column_map(header, skip=skip)
    if not pairs:
        raise ValueError(f"{path}, line {hline}: no ARKit blendshape columns {missing}")
    _report_columns(report, path, header, pairs, unknown, dups)
    return pairs, [pos for pos, _ in pairs]


def _report_columns(report, path, header, pairs, unknown, dups) -> None:
    if report is None:
        return
    unk = [u for u in unknown if u.strip()]
    if unk:
        report.append(f"{path}: ignored {len(unk)} column(s) that are not ARKit-52 "
                      f"blendshapes: {', '.join(unk)}")
    if dups:
        report.append(f"{path}: ignored duplicate column(s) for channels already read: "
                      f"{', '.join(dups)}")
    have = {a for _, a in pairs}
    miss = [n for i, n in enumerate(ARKIT_52) if i not in have]
    if miss:
        report.append(f"{path}: {len(miss)} ARKit channel(s) missing, set to 0: {', '.join(miss)}")


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.strip().lower())
