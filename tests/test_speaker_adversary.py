"""The speaker-adversarial loss ([train] speaker_adversary): a classifier of the training
voice on the audio encoder's frames whose gradient the encoder gets reversed (DANN)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import model_core as mc
from model_core.training.corpus import speaker_key
from model_core.training.objective import SpeakerAdversary, adversary_scale


def test_speaker_key_names_the_voice_not_the_language():
    """A voice is one speaker in every language it reads: eSpeak NG's variants are the
    voices (its language voices share them), a WORLD transform keeps its source's name."""
    assert speaker_key({"engine": "mbrola", "voice": "de6"}) == "mbrola:de6"
    assert speaker_key({"engine": "piper", "voice": "en_US-joe-medium",
                        "world": [0.9, 1.05]}) == "piper:en_US-joe-medium"
    assert speaker_key({"engine": "espeak-ng", "voice": "en-us+Denis"}) == \
        speaker_key({"engine": "espeak-ng", "voice": "fr-fr+Denis"}) == "espeak-ng:+Denis"
    assert speaker_key({"engine": "espeak-ng", "voice": "de"}) == "espeak-ng:default"
    with pytest.raises(ValueError, match="utt_7.npz: no engine or voice"):
        speaker_key({"file": "utts/utt_7.npz", "text": "hi"})


def test_the_encoder_gets_the_classifiers_gradient_reversed_and_scaled():
    """The classifier learns to tell the voices apart (its gradient is the plain
    cross-entropy's); the encoder's features get that gradient times -scale."""
    torch.manual_seed(0)
    adv = SpeakerAdversary(8, 3, hidden=16)
    enc = torch.nn.Linear(4, 8)
    x = torch.randn(2, 5, 4)
    speaker = torch.tensor([0, 2])

    class Net(torch.nn.Module):   # what attach() looks for: an `encoder`
        def __init__(self):
            super().__init__()
            self.encoder = enc

    adv.attach(Net())
    grads = {}
    for scale in (0.0, 0.5):
        adv.scale = scale
        feats = enc(x)
        feats.retain_grad()
        adv.zero_grad()
        out = adv.loss(speaker)
        out["speaker"].backward()
        grads[scale] = (feats.grad.clone(), adv.head[0].weight.grad.clone())
    with pytest.raises(RuntimeError, match="no encoder output recorded"):
        adv.loss(speaker)                                      # no new forward pass
    # the plain gradient of the same cross-entropy with respect to the features
    feats = enc(x).detach().requires_grad_(True)
    logits = adv.head(feats)
    ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), speaker.repeat_interleave(5))
    ce.backward()
    assert torch.allclose(grads[0.5][0], -0.5 * feats.grad, atol=1e-6)
    assert torch.count_nonzero(grads[0.0][0]) == 0
    assert torch.allclose(grads[0.5][1], grads[0.0][1])          # the classifier: unreversed
    assert out["speaker"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert adversary_scale(0.3, 0, 100) == 0.0
    assert 0.29 < adversary_scale(0.3, 50, 100) < adversary_scale(0.3, 99, 100) < 0.3
    with pytest.raises(ValueError, match="at least 2 training voices"):
        SpeakerAdversary(8, 1)


@pytest.mark.slow   # trains two small models
def test_an_encoder_trained_against_the_classifier_hides_the_voice():
    """Two voices (a low and a high tone under the same phones): trained with the
    classifier alone (scale 0) the classifier tells them apart from the encoder's frames;
    with its gradient reversed into the encoder, it cannot."""
    from model_core.training.batches import ChunkBatcher, Utterance, optimizer_step
    from model_core.training.objective import DDPMNoiser

    def run(scale: float) -> float:
        torch.manual_seed(0)
        cfg = mc.ModelConfig(n_styles=1, encoder_dilations=[1, 2], d_model=32, head_dim=32,
                             encoder_channels=32, predictor_ff=64, head_ff=64)
        model = mc.StreamTalkerModel.from_config(cfg)
        rng = np.random.default_rng(1)
        utts = []
        for i in range(6):
            f0 = (140.0, 320.0)[i % 2]
            t = np.arange(32000) / 16000
            x = (0.3 * np.sin(2 * np.pi * f0 * t) + rng.normal(0, 1e-3, t.size)).astype(np.float32)
            utts.append(Utterance(x, np.zeros((60, 52), np.float32), 0,
                                  [("AA", 0.0, 1.0), ("IY", 1.0, 2.0)], speaker=i % 2))
        batcher = ChunkBatcher(model, utts, seed=0, speaker_labels=True)
        adv = SpeakerAdversary(cfg.encoder_channels, 2, hidden=32)
        adv.attach(model.net)
        adv.scale = scale
        params = [{"params": list(model.net.parameters())}, {"params": list(adv.parameters())}]
        opt = torch.optim.AdamW(params, lr=3e-3)
        noiser = DDPMNoiser(cfg.schedule, cfg.train_timesteps)
        gen = torch.Generator().manual_seed(0)
        accs = [optimizer_step(model, batcher.batch(16), opt, noiser, gen, 3e-3,
                               adversary=adv)["speaker_acc"] for _ in range(120)]
        return float(np.mean(accs[-20:]))

    assert run(0.0) > 0.9     # 0.94 when written (some windows hold the silent padding)
    assert run(1.0) < 0.7     # 0.52: chance
