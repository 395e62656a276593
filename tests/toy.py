"""A toy audio->face task for tests: voiced bursts open the jaw, silence rests, blinks are
random. A model trained on it for a few hundred steps is the project's *test checkpoint*
("toy-bursts"): it is not a lip-sync model, it proves that training and streaming inference
agree and that behaviour can fail.

Run as a script it builds that checkpoint and the vertex tests' one, each with its ONNX
export beside it, for test environments without torch (tools/test.sh: Blender 5.2's)::

    .venv/bin/python tests/toy.py OUT_FOLDER
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from model_core.face import ARKIT_52

if TYPE_CHECKING:       # (model_core.training needs torch; this module must import without)
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
    from model_core.training.batches import Utterance
    return Utterance(x, frames, style), env_f


def toy_corpus(n: int, seed: int = 0, fps: float = 30.0) -> list[Utterance]:
    rng = np.random.default_rng(seed)
    return [toy_utterance(rng, rng.uniform(4, 8), fps, style=i % 2)[0] for i in range(n)]


def build_toy_checkpoint(path: Path) -> Path:
    """Train the test checkpoint (default architecture, 2 styles, 250 steps on
    :func:`toy_corpus` (24), seed 0) and save it at ``path`` (``NAME.safetensors`` with its
    ``NAME.json``). Needs torch.

    Returns:
        ``path``.
    Raises:
        AssertionError: the training loss did not fall below 0.3 of its start (the run did
            not converge: no checkpoint is written).
    """
    import torch

    import model_core as mc
    from model_core.training.batches import ChunkBatcher, fit_normalization, train_steps

    torch.manual_seed(0)
    cfg = mc.ModelConfig(n_styles=2, training={
        "name": "toy-bursts test checkpoint",
        "note": "built by tests/toy.py; not a lip-sync model"})
    model = mc.StreamTalkerModel.from_config(cfg)
    utts = toy_corpus(24)
    fit_normalization(model, utts)
    hist = train_steps(model, ChunkBatcher(model, utts), 250, batch_size=32, lr=2e-3, warmup=20)
    first = np.mean([h["loss"] for h in hist[:10]])
    last = np.mean([h["loss"] for h in hist[-20:]])
    assert last < 0.3 * first, f"toy training did not converge: loss {first:.3f} -> {last:.3f}"
    mc.save_checkpoint(model, path)
    return path


#: The small vertex rig of the vertex tests: vertices, shape keys.
VERTEX_RIG_V, VERTEX_RIG_K = 60, 4


def vertex_rig() -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """(basis float32 [V, 3], deltas float32 [K, V, 3], shape key names, offsets float32
    [400, V, 3]): a random rig (seed 0) and 400 frames of its keys mixed with weights in
    [0, 1], for the vertex tests."""
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(VERTEX_RIG_V, 3)).astype(np.float32)
    deltas = (0.05 * rng.normal(size=(VERTEX_RIG_K, VERTEX_RIG_V, 3))).astype(np.float32)
    w = rng.uniform(0, 1, size=(400, VERTEX_RIG_K)).astype(np.float32)
    offsets = np.einsum("tk,kvc->tvc", w, deltas)
    return basis, deltas, [f"key{k}" for k in range(VERTEX_RIG_K)], offsets


def build_vertex_checkpoint(path: Path) -> Path:
    """Save at ``path`` a small *untrained* vertex model (the tests are about the pipeline)
    whose PCA codec spans :func:`vertex_rig`'s keys. Needs torch. Returns ``path``."""
    from model_core.vertex import PCACodec, VertexModel
    *_, offsets = vertex_rig()
    codec = PCACodec.fit([offsets], n_components=VERTEX_RIG_K)
    vm = VertexModel.create(codec, ["speaker"], fps=30.0, d_model=32, head_dim=32,
                            predictor_ff=64, head_ff=64, encoder_channels=16, history_frames=8,
                            sample_steps=2)
    return vm.save(path)


#: The low-latency live setting the live test checkpoint declares (v4's).
LIVE_CONFIG = dict(chunk_frames=3, min_lookahead_ms=0.0, live_chunk_frames=1,
                   live_lookahead_ms=20.0)


def build_live_checkpoint(path: Path) -> Path:
    """Save at ``path`` an *untrained* ARKit model (the default architecture, 2 DDIM steps)
    that declares a look-ahead range and a live setting (:data:`LIVE_CONFIG`: 3-frame chunks
    and 60 ms for quality, 1 frame and 20 ms live), for the tests of the session settings
    (bit-identity and the plumbing need no training). Needs torch. Returns ``path``."""
    import model_core as mc
    cfg = mc.ModelConfig(sample_steps=2, training={
        "name": "live-setting test checkpoint", "note": "built by tests/toy.py; untrained"},
        **LIVE_CONFIG)
    return mc.save_checkpoint(mc.StreamTalkerModel.from_config(cfg, "cpu", seed=0), path)


#: What ``python tests/toy.py OUT`` writes into OUT: (file name, builder).
PREBUILT = {"toy": ("toy-bursts-test.safetensors", build_toy_checkpoint),
            "vertex": ("vertex-rig-test.safetensors", build_vertex_checkpoint),
            "live": ("live-setting-test.safetensors", build_live_checkpoint)}


#: Where a test environment without torch finds the test checkpoints (:data:`PREBUILT`,
#: each with its ONNX export beside it): a folder made by ``python tests/toy.py
#: FOLDER`` in an environment with torch (tools/test.sh does).
PREBUILT_ENV = "STREAMTALKER_TEST_CHECKPOINTS"


def checkpoint_for_tests(kind: str, folder: Path) -> Path:
    """The test checkpoint ``kind`` (``"toy"``, ``"vertex"``, ``"live"``: :data:`PREBUILT`):
    trained into ``folder`` where torch is installed; else the prebuilt one in
    $STREAMTALKER_TEST_CHECKPOINTS (the test fails, naming the command, when it is not
    there)."""
    from model_core.runtime.backends import torch_available

    name, build = PREBUILT[kind]
    if torch_available():
        return build(folder / name)
    prebuilt = Path(os.environ.get(PREBUILT_ENV, "")) / name
    if not os.environ.get(PREBUILT_ENV) or not prebuilt.is_file():
        pytest.fail(f"torch is not installed here, so the test checkpoint {name} cannot be "
                    f"made: build the test checkpoints where torch is (`.venv/bin/python "
                    f"tests/toy.py /tmp/streamtalker-test-checkpoints`) and set {PREBUILT_ENV} "
                    f"to that folder (tools/test.sh does both); now "
                    f"{os.environ.get(PREBUILT_ENV) or 'unset'!r}")
    return prebuilt


def main(argv: list[str] | None = None) -> int:
    """``python tests/toy.py OUT``: build the test checkpoints (:data:`PREBUILT`) in the new
    folder OUT, each with its ONNX export beside it (``NAME.onnx/``): what a test environment
    without torch loads. Refuses an existing OUT."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("out", type=Path, help="a new folder")
    args = ap.parse_args(argv)
    from model_core.runtime.onnx_export import export_checkpoint
    from model_core.runtime.onnx_files import export_dir_for
    if args.out.exists():
        ap.error(f"{args.out} exists; choose a new folder")
    args.out.mkdir(parents=True)
    for name, build in PREBUILT.values():
        path = build(args.out / name)
        export_checkpoint(path, export_dir_for(path))
        print(f"test checkpoint: {path} (ONNX export {export_dir_for(path).name}/ beside it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
