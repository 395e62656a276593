"""Look-ahead as a session setting, and what training does for it: a model declares the
range it learned (ModelConfig.min_lookahead_ms .. lookahead_ms), each session picks one,
training batches draw one; vocal-tract-length perturbation of the training features;
checkpoints from before the IPA viseme classes still load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_core.runtime.config import ChunkGeometry, ModelConfig
from model_core.runtime.model import StreamTalkerModel
from test_streaming import run_chunked
from toy import toy_corpus
from tiers import first_fast


@pytest.fixture(scope="module")
def ranged_model():
    """An untrained model that declares look-ahead 0-60 ms (bit-identity needs no training)."""
    cfg = ModelConfig(chunk_frames=3, min_lookahead_ms=0.0, live_chunk_frames=1,
                      live_lookahead_ms=20.0, sample_steps=3)
    return StreamTalkerModel.from_config(cfg, "cpu", seed=0)


def test_lookahead_range_is_declared_and_checked(ranged_model, toy_model):
    assert ranged_model.config.lookahead_range() == (0.0, 60.0)
    s = ranged_model.stream(lookahead_ms=20, chunk_frames=1)
    assert s.lookahead_ms == 20.0 and s.latency_ms == pytest.approx(1000 / 30 + 20)
    assert ranged_model.latency_ms(1, 20.0) == pytest.approx(s.latency_ms)
    with pytest.raises(ValueError, match="lookahead_ms.*0, 60"):
        ranged_model.stream(lookahead_ms=80)
    with pytest.raises(ValueError, match="lookahead_ms"):
        ranged_model.stream(lookahead_ms=float("nan"))
    # a model trained for one look-ahead takes only that one
    lo, hi = toy_model.config.lookahead_range()
    assert lo == hi
    with pytest.raises(ValueError, match="trained for one look-ahead"):
        toy_model.stream(lookahead_ms=hi - 20)
    with pytest.raises(ValueError, match="live_lookahead_ms"):
        ModelConfig(min_lookahead_ms=30.0, live_lookahead_ms=20.0)
    with pytest.raises(ValueError, match="min_lookahead_ms"):
        ModelConfig(min_lookahead_ms=90.0)


@pytest.mark.parametrize("lookahead, k", first_fast([(40.0, 3), (0.0, 1), (20.0, 1), (60.0, 2)]))
def test_any_chunking_gives_identical_frames_at_each_setting(ranged_model, speech, lookahead, k):
    audio = speech[: 16000 * 3]
    kw = dict(seed=4, lookahead_ms=lookahead, chunk_frames=k)
    whole = ranged_model.generate(audio, 16000, **kw)
    for sizes in ([1], [7, 333], [4000]):
        part = audio[:16000 + 555] if sizes == [1] else audio
        ref = whole if sizes != [1] else ranged_model.generate(part, 16000, **kw)
        assert np.array_equal(run_chunked(ranged_model, part, sizes, **kw), ref)
    assert len(whole) == 90


def test_shorter_lookahead_answers_sooner(ranged_model):
    """A session emits a chunk once the audio up to its look-ahead has arrived."""
    for la in (0.0, 20.0, 60.0):
        s = ranged_model.stream(lookahead_ms=la, chunk_frames=1)
        geo = ChunkGeometry(ranged_model.config, la)
        need = geo.audio_end(0, 1)
        assert len(s.push(np.zeros(need - 1, np.float32))) == 0
        assert len(s.push(np.zeros(1, np.float32))) == 1
    assert ChunkGeometry(ranged_model.config, 0.0).audio_end(0, 1) + 960 == \
        ChunkGeometry(ranged_model.config, 60.0).audio_end(0, 1)


def test_training_batches_draw_the_lookahead(ranged_model):
    from model_core.training.batches import ChunkBatcher
    b = ChunkBatcher(ranged_model, toy_corpus(4, seed=1), seed=0)
    M = ranged_model.config.audio_context_frames
    offs = {}
    for la in (0.0, 60.0):
        batch = b.batch(8, K=1, lookahead_ms=la)
        assert batch["feats"].shape[1] == M
        offs[la] = batch["mel_offset"]
    # the window ends earlier for a shorter look-ahead: its first mel frame is 6 frames
    # (60 ms) earlier relative to the chunk, on average over the batch
    drawn = {round(float(b.batch(4, K=1)["mel_offset"].mean() * 100)) for _ in range(40)}
    assert len(drawn) > 2          # several look-aheads were drawn
    # a model with one look-ahead draws nothing extra: batches as before
    one = StreamTalkerModel.from_config(ModelConfig(chunk_frames=3), "cpu", seed=0)
    b1, b2 = ChunkBatcher(one, toy_corpus(3), seed=5), ChunkBatcher(one, toy_corpus(3), seed=5)
    assert torch.equal(b1.batch(4)["feats"], b2.batch(4, lookahead_ms=60.0)["feats"])


def test_live_pairing_trains_the_live_setting_itself(ranged_model):
    """[train] live_pairing p: a batch of the live chunk size takes the live look-ahead with
    probability p (the live setting drawn as a pair); other chunk sizes draw as before."""
    from model_core.training.batches import ChunkBatcher
    live = ranged_model.config.live_lookahead_ms
    paired = ChunkBatcher(ranged_model, toy_corpus(2, seed=1), seed=0, live_pairing=1.0)
    assert {paired.draw_lookahead(1) for _ in range(50)} == {live}
    assert len({paired.draw_lookahead(3) for _ in range(50)}) > 2
    half = ChunkBatcher(ranged_model, toy_corpus(2, seed=1), seed=0, live_pairing=0.5)
    n_live = sum(half.draw_lookahead(1) == live for _ in range(400))
    assert 200 < n_live < 300           # 0.5 paired + 0.5 * P(drawn == live), about 0.52
    off = ChunkBatcher(ranged_model, toy_corpus(2, seed=1), seed=0)
    assert sum(off.draw_lookahead(1) == live for _ in range(400)) < 60
    with pytest.raises(ValueError, match=r"live_pairing must be in \[0, 1\]"):
        ChunkBatcher(ranged_model, toy_corpus(1), live_pairing=1.5)
    one = StreamTalkerModel.from_config(ModelConfig(chunk_frames=3), "cpu", seed=0)
    with pytest.raises(ValueError, match="live_pairing needs the model's live setting"):
        ChunkBatcher(one, toy_corpus(1), live_pairing=0.5)


def test_vtlp_warps_the_training_features(ranged_model):
    from model_core.training.batches import ChunkBatcher, vtlp_logmel
    lm = ChunkBatcher(ranged_model, toy_corpus(1), seed=0).frontend.logmel
    assert np.array_equal(vtlp_logmel(lm, 1.0).fbank, lm.fbank)
    f = np.linspace(0, 8000, lm.fbank.shape[1])
    centre = (vtlp_logmel(lm, 1.1).fbank * f).sum(1) / vtlp_logmel(lm, 1.1).fbank.sum(1)
    plain = (lm.fbank * f).sum(1) / lm.fbank.sum(1)
    # a band hears lower frequencies when alpha > 1 (formants of a shorter vocal tract land
    # where a longer one's would), the Nyquist end stays
    assert np.all(centre[10:60] < plain[10:60]) and abs(centre[-1] - plain[-1]) < 150
    utts = toy_corpus(2, seed=3)
    a = ChunkBatcher(ranged_model, utts, seed=0)._mel(0)
    w = ChunkBatcher(ranged_model, utts, seed=0, vtlp=0.15)._mel(0)
    assert a.shape == w.shape and not np.allclose(a, w)


def test_a_distillation_parent_hears_the_voice_unwarped(ranged_model):
    """VTLP with a distillation parent: the batch holds ``feats_clean``, the very windows of
    ``feats`` without the warp, and the parent's guided x0 is computed on them, so the
    network learns to answer a warped voice as its parent answers the voice as recorded."""
    import torch
    from types import SimpleNamespace
    from model_core.training.batches import ChunkBatcher
    from model_core.training.objective import guided_x0
    utts = toy_corpus(1, seed=3)
    bat = ChunkBatcher(ranged_model, utts, seed=0, vtlp=0.15, clean_features=True)
    b = bat.batch(6, K=3)
    assert b["feats_clean"].shape == b["feats"].shape
    warped, clean = bat._mel(0), bat._mel_clean(0)
    assert np.array_equal(clean, ChunkBatcher(ranged_model, utts, seed=0)._mel(0))
    assert not np.allclose(warped, clean)
    M = b["feats"].shape[1]
    for f, fc in zip(b["feats"].numpy(), b["feats_clean"].numpy()):
        starts = [e for e in range(len(clean) - M + 1) if np.array_equal(warped[e:e + M], f)]
        assert starts and any(np.array_equal(clean[e:e + M], fc) for e in starts)
    # only with a warp and when asked
    assert "feats_clean" not in ChunkBatcher(ranged_model, utts, seed=0, vtlp=0.15).batch(2, K=3)
    assert "feats_clean" not in ChunkBatcher(ranged_model, utts, seed=0,
                                             clean_features=True).batch(2, K=3)
    heard = []
    D = b["target"].shape[-1]

    def net(feats, *rest):
        heard.append(feats)
        return torch.zeros(rest[-2].shape)

    parent = SimpleNamespace(net=net, config=SimpleNamespace(guidance=2.0),
                             guidance_scale=lambda g: np.full(D, g, np.float32))
    x_t, t = torch.zeros(6, 3, D), torch.zeros(6, dtype=torch.int64)
    guided_x0(parent, b, b["history"], b["style"], x_t, t)
    assert len(heard) == 2 and all(h is b["feats_clean"] for h in heard)
    del b["feats_clean"]
    heard.clear()
    guided_x0(parent, b, b["history"], b["style"], x_t, t)
    assert all(h is b["feats"] for h in heard)


def test_older_checkpoints_with_27_viseme_rows_load(tmp_path):
    from safetensors.torch import load_file, save_file
    from model_core.face import VISEME_CLASSES
    from model_core.runtime.checkpoint import load_checkpoint, save_checkpoint
    m = StreamTalkerModel.from_config(ModelConfig(aux_viseme_weight=0.5), "cpu", seed=0)
    path = save_checkpoint(m, tmp_path / "old.safetensors")
    state = load_file(str(path))
    for k in [k for k in state if k.startswith("viseme_heads.")]:
        state[k] = state[k][:27].clone()
    save_file(state, str(path))
    loaded = load_checkpoint(path, "cpu")
    w = loaded.net.viseme_heads["audio"].weight
    assert w.shape[0] == len(VISEME_CLASSES) == 33
    assert torch.equal(w[:27], state["viseme_heads.audio.weight"]) and not w[27:].any()
