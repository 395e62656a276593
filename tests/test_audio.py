"""Audio input: formats, channels, rates, bad input; streaming log-mel equals whole-signal log-mel."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import model_core as mc
from model_core.io.audio import Resampler, to_mono_float32
from model_core.runtime.features import LogMel


@pytest.mark.parametrize("ext,fmt", [(".wav", "WAV"), (".flac", "FLAC"), (".ogg", "OGG"), (".mp3", "MP3")])
def test_formats_load_to_16k_mono(tmp_path, speech, ext, fmt):
    p = tmp_path / f"clip{ext}"
    sf.write(p, speech, 16000, format=fmt)
    x = mc.load_audio(p)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - len(speech)) < 0.05 * 16000  # mp3 adds encoder padding
    n = min(len(x), len(speech))
    if fmt in ("WAV", "FLAC"):
        assert np.abs(x[:n] - speech[:n]).max() < 1e-3


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_rates_and_stereo_are_converted(tmp_path, speech, rate):
    import soxr
    y = soxr.resample(speech, 16000, rate)
    stereo = np.stack([y, 0.5 * y], axis=1)
    p = tmp_path / f"s{rate}.wav"
    sf.write(p, stereo, rate)
    x = mc.load_audio(p)
    assert abs(len(x) - len(speech)) <= 2
    ref = soxr.resample(0.75 * y, rate, 16000) if rate != 16000 else 0.75 * y
    n = min(len(ref), len(x))
    assert np.corrcoef(ref[:n], x[:n])[0, 1] > 0.999


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        mc.load_audio(tmp_path / "nope.wav")
    with pytest.raises(IsADirectoryError, match="directory"):
        mc.load_audio(tmp_path)
    txt = tmp_path / "notes.wav"
    txt.write_text("this is not audio\n" * 20)
    with pytest.raises(mc.AudioError, match="notes.wav"):
        mc.load_audio(txt)
    corrupt = tmp_path / "corrupt.wav"
    sf.write(corrupt, np.zeros(16000, np.float32), 16000)
    data = corrupt.read_bytes()
    corrupt.write_bytes(data[:12] + b"\x00" * 40)
    with pytest.raises(mc.AudioError, match="corrupt.wav"):
        mc.load_audio(corrupt)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(mc.AudioError, match="no samples"):
        mc.load_audio(empty)


def test_arrays_are_validated_and_converted(speech):
    i16 = np.round(speech * 32767).astype(np.int16)
    f64 = speech.astype(np.float64)
    assert np.allclose(to_mono_float32(i16), speech, atol=1e-4)
    assert to_mono_float32(f64).dtype == np.float32
    with pytest.raises(mc.AudioError, match="zero-length"):
        to_mono_float32(np.zeros(0, np.float32))
    bad = speech.copy()
    bad[100] = np.nan
    with pytest.raises(mc.AudioError, match="NaN"):
        to_mono_float32(bad)
    bad[100] = np.inf
    with pytest.raises(mc.AudioError, match="infinite"):
        to_mono_float32(bad)
    with pytest.raises(mc.AudioError, match="dtype"):
        to_mono_float32(np.array(["a", "b"]))
    with pytest.raises(mc.AudioError, match="shape"):
        to_mono_float32(np.zeros((2, 2, 2), np.float32))


def test_model_rejects_bad_arrays(toy_model, speech):
    with pytest.raises(mc.AudioError, match="zero-length"):
        toy_model.generate(np.zeros(0, np.float32), 16000)
    bad = speech.copy()
    bad[5] = np.nan
    with pytest.raises(mc.AudioError):
        toy_model.generate(bad, 16000)
    s = toy_model.stream()
    with pytest.raises(mc.AudioError, match="channels first"):   # [C, N]: refused, never guessed
        s.push(np.zeros((2, 1000), np.float32))
    with pytest.raises(mc.AudioError, match=r"\[N, channels\]"):
        s.push(np.zeros((10, 2, 2), np.float32))
    with pytest.raises(mc.AudioError, match="NaN"):
        s.push(np.array([0.0, np.nan], np.float32))
    with pytest.raises(ValueError, match="sample_rate"):
        toy_model.generate(speech, 0)
    # int16 and float64 are accepted and give the same frames as float32
    a = toy_model.generate(speech, 16000)
    b = toy_model.generate(speech.astype(np.float64), 16000)
    assert np.array_equal(a, b)
    c = toy_model.generate(np.stack([speech, speech], 1), 16000)
    assert np.array_equal(a, c)


def test_streaming_logmel_equals_whole(speech):
    lm = LogMel()
    n = 300
    whole = lm.whole(speech, n)
    # frames from a buffer that starts mid-signal give the same numbers
    start = 16000 - 200
    buf = speech[start:start + 160 * 200 + 400]
    part = lm.frames(buf, start, 100, 250)
    assert np.allclose(part, whole[100:250], atol=1e-4)
    assert np.allclose(whole[0], lm.frames(np.concatenate([np.zeros(200, np.float32), speech[:400]]), -200, 0, 1)[0], atol=1e-4)


def test_resampler_stream_equals_whole(speech):
    whole = Resampler(16000, 48000).process(speech, last=True)
    r = Resampler(16000, 48000)
    parts = [r.process(speech[i:i + 777]) for i in range(0, len(speech), 777)]
    parts.append(r.process(np.zeros(0, np.float32), last=True))
    chunked = np.concatenate(parts)
    assert len(chunked) == len(whole)
    assert np.allclose(chunked, whole, atol=1e-5)
