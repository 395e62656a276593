"""The streaming contract (docs/architecture.md, "The streaming contract") on real speech with the test checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

import model_core as mc
from toy import JAW, toy_utterance
from tiers import first_fast


def run_chunked(model, audio, sizes, **kw):
    s = model.stream(**kw)
    out, i, k = [], 0, 0
    while i < len(audio):
        n = sizes[k % len(sizes)]
        out.append(s.push(audio[i:i + n]))
        i += n
        k += 1
    out.append(s.flush())
    return np.concatenate(out)


@pytest.mark.parametrize("sizes", first_fast(["random", [1], [7], [160], [4000]]))
def test_any_chunking_gives_identical_frames(toy_model, speech, sizes):
    audio = speech[: 16000 * 2 + 1234] if sizes == [1] else speech
    whole = toy_model.generate(audio, 16000, seed=3)
    if sizes == "random":
        sizes = list(np.random.default_rng(0).integers(1, 9000, 500))
    chunked = run_chunked(toy_model, audio, sizes, seed=3)
    assert chunked.shape == whole.shape
    assert np.array_equal(chunked, whole)


@pytest.mark.slow   # the clip three times, 6 steps, guided
def test_identical_with_eta_and_guidance(toy_model, speech):
    kw = dict(seed=5, eta=1.0, guidance=2.0, steps=6)
    a = toy_model.generate(speech, 16000, **kw)
    b = run_chunked(toy_model, speech, [333, 5000, 17], **kw)
    assert np.array_equal(a, b)
    c = toy_model.generate(speech, 16000, **{**kw, "seed": 6})
    assert not np.array_equal(a, c), "another seed must change the sampled frames"


@pytest.mark.parametrize("fps", [25.0, 30.0, 60.0])
def test_frame_count_is_round_duration_times_fps(fps):
    model = mc.StreamTalkerModel.from_config(mc.ModelConfig(fps=fps))
    for n in [1, 100, 533, 16000, 16000 * 3 + 777, 16001]:
        out = model.generate(np.zeros(n, np.float32), 16000)
        assert out.shape == (round(n / 16000 * fps), 52), (fps, n)


@pytest.mark.parametrize("out_fps", first_fast([29.97, 24.0, 25.0, 60.0]))
def test_output_fps_resampling(toy_model, speech, out_fps):
    a = toy_model.generate(speech, 16000, fps=out_fps)
    assert a.shape[0] == round(len(speech) / 16000 * out_fps)
    b = run_chunked(toy_model, speech, [999, 1], fps=out_fps)
    assert np.array_equal(a, b)
    native = toy_model.generate(speech, 16000)
    # interpolated jawOpen follows the native curve
    t_out = np.arange(len(a)) / out_fps
    ref = np.interp(t_out, np.arange(len(native)) / 30.0, native[:, JAW])
    assert np.abs(ref - a[:, JAW]).max() < 1e-4


def test_any_input_rate_is_resampled(toy_model, speech):
    import soxr
    a = toy_model.generate(speech, 16000)
    x48 = soxr.resample(speech, 16000, 48000)
    b = toy_model.generate(x48, 48000)
    assert b.shape == a.shape
    assert np.corrcoef(a[:, JAW], b[:, JAW])[0, 1] > 0.95


def test_latency_is_chunk_plus_lookahead(toy_model):
    cfg = toy_model.config
    s = toy_model.stream()
    assert s.latency_ms == pytest.approx(1000 * cfg.chunk_frames / cfg.fps + cfg.lookahead_ms)
    s8 = toy_model.stream(chunk_frames=8)
    assert s8.latency_ms == pytest.approx(1000 * 8 / cfg.fps + cfg.lookahead_ms)


def test_push_returns_frames_as_audio_arrives(toy_model):
    s = toy_model.stream()
    cfg = toy_model.config
    got = 0
    for _ in range(20):
        got += len(s.push(np.zeros(1600, np.float32)))  # 100 ms each
    # after 2 s, all frames older than the latency are out
    lag_frames = (s.latency_ms / 1000) * cfg.fps
    assert got >= 2.0 * cfg.fps - lag_frames - 1
    assert got <= round(2.0 * cfg.fps)
    s.flush()
    with pytest.raises(RuntimeError, match="flushed"):
        s.push(np.zeros(10, np.float32))


def test_toy_checkpoint_lip_behaviour(toy_model):
    """Training and streaming agree: the toy model opens the jaw on voiced bursts only."""
    u, env = toy_utterance(np.random.default_rng(123), 8.0)
    y = toy_model.generate(u.samples, 16000)
    assert np.corrcoef(y[:, JAW], env)[0, 1] > 0.9
    assert y[env == 0, JAW].mean() < 0.15
    assert y[env == 1, JAW].mean() > 0.45


@pytest.mark.slow   # long audio
def test_state_is_bounded_and_silence_rests(toy_model):
    """10 minutes of silence: every buffer keeps its size, the face rests, nothing drifts."""
    s = toy_model.stream()
    block = np.zeros(16000, np.float32)
    frames = []
    sizes_10s = None
    for sec in range(600):
        frames.append(s.push(block))
        if sec == 9:
            sizes_10s = s.state_sizes()
    assert s.state_sizes() == sizes_10s
    frames.append(s.flush())
    y = np.concatenate(frames)
    assert y.shape == (600 * 30, 52)
    assert np.isfinite(y).all()
    mouth = y[:, JAW]
    assert mouth.max() < 0.15, "silence must leave the jaw at rest"
    first, last = y[:1800].mean(0), y[-1800:].mean(0)
    assert np.abs(first - last).max() < 0.05, "no drift over 10 minutes"
    assert y.std(0)[JAW] < 0.05
