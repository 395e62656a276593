"""`streamtalker generate` end to end through the installed console script."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import model_core as mc
from realdata import real_speech_path

pytestmark = pytest.mark.slow   # the console script in subprocesses

EXE = Path(sys.executable).with_name("streamtalker")


def run(*args):
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_generate_npz_csv_json_match_the_api(tmp_path, toy_checkpoint):
    """The command line and the API give the same frames with the same defaults (the
    backend included: onnxruntime on the CPU, the checkpoint exported once into the cache)."""
    wav = real_speech_path()
    audio = mc.load_audio(wav)
    toy_model = mc.load_model(toy_checkpoint)
    assert type(toy_model).__name__ == "OnnxModel"
    expected = toy_model.generate(audio, 16000, seed=4)
    r = run("generate", wav, "-o", tmp_path / "a.npz", "--checkpoint", toy_checkpoint, "--seed", 4)
    assert r.returncode == 0, r.stderr
    assert "real-time factor" in r.stdout
    z = np.load(tmp_path / "a.npz")
    assert np.array_equal(z["weights"], expected)
    assert list(z["names"]) == list(mc.ARKIT_52) and float(z["fps"]) == 30.0
    assert z["weights"].min() >= 0 and z["weights"].max() <= 1

    r = run("generate", wav, "-o", tmp_path / "a.csv", "--checkpoint", toy_checkpoint, "--seed", 4)
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(open(tmp_path / "a.csv")))
    assert rows[0][:4] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft", "EyeLookDownLeft"]
    assert len(rows[0]) == 2 + 52 + 9 and len(rows) == 1 + len(expected)
    jaw_col = rows[0].index("JawOpen")
    jaw = np.array([float(r[jaw_col]) for r in rows[1:]])
    assert np.allclose(jaw, expected[:, mc.ARKIT_52.index("jawOpen")], atol=1e-6)
    assert rows[1][0] == "00:00:00:00.000" and rows[31][0] == "00:00:01:00.000"

    r = run("generate", wav, "-o", tmp_path / "a.json", "--checkpoint", toy_checkpoint,
            "--seed", 4, "--fps", 60, "--chunk-frames", 2, "--steps", 4)
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["fps"] == 60 and len(doc["frames"]) == round(len(audio) / 16000 * 60)
    api = toy_model.generate(audio, 16000, seed=4, fps=60, chunk_frames=2, steps=4)
    assert np.allclose(np.array(doc["frames"]), api, atol=1e-6)

    r = run("generate", wav, "-o", tmp_path / "b.npz", "--checkpoint", toy_checkpoint,
            "--seed", 4, "--blink-temperature", 1.7)
    assert r.returncode == 0, r.stderr
    hot = toy_model.generate(audio, 16000, seed=4, blink_temperature=1.7)
    assert np.array_equal(np.load(tmp_path / "b.npz")["weights"], hot)
    assert not np.array_equal(hot, expected)


def test_cli_errors_are_one_line(tmp_path, toy_checkpoint):
    wav = real_speech_path()
    out = tmp_path / "x.npz"
    out.write_bytes(b"keep me")
    cases = [
        (("generate", wav, "-o", out, "--checkpoint", toy_checkpoint), "already exists"),
        (("generate", tmp_path / "missing.wav", "-o", tmp_path / "y.npz", "--checkpoint", toy_checkpoint), "not found"),
        (("generate", wav, "-o", tmp_path / "y.txt", "--checkpoint", toy_checkpoint), "unknown output format"),
        (("generate", wav, "-o", tmp_path / "y.npz", "--checkpoint", tmp_path / "none.safetensors"), "not found"),
        (("generate", wav, "-o", tmp_path / "y.npz", "--checkpoint", toy_checkpoint, "--device", "cuda"), "cuda"),
        (("generate", wav, "-o", tmp_path / "y.npz", "--checkpoint", toy_checkpoint, "--style", 9), "style"),
        (("generate", wav, "-o", tmp_path / "y.npz", "--checkpoint", toy_checkpoint,
          "--blink-temperature", 2.5), "blink_temperature"),
        (("generate", tmp_path, "-o", tmp_path / "y.npz", "--checkpoint", toy_checkpoint), "directory"),
    ]
    for args, msg in cases:
        if "cuda" in args:
            import torch
            if torch.cuda.is_available():
                continue
        r = run(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert msg in r.stderr.lower() or msg in r.stderr, (msg, r.stderr)
        assert "Traceback" not in r.stderr
    assert out.read_bytes() == b"keep me"
    assert not (tmp_path / "y.npz").exists() and not (tmp_path / "y.txt").exists()
    r = run("generate", wav, "-o", out, "--checkpoint", toy_checkpoint, "--force")
    assert r.returncode == 0 and np.load(out)["weights"].shape[1] == 52
