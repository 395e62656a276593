"""The test-checkpoint cache (tests/toy.py): keyed by the sources the checkpoints are built
from, so a repeated run reuses them and a change to any of those sources trains afresh."""

from __future__ import annotations

from pathlib import Path

import toy
from importgraph import ROOT


def test_the_key_covers_the_checkpoints_sources_and_nothing_else():
    files = {p.relative_to(ROOT).as_posix() for p in toy.cache_sources()}
    # what the builders run: the trainer's objective and batches, the network, the teacher's
    # labels, the vertex codec, the ONNX export, and this recipe itself
    assert {"tests/toy.py", "model_core/training/objective.py", "model_core/training/batches.py",
            "model_core/runtime/network.py", "model_core/runtime/model.py",
            "model_core/training/teacher/mouth.py", "model_core/vertex/codec.py",
            "model_core/runtime/onnx_export.py", "model_core/face.py"} <= files
    # not what only uses the checkpoints
    assert not {f for f in files if f.startswith(("model_core/evaluation/", "model_core/cli/",
                                                  "model_core/live/"))}


def test_a_change_to_a_source_changes_the_key(tmp_path):
    a, b = ROOT / "tests" / "toy.py", tmp_path / "face.py"
    b.write_bytes((ROOT / "model_core" / "face.py").read_bytes())
    key = toy.sources_key([a, b])
    assert key == toy.sources_key([a, b]) and len(key) == 16
    b.write_bytes(b.read_bytes() + b"\n# changed\n")
    assert toy.sources_key([a, b]) != key
    assert toy.sources_key([a]) != toy.sources_key([b])


def test_the_cache_folder_is_named_by_the_key(monkeypatch, tmp_path):
    monkeypatch.setenv(toy.CACHE_ENV, str(tmp_path))
    assert toy.cache_root() == tmp_path
    monkeypatch.delenv(toy.CACHE_ENV)
    assert toy.cache_root() == Path.home() / ".cache" / "streamtalker" / "test-checkpoints"


def test_a_cached_checkpoint_is_built_once_and_copied_out(monkeypatch, tmp_path):
    """The second call finds the entry (no build); the copy the tests get is theirs."""
    calls = []

    def build(path):
        calls.append(path)
        path.write_bytes(b"weights")
        path.with_suffix(".json").write_text("{}")
        return path

    monkeypatch.setenv(toy.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setitem(toy.PREBUILT, "fake", ("fake-test.safetensors", build))
    first = toy.cached_checkpoint("fake")
    assert toy.cached_checkpoint("fake") == first and len(calls) == 1
    assert first.parent.name == f"fake-{toy.sources_key()}"
    got = toy.copy_checkpoint(first, tmp_path / "mine")
    assert got.read_bytes() == b"weights" and got.with_suffix(".json").is_file()
    assert got.parent == tmp_path / "mine"
    assert not list((tmp_path / "cache").glob(".fake-*"))      # no build folder left behind
