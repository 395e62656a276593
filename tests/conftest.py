"""Shared fixtures: the test checkpoint (a model trained for a few hundred steps on the toy
task in tests/toy.py, built here, never shipped) and real speech from inputs/ (fetched by
the README's set-up, tools/fetch_inputs.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import virtual_mic  # noqa: E402
from realdata import real_speech_path  # noqa: E402


@pytest.fixture(scope="session")
def speech() -> np.ndarray:
    """A real LibriVox clip (female reader, public domain), float32 mono 16 kHz."""
    from model_core import load_audio
    return load_audio(real_speech_path())


@pytest.fixture(scope="session")
def toy_checkpoint(tmp_path_factory) -> Path:
    """Path of the test checkpoint: default architecture, 2 styles, trained on toy bursts."""
    import model_core as mc
    from model_core.training.batches import ChunkBatcher, fit_normalization, train_steps
    from toy import toy_corpus

    torch.manual_seed(0)
    cfg = mc.ModelConfig(n_styles=2, training={"name": "toy-bursts test checkpoint",
                                               "note": "built by tests/conftest.py; not a lip-sync model"})
    model = mc.StreamTalkerModel.from_config(cfg)
    utts = toy_corpus(24)
    fit_normalization(model, utts)
    hist = train_steps(model, ChunkBatcher(model, utts), 250, batch_size=32, lr=2e-3, warmup=20)
    first = np.mean([h["loss"] for h in hist[:10]])
    last = np.mean([h["loss"] for h in hist[-20:]])
    assert last < 0.3 * first, f"toy training did not converge: loss {first:.3f} -> {last:.3f}"
    path = tmp_path_factory.mktemp("ckpt") / "toy-bursts-test.safetensors"
    mc.save_checkpoint(model, path)
    return path


@pytest.fixture(scope="session")
def toy_model(toy_checkpoint):
    import model_core as mc
    return mc.load_model(toy_checkpoint)


@pytest.fixture
def mic(tmp_path):
    """A virtual PulseAudio microphone (tests/virtual_mic.py), started and stopped here."""
    virtual_mic.require()
    m = virtual_mic.VirtualMic(tmp_path / "pulse")
    m.start()
    yield m
    m.stop()
