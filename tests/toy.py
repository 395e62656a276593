"""A toy audio->face task for tests: voiced bursts open the jaw, silence rests, blinks are
random. A model trained on it for a few hundred steps is the project's *test checkpoint*
("toy-bursts"): it is not a lip-sync model, it proves that training and streaming inference
agree and that behaviour can fail."""

from __future__ import annotations

import numpy as np

from model_core.face import ARKIT_52
from model_core.training.batches import Utterance

JAW = ARKIT_52.index("jawOpen")
BLINK_L = ARKIT_52.index("eyeBlinkLeft")
BLINK_R = ARKIT_52.index("eyeBlinkRight")
SR = 16000


def toy_utterance(rng: np.random.Generator, seconds: float = 6.0, fps: float = 30.0,
                  style: int = 0) -> tuple[Utterance, np.ndarray]:
    """Returns the utterance and its burst envelope at fps [T] (1 inside bursts)."""
    n = int(seconds * SR)
    x = np.zeros(n, np.float32)
    env = np.zeros(n, np.float32)
    t = rng.uniform(0.2, 0.6)
    while t < seconds - 0.3:
        d = rng.uniform(0.12, 0.45)
        a, b = int(t * SR), int(min(seconds, t + d) * SR)
        f0 = rng.uniform(90, 220)
        tt = np.arange(b - a) / SR
        sig = sum(np.sin(2 * np.pi * f0 * h * tt + rng.uniform(0, 6)) / h for h in range(1, 12))
        ramp = np.minimum(1, np.minimum(tt, tt[::-1]) / 0.015)
        x[a:b] = 0.2 * sig * ramp
        env[a:b] = 1
        t += d + rng.uniform(0.08, 0.5)
    x += rng.normal(0, 1e-3, n).astype(np.float32)
    T = int(np.floor(n / SR * fps + 0.5))
    idx = np.minimum((np.arange(T) / fps * SR).astype(int), n - 1)
    env_f = env[idx]
    frames = np.zeros((T, len(ARKIT_52)), np.float32)
    frames[:, JAW] = 0.7 * env_f
    k = 0
    while k < T:  # random blinks, independent of the audio
        k += int(rng.uniform(1.5, 4.0) * fps)
        if k + 4 < T:
            frames[k:k + 4, BLINK_L] = frames[k:k + 4, BLINK_R] = [0.5, 1.0, 1.0, 0.5]
    return Utterance(x, frames, style), env_f


def toy_corpus(n: int, seed: int = 0, fps: float = 30.0) -> list[Utterance]:
    rng = np.random.default_rng(seed)
    return [toy_utterance(rng, rng.uniform(4, 8), fps, style=i % 2)[0] for i in range(n)]
