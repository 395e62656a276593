"""Checkpoints: round trip, fp16 storage, and clear errors for every broken case."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import model_core as mc
from model_core.runtime.checkpoint import DEFAULT_CHECKPOINT


def copy_ckpt(src, dst_dir, name="m"):
    w = dst_dir / f"{name}.safetensors"
    shutil.copy(src, w)
    shutil.copy(src.with_suffix(".json"), dst_dir / f"{name}.json")
    return w


def test_round_trip_and_fp16(tmp_path, toy_model, toy_checkpoint, speech):
    a = toy_model.generate(speech[:32000], 16000)
    again = mc.load_model(toy_checkpoint, backend="torch")
    assert np.array_equal(a, again.generate(speech[:32000], 16000))
    assert again.fps == 30.0 and again.sample_rate == 16000 and again.channel_names == list(mc.ARKIT_52)
    half = mc.save_checkpoint(toy_model, tmp_path / "half.safetensors", half=True)
    assert half.stat().st_size < 0.6 * toy_checkpoint.stat().st_size
    b = mc.load_model(half).generate(speech[:32000], 16000)
    assert np.abs(a - b).max() < 0.05
    cfg = json.loads(toy_checkpoint.with_suffix(".json").read_text())
    assert cfg["format_version"] == 1 and cfg["training"]["name"].startswith("toy-bursts")
    # a folder holding one checkpoint, and the .json path, load too
    d = tmp_path / "folder"
    d.mkdir()
    copy_ckpt(toy_checkpoint, d)
    assert mc.load_model(d).fps == 30.0
    assert mc.load_model(d / "m.json").fps == 30.0


def test_never_overwrites(tmp_path, toy_model, toy_checkpoint):
    with pytest.raises(FileExistsError, match="never overwritten"):
        mc.save_checkpoint(toy_model, toy_checkpoint)


def test_missing_files(tmp_path, toy_checkpoint):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        mc.load_model(tmp_path / "nope.safetensors")
    w = copy_ckpt(toy_checkpoint, tmp_path)
    w.with_suffix(".json").unlink()
    with pytest.raises(FileNotFoundError, match=r"m\.json"):
        mc.load_model(w)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(FileNotFoundError, match="found 0"):
        mc.load_model(tmp_path / "empty_dir")


def test_truncated_weights(tmp_path, toy_checkpoint):
    w = copy_ckpt(toy_checkpoint, tmp_path)
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 2])
    with pytest.raises(mc.CheckpointError, match="truncated or corrupt"):
        mc.load_model(w)
    w.write_bytes(b"")
    with pytest.raises(mc.CheckpointError, match="m.safetensors"):
        mc.load_model(w)


def test_wrong_version_shape_and_json(tmp_path, toy_checkpoint):
    w = copy_ckpt(toy_checkpoint, tmp_path)
    cpath = w.with_suffix(".json")
    cfg = json.loads(cpath.read_text())
    cpath.write_text(json.dumps({**cfg, "format_version": 99}))
    with pytest.raises(mc.CheckpointError, match="format_version 99"):
        mc.load_model(w)
    cpath.write_text(json.dumps({**cfg, "d_model": 128}))
    with pytest.raises(mc.CheckpointError, match="shape mismatch"):
        mc.load_model(w)
    cpath.write_text(json.dumps({**cfg, "channel_names": cfg["channel_names"][:10]}))
    with pytest.raises(mc.CheckpointError, match="shape mismatch"):
        mc.load_model(w)
    cpath.write_text(json.dumps({**cfg, "bogus_setting": 1}))
    with pytest.raises(mc.CheckpointError, match="bogus_setting"):
        mc.load_model(w)
    cpath.write_text("{not json")
    with pytest.raises(mc.CheckpointError, match="not valid JSON"):
        mc.load_model(w)


def test_bad_settings(toy_model):
    with pytest.raises(ValueError, match="chunk_frames"):
        toy_model.stream(chunk_frames=99)
    with pytest.raises(ValueError, match="style"):
        toy_model.stream(style=7)
    with pytest.raises(ValueError, match="DDIM steps"):
        toy_model.stream(steps=0)
    with pytest.raises(ValueError, match="fps"):
        toy_model.stream(fps=0)
    with pytest.raises(ValueError, match="device"):
        toy_model.to("tpu")
    toy_model.to("cpu")
    with pytest.raises(ValueError, match="model config"):
        mc.ModelConfig(fps=-1)


def test_default_model():
    if DEFAULT_CHECKPOINT.exists():
        m = mc.load_model()
        assert m.channel_names == list(mc.ARKIT_52)
        assert m.config.training, "the bundled default must say how it was trained"
    else:
        with pytest.raises(FileNotFoundError, match="no bundled default model"):
            mc.load_model()
