"""Issue 12, model_core / CLI side: faults and bad input. No NaN or inf ever leaves the model;
numbers from users and files are validated by name; outputs are checked before any work;
the thread count is bounded by default; m4a and truncated files. (Live-input faults are in
tests/test_live.py.)"""

from __future__ import annotations

import math
import shutil
import subprocess
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

import model_core as mc
from model_core.io import audio as audio_io
from model_core.io.audio import AudioWarning
from model_core.cli import main
from realdata import real_speech_path

NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def model():
    return mc.load_model()


def _cli(capsys, *args):
    """Run ``streamtalker ARGS`` in this process; (exit status, stdout, stderr)."""
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("streamtalker ") and ": error: " in lines[0], err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, err)


def _loud_float_wav(tmp_path, value=1e25):
    x, sr = sf.read(real_speech_path(), dtype="float32")
    x[16000] = value
    path = tmp_path / "loud.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    return path


# -- 1. no NaN or inf ever leaves the model -------------------------------------------------

@pytest.mark.slow   # long audio
def test_one_loud_sample_in_a_float_wav_gives_finite_frames_and_a_warning(tmp_path, capsys, model):
    wav = _loud_float_wav(tmp_path)
    rc, out, err = _cli(capsys, "generate", wav, "-o", tmp_path / "a.npz")
    assert rc == 0, err
    assert f"warning: {wav}" in err and "clipped" in err and "Traceback" not in err
    w = np.load(tmp_path / "a.npz")["weights"]
    assert len(w) == 213 and np.isfinite(w).all() and w.min() >= 0 and w.max() <= 1
    # the frames before the click are exactly the clean clip's
    clean = model.generate(mc.load_audio(real_speech_path()), 16000)
    assert np.array_equal(w[:20], clean[:20])
    # the API: load_audio warns naming the file and limits the sample
    with pytest.warns(AudioWarning, match="loud.wav.*clipped"):
        a = mc.load_audio(wav)
    assert np.abs(a).max() <= audio_io.SAMPLE_LIMIT
    with pytest.warns(AudioWarning, match="audio: 1 sample"):
        g = model.generate(sf.read(wav, dtype="float32")[0], 16000)
    assert np.isfinite(g).all()


@pytest.mark.slow   # long audio
def test_pushing_absurdly_loud_audio_never_puts_nan_in_the_history(model, speech):
    s = model.stream()
    with pytest.warns(AudioWarning, match="pushed samples"):
        f1 = s.push(speech * 1e30)
    assert np.isfinite(f1).all() and len(f1) > 100
    assert np.isfinite(s.history).all()
    assert s.clipped_samples > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # warned once per session, not per push
        f2 = s.push(speech * 1e30)
        f3 = s.push(speech)
    f4 = s.flush()
    for f in (f2, f3, f4):
        assert np.isfinite(f).all()
    assert np.isfinite(s.history).all()
    # float64 samples beyond float32's range, int-free: still finite, still limited
    with pytest.warns(AudioWarning):
        g = model.generate(speech.astype(np.float64) * 1e300, 16000)
    assert np.isfinite(g).all()


def test_a_non_finite_chunk_is_replaced_and_never_enters_the_history(model, speech, monkeypatch):
    s = model.stream()
    real = model.sample_chunk
    calls = {"n": 0}

    def broken(*a, **k):
        calls["n"] += 1
        x = real(*a, **k)
        return np.full_like(x, NAN) if calls["n"] == 5 else x
    monkeypatch.setattr(model, "sample_chunk", broken)
    with pytest.warns(RuntimeWarning, match="NaN/inf"):
        f = np.concatenate([s.push(speech), s.flush()])
    assert np.isfinite(f).all() and np.isfinite(s.history).all()
    assert s.nonfinite_chunks == 1


def test_a_checkpoint_with_nan_weights_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file
    from model_core.runtime.checkpoint import DEFAULT_CHECKPOINT
    state = load_file(str(DEFAULT_CHECKPOINT))
    key = sorted(k for k, v in state.items() if v.is_floating_point())[0]
    state[key][..., 0] = NAN
    save_file(state, str(tmp_path / "bad.safetensors"))
    shutil.copy(DEFAULT_CHECKPOINT.with_suffix(".json"), tmp_path / "bad.json")
    with pytest.raises(mc.CheckpointError, match="NaN"):
        mc.load_model(tmp_path / "bad.safetensors")


# -- 4 and the smaller ones: numbers validated by name --------------------------------------

BAD_SETTINGS = [
    (dict(eta=NAN), "eta"), (dict(eta=INF), "eta"), (dict(eta=-0.1), "eta"), (dict(eta=1.5), "eta"),
    (dict(guidance=NAN), "guidance"), (dict(guidance=INF), "guidance"), (dict(guidance=1e30), "guidance"),
    (dict(fps=NAN), "fps"), (dict(fps=True), "fps"), (dict(lip_temperature=NAN), "lip_temperature"),
    (dict(blink_temperature=NAN), "blink_temperature"), (dict(blink_temperature=2.5), "blink_temperature"),
    (dict(steps=0), "steps"), (dict(steps=2.5), "steps"), (dict(steps=True), "steps"),
    (dict(chunk_frames=0), "chunk_frames"), (dict(chunk_frames=1.5), "chunk_frames"),
    (dict(seed=2 ** 64), "0..18446744073709551615"), (dict(seed=-1), "seed"),
    (dict(seed=1.5), "seed"), (dict(seed=True), "seed"),
]


@pytest.mark.parametrize("kwargs,name", BAD_SETTINGS, ids=[f"{k}" for k, _ in BAD_SETTINGS])
def test_api_settings_are_validated_by_name(model, speech, kwargs, name):
    with pytest.raises(ValueError, match=name):
        model.stream(**kwargs)
    with pytest.raises(ValueError, match=name):
        model.generate(speech[:16000], 16000, **kwargs)


def test_the_edges_of_the_ranges_are_accepted(model, speech):
    for kw in (dict(seed=2 ** 64 - 1), dict(seed=np.uint64(7)), dict(eta=1.0), dict(steps=np.int64(3)),
               dict(chunk_frames=1)):
        f = model.generate(speech[:8000], 16000, **kw)
        assert np.isfinite(f).all() and len(f) == 15


@pytest.mark.parametrize("args,name", [
    (("--eta", "nan"), "eta"), (("--eta", "inf"), "eta"), (("--guidance", "nan"), "guidance"),
    (("--fps", "nan"), "fps"), (("--steps", "0"), "steps"), (("--chunk-frames", "0"), "chunk_frames"),
    (("--seed", "99999999999999999999999"), "0..18446744073709551615"), (("--threads", "0"), "threads"),
])
def test_cli_numbers_are_validated_by_name(tmp_path, capsys, args, name):
    out = tmp_path / "x.npz"
    rc, _, err = _cli(capsys, "generate", real_speech_path(), "-o", out, *args)
    assert rc == 2
    _one_line_error(err, name)
    assert not out.exists()


# -- 10. sample rates -----------------------------------------------------------------------

@pytest.mark.parametrize("rate", [True, False, 1, 0, -16000, 3999, 1e9, NAN, INF, "16000", None])
def test_absurd_sample_rates_are_refused(model, speech, rate):
    with pytest.raises(ValueError, match="sample_rate.*(Hz|number)"):
        model.generate(speech[:16000], rate)


def test_ordinary_sample_rates_are_accepted(model, speech):
    assert len(model.generate(speech[:16000], np.int64(16000))) == 30
    assert len(model.generate(np.zeros(44100, np.float32), 44100.0)) == 30
    assert len(model.generate(np.zeros(8000, np.float32), 8000)) == 30


# -- 9. outputs checked before the work, errors never name a temporary file ----------------

def test_unwritable_output_is_refused_before_generating(tmp_path, capsys, monkeypatch):
    from model_core.runtime.model import StreamTalkerModel

    def boom(*a, **k):
        raise AssertionError("generation started before the output was checked")
    monkeypatch.setattr(StreamTalkerModel, "stream", boom)
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    rc, _, err = _cli(capsys, "generate", real_speech_path(), "-o", afile / "face.csv")
    assert rc == 2
    _one_line_error(err, str(afile / "face.csv"), "not a folder")
    rc, _, err = _cli(capsys, "generate", real_speech_path(), "-o", afile)
    assert rc == 2
    _one_line_error(err, "already exists", "--force")
    assert afile.read_text() == "mine"


def test_a_failed_write_names_the_output_not_a_temporary_file(tmp_path, capsys, monkeypatch):
    import os

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(src))
    monkeypatch.setattr(os, "replace", refuse)
    monkeypatch.setattr(os, "link", refuse)     # the no-clobber rename (no --force)
    out = tmp_path / "face.csv"
    rc, _, err = _cli(capsys, "generate", real_speech_path(), "-o", out)
    assert rc == 2
    _one_line_error(err, str(out), "Permission denied")
    assert ".tmp" not in err and not list(tmp_path.iterdir())


# -- 7. threads -----------------------------------------------------------------------------

def test_the_model_uses_one_thread_by_default_and_threads_overrides_it(capsys, tmp_path):
    from model_core.runtime.device import available_cores
    torch.set_num_threads(available_cores())
    m = mc.load_model(backend="torch")   # torch's threads are process-wide
    assert torch.get_num_threads() == 1 == mc.DEFAULT_THREADS
    if available_cores() >= 2:
        mc.load_model(threads=2, backend="torch")
        assert torch.get_num_threads() == 2
    assert mc.set_threads() == 1 and torch.get_num_threads() == 1
    for bad in (0, -1, True, 1.5, "2", available_cores() + 1):
        with pytest.raises(ValueError, match="threads"):
            mc.set_threads(bad)
        with pytest.raises(ValueError, match="threads"):
            mc.load_model(threads=bad)
    assert m.generate(np.zeros(16000, np.float32), 16000).shape == (30, 52)
    rc, out, err = _cli(capsys, "generate", real_speech_path(), "-o", tmp_path / "t.npz",
                        "--threads", "1")
    assert rc == 0, err
    assert torch.get_num_threads() == 1


# -- audio files: m4a through ffmpeg, truncated WAVs, streamed decoding ---------------------

def _need_ffmpeg():
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.fail("ffmpeg is not installed: apt-get install ffmpeg (tools/apt-packages.txt)",
                    pytrace=False)


@pytest.mark.slow   # ffmpeg and a whole clip
def test_m4a_is_decoded_through_ffmpeg(tmp_path, capsys, model, monkeypatch):
    _need_ffmpeg()
    m4a = tmp_path / "speech.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(real_speech_path()), "-ar", "44100",
                    "-ac", "2", "-c:a", "aac", str(m4a)], check=True)
    rc, out, err = _cli(capsys, "generate", m4a, "-o", tmp_path / "a.npz")
    assert rc == 0, err
    w = np.load(tmp_path / "a.npz")["weights"]
    ref = model.generate(mc.load_audio(real_speech_path()), 16000)
    assert abs(len(w) - len(ref)) <= 1
    n = min(len(w), len(ref))
    jaw = mc.ARKIT_52.index("jawOpen")
    assert np.corrcoef(w[:n, jaw], ref[:n, jaw])[0, 1] > 0.9
    # without ffmpeg: one line naming the file and the fix
    monkeypatch.setattr(audio_io.shutil, "which", lambda name: None)
    with pytest.raises(mc.AudioError, match=r"speech\.m4a.*ffmpeg is not installed.*apt-get install ffmpeg"):
        mc.load_audio(m4a)
    rc, _, err = _cli(capsys, "generate", m4a, "-o", tmp_path / "b.npz")
    assert rc == 2
    _one_line_error(err, "speech.m4a", "install ffmpeg")


def test_a_truncated_wav_is_used_with_a_warning_naming_it(tmp_path, capsys):
    data = real_speech_path().read_bytes()
    half = tmp_path / "half.wav"
    half.write_bytes(data[:len(data) // 2])
    with pytest.warns(AudioWarning, match=r"half\.wav.*truncated"):
        a = mc.load_audio(half)
    assert abs(len(a) - 113600 / 2) < 100
    rc, _, err = _cli(capsys, "generate", half, "-o", tmp_path / "h.csv")
    assert rc == 0 and f"warning: {half}: the file is truncated" in err
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mc.load_audio(real_speech_path())            # a whole file: no warning


@pytest.mark.slow   # a whole clip twice
def test_cli_streams_a_44k_stereo_file_to_the_same_frames_as_the_api(tmp_path, capsys, model):
    x = mc.load_audio(real_speech_path(), 44100)
    wav = tmp_path / "st.wav"
    sf.write(wav, np.stack([x, 0.5 * x], 1), 44100, subtype="FLOAT")
    rc, _, err = _cli(capsys, "generate", wav, "-o", tmp_path / "a.json", "--seed", 3)
    assert rc == 0, err
    import json
    doc = json.loads((tmp_path / "a.json").read_text())
    api = model.generate(mc.load_audio(wav), 16000, seed=3)
    assert np.allclose(np.array(doc["frames"]), api, atol=1e-6) and len(api) == len(doc["frames"])
    blocks = list(mc.AudioFileReader(wav, block_s=0.37))
    assert np.array_equal(np.concatenate(blocks), mc.load_audio(wav))
    assert not math.isnan(doc["fps"])
