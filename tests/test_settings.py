"""Sampler settings as one validated object (model_core.runtime.settings.SamplerSettings),
chunk size and look-ahead as session settings (each model declares what it takes, bad values
refused by name), and the same frames for any push sizes at each setting."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import model_core as mc
from model_core.runtime.config import ModelConfig
from model_core.runtime.settings import SamplerSettings
from realdata import real_speech_path
from test_streaming import run_chunked
from toy import LIVE_CONFIG

NAN = float("nan")


# -- the object -------------------------------------------------------------------------

@pytest.mark.parametrize("kw,name", [
    (dict(steps=0), "steps"), (dict(steps=2.0), "steps"), (dict(steps=True), "steps"),
    (dict(eta=NAN), "eta"), (dict(eta=1.5), "eta"), (dict(guidance=-1), "guidance"),
    (dict(guidance=21), "guidance"), (dict(guidance_channels="mouth"), "guidance_channels"),
    (dict(lip_temperature=2.5), "lip_temperature"), (dict(blink_temperature=NAN), "blink_temperature"),
    (dict(chunk_frames=0), "chunk_frames"), (dict(chunk_frames=1.5), "chunk_frames"),
    (dict(lookahead_ms=-5), "lookahead_ms"), (dict(lookahead_ms=float("inf")), "lookahead_ms"),
    (dict(preset="fast"), "preset"),
])
def test_bad_values_are_refused_by_name_when_built(kw, name):
    with pytest.raises(ValueError, match=f"^{name}"):
        SamplerSettings(**kw)


def test_built_once_then_replaced_and_combined():
    s = SamplerSettings(steps=np.int64(3), eta=0, chunk_frames=2)
    assert (s.steps, s.eta, s.chunk_frames) == (3, 0.0, 2)
    assert type(s.steps) is int and type(s.eta) is float
    with pytest.raises(Exception):
        s.steps = 4                                      # frozen: built once
    assert s.replace(steps=None).steps is None and s.steps == 3
    with pytest.raises(ValueError, match="steps"):
        s.replace(steps=-1)
    # the keyword API meets the object: keywords that are not None win
    assert SamplerSettings.of(s, steps=None, lookahead_ms=20) == s.replace(lookahead_ms=20.0)
    assert SamplerSettings.of(None) == SamplerSettings()
    with pytest.raises(TypeError, match="chunk_size"):
        SamplerSettings.of(s, chunk_size=2)
    with pytest.raises(TypeError, match="SamplerSettings"):
        SamplerSettings.of({"steps": 2})
    assert s.to_dict() == {"steps": 3, "eta": 0.0, "chunk_frames": 2, "preset": "quality"}


def test_resolved_against_what_each_model_declares():
    ranged = ModelConfig(sample_steps=3, **LIVE_CONFIG)
    one = ModelConfig(chunk_frames=3)                   # one look-ahead, no live setting
    r = SamplerSettings().resolve(ranged)
    assert (r.chunk_frames, r.lookahead_ms, r.steps, r.eta, r.preset) == (3, 60.0, 3, 0.0, "quality")
    assert None not in r.to_dict(only_set=False).values()
    live = SamplerSettings(preset="live").resolve(ranged)
    assert (live.chunk_frames, live.lookahead_ms) == (1, 20.0)
    assert SamplerSettings(preset="live").latency_ms(ranged) == pytest.approx(1000 / 30 + 20)
    # an explicit chunk size or look-ahead wins over the preset
    assert SamplerSettings(preset="live", lookahead_ms=40).resolve(ranged).lookahead_ms == 40.0
    # a model that declares no live setting runs live at its best quality
    assert SamplerSettings(preset="live").resolve(one) == SamplerSettings().resolve(one) \
        .replace(preset="live")
    # the live preset's own blink temperature, where the model declares one
    assert live.blink_temperature == ranged.blink_temperature == r.blink_temperature
    calm = ModelConfig(sample_steps=3, **LIVE_CONFIG, live_blink_temperature=0.8)
    assert SamplerSettings(preset="live").resolve(calm).blink_temperature == 0.8
    assert SamplerSettings().resolve(calm).blink_temperature == calm.blink_temperature == 1.0
    assert SamplerSettings(preset="live", blink_temperature=1.3).resolve(calm) \
        .blink_temperature == 1.3                       # an explicit one wins
    with pytest.raises(ValueError, match="live_blink_temperature must be None or in"):
        ModelConfig(live_blink_temperature=2.5)
    with pytest.raises(ValueError, match=r"lookahead_ms.*\[0, 60\]"):
        SamplerSettings(lookahead_ms=80).resolve(ranged)
    with pytest.raises(ValueError, match="lookahead_ms.*trained for one look-ahead"):
        SamplerSettings(lookahead_ms=20).resolve(one)
    assert one.chunk_frames_range() == (1, 8)
    with pytest.raises(ValueError, match=r"chunk_frames.*1\.\.8"):
        SamplerSettings(chunk_frames=9).resolve(one)
    with pytest.raises(ValueError, match=r"steps.*1\.\.1000"):
        SamplerSettings(steps=1001).resolve(one)


# -- passed whole through the API ---------------------------------------------------------

def test_stream_takes_the_object_or_the_keywords_bit_for_bit(toy_model, speech):
    kw = dict(steps=3, eta=0.5, guidance=2.0, lip_temperature=0.7, blink_temperature=1.4,
              chunk_frames=2)
    st = SamplerSettings(**kw)
    a = toy_model.generate(speech, 16000, seed=5, **kw)
    b = toy_model.generate(speech, 16000, seed=5, settings=st)
    c = toy_model.generate(speech, 16000, seed=5, settings=st.replace(steps=4), steps=3)
    assert np.array_equal(a, b) and np.array_equal(a, c)
    s = toy_model.stream(settings=st, fps=60)          # through the fps wrapper too
    assert s.settings == st.resolve(toy_model.config)
    assert not np.array_equal(a, toy_model.generate(speech, 16000, seed=5))
    # guidance_channels is a session setting now: "all" guides the upper face too
    g_all = toy_model.generate(speech, 16000, seed=5, settings=st.replace(guidance_channels="all"))
    g_lips = toy_model.generate(speech, 16000, seed=5, settings=st.replace(guidance_channels="lips"))
    assert not np.array_equal(g_all, g_lips)
    with pytest.raises(TypeError, match="SamplerSettings"):
        toy_model.stream(settings=dict(kw))


@pytest.mark.parametrize("preset", ["quality", "live"])
@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_any_push_sizes_give_identical_frames_at_each_setting(live_checkpoint, speech, preset,
                                                              backend):
    """The model's two declared settings (3 frames + 60 ms, 1 frame + 20 ms), on both
    backends: the same frames whole and in pushes of 1, 7 and 333, 160 (10 ms: a
    microphone's blocks) and 4000 samples."""
    model = mc.load_model(live_checkpoint, backend=backend)
    st = SamplerSettings(preset=preset)
    audio = speech[: 16000 * 3]
    whole = model.generate(audio, 16000, seed=4, settings=st)
    assert len(whole) == 90
    for sizes in ([7, 333], [160], [4000]):
        assert np.array_equal(run_chunked(model, audio, sizes, seed=4, settings=st), whole)
    short = audio[:8000 + 555]
    assert np.array_equal(run_chunked(model, short, [1], seed=4, settings=st),
                          model.generate(short, 16000, seed=4, settings=st))
    other = model.generate(audio, 16000, seed=4,
                           settings=SamplerSettings(preset="quality" if preset == "live" else "live"))
    assert not np.array_equal(whole, other)


def test_latency_of_a_setting(live_model, toy_model):
    assert live_model.latency_ms(settings=SamplerSettings(preset="live")) == \
        pytest.approx(1000 / 30 + 20)
    assert live_model.latency_ms(settings=SamplerSettings()) == pytest.approx(160)
    assert live_model.stream(settings=SamplerSettings(preset="live")).latency_ms == \
        pytest.approx(1000 / 30 + 20)
    with pytest.raises(ValueError, match="lookahead_ms"):
        toy_model.latency_ms(settings=SamplerSettings(lookahead_ms=10))


# -- the command line ---------------------------------------------------------------------

def _run(*args):
    return subprocess.run([sys.executable, "-m", "model_core.cli", *map(str, args)],
                          capture_output=True, text=True)


def test_cli_generate_takes_the_chunk_size_and_lookahead(live_checkpoint, live_model, tmp_path):
    wav = real_speech_path()
    audio = mc.load_audio(wav)
    r = _run("generate", wav, "-o", tmp_path / "live.npz", "--checkpoint", live_checkpoint,
             "--seed", 2, "--preset", "live", "--backend", "torch")   # live_model's backend
    assert r.returncode == 0, r.stderr
    assert "1-frame chunks, 20 ms look-ahead" in r.stdout
    api = live_model.generate(audio, 16000, seed=2, settings=SamplerSettings(preset="live"))
    assert np.array_equal(np.load(tmp_path / "live.npz")["weights"], api)
    r = _run("generate", wav, "-o", tmp_path / "k2.npz", "--checkpoint", live_checkpoint,
             "--seed", 2, "--chunk-frames", 2, "--lookahead-ms", 40, "--backend", "torch")
    assert r.returncode == 0, r.stderr
    api = live_model.generate(audio, 16000, seed=2, chunk_frames=2, lookahead_ms=40)
    assert np.array_equal(np.load(tmp_path / "k2.npz")["weights"], api)
    for args, name in ((("--lookahead-ms", 80), "lookahead_ms"),
                       (("--lookahead-ms", "nan"), "--lookahead-ms: lookahead_ms"),
                       (("--chunk-frames", 9), "chunk_frames"),
                       (("--lip-temperature", 3), "--lip-temperature: lip_temperature")):
        r = _run("generate", wav, "-o", tmp_path / "bad.npz", "--checkpoint", live_checkpoint,
                 *args)
        assert r.returncode == 2 and name in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.npz").exists()


def test_cli_evaluate_prints_the_setting_beside_the_best_quality(live_checkpoint, tmp_path):
    out = tmp_path / "eval.json"
    r = _run("evaluate", "--checkpoint", live_checkpoint, "--items", "arctic/*", "--seeds", "0",
             "--preset", "live", "--beside-quality", "-o", out)
    assert r.returncode == 0, r.stderr
    assert "Setting: live (1-frame chunks, 20 ms look-ahead: 53 ms), 2 DDIM steps" in r.stdout
    assert "Setting: quality (3-frame chunks, 60 ms look-ahead: 160 ms)" in r.stdout
    assert "real clips [best quality]" in r.stdout      # the side-by-side table
    import json
    res = json.loads(out.read_text())
    assert res["settings"]["sampler"]["chunk_frames"] == 1
    assert res["beside_quality"]["real clips"]["settings"]["sampler"]["lookahead_ms"] == 60
