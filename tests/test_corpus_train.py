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
from model_core.config import ChunkGeometry
from model_core.data.corpus import (CorpusStream, augment_audio, build_corpus, load_utterance,
                                    read_manifest, sentence_pool, synthetic_rir)
from model_core.train import read_train_config, run_training

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


def test_train_resume_and_finetune(corpus, tmp_path, speech):
    cfg = _write_cfg(tmp_path / "a.toml", corpus, tmp_path / "run")
    final = run_training(cfg, progress=False)
    run = tmp_path / "run"
    assert final == run / "final.safetensors" and (run / "losses.png").stat().st_size > 1000
    assert (run / "step-0000003.safetensors").exists() and (run / "step-0000003.state.pt").exists()
    rows = list(csv.DictReader(open(run / "losses.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[2]["val_loss"] and all(np.isfinite(float(r["loss"])) for r in rows)
    m = mc.load_model(final)
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
    ft = mc.load_model(run_training(cfg3, progress=False))
    assert ft.config.training["fine_tuned_from"].endswith("step-0000006.safetensors")


def test_finetune_changes_session_settings_but_not_the_network(corpus, tmp_path, toy_checkpoint):
    """A fine-tune may set the chunk size (and other sampling/training-only settings) in
    [model]; the result keeps them. Architecture settings that differ are refused by name."""
    cfg = _write_cfg(tmp_path / "k.toml", corpus, tmp_path / "k3", steps=1,
                     init_from=str(toy_checkpoint))
    base = mc.load_model(toy_checkpoint).config
    new_k = 3 if base.chunk_frames != 3 else 2
    body = cfg.read_text().replace("n_styles = 2", f"n_styles = {base.n_styles}\n"
                                   f"chunk_frames = {new_k}\nsample_steps = 3")
    cfg.write_text(body)
    ft = mc.load_model(run_training(cfg, progress=False))
    assert (ft.config.chunk_frames, ft.config.sample_steps) == (new_k, 3)
    assert ft.config.d_model == base.d_model
    cfg.write_text(body.replace("sample_steps = 3", f"d_model = {base.d_model * 2}")
                   .replace(str(tmp_path / "k3"), str(tmp_path / "k4")))
    with pytest.raises(ValueError, match=r"\[model\] d_model = .* differs from .*train from scratch"):
        run_training(cfg, progress=False)


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
