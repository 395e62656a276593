"""Noise schedule, DDIM sampler and DDPM loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_core.runtime.ddim import DDIMScheduler, NoiseGenerator, make_alphas_cumprod
from model_core.training.objective import DDPMNoiser


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_schedule_is_monotonic_and_in_range(schedule):
    ab = make_alphas_cumprod(schedule, 1000)
    assert ab.shape == (1000,)
    assert (ab[1:] < ab[:-1]).all()
    assert 0.99 < ab[0] <= 1 and 0 <= ab[-1] < 0.01
    with pytest.raises(ValueError, match="schedule"):
        make_alphas_cumprod("quadratic", 10)


def test_set_timesteps_trailing_and_errors():
    s = DDIMScheduler()
    s.set_timesteps(10)
    assert s.timesteps[0] == 999 and len(s.timesteps) == 10
    assert all(a > b for a, b in zip(s.timesteps, s.timesteps[1:]))
    s.set_timesteps(1)
    assert s.timesteps == [999]
    with pytest.raises(ValueError, match="steps"):
        s.set_timesteps(0)
    with pytest.raises(ValueError, match="eta"):
        DDIMScheduler(eta=-1)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_with_exact_x0_predictor_returns_x0(eta):
    """With a perfect x0 predictor, DDIM lands on x0 whatever the noise."""
    g = np.random.default_rng(0)
    x0 = g.standard_normal((1, 4, 52), dtype=np.float32)
    s = DDIMScheduler(eta=eta)
    s.set_timesteps(8)
    x = g.standard_normal((1, 4, 52), dtype=np.float32)
    for t in s.timesteps:
        x = s.step(x0, t, x, g)
        assert x.dtype == np.float32
    np.testing.assert_allclose(x, x0, atol=1e-6)


def test_ddim_step_matches_forward_process_marginal():
    """eta=1 step from x_t with the true x0 gives x_prev ~ q(x_prev | x0) in distribution."""
    g = np.random.default_rng(0)
    s = DDIMScheduler(eta=1.0)
    s.set_timesteps(4)
    t, t_prev = s.timesteps[1], s.timesteps[2]
    x0 = np.zeros((20000, 1), np.float32)
    ab_t, ab_p = float(s.alphas_cumprod[t]), float(s.alphas_cumprod[t_prev])
    xt = (ab_t ** 0.5 * x0 + (1 - ab_t) ** 0.5 * g.standard_normal(x0.shape)).astype(np.float32)
    xp = s.step(x0, t, xt, np.random.default_rng(1))
    assert xp.std() == pytest.approx((1 - ab_p) ** 0.5, rel=0.03)
    with pytest.raises(ValueError, match="rng"):
        s.step(x0, t, xt)


def test_x0_clipping_bounds():
    s = DDIMScheduler(clip_min=np.zeros(3), clip_max=np.ones(3))
    s.set_timesteps(1)
    out = s.step(np.array([[[-2.0, 0.5, 3.0]]]), 999, np.zeros((1, 1, 3), np.float32))
    assert out.tolist() == [[[0.0, 0.5, 1.0]]]


def test_add_noise_and_loss():
    n = DDPMNoiser("cosine", 1000)
    x0 = torch.ones(4, 3, 2)
    noise = torch.zeros_like(x0)
    xt = n.add_noise(x0, noise, torch.tensor([0, 10, 500, 999]))
    assert xt[0].mean() > xt[2].mean() > xt[3].mean() >= 0
    prev = torch.zeros(4, 1, 2)
    z = DDPMNoiser.loss(x0, x0, prev)
    assert float(z["loss"]) == 0.0
    jitter = x0.clone()
    jitter[:, 1] += 0.1
    l = DDPMNoiser.loss(jitter, x0, prev)
    assert float(l["velocity"]) > 0 and float(l["x0"]) > 0
    # mask removes frames from both terms
    m = torch.tensor([[1.0, 0.0, 1.0]] * 4)
    lm = DDPMNoiser.loss(jitter, x0, prev, mask=m)
    assert float(lm["x0"]) == 0.0


@pytest.mark.parametrize("seed", [0, 7, 2 ** 64 - 1])
def test_noise_generator_draws_torchs_numbers(seed):
    """The sampler's numpy noise is torch's CPU randn stream for the seed (to float32
    rounding: torch's vectorised log/cos differ in the last bits), call after call."""
    g, n = torch.Generator().manual_seed(seed), NoiseGenerator(seed)
    for shape in [(1, 3, 52), (1, 1, 52), (2, 5, 52), (32,), (1, 3, 52)]:
        a = torch.randn(shape, generator=g).numpy()
        b = n.standard_normal(shape, dtype=np.float32)
        assert b.dtype == np.float32 and b.shape == shape
        np.testing.assert_allclose(b, a, atol=1e-5)
    small = NoiseGenerator(seed).standard_normal((5,))     # < 16: our own, still deterministic
    assert np.array_equal(small, NoiseGenerator(seed).standard_normal((5,)))
    with pytest.raises(ValueError, match="float32"):
        n.standard_normal((4,), dtype=np.float64)


def test_guidance_per_channel_guides_only_those_channels():
    """Classifier-free guidance with a [D] scale (guidance_channels = "lips"): channels at 1
    take the audio-conditioned x0, the others are pushed past it away from the unconditioned."""
    from model_core.runtime.ddim import sample_ddim

    cond = np.full((1, 2, 3), 0.5, np.float32)
    uncond = np.zeros((1, 2, 3), np.float32)
    s = DDIMScheduler()
    s.set_timesteps(4)
    out = sample_ddim(lambda x, t: np.concatenate([cond, uncond]), (1, 2, 3), s,
                      NoiseGenerator(0), np.array([3.0, 1.0, 1.0], np.float32))
    np.testing.assert_allclose(out[..., 0], 1.5, atol=1e-5)
    np.testing.assert_allclose(out[..., 1:], 0.5, atol=1e-5)


def test_lip_guidance_leaves_the_upper_face_unguided(toy_model, speech):
    """guidance_channels = "lips" on a model: the lips differ from unguided sampling, the
    upper face is sampled as without guidance far more closely than with guidance on all."""
    from model_core.face import is_lip_channel
    import copy

    x = speech[:16000 * 3]
    lips = np.array([is_lip_channel(n) for n in toy_model.channel_names])
    m = copy.copy(toy_model)
    m.config = type(toy_model.config).from_dict(toy_model.config.to_dict())
    plain = m.generate(x, 16000, seed=1)
    m.config.guidance_channels = "lips"
    lip_only = m.generate(x, 16000, seed=1, guidance=3.0)
    m.config.guidance_channels = "all"
    every = m.generate(x, 16000, seed=1, guidance=3.0)
    assert np.abs(lip_only[:, lips] - plain[:, lips]).max() > 1e-3
    assert np.abs(lip_only[:, ~lips] - plain[:, ~lips]).mean() < \
        np.abs(every[:, ~lips] - plain[:, ~lips]).mean()
    with pytest.raises(ValueError, match="guidance_channels"):
        type(m.config)(guidance_channels="upper")
