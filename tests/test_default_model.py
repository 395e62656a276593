"""The bundled default model on real speech (docs/architecture.md, "Real inputs": clips, aligned with pocketsphinx,
teacher references): the behaviour an animator relies on out of the box."""

from __future__ import annotations

import numpy as np
import pytest

import model_core as mc
from model_core.face import ARKIT_52
from model_core.runtime.checkpoint import DEFAULT_CHECKPOINT
from model_core.evaluation.evaluate import build_eval_set, evaluate_model
from model_core.evaluation.metrics import LIP_CHANNELS

pytestmark = pytest.mark.slow   # the bundled model on real speech, both backends

JAW = ARKIT_52.index("jawOpen")


@pytest.fixture(scope="module", params=["torch", "onnx"])
def default_model(request):
    """The bundled model on each backend (the same frames but for float rounding:
    tests/test_onnx.py)."""
    if not DEFAULT_CHECKPOINT.exists():
        pytest.fail(f"the bundled default model {DEFAULT_CHECKPOINT} is missing")
    return mc.load_model(backend=request.param)


def test_default_model_is_described(default_model):
    tr = default_model.config.training
    assert tr["name"].startswith("streamtalker-default")
    assert "synthetic" in tr["what_it_learned_from"] and tr["steps"] > 0
    assert default_model.channel_names == list(ARKIT_52) and default_model.fps == 30.0


@pytest.fixture(scope="module")
def results(default_model):
    items = build_eval_set(fps=default_model.fps)
    return evaluate_model(default_model, items, seeds=(0, 1, 2))


def test_lips_close_open_and_round_on_real_speech(results):
    """Measured where the viewer sees it: the lip gap on the Face Cap head, on 12 real
    English recordings, with the teacher's ceiling beside it. The figures stay above floors
    a little under v4.5's measured ones (closure 1.00, open/closed 13.5, openness r 0.68,
    rounding 0.74; MODEL_CARD.md). v4.4 scored 0.97, 10.6, 0.68 and 0.74 on the same clips,
    v4.3 0.95, 12.9, 0.655 and 0.72,
    v4.2 0.97, 11.7, 0.648 and 0.73, v4.1 0.95, 8.7, 0.61 and 0.68, v4.0 0.87, 7.2, 0.68 and
    0.56, v3.5 0.91, 9.2, 0.66 and 0.57."""
    lip, ceiling = results["overall"]["lip"], results["overall"]["lip_reference"]
    assert lip["closure"] >= 0.95, (lip, ceiling)
    assert lip["open_closed_ratio"] >= 11.0, (lip, ceiling)
    assert lip["openness_r"] >= 0.66, (lip, ceiling)
    assert lip["rounding"] >= 0.65, (lip, ceiling)
    # every one of evaluate's must-hold checks (openness r 0.68 >= 0.65; v4.2 missed it)
    failed = {k: c for k, c in results["checks"].items() if not c["pass"]}
    assert not failed, failed


def test_live_setting_keeps_the_lips_on_real_speech(default_model):
    """Live's default setting (1-frame chunks, 40 ms look-ahead: 73 ms) on the 12 real
    clips, as evaluate prints it for seeds 0-2: v4.5 measured closure 0.95, open/closed 11.0,
    openness r 0.61 (issue 22 asks 0.9, 6 and 0.6; v4.4 0.94, 9.2, 0.61; v4.3 0.97, 10.0,
    0.58; v4.2 0.94, 7.9, 0.57); the floors sit a little under."""
    st = mc.SamplerSettings(preset="live")
    assert st.resolve(default_model.config).latency_ms(default_model.config) < 100
    res = evaluate_model(default_model, build_eval_set(fps=default_model.fps), seeds=(0, 1, 2),
                         settings=st)
    lip = res["overall"]["lip"]
    assert res["settings"]["sampler"]["chunk_frames"] == 1
    assert lip["closure"] >= 0.9, lip
    assert lip["open_closed_ratio"] >= 9.0, lip
    assert lip["openness_r"] >= 0.58, lip


def test_lips_follow_a_voice_in_another_language(default_model, tmp_path):
    """French from a recorded MBROLA voice no corpus trains on (fr3, one of the dev voices
    the checkpoint was chosen on; tools/apt-packages.txt installs it), scored on its exact
    IPA phones. These three clips (word sequences) measured closure 0.82, open/closed 5.6,
    openness r 0.55, rounding 0.63 with v4.5 (teacher 1.00, 11.8, 0.71, 0.43; seeds 0-1;
    v4.4: 0.82, 5.8, 0.54, 0.60; v4.3: 0.82, 5.8, 0.54, 0.54; v4.2: 0.82, 6.1, 0.54, 0.56; v4.1: 0.82, 6.2, 0.53, 0.62; v4.0: 0.79, 3.8, 0.47, 0.43);
    the floors sit a little under them."""
    from model_core.training.corpus import build_multilingual_evalset
    from model_core.training.mbrola import mbrola_voices
    if "fr3" not in mbrola_voices():
        pytest.fail("MBROLA voice fr3 missing: run tools/setup.sh (tools/apt-packages.txt)")
    out = build_multilingual_evalset(tmp_path / "fr3", per_voice=3, seed=0, voices=("fr3",))
    res = evaluate_model(default_model, build_eval_set(out, default_model.fps), seeds=(0, 1))
    lip = res["overall"]["lip"]
    assert lip["closure"] >= 0.75, lip
    assert lip["open_closed_ratio"] >= 5.0, lip
    assert lip["openness_r"] >= 0.45, lip
    assert lip["rounding"] >= 0.5, lip


def test_jaw_follows_the_reference(results):
    o = results["overall"]
    assert o["jaw_corr"] >= 0.7
    assert o["open_vowel_ratio"] > 1.2


def test_upper_face_is_alive(results):
    o = results["overall"]
    assert 8 <= o["blink_rate_per_min"] <= 25
    assert o["seed_diversity_upper"] > 0.01, "different seeds must give different upper-face performances"


def test_blink_temperature_only_raises_the_blink_rate(default_model, speech):
    """More initial noise on eyeBlinkLeft/Right blinks more (the bundled model's default,
    1.0, was chosen so that the dev sets blink 8-25 times a minute; MODEL_CARD.md) and the
    lips barely move."""
    from model_core.evaluation.metrics import count_blinks
    lips = [ARKIT_52.index(c) for c in LIP_CHANNELS]
    assert default_model.config.blink_temperature == 1.0
    cold = [default_model.generate(speech, 16000, seed=s, blink_temperature=1.0) for s in range(4)]
    hot = [default_model.generate(speech, 16000, seed=s, blink_temperature=2.0) for s in range(4)]
    assert sum(map(count_blinks, hot)) >= sum(map(count_blinks, cold)) + 4, \
        ([count_blinks(y) for y in cold], [count_blinks(y) for y in hot])
    lip_change = np.mean([np.abs(h[:, lips] - c[:, lips]).mean() for h, c in zip(hot, cold)])
    assert lip_change < 0.01, lip_change
    scale = default_model.noise_scale(0.5, 1.3)
    for i, n in enumerate(ARKIT_52):
        want = 1.3 if n.startswith("eyeBlink") else 0.5 if n in LIP_CHANNELS else 1.0
        assert scale[i] == pytest.approx(want), n
    assert default_model.noise_scale(1.0, 1.0) is None
    with pytest.raises(ValueError, match="blink_temperature"):
        default_model.stream(blink_temperature=3)


def test_silence_rests(default_model):
    y = default_model.generate(np.zeros(16000 * 60, np.float32), 16000)
    lips = [ARKIT_52.index(c) for c in LIP_CHANNELS]
    assert y[:, JAW].max() < 0.1
    assert y[:, lips].mean() < 0.05
    assert np.abs(y[:900].mean(0) - y[-900:].mean(0))[lips].max() < 0.05


def test_lips_follow_the_audio_more_than_the_seed(results):
    o = results["overall"]
    assert o["seed_diversity_lips"] < o["seed_diversity_upper"]


def test_lip_temperature_only_tames_the_lips(default_model, speech):
    lips = [ARKIT_52.index(c) for c in LIP_CHANNELS]
    upper = [i for i, n in enumerate(ARKIT_52) if n.startswith(("brow", "eye"))]

    def spread(tau):
        outs = np.stack([default_model.generate(speech, 16000, seed=s, lip_temperature=tau)
                         for s in range(3)])
        sd = outs.std(0).mean(0)
        return sd[lips].mean(), sd[upper].mean()

    lip_hot, up_hot = spread(1.0)
    lip_cold, up_cold = spread(0.25)
    assert lip_cold < 0.8 * lip_hot
    assert up_cold > 0.6 * up_hot
    with pytest.raises(ValueError, match="lip_temperature"):
        default_model.stream(lip_temperature=5)
