"""Corpus builder (make-dataset), streaming from corpus files, and `streamtalker train`
(TOML config, checkpoints, resume, fine-tuning, loss curves)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import model_core as mc
from model_core.runtime.config import ChunkGeometry
from model_core.training.corpus import (CorpusStream, augment_audio, build_corpus, load_utterance,
                                    read_manifest, sentence_pool, synthetic_rir)
from model_core.training.trainer import read_train_config, run_training

EXE = Path(sys.executable).with_name("streamtalker")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "c"
    build_corpus(out, 10, seed=3, workers=1, progress=False)
    return out


def test_sentence_pool_is_varied_english():
    s = sentence_pool()
    assert len(s) > 2000
    assert all(4 <= len(x.split()) <= 28 and x.isascii() for x in s)
    assert len({x.split()[0].lower() for x in s}) > 300


@pytest.mark.slow   # a TTS corpus (and training runs)
def test_corpus_files_are_consistent(corpus):
    recs = read_manifest(corpus)
    assert len(recs) == 10
    info = json.loads((corpus / "corpus.json").read_text())
    assert info["utterances"] == 10 and info["fps"] == 30.0
    geo = ChunkGeometry(mc.ModelConfig())
    engines = {r["engine"] for r in recs}
    assert engines <= {"espeak-ng", "festival"}
    for r in recs:
        u = load_utterance(corpus / r["file"], fps=30.0)
        assert u.frames.shape == (geo.n_frames(len(u.samples)), 52)
        assert abs(len(u.samples) / 16000 - r["duration_s"]) < 1e-3
        assert 0 <= u.frames.min() and u.frames.max() <= 1
        with np.load(corpus / r["file"]) as z:
            phones = json.loads(str(z["phones"]))
        assert phones[-1][2] == pytest.approx(r["duration_s"], abs=0.02)
    with pytest.raises(FileExistsError, match="not empty"):
        build_corpus(corpus, 1)


def test_augmentation_keeps_timing_and_length():
    rng = np.random.default_rng(0)
    x = np.zeros(16000, np.float32)
    x[8000:8100] = np.hanning(100)  # a click at 0.5 s
    for seed in range(10):
        y, rec = augment_audio(x, np.random.default_rng(seed))
        assert y.shape == x.shape and np.isfinite(y).all() and np.abs(y).max() <= 1
        env = np.abs(y)
        onset = np.argmax(env > 0.5 * env[7900:8300].max())
        assert 7850 <= onset <= 8150, (seed, rec, onset)
    rir = synthetic_rir(rng, 0.4)
    assert rir[0] == 1.0 and np.abs(rir[1:]).max() < 1.0


@pytest.mark.slow   # a TTS corpus (and training runs)
def test_corpus_stream_batches(corpus):
    model = mc.StreamTalkerModel.from_config(mc.ModelConfig(n_styles=1))
    files = [(str(corpus / r["file"]), 0) for r in read_manifest(corpus)]
    s = CorpusStream(model, files, reservoir=4, refresh=2)
    for _ in range(5):
        b = s.batch(8, K=4)
        assert b["target"].shape == (8, 4, 52) and b["feats"].shape == (8, 64, 80)
    assert len(s.batcher.utts) == 4


def _write_cfg(path: Path, corpus: Path, out: Path, **train):
    t = {"out": str(out), "steps": 6, "batch_size": 8, "save_every": 3, "log_every": 1,
         "warmup": 2, **train}
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in t.items())
    path.write_text(f"[model]\nn_styles = 2\n[data]\ncorpus = [{json.dumps(str(corpus))}]\n"
                    f"val_fraction = 0.2\n[train]\n{body}\n")
    return path


@pytest.mark.slow   # a TTS corpus (and training runs)
def test_train_resume_and_finetune(corpus, tmp_path, speech):
    cfg = _write_cfg(tmp_path / "a.toml", corpus, tmp_path / "run")
    final = run_training(cfg, progress=False)
    run = tmp_path / "run"
    assert final == run / "final.safetensors" and (run / "losses.png").stat().st_size > 1000
    assert (run / "step-0000003.safetensors").exists() and (run / "step-0000003.state.pt").exists()
    used = json.loads((run / "config.resolved-step-0000000.json").read_text())  # what it used
    assert used["train"]["steps"] == 6 and used["data"]["corpus"] == [str(corpus)]
    rows = list(csv.DictReader(open(run / "losses.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[2]["val_loss"] and all(np.isfinite(float(r["loss"])) for r in rows)
    m = mc.load_model(final, backend="torch")
    assert m.config.training["steps"] == 6 and m.generate(speech[:16000], 16000).shape == (30, 52)
    with pytest.raises(FileExistsError, match="finished"):
        run_training(cfg, progress=False)
    # resume: an interrupted run (no final) continues from its newest step checkpoint
    for p in run.glob("final.*"):
        p.unlink()
    cfg2 = _write_cfg(tmp_path / "b.toml", corpus, run, steps=8)
    run_training(cfg2, progress=False)
    rows = list(csv.DictReader(open(run / "losses.csv")))
    assert [int(r["step"]) for r in rows][-5:] == [4, 5, 6, 7, 8]
    # fine-tune: a new run initialised from a checkpoint
    cfg3 = _write_cfg(tmp_path / "c.toml", corpus, tmp_path / "ft", steps=2, init_from=str(final.with_name("step-0000006.safetensors")))
    ft = mc.load_model(run_training(cfg3, progress=False), backend="torch")
    assert ft.config.training["fine_tuned_from"].endswith("step-0000006.safetensors")


@pytest.mark.slow   # a TTS corpus (and training runs)
def test_train_stop_at_keeps_the_schedule_and_goes_on_later(corpus, tmp_path):
    """[train] stop_at (or --stop-at): the run stops after saving that step, its learning
    rate on the schedule of `steps` (how the bundled model's stages were stopped); run
    again, it does nothing; with 0 it goes on to the end; a step past it is refused."""
    from model_core.training.batches import lr_at
    cfg = _write_cfg(tmp_path / "s.toml", corpus, tmp_path / "run", steps=6, save_every=100,
                     stop_at=4, lr=1e-3)
    run = tmp_path / "run"
    ck = run_training(cfg, progress=False)
    assert ck == run / "step-0000004.safetensors" and ck.exists()
    assert (run / "step-0000004.state.pt").exists() and not (run / "final.safetensors").exists()
    rows = list(csv.DictReader(open(run / "losses.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4] and rows[-1]["val_loss"]
    assert float(rows[-1]["lr"]) == pytest.approx(lr_at(3, 6, 1e-3, 2), rel=1e-5)
    assert float(rows[-1]["lr"]) > 2 * lr_at(3, 4, 1e-3, 2)    # not a 4-step schedule
    assert mc.load_model(ck, backend="torch").config.training["steps"] == 4
    assert run_training(cfg, progress=False) == ck
    assert len(list(csv.DictReader(open(run / "losses.csv")))) == 4
    with pytest.raises(FileExistsError, match="past stop_at"):
        run_training(cfg, progress=False, stop_at=2)
    final = run_training(cfg, progress=False, stop_at=0)
    assert final == run / "final.safetensors" and final.exists()
    assert [int(r["step"]) for r in csv.DictReader(open(run / "losses.csv"))] == list(range(1, 7))
    for bad in (7, -1, 2.5):
        with pytest.raises(ValueError, match="stop_at"):
            read_train_config(_write_cfg(tmp_path / "b.toml", corpus, run, steps=6, stop_at=bad))


def test_finetune_may_reweigh_the_viseme_loss_but_not_remove_its_heads():
    """A fine-tune may weigh the auxiliary viseme loss differently (the heads stay), but not
    set it to 0 or from 0 (the heads would go or come): refused by name."""
    from model_core.training.trainer import apply_model_settings
    model = mc.StreamTalkerModel.from_config(mc.ModelConfig(n_styles=1, aux_viseme_weight=0.5))
    n_params = sum(p.numel() for p in model.net.parameters())
    assert apply_model_settings(model, {"aux_viseme_weight": 2.0}, "ck") == {
        "aux_viseme_weight": (0.5, 2.0)}
    assert model.config.aux_viseme_weight == 2.0
    assert sum(p.numel() for p in model.net.parameters()) == n_params
    with pytest.raises(ValueError, match=r"aux_viseme_weight = 0.0 differs from ck .*while above 0"):
        apply_model_settings(model, {"aux_viseme_weight": 0.0}, "ck")
    bare = mc.StreamTalkerModel.from_config(mc.ModelConfig(n_styles=1))
    with pytest.raises(ValueError, match=r"aux_viseme_weight = 1.0 differs"):
        apply_model_settings(bare, {"aux_viseme_weight": 1.0}, "ck")


def test_finetune_may_set_the_live_blink_temperature():
    """The live preset's blink temperature is a sampler setting like blink_temperature (a
    release sets it after training): a fine-tune config may give one, not refused."""
    from model_core.training.trainer import apply_model_settings
    model = mc.StreamTalkerModel.from_config(mc.ModelConfig(n_styles=1))
    assert apply_model_settings(model, {"live_blink_temperature": 0.7}, "ck") == {
        "live_blink_temperature": (None, 0.7)}


def test_finetune_may_set_dropout_and_the_blocks_use_it():
    """Dropout is a training-only regulariser (no weights): a fine-tune may set it, and the
    transformer blocks then drop at that rate in training (they kept the rate they were
    built with, so the setting would have done nothing)."""
    import torch
    from model_core.runtime.network import Block
    from model_core.training.trainer import apply_model_settings
    model = mc.StreamTalkerModel.from_config(mc.ModelConfig(n_styles=1))
    assert apply_model_settings(model, {"dropout": 0.5}, "ck") == {"dropout": (0.0, 0.5)}
    blocks = [m for m in model.net.modules() if isinstance(m, Block)]
    assert blocks and all(b.p == 0.5 for b in blocks)
    b = blocks[0].train()
    x = torch.randn(2, 5, b.fc1.in_features)
    assert not torch.equal(b(x), b(x))       # dropout at work
    assert torch.equal(b.eval()(x), b(x))    # none at inference
    for bad in (1.5, -0.1, "x"):             # refused by name, before any training step
        with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\)"):
            apply_model_settings(mc.StreamTalkerModel.from_config(mc.ModelConfig(n_styles=1)),
                                 {"dropout": bad}, "ck")


def test_finetune_may_grow_the_encoder_starting_from_the_parents_function(tmp_path):
    """A fine-tune may append layers to the log-mel encoder ([model] encoder_dilations
    extended): the new layers start at zero, so the grown network computes what its parent
    did, then trains them; the grown model saves and loads as any other. Changing or
    removing existing layers, and growing on resume, are refused by name."""
    import torch
    from model_core.training.trainer import apply_model_settings
    torch.manual_seed(0)
    model = mc.StreamTalkerModel.from_config(mc.ModelConfig(n_styles=1))
    enc = model.net.encoder.eval()
    mel = torch.randn(2, model.config.audio_context_frames, model.config.n_mels)
    before = enc(mel)
    n_params = sum(p.numel() for p in model.net.parameters())
    assert apply_model_settings(model, {"encoder_dilations": [1, 1, 2, 4]}, "ck", grow=True) \
        == {"encoder_dilations": ([1, 1], [1, 1, 2, 4])}
    assert model.config.encoder_dilations == [1, 1, 2, 4] and len(enc.convs) == 4
    assert [c.dilation[0] for c in enc.convs] == [1, 1, 2, 4]
    assert torch.equal(enc(mel), before)                     # the parent's function
    c = model.config.encoder_channels
    assert sum(p.numel() for p in model.net.parameters()) == n_params + 2 * (c * c * 5 + c)
    enc.train()
    enc(mel).square().mean().backward()                      # the new layers learn
    assert enc.convs[3].weight.grad.abs().sum() > 0
    from model_core.runtime.checkpoint import load_checkpoint, save_checkpoint
    with torch.no_grad():
        enc.convs[3].weight.normal_(std=0.01)                # as if trained
        after = enc.eval()(mel)
    save_checkpoint(model, tmp_path / "grown.safetensors")
    back = load_checkpoint(tmp_path / "grown.safetensors")
    assert back.config.encoder_dilations == [1, 1, 2, 4]
    assert torch.equal(back.net.encoder.eval()(mel), after)
    for bad in ([1, 2], [1], [2, 1, 1]):                     # not an extension
        with pytest.raises(ValueError, match=r"encoder_dilations = .* changes the network"):
            apply_model_settings(mc.StreamTalkerModel.from_config(mc.ModelConfig(n_styles=1)),
                                 {"encoder_dilations": bad}, "ck", grow=True)
    with pytest.raises(ValueError, match=r"encoder_dilations = .* differs from ck"):
        apply_model_settings(mc.StreamTalkerModel.from_config(mc.ModelConfig(n_styles=1)),
                             {"encoder_dilations": [1, 1, 2]}, "ck")       # a resumed run
    with pytest.raises(ValueError, match=r"encoder_dilations must be"):
        apply_model_settings(mc.StreamTalkerModel.from_config(mc.ModelConfig(n_styles=1)),
                             {"encoder_dilations": [1, 1, 99]}, "ck", grow=True)


@pytest.mark.slow   # a TTS corpus (and training runs)
def test_finetune_changes_session_settings_but_not_the_network(corpus, tmp_path, toy_checkpoint):
    """A fine-tune may set the chunk size (and other sampling/training-only settings) in
    [model]; the result keeps them. Architecture settings that differ are refused by name."""
    cfg = _write_cfg(tmp_path / "k.toml", corpus, tmp_path / "k3", steps=1,
                     init_from=str(toy_checkpoint))
    base = mc.load_model(toy_checkpoint, backend="torch").config
    new_k = 3 if base.chunk_frames != 3 else 2
    body = cfg.read_text().replace("n_styles = 2", f"n_styles = {base.n_styles}\n"
                                   f"chunk_frames = {new_k}\nsample_steps = 3")
    cfg.write_text(body)
    ft = mc.load_model(run_training(cfg, progress=False), backend="torch")
    assert (ft.config.chunk_frames, ft.config.sample_steps) == (new_k, 3)
    assert ft.config.d_model == base.d_model
    cfg.write_text(body.replace("sample_steps = 3", f"d_model = {base.d_model * 2}")
                   .replace(str(tmp_path / "k3"), str(tmp_path / "k4")))
    with pytest.raises(ValueError, match=r"\[model\] d_model = .* differs from .*train from scratch"):
        run_training(cfg, progress=False)


def test_an_ablation_config_says_only_what_it_changes_from_its_base(tmp_path):
    """``base = "..."``: the base's settings, this file's replacing them key by key; the
    base's relative paths stay relative to its own folder; no own [train] out, a cycle or a
    missing base are refused by name."""
    main = tmp_path / "configs" / "stage2.toml"
    main.parent.mkdir()
    main.write_text('[model]\nchunk_frames = 3\nguidance = 1.0\n[data]\ncorpus = ["../data/a", '
                    '"../data/b"]\n[train]\nout = "../runs/main"\nsteps = 1200\nlr = 2e-4\n'
                    'distill_from = "../runs/s1/final.safetensors"\ndistill_guidance = 7.0\n')
    abl = tmp_path / "ablations" / "g3.toml"
    abl.parent.mkdir()
    abl.write_text('# guidance 3, corpus a alone\nbase = "../configs/stage2.toml"\n\n[data]\n'
                   'corpus = ["../data/a"]\n[train]\nout = "../runs/g3"\n'
                   'distill_guidance = 3.0\n')
    got, ref = read_train_config(abl), read_train_config(main)
    assert got["model"] == ref["model"] == {"chunk_frames": 3, "guidance": 1.0}
    assert got["data"]["corpus"] == [str(tmp_path / "data" / "a")]          # replaced whole
    assert got["train"]["out"] == str(tmp_path / "runs" / "g3")
    assert got["train"]["distill_guidance"] == 3.0
    assert {k: got["train"][k] for k in ("steps", "lr", "distill_from")} == {
        "steps": 1200, "lr": 2e-4, "distill_from": str(tmp_path / "runs/s1/final.safetensors")}
    assert {k: v for k, v in got["train"].items() if k not in ("out", "distill_guidance")} == {
        k: v for k, v in ref["train"].items() if k not in ("out", "distill_guidance")}

    abl.write_text('base = "../configs/stage2.toml"\n[train]\ndistill_guidance = 3.0\n')
    with pytest.raises(ValueError, match=r"set \[train\] out.*base's run folder"):
        read_train_config(abl)
    abl.write_text('base = "../configs/none.toml"\n[train]\nout = "x"\n')
    with pytest.raises(FileNotFoundError, match="none.toml"):
        read_train_config(abl)
    main.write_text('base = "../ablations/g3.toml"\n[train]\nout = "y"\n')
    abl.write_text('base = "../configs/stage2.toml"\n[train]\nout = "x"\n')
    with pytest.raises(ValueError, match="each other's base"):
        read_train_config(abl)
    abl.write_text('[train]\nout = "x"\nbase = "../configs/stage2.toml"\n')   # in a section
    with pytest.raises(ValueError, match=r"unknown \[train\] setting.*base"):
        read_train_config(abl)
    # a bad key in the base is named with the base's file
    main.write_text('[train]\nout = "m"\nstepz = 3\n')
    abl.write_text('base = "../configs/stage2.toml"\n[train]\nout = "x"\n')
    with pytest.raises(ValueError, match=r"stage2\.toml: unknown \[train\] setting.*stepz"):
        read_train_config(abl)


@pytest.mark.parametrize("key,value", [("distill_closure_guidance", 9.0),
                                       ("distill_open_floor", 1.0),
                                       ("distill_open_ceiling", 0.5),
                                       ("distill_seal_floor", 1.0)])
def test_distillation_settings_need_a_distillation_parent(key, value):
    from model_core.training.trainer import _distillation
    tr = {"distill_from": "", "distill_history": "student", "distill_closure_guidance": 0.0,
          "distill_open_floor": 0.0, "distill_open_ceiling": 0.0, "distill_seal_floor": 0.0,
          key: value}
    with pytest.raises(ValueError, match=f"{key} = {value!r} needs a distillation "
                                         "parent: set distill_from"):
        _distillation(None, tr, "cpu")


def test_open_floor_keeps_the_lips_apart_where_the_teacher_does():
    """[train] distill_open_floor: away from P/B/M (frame_closure 0) the guided target's
    opening channels are raised to the data's and its sealing channels lowered to the data's;
    on P/B/M frames and on every other channel the guided target stays as it is."""
    import torch
    from model_core.face import ARKIT_52
    from model_core.training.objective import CLOSURE_CHANNELS, OPENING_CHANNELS, open_floor

    gen = torch.Generator().manual_seed(0)
    guided = torch.randn(2, 4, 52, generator=gen)
    data = torch.randn(2, 4, 52, generator=gen)
    fc = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.float32)
    out = open_floor(ARKIT_52, guided, data, fc)
    up = [ARKIT_52.index(c) for c in OPENING_CHANNELS]
    down = [ARKIT_52.index(c) for c in CLOSURE_CHANNELS]
    rest = [i for i in range(52) if i not in up + down]
    free = fc < 0.5
    assert torch.equal(out[free][:, up], torch.maximum(guided, data)[free][:, up])
    assert torch.equal(out[free][:, down], torch.minimum(guided, data)[free][:, down])
    assert torch.equal(out[free][:, rest], guided[free][:, rest])
    assert torch.equal(out[~free], guided[~free])                  # P/B/M frames: guided
    # where the guidance shuts the jaw on a consonant the teacher keeps open, the floor wins
    g, d = torch.zeros(1, 1, 52), torch.zeros(1, 1, 52)
    g[..., ARKIT_52.index("jawOpen")], d[..., ARKIT_52.index("jawOpen")] = -2.0, 0.5
    g[..., ARKIT_52.index("mouthClose")] = 1.5
    o = open_floor(ARKIT_52, g, d, torch.zeros(1, 1))
    assert float(o[..., ARKIT_52.index("jawOpen")]) == 0.5
    assert float(o[..., ARKIT_52.index("mouthClose")]) == 0.0
    # strength 0.5: half way to the data, only where the data parts the lips more
    h = open_floor(ARKIT_52, g, d, torch.zeros(1, 1), 0.5)
    assert float(h[..., ARKIT_52.index("jawOpen")]) == -0.75
    assert float(h[..., ARKIT_52.index("mouthClose")]) == 0.75
    g[..., ARKIT_52.index("jawOpen")] = 1.0                       # guidance opens wider: kept
    assert float(open_floor(ARKIT_52, g, d, torch.zeros(1, 1), 0.5)[...,
                            ARKIT_52.index("jawOpen")]) == 1.0
    for bad in (1.5, -0.1, True):
        with pytest.raises(ValueError, match=r"distill_open_floor must be a number in \[0, 1\]"):
            open_floor(ARKIT_52, g, d, torch.zeros(1, 1), bad)
    with pytest.raises(ValueError, match="ARKit models: no jawOpen"):
        open_floor([c for c in ARKIT_52 if c != "jawOpen"], guided[..., :51], data[..., :51],
                   fc)


def test_open_ceiling_pulls_back_what_the_guidance_opens_beyond_the_teacher():
    """[train] distill_open_ceiling: away from P/B/M, where the guided target parts the lips
    further than the data, it moves that share toward the data; where the data parts them
    more, only the floor moves it; floor = ceiling is the plain blend of the two on the
    opening and sealing channels; ceiling 0 is the floor alone, bit for bit."""
    import torch
    from model_core.face import ARKIT_52
    from model_core.training.objective import CLOSURE_CHANNELS, OPENING_CHANNELS, open_floor

    jaw, close = ARKIT_52.index("jawOpen"), ARKIT_52.index("mouthClose")
    g, d = torch.zeros(1, 2, 52), torch.zeros(1, 2, 52)
    g[..., jaw], d[..., jaw] = 2.0, 0.5            # the guidance opens the jaw wider
    g[..., close], d[..., close] = -1.0, 0.0       # and unseals more than the teacher
    fc = torch.tensor([[0.0, 1.0]])                # the second frame is a P/B/M
    o = open_floor(ARKIT_52, g, d, fc, 0.0, 0.5)
    assert float(o[0, 0, jaw]) == 1.25 and float(o[0, 0, close]) == -0.5
    assert float(o[0, 1, jaw]) == 2.0 and float(o[0, 1, close]) == -1.0   # P/B/M: guided
    assert torch.equal(open_floor(ARKIT_52, g, d, fc, 0.7, 0.0)[0, 0], g[0, 0])  # floor only
    gen = torch.Generator().manual_seed(1)
    guided, data = torch.randn(2, 4, 52, generator=gen), torch.randn(2, 4, 52, generator=gen)
    free = torch.zeros(2, 4)
    both = open_floor(ARKIT_52, guided, data, free, 0.3, 0.3)
    lip = [ARKIT_52.index(c) for c in OPENING_CHANNELS + CLOSURE_CHANNELS]
    rest = [i for i in range(52) if i not in lip]
    assert torch.allclose(both[..., lip], torch.lerp(guided, data, 0.3)[..., lip])
    assert torch.equal(both[..., rest], guided[..., rest])
    assert torch.equal(open_floor(ARKIT_52, guided, data, free, 0.3),
                       open_floor(ARKIT_52, guided, data, free, 0.3, 0.0))
    with pytest.raises(ValueError, match=r"distill_open_ceiling must be a number in \[0, 1\]"):
        open_floor(ARKIT_52, guided, data, free, 0.3, 1.5)


def test_seal_floor_shuts_the_lips_on_p_b_m_where_the_teacher_does():
    """[train] distill_seal_floor: on P/B/M frames, where the data seals the lips more than
    the guided target (a short P/B/M the parent only touches), the target moves that share
    of the way to the data; where the guidance seals at least as much it is kept; frames
    away from P/B/M and the other channels are as without it; 0 changes nothing, bit for
    bit."""
    import torch
    from model_core.face import ARKIT_52
    from model_core.training.objective import CLOSURE_CHANNELS, OPENING_CHANNELS, open_floor

    jaw, close = ARKIT_52.index("jawOpen"), ARKIT_52.index("mouthClose")
    g, d = torch.zeros(1, 2, 52), torch.zeros(1, 2, 52)
    g[..., jaw], d[..., jaw] = 1.0, -1.0           # the parent leaves the jaw open
    g[..., close], d[..., close] = 0.0, 2.0        # and only touches the lips
    fc = torch.tensor([[1.0, 0.0]])                # the first frame is a P/B/M
    o = open_floor(ARKIT_52, g, d, fc, 0.0, 0.0, 0.5)
    assert float(o[0, 0, jaw]) == 0.0 and float(o[0, 0, close]) == 1.0   # half way to shut
    assert torch.equal(o[0, 1], g[0, 1])           # away from P/B/M: as without it
    o = open_floor(ARKIT_52, g, d, fc, 0.0, 0.0, 1.0)
    assert float(o[0, 0, jaw]) == -1.0 and float(o[0, 0, close]) == 2.0   # the teacher's seal
    g2 = g.clone()
    g2[..., jaw], g2[..., close] = -2.0, 3.0       # the guidance seals harder: kept
    assert torch.equal(open_floor(ARKIT_52, g2, d, fc, 0.0, 0.0, 1.0), g2)
    gen = torch.Generator().manual_seed(2)
    guided, data = torch.randn(2, 4, 52, generator=gen), torch.randn(2, 4, 52, generator=gen)
    fc = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.float32)
    both = open_floor(ARKIT_52, guided, data, fc, 0.3, 0.3, 1.0)
    free = fc < 0.5
    lip = [ARKIT_52.index(c) for c in OPENING_CHANNELS + CLOSURE_CHANNELS]
    rest = [i for i in range(52) if i not in lip]
    assert torch.equal(both[free], open_floor(ARKIT_52, guided, data, fc, 0.3, 0.3)[free])
    assert torch.equal(both[..., rest], guided[..., rest])
    up = [ARKIT_52.index(c) for c in OPENING_CHANNELS]
    down = [ARKIT_52.index(c) for c in CLOSURE_CHANNELS]
    assert torch.equal(both[~free][:, up], torch.minimum(guided, data)[~free][:, up])
    assert torch.equal(both[~free][:, down], torch.maximum(guided, data)[~free][:, down])
    assert torch.equal(open_floor(ARKIT_52, guided, data, fc, 0.3, 0.3, 0.0),
                       open_floor(ARKIT_52, guided, data, fc, 0.3, 0.3))
    with pytest.raises(ValueError, match=r"distill_seal_floor must be a number in \[0, 1\]"):
        open_floor(ARKIT_52, guided, data, fc, 0.3, 0.3, 2.0)


@pytest.mark.slow   # a TTS corpus (and training runs)
def test_speaker_adversary_trains_records_and_resumes(corpus, tmp_path):
    """[train] speaker_adversary: the batches carry each file's voice, the classifier's
    loss is logged, its weights go into the step's training state (not the checkpoint) and
    come back on resume; the checkpoint records the weight; a resume that turns it off is
    refused by name, as is a negative weight."""
    import torch
    from model_core.training.corpus import speaker_key
    voices = sorted({speaker_key(r) for r in read_manifest(corpus)})
    assert len(voices) >= 2
    cfg = _write_cfg(tmp_path / "a.toml", corpus, tmp_path / "run", steps=4, save_every=2,
                     stop_at=2, speaker_adversary=0.5)
    run = tmp_path / "run"
    ck = run_training(cfg, progress=False)
    rows = list(csv.DictReader(open(run / "losses.csv")))
    assert all(np.isfinite(float(r["speaker"])) and float(r["speaker"]) > 0 for r in rows)
    state = torch.load(run / "step-0000002.state.pt", weights_only=False)
    assert state["speaker_adversary"]["speakers"] == voices
    trained = mc.load_model(ck, backend="torch")    # the network only, as without it
    fresh = mc.StreamTalkerModel.from_config(trained.config)
    assert trained.net.state_dict().keys() == fresh.net.state_dict().keys()
    off = _write_cfg(tmp_path / "b.toml", corpus, run, steps=4, save_every=2)
    with pytest.raises(ValueError, match="started with \\[train\\] speaker_adversary"):
        run_training(off, progress=False)
    final = run_training(cfg, progress=False, stop_at=0)
    record = mc.load_model(final, backend="torch").config.training["speaker_adversary"]
    assert record["weight"] == 0.5 and record["voices"] == len(voices)
    assert [int(r["step"]) for r in csv.DictReader(open(run / "losses.csv"))] == [1, 2, 3, 4]
    for bad in (-1, "x"):
        with pytest.raises(ValueError, match="speaker_adversary must be >= 0"):
            read_train_config(_write_cfg(tmp_path / "c.toml", corpus, run, speaker_adversary=bad))
    # capture folders name no voice: refused before they (or the manifests) are read, so
    # an empty folder gives this message and not the capture loader's
    (tmp_path / "caps").mkdir()
    caps = _write_cfg(tmp_path / "d.toml", corpus, tmp_path / "run-caps", speaker_adversary=0.5)
    caps.write_text(caps.read_text().replace(
        "val_fraction", f"captures = [{json.dumps(str(tmp_path / 'caps'))}]\nval_fraction"))
    with pytest.raises(ValueError, match="capture folders name no voice"):
        run_training(caps, progress=False)


@pytest.mark.slow   # a TTS corpus (and training runs)
def test_train_config_errors(tmp_path, corpus):
    p = tmp_path / "bad.toml"
    p.write_text("[train]\nstepz = 3\n")
    with pytest.raises(ValueError, match="stepz"):
        read_train_config(p)
    p.write_text("[train\n")
    with pytest.raises(ValueError, match="invalid TOML"):
        read_train_config(p)
    with pytest.raises(FileNotFoundError):
        read_train_config(tmp_path / "none.toml")
    p.write_text(f"[data]\ncorpus = [\"{tmp_path / 'nothing'}\"]\n[train]\nout = \"{tmp_path / 'r'}\"\n")
    with pytest.raises(FileNotFoundError, match="make-dataset"):
        run_training(p, progress=False)


@pytest.mark.slow   # a TTS corpus (and training runs)
def test_cli_make_dataset_and_train(tmp_path, corpus):
    r = subprocess.run([str(EXE), "make-dataset", str(tmp_path / "small"), "--utterances", "3",
                        "--engines", "espeak-ng", "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "3 utterances" in r.stdout
    r = subprocess.run([str(EXE), "make-dataset", str(tmp_path / "small")], capture_output=True, text=True)
    assert r.returncode == 2 and "not empty" in r.stderr and "Traceback" not in r.stderr
    cfg = _write_cfg(tmp_path / "t.toml", tmp_path / "small", tmp_path / "clirun", steps=2)
    r = subprocess.run([str(EXE), "train", str(cfg)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "clirun" / "final.safetensors").exists()


@pytest.mark.slow   # a TTS corpus (and training runs)
def test_silence_padding_redraws_teacher_curves(corpus):
    rec = read_manifest(corpus)[0]
    plain = load_utterance(corpus / rec["file"], fps=30.0)
    geo = ChunkGeometry(mc.ModelConfig())
    jaw = mc.ARKIT_52.index("jawOpen")
    longer = 0
    for seed in range(6):
        u = load_utterance(corpus / rec["file"], fps=30.0, pad_rng=np.random.default_rng(seed))
        assert u.frames.shape == (geo.n_frames(len(u.samples)), 52)
        assert len(u.samples) >= len(plain.samples)
        # the speech sits inside: the jaw opens, and silent padding keeps the mouth at rest
        assert u.frames[:, jaw].max() > 0.1
        if len(u.samples) > len(plain.samples) + 16000:
            longer += 1
            quiet = np.abs(u.samples[:8000]).max() < 0.05 or np.abs(u.samples[-8000:]).max() < 0.05
            assert quiet
    assert longer >= 1


# ------------------------------------------------------------------------------------------
# v3 data: held-out split, engine mix, speaker transforms, auxiliary viseme labels
# ------------------------------------------------------------------------------------------

def test_heldout_sentences_never_reach_a_v3_corpus():
    train, held = sentence_pool(split="train"), sentence_pool(split="heldout")
    assert not set(train) & set(held)
    assert set(train) | set(held) == set(sentence_pool())
    assert 0.05 < len(held) / (len(train) + len(held)) < 0.15
    with pytest.raises(ValueError, match="split"):
        sentence_pool(split="test")


@pytest.mark.slow   # TTS and alignment
def test_english_heldout_set_is_the_same_in_every_build(tmp_path):
    """make-evalset (the English held-out set, chosen on): two builds are the same files,
    byte for byte; Piper's voice once drew new VITS noise every build."""
    from model_core.training.corpus import build_heldout_set
    a = build_heldout_set(tmp_path / "a", per_speaker=1, seed=3)
    b = build_heldout_set(tmp_path / "b", per_speaker=1, seed=3)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 9 and files == sorted(p.relative_to(b) for p in b.rglob("*")
                                               if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_v3_plan_mixes_engines_and_new_speakers():
    from model_core.training.corpus import TRAIN_WORLD, plan_jobs
    jobs = plan_jobs(400, 1, ["en-us", "en-gb"], ["slt", "ked"], ["a b c d."] * 5,
                     piper_voices=["en_US-joe-medium"],
                     shares={"espeak-ng": 0.3, "festival": 0.3, "piper": 0.4}, world_share=0.6)
    engines = [j.engine for j in jobs]
    assert {e: engines.count(e) for e in set(engines)}.keys() == {"espeak-ng", "festival", "piper"}
    assert 0.3 < engines.count("piper") / len(jobs) < 0.5
    world = [j.world for j in jobs if j.world is not None]
    assert all(j.engine != "espeak-ng" for j in jobs if j.world is not None)
    assert 0.45 < len(world) / sum(e != "espeak-ng" for e in engines) < 0.75
    (p0, p1), (f0, f1) = TRAIN_WORLD
    assert all(p0 <= p <= p1 and f0 <= f <= f1 for p, f in world)
    assert plan_jobs(50, 1, ["en-us"], ["slt"], ["a b c d."] * 5) == \
        plan_jobs(50, 1, ["en-us"], ["slt"], ["a b c d."] * 5)     # reproducible


def test_world_transform_keeps_timing_and_moves_pitch():
    from model_core.training.voices import world_transform
    sr = 16000
    t = np.arange(sr) / sr
    x = np.zeros(2 * sr, np.float32)
    x[sr // 2:sr // 2 + sr] = 0.5 * np.sin(2 * np.pi * 150 * t) * np.hanning(sr)
    y = world_transform(x, sr, pitch=1.5, formant=1.1)
    assert y.shape == x.shape and np.isfinite(y).all()
    env = np.convolve(np.abs(y), np.ones(800) / 800, "same")
    assert abs(np.argmax(env) - sr) < 0.05 * sr            # the burst stays where it was
    seg = y[sr - 4000:sr + 4000] * np.hanning(8000)
    f = np.argmax(np.abs(np.fft.rfft(seg, 16 * 8000))) * sr / (16 * 8000)
    assert 200 < f < 250, f                                 # 150 Hz x 1.5
    with pytest.raises(ValueError):
        world_transform(x, sr, pitch=10)


def test_viseme_labels_follow_the_phones():
    from model_core.training.teacher import VISEME_CLASSES
    from model_core.training.batches import ChunkBatcher, Utterance
    cfg = mc.ModelConfig(n_styles=1, aux_viseme_weight=0.5)
    model = mc.StreamTalkerModel.from_config(cfg)
    phones = [("SIL", 0.0, 0.5), ("M", 0.5, 1.0), ("AA", 1.0, 1.5), ("SIL", 1.5, 2.0)]
    rng = np.random.default_rng(0)
    utt = Utterance(rng.normal(0, 0.1, 32000).astype(np.float32),
                    np.zeros((60, 52), np.float32), 0, phones)
    b = ChunkBatcher(model, [utt], seed=0)
    pp, aa, sil = (VISEME_CLASSES.index(v) for v in ("PP", "AA", "sil"))
    for _ in range(20):
        batch = b.batch(4, K=3)
        assert batch["mel_visemes"].shape == (4, 64) and batch["frame_visemes"].shape == (4, 3)
    n = 20    # frame 20 = 0.667 s, inside M; its mel window ends 100 ms later
    lab_mel, lab_frame = b._labels(0)
    assert lab_frame[n] == pp and lab_frame[35] == aa and lab_frame[5] == sil
    M = cfg.audio_context_frames
    assert lab_mel[M + 70] == pp and lab_mel[M + 120] == aa and lab_mel[0] == sil
    # without phones (captures) the labels are unknown and the loss ignores them
    b2 = ChunkBatcher(model, [Utterance(utt.samples, utt.frames, 0)], seed=0)
    assert (b2.batch(2, K=3)["frame_visemes"] == -1).all()


@pytest.mark.slow   # trains a model
def test_auxiliary_viseme_loss_learns_and_leaves_sampling_alone(tmp_path):
    from model_core.runtime.checkpoint import load_checkpoint, save_checkpoint
    from model_core.training.batches import ChunkBatcher, Utterance, train_steps
    cfg = mc.ModelConfig(n_styles=1, aux_viseme_weight=1.0, lip_loss_weight=3.0,
                         encoder_dilations=[1, 2, 4], d_model=64, head_dim=64,
                         encoder_channels=64, predictor_ff=128, head_ff=128)
    model = mc.StreamTalkerModel.from_config(cfg)
    rng = np.random.default_rng(1)
    utts = []
    for _ in range(4):   # a tone on "AA", silence elsewhere: the audio tells the viseme
        x = rng.normal(0, 1e-3, 48000).astype(np.float32)
        x[16000:32000] += 0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)
        utts.append(Utterance(x, np.zeros((90, 52), np.float32), 0,
                              [("SIL", 0.0, 1.0), ("AA", 1.0, 2.0), ("SIL", 2.0, 3.0)]))
    hist = train_steps(model, ChunkBatcher(model, utts, seed=0), 60, batch_size=16, lr=3e-3,
                       warmup=5)
    assert all(np.isfinite(h["viseme"]) for h in hist)
    assert np.mean([h["viseme"] for h in hist[-10:]]) < 0.5 * hist[0]["viseme"]
    assert np.mean([h["viseme_acc"] for h in hist[-10:]]) > 0.8
    save_checkpoint(model, tmp_path / "m.safetensors")
    back = load_checkpoint(tmp_path / "m.safetensors")
    y1 = model.generate(utts[0].samples, 16000, seed=3)
    y2 = back.generate(utts[0].samples, 16000, seed=3)
    assert np.array_equal(y1, y2) and y1.shape == (90, 52)


@pytest.mark.slow   # a TTS corpus (and training runs)
def test_corpus_built_in_parts_shares_one_style(tmp_path, corpus):
    from model_core.training.trainer import _sources
    p = tmp_path / "parts.toml"
    p.write_text(f"[data]\ncorpus = [{json.dumps(str(corpus))}, {json.dumps(str(corpus))}]\n"
                 f"corpus_style = \"shared\"\n")
    data = read_train_config(p)["data"]
    files, _ = _sources(data, 30.0)
    assert len(files) == 20 and {s for _, s in files} == {0}
    data["corpus_style"] = "per_folder"
    assert {s for _, s in _sources(data, 30.0)[0]} == {0, 1}
    p.write_text(f"[data]\ncorpus = [{json.dumps(str(corpus))}]\ncorpus_style = \"one\"\n")
    with pytest.raises(ValueError, match="corpus_style"):
        read_train_config(p)


def test_history_corruption_can_spare_the_upper_face(toy_checkpoint):
    """Exposure-bias training (history_drop / shrink / noise): "all" corrupts every
    channel, "lips" only jaw*/mouth*, so blinks keep continuing their true history."""
    import torch

    import model_core as mc
    from model_core.face import is_lip_channel
    from model_core.training.objective import corrupt_history

    model = mc.load_model(toy_checkpoint, backend="torch")
    lips = np.array([is_lip_channel(n) for n in model.channel_names])
    hist = torch.randn(16, model.config.history_frames, len(lips))
    model.config.history_noise, model.config.history_drop = 0.5, 1.0
    model.config.history_corrupt = "all"
    every = corrupt_history(model, hist, torch.Generator().manual_seed(0))
    assert torch.allclose(every, model.rest_history(16))
    model.config.history_corrupt = "lips"
    some = corrupt_history(model, hist, torch.Generator().manual_seed(0))
    assert torch.equal(some[..., ~lips], hist[..., ~lips])
    assert torch.allclose(some[..., lips], model.rest_history(16)[..., lips])
    with pytest.raises(ValueError, match="history_corrupt"):
        mc.ModelConfig(history_corrupt="upper")


def test_closure_weight_marks_the_frames_of_bilabials_and_weighs_their_lips():
    """closure_loss_weight: the batches mark the frames of P/B/M phones (any alphabet,
    widened one frame each side, as the closure measure counts them) and the loss weighs
    the lip channels' error there that many times more; 1 leaves the loss as it was."""
    import torch
    from model_core.face import is_lip_channel
    from model_core.training.batches import ChunkBatcher, Utterance
    from model_core.training.objective import DDPMNoiser, closure_weights
    from model_core.training.phonemes import bilabial_frame_mask

    phones = [("SIL", 0.0, 0.5), ("m", 0.5, 0.53), ("AA", 0.53, 1.0), ("B", 1.0, 1.1),
              ("SIL", 1.1, 2.0)]
    mask = bilabial_frame_mask(phones, 30.0, 60)
    assert mask.nonzero()[0].tolist() == [14, 15, 16, 29, 30, 31, 32, 33]
    cfg = mc.ModelConfig(n_styles=1, closure_loss_weight=8.0)
    model = mc.StreamTalkerModel.from_config(cfg)
    rng = np.random.default_rng(0)
    utt = Utterance(rng.normal(0, 0.1, 32000).astype(np.float32),
                    rng.uniform(0, 1, (60, 52)).astype(np.float32), 0, phones)
    b = ChunkBatcher(model, [utt], seed=0)
    seen = set()
    for _ in range(30):
        batch = b.batch(8, K=3)
        fc = batch["frame_closure"].numpy()
        assert fc.shape == (8, 3)
        seen.add(float(fc.max()))
    assert seen == {0.0, 1.0}
    # the weight lands on the lip channels of the marked frames only
    batch = {"frame_closure": torch.tensor([[0.0, 1.0, 0.0]])}
    w = closure_weights(model, batch, 2)
    lips = torch.tensor([is_lip_channel(n) for n in model.channel_names])
    assert w.shape == (2, 3, 52)
    assert torch.all(w[:, 1, lips] == 8.0) and torch.all(w[:, 1, ~lips] == 1.0)
    assert torch.all(w[:, [0, 2]] == 1.0)
    err = torch.zeros(1, 3, 52)
    err[0, 1, lips] = 1.0
    zero = torch.zeros(1, 1, 52)
    l1 = DDPMNoiser.loss(err, torch.zeros_like(err), zero, 0.0)["x0"]
    l8 = DDPMNoiser.loss(err, torch.zeros_like(err), zero, 0.0, element_weight=w[:1])["x0"]
    assert torch.isclose(l8, 8 * l1)
    with pytest.raises(ValueError, match="closure_loss_weight"):
        mc.ModelConfig(closure_loss_weight=0.5)


@pytest.mark.slow   # a TTS corpus (and training runs)
def test_guidance_distillation_targets_the_parents_guided_prediction(corpus, tmp_path,
                                                                      toy_checkpoint):
    """[train] distill_from: the student learns x0_u + g (x0_c - x0_u) of the distillation
    parent (per channel with guidance_channels = "lips") and then samples without guidance."""
    import torch
    from model_core.training.batches import ChunkBatcher
    from model_core.training.objective import (CLOSURE_CHANNELS, DDPMNoiser, Distillation,
                                               distill_scale, guided_x0, training_loss)

    parent = mc.load_model(toy_checkpoint, backend="torch")
    parent.config.guidance, parent.config.guidance_channels = 4.0, "lips"
    utts = [load_utterance(corpus / r["file"], 0, 30.0) for r in read_manifest(corpus)[:2]]
    b = ChunkBatcher(parent, utts, seed=0).batch(4, K=3)
    R = parent.config.diffusion_repeats
    hist = parent.normalize(b["history"])
    x_t = torch.randn(R * 4, 3, 52, generator=torch.Generator().manual_seed(0))
    t = torch.full((R * 4,), 500)
    g = guided_x0(parent, b, hist, b["style"], x_t, t)
    args = (b["feats"], b["mel_offset"], b["align_idx"], b["align_w"], hist, b["style"])
    with torch.no_grad():
        c = parent.net(*args, torch.zeros(4, dtype=torch.bool), x_t, t)
        u = parent.net(*args, torch.ones(4, dtype=torch.bool), x_t, t)
    c, u = (v[0] if isinstance(v, tuple) else v for v in (c, u))
    scale = torch.from_numpy(np.asarray(parent.guidance_scale(4.0), np.float32))
    assert torch.allclose(g, u + scale * (c - u), atol=1e-6)
    lips = scale > 1
    assert torch.allclose(g[..., ~lips], c[..., ~lips], atol=1e-6)
    # [train] distill_closure_guidance: its own scale on the channels that seal the lips
    s9 = distill_scale(parent, 9.0)
    names = list(parent.channel_names)
    want = scale.clone()
    want[[names.index(n) for n in CLOSURE_CHANNELS]] = 9.0
    assert set(want.tolist()) == {1.0, 4.0, 9.0}
    g9 = guided_x0(parent, b, hist, b["style"], x_t, t, s9)
    assert torch.allclose(g9, u + want * (c - u), atol=1e-6)
    with pytest.raises(ValueError, match=">= 1"):
        distill_scale(parent, 0.5)
    # the loss with a parent is the x0 loss against that target (no audio dropped)
    student = mc.load_model(toy_checkpoint, backend="torch")
    student.config.cond_drop = 1.0   # ignored when distilling: the student always hears
    loss = training_loss(student, b, DDPMNoiser(), torch.Generator().manual_seed(1),
                         distill=Distillation(parent))
    assert torch.isfinite(loss["loss"]) and float(loss["x0"].detach()) > 0
    # a run: the student samples without guidance and records its parent
    cfg = _write_cfg(tmp_path / "d.toml", corpus, tmp_path / "dist", steps=2,
                     init_from=str(toy_checkpoint))
    body = cfg.read_text().replace("n_styles = 2\n", f"n_styles = {parent.config.n_styles}\n")
    body = body.replace("[train]\n", f"[train]\ndistill_from = {json.dumps(str(toy_checkpoint))}\n"
                        f"distill_guidance = 4.0\ndistill_guidance_channels = \"lips\"\n"
                        f"distill_closure_guidance = 9.0\n")
    cfg.write_text(body)
    st = mc.load_model(run_training(cfg, progress=False), backend="torch")
    assert st.config.guidance == 1.0
    rec = st.config.training["guidance_distilled_from"]
    assert rec["guidance"] == 4.0 and rec["guidance_channels"] == "lips"
    assert rec["closure_guidance"] == 9.0 and rec["closure_channels"] == list(CLOSURE_CHANNELS)
    cfg.write_text(body.replace("distill_guidance = 4.0", "distill_guidance = 1.0")
                   .replace("distill_closure_guidance = 9.0\n", "")
                   .replace(str(tmp_path / "dist"), str(tmp_path / "dist2")))
    with pytest.raises(ValueError, match="nothing to distil"):
        run_training(cfg, progress=False)
    # [train] distill_open_floor / distill_seal_floor: refused without the P/B/M marks,
    # recorded when they run
    floor = body.replace("distill_closure_guidance = 9.0\n",
                         "distill_open_floor = 1.0\ndistill_seal_floor = 0.5\n")
    cfg.write_text(floor.replace(str(tmp_path / "dist"), str(tmp_path / "dist3"))
                   .replace("[model]\n", "[model]\nclosure_loss_weight = 1.0\n"))
    with pytest.raises(ValueError, match="distill_open_floor needs the P/B/M frames"):
        run_training(cfg, progress=False)
    cfg.write_text(floor.replace(str(tmp_path / "dist"), str(tmp_path / "dist4"))
                   .replace("[model]\n", "[model]\nclosure_loss_weight = 8.0\n"))
    rec = mc.load_model(run_training(cfg, progress=False), backend="torch").config.training
    assert rec["guidance_distilled_from"]["open_floor"] == 1.0
    assert rec["guidance_distilled_from"]["seal_floor"] == 0.5
    assert rec["guidance_distilled_from"]["open_floor_channels"] == [
        "jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
        "mouthUpperUpRight"]
    student.config.closure_loss_weight = 1.0    # its batches carry no P/B/M marks
    with pytest.raises(ValueError, match="frame_closure"):
        training_loss(student, b, DDPMNoiser(), distill=Distillation(parent, open_floor=1.0))
    with pytest.raises(ValueError, match="frame_closure"):
        training_loss(student, b, DDPMNoiser(), distill=Distillation(parent, seal_floor=1.0))
    # the seal floor alone: a target of its own at the parent's guidance 1, and refused
    # without the P/B/M marks
    from model_core.training.trainer import _distillation
    tr = {"distill_from": str(toy_checkpoint), "distill_guidance": 1.0,
          "distill_guidance_channels": "", "distill_history": "student",
          "distill_closure_guidance": 0.0, "distill_open_floor": 0.0,
          "distill_open_ceiling": 0.0, "distill_seal_floor": 0.5}
    with pytest.raises(ValueError, match="distill_seal_floor needs the P/B/M frames"):
        _distillation(student, tr, "cpu")
    student.config.closure_loss_weight = 8.0
    d = _distillation(student, tr, "cpu")
    assert (d.seal_floor, d.open_floor, d.open_ceiling) == (0.5, 0.0, 0.0)
    assert student.config.training["guidance_distilled_from"]["seal_floor"] == 0.5
    with pytest.raises(ValueError, match="nothing to distil"):
        _distillation(student, {**tr, "distill_seal_floor": 0.0}, "cpu")


@pytest.mark.slow   # a TTS corpus (and training runs)
def test_distillation_parent_may_see_the_true_history(corpus, tmp_path, toy_checkpoint,
                                                       monkeypatch):
    """[train] distill_history: the distillation parent's guided target is computed from the
    student's (corrupted) history, from the true one ("true"), or from the true one on the
    jaw/mouth channels and the student's on the upper face ("true_lips": a privileged expert
    for the lips that still continues the blinks the student starts)."""
    import torch
    from model_core.face import is_lip_channel
    from model_core.training import objective
    from model_core.training.batches import ChunkBatcher
    from model_core.training.objective import DDPMNoiser, Distillation, training_loss

    parent = mc.load_model(toy_checkpoint, backend="torch")
    seen = []

    def guided_x0(model, b, hist, style, x_t, t, scale=None):
        assert model is parent
        seen.append(hist.clone())
        return torch.zeros_like(x_t)

    student = mc.load_model(toy_checkpoint, backend="torch")
    student.config.history_noise, student.config.history_corrupt = 0.5, "all"
    utts = [load_utterance(corpus / r["file"], 0, 30.0) for r in read_manifest(corpus)[:2]]
    b = ChunkBatcher(student, utts, seed=0).batch(4, K=3)
    true = student.normalize(b["history"])
    lips = torch.tensor([is_lip_channel(n) for n in student.channel_names])
    with monkeypatch.context() as m:     # (the run below uses the real one)
        m.setattr(objective, "guided_x0", guided_x0)
        for which in ("student", "true", "true_lips"):
            training_loss(student, b, DDPMNoiser(), torch.Generator().manual_seed(1),
                          distill=Distillation(parent, which))
    h_student, h_true, h_lips = seen
    assert not torch.allclose(h_student, true)                 # corrupted on every channel
    assert torch.equal(h_true, true)
    assert torch.equal(h_lips[..., lips], true[..., lips])
    assert torch.equal(h_lips[..., ~lips], h_student[..., ~lips])   # same generator draws
    with pytest.raises(ValueError, match="Distillation.history"):
        training_loss(student, b, DDPMNoiser(), distill=Distillation(parent, "clean"))
    # a run records it; without a parent, or misspelt, it is refused by name
    cfg = _write_cfg(tmp_path / "d.toml", corpus, tmp_path / "dist", steps=1,
                     init_from=str(toy_checkpoint), distill_from=str(toy_checkpoint),
                     distill_guidance=4.0, distill_history="true_lips")
    body = cfg.read_text().replace("n_styles = 2\n", f"n_styles = {parent.config.n_styles}\n")
    cfg.write_text(body)
    st = mc.load_model(run_training(cfg, progress=False), backend="torch")
    assert st.config.training["guidance_distilled_from"]["history"] == "true_lips"
    for bad, match in (('distill_history = "true_lips"', "distill_history must be one of"),
                       ('distill_from = ', "needs a distillation parent")):
        text = body.replace(str(tmp_path / "dist"), str(tmp_path / f"x{len(bad)}"))
        if bad.startswith("distill_history"):
            text = text.replace(bad, 'distill_history = "clean"')
        else:
            text = "\n".join(ln for ln in text.splitlines() if not ln.startswith(bad))
        cfg.write_text(text)
        with pytest.raises(ValueError, match=match):
            run_training(cfg, progress=False)


def test_rollout_batches_train_on_the_models_own_history(toy_checkpoint):
    """rollout_chunks / rollout_fraction (exposure bias, scheduled sampling): a rollout
    batch carries the J chunks before each example, and the history the model trains on is
    the true history up to them, then J*K frames it sampled itself -- not the data and not
    a corrupted copy -- with the network back in training mode afterwards."""
    import torch
    from model_core.training.batches import ChunkBatcher, Utterance
    from model_core.training.objective import DDPMNoiser, rollout_history, training_loss

    model = mc.load_model(toy_checkpoint, backend="torch")
    cfg = model.config
    cfg.rollout_chunks, cfg.rollout_fraction, cfg.sample_steps = 2, 1.0, 2
    cfg.history_drop = 1.0     # a corrupted history would be the rest pose
    rng = np.random.default_rng(0)
    short = Utterance(rng.normal(0, 0.1, 3200).astype(np.float32),
                      rng.uniform(0, 1, (6, 52)).astype(np.float32), 0, None)
    long = Utterance(rng.normal(0, 0.1, 64000).astype(np.float32),
                     rng.uniform(0, 1, (120, 52)).astype(np.float32), 0, None)
    b = ChunkBatcher(model, [short, long], seed=0).batch(6, K=3)
    J, K, H = 2, 3, cfg.history_frames
    assert b["rollout_feats"].shape == (6, J, cfg.audio_context_frames, cfg.n_mels)
    assert b["rollout_align_idx"].shape == (6, J, K) and b["rollout_history"].shape == (6, H, 52)
    # only the long utterance has J*K frames before a chunk; the histories line up
    assert torch.equal(b["history"][:, :H - J * K], b["rollout_history"][:, J * K:])
    # the J chunks end where the example's begins: the last one's window is K frames
    # (3 / 30 s = 10 mel frames) earlier, the one before it 10 more
    assert torch.equal(b["rollout_feats"][:, -1, 10:], b["feats"][:, :-10])
    assert torch.equal(b["rollout_feats"][:, 0, 10:], b["rollout_feats"][:, 1, :-10])
    model.net.train()
    hist = rollout_history(model, {k: v for k, v in b.items()}, b["style"],
                           torch.Generator().manual_seed(0))
    assert model.net.training
    data = model.normalize(b["history"])
    assert torch.allclose(hist[:, :H - J * K], data[:, :H - J * K], atol=1e-6)
    assert not torch.allclose(hist[:, H - J * K:], data[:, H - J * K:], atol=1e-3)
    lo, hi = (torch.from_numpy(v) for v in model.normalization.x0_bounds())
    assert torch.all(hist[:, H - J * K:] >= lo - 1e-6) and torch.all(hist[:, H - J * K:] <= hi + 1e-6)
    loss = training_loss(model, b, DDPMNoiser(), torch.Generator().manual_seed(1))
    assert torch.isfinite(loss["loss"])
    # off: no rollout tensors, and the batch draws are those of a model without the setting
    cfg.rollout_fraction = 0.0
    assert not any(k.startswith("rollout_") for k in ChunkBatcher(model, [long]).batch(2))
    with pytest.raises(ValueError, match="rollout_chunks"):
        mc.ModelConfig(rollout_chunks=-1)


def test_a_corpus_view_lists_a_selection_again_for_training(tmp_path, corpus):
    """tools/corpus_view.py (the bundled model's stage 2 hears the natural English voices
    twice through such a view): the view lists only the chosen engine's utterances, the
    trainer reads them through the view's link beside the whole corpus as one style, the
    source is untouched, and a folder that is not a view of the source is refused."""
    from model_core.training.trainer import _sources
    before = (corpus / "manifest.jsonl").read_bytes()
    recs = read_manifest(corpus)
    want = [r["file"] for r in recs if r["engine"] == "festival"]
    assert 0 < len(want) < len(recs)
    tool = Path(__file__).resolve().parents[1] / "tools" / "corpus_view.py"
    view = tmp_path / "view"
    for _ in range(2):   # a second run rewrites its own view
        r = subprocess.run([sys.executable, str(tool), str(corpus), str(view), "--language", "en",
                            "--engines", "festival"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    assert [x["file"] for x in read_manifest(view)] == want
    assert json.loads((view / "corpus.json").read_text())["utterances"] == len(want)
    p = tmp_path / "view.toml"
    p.write_text(f"[data]\ncorpus = [{json.dumps(str(corpus))}, {json.dumps(str(view))}]\n"
                 f"corpus_style = \"shared\"\n")
    files, _ = _sources(read_train_config(p)["data"], 30.0)
    assert len(files) == len(recs) + len(want) and {s for _, s in files} == {0}
    for path, _ in files[len(recs):]:
        assert load_utterance(path, fps=30.0).frames.shape[1] == 52
    assert (corpus / "manifest.jsonl").read_bytes() == before
    other = tmp_path / "other"
    other.mkdir()
    r = subprocess.run([sys.executable, str(tool), str(corpus), str(other), "--engines", "festival"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "is not a view of" in r.stderr
    r = subprocess.run([sys.executable, str(tool), str(corpus), str(tmp_path / "none"),
                        "--engines", "piper"], capture_output=True, text=True)
    assert r.returncode == 1 and "no utterance" in r.stderr and not (tmp_path / "none").exists()
