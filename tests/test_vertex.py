"""Vertex-space models: loaders on fixtures in the public FaceFormer layout, the PCA codec,
training and sampling in vertex space, the streaming contract, save/load, evaluate CLI."""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from model_core.vertex import (BIWI, VOCASET, PCACodec, VertexModel, codec_path, list_sequences,
                               load_region, load_split, load_templates, parse_name)

SR = 16000
V = 50
LIPS = np.arange(0, 10)
UPPER = np.arange(30, 45)
REAL = Path(__file__).resolve().parents[1] / "inputs" / "speech" / "cards"


def _speech(rng, seconds):
    """A real clip cut to ``seconds`` when inputs/ exists, else voiced noise bursts."""
    n = int(seconds * SR)
    wavs = sorted(REAL.glob("*.wav")) if REAL.is_dir() else []
    if wavs:
        from model_core import load_audio
        x = load_audio(wavs[int(rng.integers(len(wavs)))])
        if len(x) >= n:
            s = int(rng.integers(0, len(x) - n + 1))
            return x[s:s + n].astype(np.float32)
    env = (np.sin(np.arange(n) / SR * 2 * np.pi * 3) > 0).astype(np.float32)
    return (0.1 * rng.normal(size=n) * env).astype(np.float32)


def _motion(samples, fps, rng, basis):
    """Offsets [T, V, 3]: lips open with the audio envelope, slow brow drift."""
    T = int(np.floor(len(samples) / SR * fps + 0.5))
    hop = SR / fps
    env = np.array([np.sqrt(np.mean(samples[int(i * hop):int((i + 1) * hop)] ** 2) + 1e-12)
                    for i in range(T)])
    env = env / (env.max() + 1e-9)
    brow = 0.3 * np.sin(np.arange(T) / fps * 2 * np.pi * rng.uniform(0.2, 0.5))
    return env[:, None, None] * basis[0][None] + brow[:, None, None] * basis[1][None]


def write_fixture(root: Path, dataset: str, subjects_sentences, seconds=1.2, seed=0):
    """Write DATA/vertices_npy, DATA/wav, DATA/templates.pkl exactly as FaceFormer's layout."""
    rng = np.random.default_rng(seed)
    spec = VOCASET if dataset == "vocaset" else BIWI
    (root / "vertices_npy").mkdir(parents=True)
    (root / "wav").mkdir()
    basis = np.zeros((2, V, 3))
    basis[0, LIPS, 1] = -0.01
    basis[1, UPPER, 1] = 0.004
    templates = {}
    for subj, sents in subjects_sentences:
        tpl = rng.normal(size=(V, 3)).astype(np.float64) * 0.1
        templates[subj] = tpl
        for n in sents:
            stem = f"{subj}_sentence{n:02d}" if dataset == "vocaset" else f"{subj}_e{n:02d}"
            x = _speech(rng, seconds + rng.uniform(0, 0.3))
            sf.write(root / "wav" / f"{stem}.wav", x, SR, subtype="PCM_16")
            off = _motion(x, spec.fps, rng, basis)
            if dataset == "vocaset":          # stored at 60 fps: duplicate-ish frames
                off = np.repeat(off, 2, axis=0)
            verts = (tpl[None] + off).reshape(len(off), -1).astype(np.float32)
            np.save(root / "vertices_npy" / f"{stem}.npy", verts)
    with open(root / "templates.pkl", "wb") as f:
        pickle.dump(templates, f, protocol=2)
    return templates


VOCA_TRAIN = VOCASET.train_subjects[:2]
VOCA_TEST = "FaceTalk_170809_00138_TA"


@pytest.fixture(scope="module")
def voca(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocaset")
    write_fixture(root, "vocaset", [(VOCA_TRAIN[0], [1, 2, 22]), (VOCA_TRAIN[1], [3, 24]),
                                    (VOCA_TEST, [5, 21, 23])])
    (root / "vertices_npy" / "README.npy.txt").write_text("not a sequence")
    return root


def test_parse_name():
    assert parse_name("FaceTalk_170725_00137_TA_sentence01") == ("FaceTalk_170725_00137_TA", 1)
    assert parse_name("M3_e37") == ("M3", 37)
    with pytest.raises(ValueError):
        parse_name("nosentence")


def test_splits_are_faceformers():
    assert len(VOCASET.train_subjects) == 8 and VOCASET.fps == 30 and VOCASET.stride == 2
    assert VOCASET.splits["train"][1] == tuple(range(1, 41))
    assert VOCASET.splits["test"] == (("FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA"),
                                      tuple(range(21, 41)))
    assert BIWI.splits["train"] == (("F2", "F3", "F4", "M3", "M4", "M5"), tuple(range(1, 33)))
    assert BIWI.splits["val"][1] == tuple(range(33, 37))
    assert BIWI.splits["test_a"][1] == BIWI.splits["test_b"][1] == tuple(range(37, 41))
    assert set(BIWI.splits["test_b"][0]) == {"F1", "F5", "F6", "F7", "F8", "M1", "M2", "M6"}


def test_vocaset_loader(voca):
    tpls = load_templates(voca / "templates.pkl")
    assert set(tpls) == {*VOCA_TRAIN, VOCA_TEST} and tpls[VOCA_TEST].shape == (V, 3)
    train = load_split(voca, "vocaset", "train")
    assert [s.name for s in train] == sorted(s.name for s in train) and len(train) == 5
    assert {s.style for s in train} == {0, 1}
    test = load_split(voca, "vocaset", "test")
    assert [s.sentence for s in test] == [21, 23] and all(s.style is None for s in test)
    s = train[0]
    raw = np.load(voca / "vertices_npy" / f"{s.name}.npy")
    assert s.vertices.shape[1:] == (V, 3) and s.vertices.dtype == np.float32
    assert abs(len(raw[::2]) - len(s.vertices)) <= 1          # 60 -> 30 fps
    assert np.allclose(s.vertices, raw[::2][:len(s.vertices)].reshape(-1, V, 3))
    for s in train + test:
        assert len(s.vertices) == int(np.floor(len(s.samples) / SR * 30 + 0.5))
    no_audio = load_split(voca, "vocaset", "val", subjects=[VOCA_TEST], with_audio=False)
    assert [x.sentence for x in no_audio] == [21, 23] and no_audio[0].samples is None
    with pytest.raises(ValueError):
        load_split(voca, "vocaset", "nope")
    with pytest.raises(FileNotFoundError):
        load_split(voca / "missing", "vocaset", "train")


def test_biwi_loader_and_regions(tmp_path):
    root = tmp_path / "BIWI"
    write_fixture(root, "biwi", [("F2", [1, 33, 37]), ("F1", [37, 38]), ("M3", [2])], seconds=0.6)
    tr = load_split(root, "biwi", "train")
    assert [(s.subject, s.sentence, s.style) for s in tr] == [("F2", 1, 0), ("M3", 2, 3)]
    assert tr[0].fps == 25
    raw = np.load(root / "vertices_npy" / "F2_e01.npy")
    assert np.allclose(tr[0].vertices, raw[:len(tr[0].vertices)].reshape(-1, V, 3))
    assert [s.name for s in load_split(root, "biwi", "test_a")] == ["F2_e37"]
    assert [s.name for s in load_split(root, "biwi", "test_b")] == ["F1_e37", "F1_e38"]
    assert [x[0] for x in list_sequences(root, "biwi", "val")] == ["F2_e33"]
    regions = root / "regions"
    regions.mkdir()
    (regions / "lve.txt").write_text(" ".join(map(str, LIPS[::-1])) + "\n")
    (regions / "fdd.txt").write_text("\n".join(map(str, UPPER)))
    assert np.array_equal(load_region(regions / "lve.txt", n_vertices=V), LIPS)
    assert np.array_equal(load_region(regions / "fdd.txt"), UPPER)
    with open(tmp_path / "FLAME_masks.pkl", "wb") as f:
        pickle.dump({"lips": LIPS, "forehead": UPPER[:5], "eye_region": UPPER[5:]}, f, protocol=2)
    assert np.array_equal(load_region(tmp_path / "FLAME_masks.pkl", "lips"), LIPS)
    assert np.array_equal(load_region(tmp_path / "FLAME_masks.pkl", "forehead+eye_region"), UPPER)
    with pytest.raises(ValueError):
        load_region(tmp_path / "FLAME_masks.pkl", "nose")
    with pytest.raises(ValueError):
        load_region(regions / "lve.txt", n_vertices=5)


def test_codec(voca, tmp_path):
    seqs = load_split(voca, "vocaset", "train", with_audio=False)
    offs = [s.offsets for s in seqs]
    codec = PCACodec.fit(offs, n_components=4)
    assert codec.n_components == 4 and codec.n_vertices == V
    assert 0.999 < codec.explained_variance <= 1.0 + 1e-6   # the fixture motion is rank 2
    z = codec.encode(offs[0])
    assert z.shape == (len(offs[0]), 4) and z.dtype == np.float32
    assert np.abs(codec.decode(z) - offs[0]).max() < 1e-5
    allz = codec.encode(np.concatenate(offs))
    assert np.allclose(allz[:, :2].std(0), 1.0, atol=0.05)   # whitened
    p = codec.save(tmp_path / "c.codec.safetensors")
    with pytest.raises(FileExistsError):
        codec.save(p)
    back = PCACodec.load(p)
    assert np.array_equal(back.components, codec.components) and back.n_frames_fit == codec.n_frames_fit
    # the randomized path agrees with the exact one on the leading subspace
    rnd = PCACodec.fit(offs, n_components=2, exact_limit=1)
    assert rnd.explained_variance == pytest.approx(codec.explained_variance_ratio[:2].sum(), rel=1e-3)


def _small(codec, subjects):
    return VertexModel.create(codec, subjects, fps=30.0, dataset="vocaset", d_model=64, n_heads=4,
                              predictor_ff=128, head_dim=64, head_ff=128, encoder_channels=32,
                              history_frames=8, history_pool=4, sample_steps=3)


@pytest.fixture(scope="module")
def trained(voca, tmp_path_factory):
    from model_core.training.batches import ChunkBatcher, train_steps
    torch.manual_seed(0)
    seqs = load_split(voca, "vocaset", "train")
    codec = PCACodec.fit([s.offsets for s in seqs], n_components=6)
    vm = _small(codec, list(VOCASET.train_subjects))
    from model_core.training.vertex import prepare_vertex_training
    utts = prepare_vertex_training(vm, seqs)
    assert utts[0].frames.shape[1] == 6 and {u.style for u in utts} == {0, 1}
    hist = train_steps(vm.model, ChunkBatcher(vm.model, utts), 6, batch_size=8, warmup=2)
    assert all(np.isfinite(h["loss"]) for h in hist)
    path = tmp_path_factory.mktemp("vckpt") / "voca-test.safetensors"
    vm.save(path)
    return vm, path


def test_rest_pose_is_neutral(trained):
    vm, _ = trained
    rest = vm.model.net.rest_pose.numpy()
    assert np.abs(vm.codec.decode(rest[None])).max() < 1e-5


def test_sample_and_streaming_contract(voca, trained):
    vm, _ = trained
    s = load_split(voca, "vocaset", "test")[0]
    whole = vm.generate(s.samples, SR, s.template, seed=3, style=VOCA_TRAIN[1])
    T = int(np.floor(len(s.samples) / SR * 30 + 0.5))
    assert whole.shape == (T, V, 3) and whole.dtype == np.float32 and np.all(np.isfinite(whole))
    rng = np.random.default_rng(0)
    for sizes in ([7], [160], [4000], None):
        sess = vm.stream(s.template, seed=3, style=1)
        parts, i = [], 0
        while i < len(s.samples):
            n = sizes[0] if sizes else int(rng.integers(1, 3000))
            parts.append(sess.push(s.samples[i:i + n]))
            i += n
        parts.append(sess.flush())
        assert all(p.ndim == 3 and p.shape[1:] == (V, 3) for p in parts)
        assert np.array_equal(np.concatenate(parts), whole)
    assert sess.latency_ms > 0
    other = vm.generate(s.samples, SR, s.template, seed=3, style=None)
    assert other.shape == whole.shape
    with pytest.raises(ValueError):
        vm.generate(s.samples, SR, s.template, style="FaceTalk_nobody")
    with pytest.raises(ValueError):
        vm.generate(s.samples, SR, s.template[:10])


def test_save_load(voca, trained):
    vm, path = trained
    assert codec_path(path).name == "voca-test.codec.safetensors" and codec_path(path).is_file()
    with pytest.raises(FileExistsError):
        vm.save(path)
    back = VertexModel.load(path)
    assert back.subjects == list(VOCASET.train_subjects) and back.dataset == "vocaset"
    assert back.model.config.output_kind == "latent"
    s = load_split(voca, "vocaset", "test")[0]
    a = vm.generate(s.samples, SR, s.template, seed=1, style=0)
    b = back.generate(s.samples, SR, s.template, seed=1, style=0)
    assert np.array_equal(a, b)
    codec_path(path).rename(path.with_name("moved.bin"))
    try:
        with pytest.raises(FileNotFoundError):
            VertexModel.load(path)
    finally:
        path.with_name("moved.bin").rename(codec_path(path))


def test_describe_checkpoint_and_the_one_loader(voca, trained, tmp_path):
    """describe_checkpoint tells a vertex checkpoint from an ARKit one from the JSON alone;
    load_model returns the matching kind; every session is a Session."""
    import model_core as mc
    from model_core.runtime.driver import Session, run
    from model_core.vertex.retarget import RetargetSession, RetargetedModel, ShapeKeyRetargeter
    vm, path = trained
    info = mc.describe_checkpoint(path)
    assert (info.kind, info.n_vertices, info.fps) == ("vertex", vm.n_vertices, 30.0)
    assert info.subjects == tuple(VOCASET.train_subjects)
    assert info.channel_names == tuple(vm.model.channel_names)
    default = mc.describe_checkpoint(None)
    assert (default.kind, default.n_vertices) == ("arkit", None)
    assert default.channel_names == tuple(mc.ARKIT_52)
    back = mc.load_model(path)
    assert isinstance(back, VertexModel) and back.subjects == vm.subjects
    # the bundled model ships an ONNX export: on the CPU it runs there (backends.resolve_backend)
    assert type(mc.load_model()).__name__ == "OnnxModel"
    assert type(mc.load_model(backend="torch")).__name__ == "StreamTalkerModel"
    s = load_split(voca, "vocaset", "test")[0]
    sess = back.stream(s.template, seed=1, style=0)
    assert isinstance(sess, Session) and sess.channel_names is None and sess.fps == 30.0
    verts = run(sess, s.samples, 4000)
    assert np.array_equal(verts, back.generate(s.samples, SR, s.template, seed=1, style=0))
    rng = np.random.default_rng(0)
    deltas = rng.normal(0, 1e-3, (3, vm.n_vertices, 3)).astype(np.float32)
    rt = RetargetSession(back.stream(s.template, seed=1, style=0),
                         ShapeKeyRetargeter(s.template, deltas), ["a", "b", "c"])
    assert isinstance(rt, Session) and rt.channel_names == ["a", "b", "c"]
    w = run(rt, s.samples)
    assert w.shape == (len(verts), 3) and w.min() >= 0 and w.max() <= 1
    # the same, driven as an ARKit model is (stream(seed, style, ...) without a template):
    # what the add-on's Generate and Live run for a vertex model
    rm = RetargetedModel(back, s.template, deltas, ["a", "b", "c"])
    assert (rm.channel_names, rm.fps, rm.sample_rate) == (["a", "b", "c"], 30.0, SR)
    np.testing.assert_array_equal(run(rm.stream(seed=1, style=0), s.samples, 1234), w)
    with pytest.raises(ValueError, match="2 names for 3 shape keys"):
        RetargetedModel(back, s.template, deltas, ["a", "b"])
    # a codec beside a checkpoint that is no latent model is refused, naming the file
    import shutil
    arkit = tmp_path / "arkit"
    shutil.copyfile(mc.describe_checkpoint().path, arkit.with_suffix(".safetensors"))
    shutil.copyfile(mc.describe_checkpoint().path.with_suffix(".json"), arkit.with_suffix(".json"))
    shutil.copyfile(codec_path(path), codec_path(arkit))
    with pytest.raises(mc.CheckpointError, match="not a vertex model"):
        mc.describe_checkpoint(arkit.with_suffix(".safetensors"))


def test_evaluate_cli_on_a_vertex_checkpoint(voca, trained, tmp_path, capsys):
    """`streamtalker evaluate` with a vertex checkpoint prints LVE/FDD/MVE per speaker and
    overall, writes JSON without replacing an existing file, and names missing options."""
    from model_core.cli import main
    _, path = trained
    np.savetxt(tmp_path / "lve.txt", LIPS, fmt="%d")
    np.savetxt(tmp_path / "fdd.txt", UPPER, fmt="%d")
    argv = ["evaluate", "--checkpoint", str(path), "--data", str(voca), "--dataset", "vocaset",
            "--lip-idx", str(tmp_path / "lve.txt"), "--upper-idx", str(tmp_path / "fdd.txt"),
            "-o", str(tmp_path / "r.json")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert VOCA_TEST in out and "overall" in out and "LVE" in out
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["overall"]["n_sequences"] == 2 and r["overall"]["lve"] >= 0 and r["seed"] == 0
    assert main(argv) == 2                                   # exists: never replaced
    assert "already exists" in capsys.readouterr().err
    assert main(argv[:5] + ["--dataset", "vocaset"]) == 2   # regions missing: named
    err = capsys.readouterr().err
    assert "--lip-idx --upper-idx" in err and "vertex checkpoint" in err


def test_generate_cli_writes_meshes_and_point_caches(voca, trained, tmp_path, capsys):
    """`streamtalker generate` with a vertex checkpoint and a template writes the meshes of
    VertexModel.generate as .npy, .npz, .pc2 and .mdd (never replacing a file) and names
    what is missing."""
    from model_core.cli import main
    from model_core.io.pointcache import read_pc2
    vm, path = trained
    s = load_split(voca, "vocaset", "test")[0]
    wav = voca / "wav" / f"{s.name}.wav"
    tpl = tmp_path / "tpl.npy"
    np.save(tpl, s.template)
    expected = vm.generate(s.samples, SR, s.template, seed=4, style=VOCA_TRAIN[1])
    base = ["generate", str(wav), "--checkpoint", str(path), "--seed", "4",
            "--style", VOCA_TRAIN[1]]
    assert main(base + ["--template", str(tpl), "-o", str(tmp_path / "m.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "m.npy"), expected, atol=1e-6)
    assert main(base + ["--template", f"{voca / 'templates.pkl'}:{s.subject}",
                        "-o", str(tmp_path / "m.pc2")]) == 0
    verts, _, _ = read_pc2(tmp_path / "m.pc2")
    np.testing.assert_allclose(verts, expected, atol=1e-6)
    assert main(base + ["--template", str(tpl), "-o", str(tmp_path / "m.npz")]) == 0
    assert float(np.load(tmp_path / "m.npz")["fps"]) == vm.fps
    assert "meshes of" in capsys.readouterr().out
    assert main(base + ["--template", str(tpl), "-o", str(tmp_path / "m.npy")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(base + ["-o", str(tmp_path / "x.npy")]) == 2
    assert "pass --template" in capsys.readouterr().err
    assert main(base + ["--template", str(tpl), "-o", str(tmp_path / "x.csv")]) == 2
    assert "writes meshes" in capsys.readouterr().err
    np.save(tmp_path / "small.npy", s.template[:10])
    assert main(base + ["--template", str(tmp_path / "small.npy"), "-o", str(tmp_path / "y.npy")]) == 2
    assert f"must be [{V}, 3]" in capsys.readouterr().err
    assert main(base + ["--template", str(tpl), "-o", str(tmp_path / "UP.NPY")]) == 0
    assert sorted(f.name for f in tmp_path.glob("UP*")) == ["UP.NPY"]   # no stray files
    np.testing.assert_allclose(np.load(tmp_path / "UP.NPY"), expected, atol=1e-6)
    assert main(["live", "--checkpoint", str(path), "--seconds", "1"]) == 2
    assert "live input needs an ARKit checkpoint" in capsys.readouterr().err


def _vertex_config(path, voca, steps, **extra):
    """A small `streamtalker train` config on the VOCASET fixture; ``extra``: [train] keys."""
    train = {"out": "run", "steps": steps, "batch_size": 4, "warmup": 1, "device": "cpu",
             "log_every": 1, "save_every": 2, "val_batches": 1, **extra}
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in train.items())
    path.write_text(f"""
[data]
vertices = "{voca}"
dataset = "vocaset"
val_split = "test"
[codec]
components = 4
[model]
d_model = 32
head_dim = 32
predictor_ff = 64
head_ff = 64
encoder_channels = 16
history_frames = 8
sample_steps = 2
[train]
{lines}
""")
    return path


@pytest.mark.slow   # training runs
def test_train_on_vertex_data_resumes_and_never_overwrites(voca, tmp_path):
    """`streamtalker train` with [data] vertices: the PCA codec is fitted, checkpoints carry
    their codec, the validation loss is computed on held-out speakers (unknown style), a
    stopped run resumes from its newest checkpoint, and a finished run is never replaced."""
    import csv
    from model_core.cli import main
    from model_core.training.trainer import run_training
    cfg = _vertex_config(tmp_path / "v.toml", voca, steps=3)
    final = run_training(cfg, progress=False)
    run = tmp_path / "run"
    assert final == run / "final.safetensors" and codec_path(final).is_file()
    assert codec_path(run / "step-0000002.safetensors").is_file()
    vm = VertexModel.load(final)
    assert vm.codec.n_components == 4 and vm.subjects == list(VOCASET.train_subjects)
    rows = list(csv.DictReader(open(run / "losses.csv")))
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert float(rows[1]["val_loss"]) > 0 and np.isfinite(float(rows[2]["val_loss"]))
    with pytest.raises(FileExistsError):
        run_training(cfg, progress=False)
    # stop after step 2 (remove the final files) and go on to 4 steps: resumes at step 2
    for f in run.glob("final*"):
        f.unlink()
    before = VertexModel.load(run / "step-0000002.safetensors").codec.components.copy()
    cfg2 = _vertex_config(tmp_path / "v2.toml", voca, steps=4)
    assert main(["train", str(cfg2)]) == 0
    rows = list(csv.DictReader(open(run / "losses.csv")))
    assert [r["step"] for r in rows] == ["1", "2", "3", "3", "4"]
    resumed = VertexModel.load(run / "final.safetensors")
    np.testing.assert_array_equal(resumed.codec.components, before)   # codec kept, not refitted
    assert resumed.model.config.training["steps"] == 4


def test_train_config_errors_name_the_setting(voca, tmp_path):
    from model_core.training.trainer import run_training
    bad = _vertex_config(tmp_path / "b.toml", voca, steps=1)
    bad.write_text(bad.read_text().replace('dataset = "vocaset"', 'dataset = "vocaset"\ncorpus = ["x"]'))
    with pytest.raises(ValueError, match="cannot be mixed"):
        run_training(bad, progress=False)
    bad.write_text(_vertex_config(tmp_path / "c.toml", voca, 1).read_text().replace("[codec]", "[codec]\nfoo = 1"))
    with pytest.raises(ValueError, match=r"unknown \[codec\] setting"):
        run_training(bad, progress=False)
    bad.write_text(_vertex_config(tmp_path / "d.toml", voca, 1).read_text()
                   .replace('dataset = "vocaset"', 'dataset = "vocaset"\nsplit = "nope"'))
    with pytest.raises(ValueError, match="nope"):
        run_training(bad, progress=False)
    bad.write_text(_vertex_config(tmp_path / "e.toml", voca, 1).read_text()
                   .replace("[model]", "[model]\nfps = 25.0"))
    with pytest.raises(ValueError, match=r"\[model\] fps: set from the data set"):
        run_training(bad, progress=False)


def test_vertex_training_without_the_validation_speakers_goes_on(voca, tmp_path, capsys):
    """The fixture has no VOCASET val speakers: training runs, says so, logs no val loss."""
    import csv
    from model_core.training.trainer import run_training
    cfg = _vertex_config(tmp_path / "v.toml", voca, steps=2)
    cfg.write_text(cfg.read_text().replace('val_split = "test"', 'val_split = "val"'))
    run_training(cfg, progress=False)
    assert "no validation loss" in capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / "run" / "losses.csv")))
    assert len(rows) == 2 and not any(r["val_loss"] for r in rows)


def test_resume_sets_aside_an_interrupted_save_and_draws_new_batches(voca, tmp_path, monkeypatch):
    """A run stopped while saving step 4 (weights written, no .state.pt) resumes from step 2;
    the half-saved files are renamed, never deleted, and step 4 is saved again. The resumed
    steps are not a replay of the first run's (other examples and noise)."""
    import csv
    import model_core.training.batches as training
    from model_core.training.trainer import run_training
    seeds = []

    class Recording(training.ChunkBatcher):
        def __init__(self, model, utts, seed=0, **kw):
            seeds.append(seed)
            super().__init__(model, utts, seed=seed, **kw)

    monkeypatch.setattr(training, "ChunkBatcher", Recording)
    run = tmp_path / "run"
    (run / "step-0000004-export").mkdir(parents=True)          # not a checkpoint: left alone
    run_training(_vertex_config(tmp_path / "a.toml", voca, steps=4), progress=False)
    first = [r["loss"] for r in csv.DictReader(open(run / "losses.csv"))]
    for f in run.glob("final*"):
        f.unlink()
    (run / "step-0000004.safetensors").write_bytes(b"half written")
    (run / "step-0000004.codec.safetensors").write_bytes(b"half written")
    run_training(_vertex_config(tmp_path / "b.toml", voca, steps=6), progress=False)
    assert (run / "step-0000004.interrupted-1.safetensors").read_bytes() == b"half written"
    assert (run / "step-0000004.interrupted-1.codec.safetensors").exists()
    assert (run / "step-0000004.state.pt").exists() and (run / "final.safetensors").exists()
    rows = list(csv.DictReader(open(run / "losses.csv")))
    assert [r["step"] for r in rows] == ["1", "2", "3", "4", "3", "4", "5", "6"]
    assert [r["loss"] for r in rows[4:6]] != first[2:4]
    train_seeds = [x for x in seeds if x != 12345]                # 12345: the validation set
    assert len(train_seeds) == 2 and train_seeds[0] != train_seeds[1]
    assert (run / "step-0000004-export").is_dir()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch on this machine")
def test_train_and_sample_on_cuda(voca, tmp_path):
    """`streamtalker train` on vertex data on the GPU (codec fit, bf16 autocast, checkpoints),
    then whole-file and streamed sampling on the GPU give the same frames."""
    import csv
    from model_core.training.trainer import run_training
    final = run_training(_vertex_config(tmp_path / "cuda.toml", voca, steps=10, device="cuda"),
                         progress=False)
    rows = list(csv.DictReader(open(tmp_path / "run" / "losses.csv")))
    assert len(rows) == 10 and all(np.isfinite(float(r["loss"])) for r in rows)
    vm = VertexModel.load(final, device="cuda")
    assert next(vm.model.net.parameters()).is_cuda
    s = load_split(voca, "vocaset", "train")[0]
    whole = vm.generate(s.samples, SR, s.template, seed=0, style=0)
    sess = vm.stream(s.template, seed=0, style=0)
    parts = [sess.push(s.samples[i:i + 777]) for i in range(0, len(s.samples), 777)] + [sess.flush()]
    assert whole.shape[1:] == (V, 3) and np.array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("name", ["vocaset", "biwi"])
def test_shipped_vertex_configs_parse(name):
    """configs/vocaset.toml and configs/biwi.toml use only known settings and point at the
    documented data folders."""
    from model_core.training.trainer import read_train_config
    root = Path(__file__).resolve().parents[1]
    cfg = read_train_config(root / "configs" / f"{name}.toml")
    assert cfg["data"]["dataset"] == name
    assert Path(cfg["data"]["vertices"]) == root / "data" / {"vocaset": "vocaset", "biwi": "BIWI"}[name]
    assert Path(cfg["train"]["out"]) == root / "runs" / name


def test_vertex_checkpoint_on_the_onnx_backend(voca, trained, tmp_path, capsys):
    """Issue 14: a vertex checkpoint exports (network + codec), loads on onnx (with torch
    unimportable too) and gives the torch backend's meshes."""
    import model_core as mc
    from model_core.cli import main
    from model_core.runtime.onnx_files import CODEC_FILE
    from test_onnx import without_torch
    vm, path = trained
    out = tmp_path / "voca.onnx"
    assert main(["export-onnx", str(path), "-o", str(out)]) == 0
    assert "codec.safetensors" in capsys.readouterr().out and (out / CODEC_FILE).is_file()
    ov = mc.load_model(out)
    assert isinstance(ov, VertexModel) and ov.model.backend == "onnx"
    assert ov.subjects == list(VOCASET.train_subjects)
    s = load_split(voca, "vocaset", "test")[0]
    a = vm.generate(s.samples, SR, s.template, seed=2, style=VOCA_TRAIN[1])
    b = ov.generate(s.samples, SR, s.template, seed=2, style=VOCA_TRAIN[1])
    assert a.shape == b.shape and np.abs(a - b).max() <= 1e-4      # metres
    assert np.abs(a - ov.generate(s.samples, SR, s.template, seed=3)).max() > 1e-4
    np.save(tmp_path / "audio.npy", s.samples)
    np.save(tmp_path / "tpl.npy", s.template)
    r = without_torch(f"""
        import numpy as np, model_core
        vm = model_core.load_model({str(out)!r})
        v = vm.generate(np.load({str(tmp_path / "audio.npy")!r}), {SR}, np.load({str(tmp_path / "tpl.npy")!r}),
                        seed=2, style={VOCA_TRAIN[1]!r})
        np.save({str(tmp_path / "v.npy")!r}, v)
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(tmp_path / "v.npy"), b)
