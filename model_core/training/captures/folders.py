"""A folder of takes, paired by file stem (:func:`load_capture_folder`)."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from ...io.audio import SUPPORTED_EXTENSIONS
from .pairs import VIDEO_EXTENSIONS, load_capture_pair
from .tables import ANIMATION_EXTENSIONS
from ...errors import DataError, InputNotFoundError


#: Audio files paired by :func:`load_capture_folder` (what :func:`model_core.load_audio` decodes).
AUDIO_EXTENSIONS = tuple(SUPPORTED_EXTENSIONS)
#: Side files of a Live Link Face take folder, never animation.
_LLF_SIDE_FILES = {"frame_log.csv", "take.json", "thumbnail.jpg", "video_metadata.json",
                   "audio_metadata.json"}


class CaptureList(list):
    """The utterances of a capture folder (a ``list[Utterance]``), with

    Attributes:
        warnings: human-readable notes: unpaired files that were skipped, ignored or missing
            columns.
        pairs: ``(audio_path, anim_path)`` for each utterance, in the same order.
    """

    def __init__(self, items=(), warnings=None, pairs=None):
        super().__init__(items)
        self.warnings: list[str] = list(warnings or [])
        self.pairs: list[tuple[Path, Path]] = list(pairs or [])


def load_capture_folder(folder: str | os.PathLike, fps: float, style: int = 0,
                        offset_s: float = 0.0, anim_fps: float | None = None,
                        max_mismatch_s: float = 1.0) -> CaptureList:
    """All (audio, animation) takes under ``folder`` as training utterances.

    Files are searched recursively (hidden files skipped) and paired by stem,
    case-insensitively: first within one folder (``take01.wav`` + ``take01.csv``; a Live
    Link Face take folder ``<name>.csv`` + ``<name>.wav``), then across folders when a stem
    occurs once on each side (``audio/take01.wav`` + ``anim/take01.csv``). Animation:
    .csv/.tsv/.npz/.json; audio: wav/flac/ogg/mp3/aiff. Live Link Face side files
    (``frame_log.csv``, ``take.json``, ``thumbnail.jpg``) are ignored.

    Args:
        folder: directory of takes.
        fps: model frame rate; style, offset_s, anim_fps, max_mismatch_s: as in
            :func:`load_capture_pair`, for every take.

    Returns:
        :class:`CaptureList` — a list of Utterance sorted by animation path, with
        ``.warnings`` (unpaired files that were skipped; ignored / missing columns) and
        ``.pairs`` (the (audio, animation) paths used).

    Raises:
        FileNotFoundError / NotADirectoryError: ``folder`` is missing or a file.
        ValueError: nothing pairs (listing what was found and the expected layout); an
            animation whose only audio is a video (.mov/.mp4/.m4a) — with the ffmpeg command
            that extracts it; two audio or two animation files with one stem; or any error of
            :func:`load_capture_pair`, naming the file.
    """
    root = Path(folder)
    if not root.exists():
        raise InputNotFoundError(f"capture folder not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is a file; give the folder that holds the takes")
    anims, audios, videos = defaultdict(list), defaultdict(list), defaultdict(list)
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).parts
        if not p.is_file() or any(part.startswith(".") for part in rel):
            continue
        name, ext = p.name.lower(), p.suffix.lower()
        if name in _LLF_SIDE_FILES or name.endswith(".mha.json"):
            continue
        key = (p.parent, p.stem.lower())
        if ext in ANIMATION_EXTENSIONS:
            anims[key].append(p)
        elif ext in AUDIO_EXTENSIONS:
            audios[key].append(p)
        elif ext in VIDEO_EXTENSIONS:
            videos[key].append(p)
    for group, what in ((anims, "animation"), (audios, "audio")):
        for key, ps in group.items():
            if len(ps) > 1:
                raise DataError(f"{key[0]}: {len(ps)} {what} files named {ps[0].stem!r} "
                                 f"({', '.join(q.name for q in ps)}); keep one, or rename so "
                                 f"each take has one audio and one animation file")
    pairs: dict[tuple, Path] = {}
    for key in anims:
        if key in audios:
            pairs[key] = audios[key][0]
    # Across folders: a stem that is left over exactly once on each side.
    left_anim = defaultdict(list)
    for key in anims:
        if key not in pairs:
            left_anim[key[1]].append(key)
    used_audio = {pairs[k] for k in pairs}
    left_audio = defaultdict(list)
    for key, ps in audios.items():
        if ps[0] not in used_audio and key not in anims:
            left_audio[key[1]].append(ps[0])
    for stem, keys in left_anim.items():
        if len(keys) == 1 and len(left_audio.get(stem, ())) == 1:
            pairs[keys[0]] = left_audio[stem][0]
            used_audio.add(left_audio[stem][0])

    video_only = [videos[k][0] for k in anims if k not in pairs and k in videos]
    if video_only:
        raise DataError("no decodable audio for "
                         + "; ".join(f"{anims[(v.parent, v.stem.lower())][0]} (only {v.name}): "
                                     f"run ffmpeg -i \"{v}\" -vn -ac 1 \"{v.with_suffix('.wav')}\""
                                     for v in video_only)
                         + " — then load the folder again (wav, flac, ogg and mp3 are read)")

    warnings = []
    for key, ps in anims.items():
        if key not in pairs:
            warnings.append(f"{ps[0]}: no audio file named {ps[0].stem}.wav/.flac/.ogg/.mp3 "
                            f"beside it; skipped")
    for key, ps in audios.items():
        if ps[0] not in used_audio:
            warnings.append(f"{ps[0]}: no animation file named {ps[0].stem}.csv/.npz/.json "
                            f"beside it; skipped")
    for key, ps in videos.items():
        if key not in anims:
            warnings.append(f"{ps[0]}: video without a matching animation file; ignored")
    if not pairs:
        found = [str(p.relative_to(root)) for g in (anims, audios, videos)
                 for ps in g.values() for p in ps]
        raise DataError(
            f"{root}: found no (audio, animation) pairs. Put each take's audio and animation "
            f"side by side with the same name (take01.wav + take01.csv, or a Live Link Face "
            f"take folder with <name>.csv and <name>.wav extracted from <name>.mov). Found: "
            f"{', '.join(found[:20]) or 'no audio or animation files'}"
            f"{' …' if len(found) > 20 else ''}")

    utts, used = [], []
    for key in sorted(pairs, key=lambda k: str(anims[k][0])):
        anim, audio = anims[key][0], pairs[key]
        utts.append(load_capture_pair(audio, anim, fps, style=style, offset_s=offset_s,
                                      anim_fps=anim_fps, max_mismatch_s=max_mismatch_s,
                                      report=warnings))
        used.append((audio, anim))
    return CaptureList(utts, warnings=warnings, pairs=used)
