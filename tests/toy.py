"""A toy audio->face task for tests: voiced bursts open the jaw, silence rests, blinks are
random. A model trained on it for a few hundred steps is the project's *test checkpoint*
("toy-bursts"): it is not a lip-sync model, it proves that training and streaming inference
agree and that behaviour can fail.

Run as a script it builds that checkpoint and the vertex tests' one, each with its ONNX
export beside it, for test environments without torch (tools/test.sh: Blender 5.2's)::

    .venv/bin/python tests/toy.py OUT_FOLDER

Trained test checkpoints are cached between runs (:func:`cached_checkpoint`), under
$STREAMTALKER_TEST_CACHE or ~/.cache/streamtalker/test-checkpoints, in a folder named by a
hash of their sources (this file, the model_core modules its builders import and what those
import, the torch and numpy versions): a repeated run skips the training, a change to any of
those sources trains afresh.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from importlib import metadata
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


#: Where trained test checkpoints are kept between runs (default
#: ~/.cache/streamtalker/test-checkpoints): :func:`cached_checkpoint`.
CACHE_ENV = "STREAMTALKER_TEST_CACHE"
#: The model_core modules the builders of :data:`PREBUILT` and :func:`main` import; the
#: cache key hashes their sources and those of every module they reach.
CACHE_ROOTS = ("model_core", "model_core.training.batches", "model_core.vertex",
               "model_core.runtime.onnx_export", "model_core.runtime.onnx_files")
#: Cache entries kept per kind (the most recently used); older ones are removed.
CACHE_KEEP = 4
#: A build folder older than this (s) belongs to a build that was killed: removed.
CACHE_STALE_S = 6 * 3600


def cache_root() -> Path:
    """The folder of the test-checkpoint cache: $STREAMTALKER_TEST_CACHE, else
    ~/.cache/streamtalker/test-checkpoints."""
    return Path(os.environ.get(CACHE_ENV) or
                Path.home() / ".cache" / "streamtalker" / "test-checkpoints")


def cache_sources() -> list[Path]:
    """The files the test checkpoints are built from: this file and the sources of the
    model_core modules :data:`CACHE_ROOTS` reach through imports (tests/importgraph.py:
    module-level and function-level imports, and the packages above each)."""
    from importgraph import closure, module_names

    modules = module_names()
    return [Path(__file__).resolve()] + sorted(modules[m] for m in closure(CACHE_ROOTS))


def sources_key(files: list[Path] | None = None) -> str:
    """16 hex digits: SHA-256 over ``files`` (default :func:`cache_sources`), each by its
    path (below the project root: relative) and its bytes, and the versions of torch and numpy the
    checkpoints are trained with. Any change to those sources changes the key."""
    from importgraph import ROOT

    h = hashlib.sha256()
    for p in cache_sources() if files is None else files:
        p = p.resolve()
        name = p.relative_to(ROOT).as_posix() if p.is_relative_to(ROOT) else str(p)
        h.update(name.encode() + b"\0" + p.read_bytes() + b"\0")
    for dist in ("torch", "numpy"):
        h.update(f"{dist} {metadata.version(dist)}\0".encode())
    return h.hexdigest()[:16]


def cached_checkpoint(kind: str) -> Path:
    """The test checkpoint ``kind`` (:data:`PREBUILT`) from the cache (:func:`cache_root`),
    built there first when the cache has none for the current :func:`sources_key`: into a
    temporary folder beside, renamed into place once complete (so an interrupted or
    concurrent build never leaves half a checkpoint). Keeps the :data:`CACHE_KEEP` most
    recently used entries of ``kind`` and removes build folders older than
    :data:`CACHE_STALE_S`. Needs torch. Callers copy the files out
    (:func:`checkpoint_for_tests`): the cache is never written by a test.

    Returns:
        the checkpoint's path inside the cache (``NAME.safetensors`` with its ``NAME.json``,
        and a vertex checkpoint's ``NAME.codec.safetensors``).
    Raises:
        AssertionError: the build did (see :func:`build_toy_checkpoint`).
    """
    name, build = PREBUILT[kind]
    root = cache_root()
    entry = root / f"{kind}-{sources_key()}"
    if not (entry / name).is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=root))
        try:
            build(tmp / name)
            try:
                tmp.rename(entry)
            except OSError:      # built meanwhile by another run: keep that one
                if not (entry / name).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    os.utime(entry)
    for old in sorted(root.glob(f"{kind}-*"), key=lambda p: p.stat().st_mtime)[:-CACHE_KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    for tmp in root.glob(f".{kind}-*"):     # left by builds that were killed
        if time.time() - tmp.stat().st_mtime > CACHE_STALE_S:
            shutil.rmtree(tmp, ignore_errors=True)
    return entry / name


def copy_checkpoint(path: Path, folder: Path) -> Path:
    """Copy the checkpoint ``path`` and the files beside it that share its stem
    (``NAME.json``, ``NAME.codec.safetensors``) into ``folder``; returns the copy's path."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = path.name.removesuffix(".safetensors")
    for f in path.parent.iterdir():
        if f.is_file() and (f.name == path.name or f.name.startswith(stem + ".")):
            shutil.copy2(f, folder / f.name)
    return folder / path.name


def checkpoint_for_tests(kind: str, folder: Path) -> Path:
    """The test checkpoint ``kind`` (``"toy"``, ``"vertex"``, ``"live"``: :data:`PREBUILT`),
    copied into ``folder`` from the cache (:func:`cached_checkpoint`, trained there first
    when its sources changed) where torch is installed; else the prebuilt one in
    $STREAMTALKER_TEST_CHECKPOINTS (the test fails, naming the command, when it is not
    there)."""
    from model_core.runtime.backends import torch_available

    name = PREBUILT[kind][0]
    if torch_available():
        return copy_checkpoint(cached_checkpoint(kind), folder)
    prebuilt = Path(os.environ.get(PREBUILT_ENV, "")) / name
    if not os.environ.get(PREBUILT_ENV) or not prebuilt.is_file():
        pytest.fail(f"torch is not installed here, so the test checkpoint {name} cannot be "
                    f"made: build the test checkpoints where torch is (`.venv/bin/python "
                    f"tests/toy.py /tmp/streamtalker-test-checkpoints`) and set {PREBUILT_ENV} "
                    f"to that folder (tools/test.sh does both); now "
                    f"{os.environ.get(PREBUILT_ENV) or 'unset'!r}")
    return prebuilt


def main(argv: list[str] | None = None) -> int:
    """``python tests/toy.py OUT``: put the test checkpoints (:data:`PREBUILT`, from the
    cache: :func:`cached_checkpoint`) in the new folder OUT, each with its ONNX export beside
    it (``NAME.onnx/``): what a test environment without torch loads. Refuses an existing
    OUT."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("out", type=Path, help="a new folder")
    args = ap.parse_args(argv)
    from model_core.runtime.onnx_export import export_checkpoint
    from model_core.runtime.onnx_files import export_dir_for
    if args.out.exists():
        ap.error(f"{args.out} exists; choose a new folder")
    args.out.mkdir(parents=True)
    for kind in PREBUILT:
        path = copy_checkpoint(cached_checkpoint(kind), args.out)
        export_checkpoint(path, export_dir_for(path))
        print(f"test checkpoint: {path} (ONNX export {export_dir_for(path).name}/ beside it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
