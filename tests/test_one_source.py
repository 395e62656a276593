"""One source for each rule (issue 24): the frame count and its inverse, the frame-rate
range, the CPU-thread rule, the backend choice, the face regions, the blink-temperature range,
the version string and the user-facing error type. Each test fails if a second source of its
rule appears (a grep over the code, strings and comments left out) or if a caller stops using
the one function."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("model_core/**/*.py"), *ROOT.glob("streamtalker_addon/**/*.py"),
                  ROOT / "build_addon.py"])


def code_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, code)`` of a Python file's logical lines with strings and comments
    left out (so docstrings that state a rule do not count as a second source)."""
    toks = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    out, cur, start = [], [], None
    for t in toks:
        if t.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
            if cur:
                out.append((start, " ".join(cur)))
            cur, start = [], None
        elif t.type not in (tokenize.COMMENT, tokenize.STRING, tokenize.NL, tokenize.INDENT,
                            tokenize.DEDENT, tokenize.ENCODING) and not (
                t.type == getattr(tokenize, "FSTRING_MIDDLE", -1)):
            start = start or t.start[0]
            cur.append(t.string)
    return out


def grep(pattern: str, skip: tuple[str, ...] = ()) -> list[str]:
    """Code lines of the sources matching ``pattern`` (files in ``skip``, relative to the
    project, left out)."""
    rx = re.compile(pattern)
    hits = []
    for p in SOURCES:
        rel = p.relative_to(ROOT).as_posix()
        if rel in skip:
            continue
        hits += [f"{rel}:{n}: {c}" for n, c in code_lines(p) if rx.search(c)]
    return hits


# -- 1. frame count ---------------------------------------------------------------------------

#: A rounding of something times / over a frame rate: a frame count or its inverse.
FRAME_RULE = r"\b(round|floor)\s*\(.*[*/][\w.\s()]*fps|[*/][\w.\s()]*fps\b.*\+ 0\.5"


def test_frame_count_and_its_inverse_are_computed_only_in_face():
    """Frames for N samples and samples for N frames: face.sample_frames / frame_samples."""
    hits = grep(FRAME_RULE, skip=("model_core/face.py",))
    assert hits == [], ("a second frame-count rule (use model_core.face.sample_frames / "
                        "frame_samples):\n" + "\n".join(hits))


def test_frame_samples_is_the_inverse_of_sample_frames():
    from model_core.face import frame_samples, sample_frames
    for fps in (24, 25, 29.97, 30000 / 1001, 30, 60, 1, 240):
        for sr in (16000, 44100, 48000):
            for n in range(0, 2000, 13):
                assert sample_frames(frame_samples(n, sr, fps), sr, fps) == n
    assert frame_samples(3, 16000, 30) == 1600 and frame_samples(1, 16000, 30) == 533


# -- 2. frame rate ------------------------------------------------------------------------------

def test_one_frame_rate_range():
    """Every frame-rate check is face.check_fps: no other comparison of an fps with a bound."""
    hits = grep(r"\bfps\w*\s*(<=?|>=?)\s*[\d\w]|[\d)]\s*(<=?|>=?)\s*[\w.]*fps\b(?!_)",
                skip=("model_core/face.py",))
    hits += grep(r"check_number\s*\(\s*[\w.]*fps")
    assert hits == [], "a second frame-rate rule (use model_core.face.check_fps):\n" + "\n".join(hits)


@pytest.mark.parametrize("bad", [0, -1, 0.5, 241, float("nan"), float("inf"), "30", True, None])
def test_every_frame_rate_check_refuses_the_same_values(bad):
    from model_core.evaluation.metrics import check_fps as metrics_fps
    from model_core.face import check_fps
    from model_core.training.captures.tables import _check_fps
    for check in (check_fps, metrics_fps, _check_fps):
        with pytest.raises(ValueError, match=r"\[1, 240\]"):
            check(bad)


def test_the_frame_rate_range_ends_are_accepted():
    from model_core.face import MAX_FPS, MIN_FPS, check_fps
    assert (MIN_FPS, MAX_FPS) == (1.0, 240.0)
    assert check_fps(1) == 1.0 and check_fps(240) == 240.0 and check_fps(30000 / 1001) > 29.9
