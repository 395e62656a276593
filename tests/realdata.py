"""Paths of the real test inputs fetched by tools/fetch_inputs.py (never read from ../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INPUTS = ROOT / "inputs"


def real_speech_path(name: str = "sense_and_sensibility_01_austen_64kb-0870.wav") -> Path:
    """A LibriVox clip (public domain, 16 kHz); fails the test if the inputs are missing."""
    p = INPUTS / "speech" / "librivox" / name
    if not p.exists():
        pytest.fail(f"real test input {p} is missing: run `.venv/bin/python tools/fetch_inputs.py` "
                    f"(the README's test command does this)")
    return p
