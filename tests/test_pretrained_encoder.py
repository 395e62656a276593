"""Optional pretrained speech encoder (HuBERT / wav2vec 2.0 via transformers), loaded from a
local folder only. A tiny randomly initialised HuBERT saved with save_pretrained stands in for
the real 94 M-parameter one, which is never downloaded."""

from __future__ import annotations

import numpy as np
import pytest

import model_core as mc

transformers = pytest.importorskip("transformers", reason="transformers not installed (optional encoder)")


@pytest.fixture(scope="module")
def tiny_hubert(tmp_path_factory):
    cfg = transformers.HubertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=64, conv_dim=(16, 16, 16, 16, 16, 16, 16),
                                    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    import torch
    torch.manual_seed(0)
    model = transformers.HubertModel(cfg)
    d = tmp_path_factory.mktemp("hubert")
    model.save_pretrained(d)
    return d


@pytest.mark.parametrize("layer", [None, 1])
def test_streaming_contract_with_pretrained_encoder(tiny_hubert, speech, layer):
    cfg = mc.ModelConfig(speech_encoder={"type": "hubert", "path": str(tiny_hubert), "layer": layer,
                                         "context_s": 0.64})
    model = mc.StreamTalkerModel.from_config(cfg)
    audio = speech[:16000 * 3]
    whole = model.generate(audio, 16000, seed=1)
    assert whole.shape == (90, 52)
    s = model.stream(seed=1)
    parts = [s.push(audio[i:i + 1111]) for i in range(0, len(audio), 1111)] + [s.flush()]
    assert np.array_equal(np.concatenate(parts), whole)
    assert s.state_sizes()["samples"] <= 0.64 * 16000


def test_pretrained_checkpoint_round_trip(tiny_hubert, tmp_path, speech):
    cfg = mc.ModelConfig(speech_encoder={"type": "hubert", "path": str(tiny_hubert)})
    model = mc.StreamTalkerModel.from_config(cfg)
    p = mc.save_checkpoint(model, tmp_path / "hub.safetensors")
    a = model.generate(speech[:16000], 16000)
    assert np.array_equal(mc.load_model(p).generate(speech[:16000], 16000), a)


def test_missing_encoder_folder(tmp_path):
    cfg = mc.ModelConfig(speech_encoder={"type": "hubert", "path": str(tmp_path / "nowhere")})
    with pytest.raises(FileNotFoundError, match="nowhere"):
        mc.StreamTalkerModel.from_config(cfg).stream()
