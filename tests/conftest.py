"""Shared fixtures: the test checkpoint (a model trained for a few hundred steps on the toy
task in tests/toy.py, cached between runs under a hash of its sources, never shipped) and
real speech from inputs/ (fetched by the README's set-up, tools/fetch_inputs.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import virtual_mic  # noqa: E402
from realdata import real_speech_path  # noqa: E402
from toy import checkpoint_for_tests  # noqa: E402


@pytest.fixture(scope="session")
def speech() -> np.ndarray:
    """A real LibriVox clip (female reader, public domain), float32 mono 16 kHz."""
    from model_core import load_audio
    return load_audio(real_speech_path())


@pytest.fixture(scope="session")
def toy_checkpoint(tmp_path_factory) -> Path:
    """Path of the test checkpoint: default architecture, 2 styles, trained on toy bursts
    (tests/toy.py); without torch, the prebuilt one (:func:`checkpoint_for_tests`)."""
    return checkpoint_for_tests("toy", tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="session")
def live_checkpoint(tmp_path_factory) -> Path:
    """Path of an untrained test checkpoint that declares a look-ahead range and a live
    setting (tests/toy.py ``LIVE_CONFIG``: quality 3 frames + 60 ms, live 1 frame + 20 ms)."""
    return checkpoint_for_tests("live", tmp_path_factory.mktemp("live-ckpt"))


def _model_backend() -> str | None:
    """torch where it is installed (the tests compare the torch network's frames; the
    library's default on the CPU is onnx), else onnx (Blender 5.2's environment, like an
    installed extension)."""
    from model_core.runtime.backends import torch_available
    return "torch" if torch_available() else None


@pytest.fixture(scope="session")
def live_model(live_checkpoint):
    import model_core as mc
    return mc.load_model(live_checkpoint, backend=_model_backend())


@pytest.fixture(scope="session")
def toy_model(toy_checkpoint):
    import model_core as mc
    return mc.load_model(toy_checkpoint, backend=_model_backend())


@pytest.fixture
def mic(tmp_path):
    """A virtual PulseAudio microphone (tests/virtual_mic.py), started and stopped here."""
    virtual_mic.require()
    m = virtual_mic.VirtualMic(tmp_path / "pulse")
    m.start()
    yield m
    m.stop()
