"""CPU and CUDA give the same frames (within float tolerance). Skipped, saying so, without a GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import model_core as mc

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA GPU visible to torch on this machine")


def test_cpu_and_cuda_agree(toy_checkpoint, speech):
    cpu = mc.load_model(toy_checkpoint, device="cpu").generate(speech, 16000, seed=2)
    gpu_model = mc.load_model(toy_checkpoint, device="cuda")
    gpu = gpu_model.generate(speech, 16000, seed=2)
    assert gpu.shape == cpu.shape
    assert np.abs(gpu - cpu).max() < 2e-3
    s = gpu_model.stream(seed=2)
    parts = [s.push(speech[i:i + 3000]) for i in range(0, len(speech), 3000)] + [s.flush()]
    assert np.array_equal(np.concatenate(parts), gpu)


def test_training_step_on_cuda():
    from toy import toy_corpus
    from model_core.training.batches import ChunkBatcher, fit_normalization, train_steps
    m = mc.StreamTalkerModel.from_config(mc.ModelConfig(n_styles=2), device="cuda")
    utts = toy_corpus(4)
    fit_normalization(m, utts)
    hist = train_steps(m, ChunkBatcher(m, utts), 20, batch_size=16)
    assert all(np.isfinite(h["loss"]) for h in hist)
