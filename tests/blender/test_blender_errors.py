"""Error paths: each a clear message (bpy.ops raises RuntimeError carrying the operator's
ERROR report or poll message), nothing written, the previous animation untouched."""

from __future__ import annotations

import numpy as np
import pytest

from bl_helpers import add_strip, generate_that_fails, keyed, pump, speech_path, strip_frames


def _state(bpy, head):
    ad = head.data.shape_keys.animation_data
    return sorted(a.name for a in bpy.data.actions), ad.action.name


@pytest.fixture
def ready(facecap_scene, bpy_mod):
    scene, head, strip = facecap_scene
    return scene, head, strip, _state(bpy_mod, head)


def _fails(bpy, match, **kw):
    with pytest.raises(RuntimeError, match=match) as e:
        bpy.ops.streamtalker.generate(wait=True, **kw)
    assert "Traceback" not in str(e.value)
    return str(e.value)


@pytest.mark.parametrize("active, message", [
    (None, "select the head mesh"),                   # no active object
    ("Empty", "'Empty' is not a mesh"),               # not a mesh
    ("teeth_geo", "'teeth_geo' has no shape keys"),   # a mesh without shape keys
])
def test_the_active_object_is_no_head(ready, bpy_mod, active, message):
    bpy = bpy_mod
    scene, head, strip, before = ready
    bpy.context.view_layer.objects.active = bpy.data.objects[active] if active else None
    _fails(bpy, message)
    assert _state(bpy, head) == before


def test_a_named_target_that_is_not_a_mesh(ready, bpy_mod):
    """The same check in planning itself (batch bake names its target)."""
    bpy = bpy_mod
    scene, head, strip, before = ready
    _fails(bpy, "'Empty' is a empty, not a mesh", target="Empty")
    assert _state(bpy, head) == before


def test_no_channel_matched(ready, bpy_mod):
    bpy = bpy_mod
    scene, head, strip, before = ready
    teeth = bpy.data.objects["teeth_geo"]
    teeth.shape_key_add(name="Basis")
    teeth.shape_key_add(name="Key 1")
    teeth.shape_key_add(name="Smirk")
    bpy.context.view_layer.objects.active = teeth
    msg = _fails(bpy, "none of the model's 52 channels matches a shape key of 'teeth_geo'")
    assert "Key 1" in msg and "Smirk" in msg
    assert teeth.data.shape_keys.animation_data is None or \
        teeth.data.shape_keys.animation_data.action is None
    assert _state(bpy, head) == before


def test_strip_file_missing(ready, bpy_mod, tmp_path):
    bpy = bpy_mod
    scene, head, strip, before = ready
    strip.sound.filepath = str(tmp_path / "gone.wav")
    _fails(bpy, r"strip 'speech': its audio file is missing: .*gone\.wav")
    assert _state(bpy, head) == before


@pytest.mark.parametrize("content,match", [
    (b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 50, "unsupported or unreadable audio file"),
    (b"", "unsupported or unreadable audio file"),
])
def test_strip_file_unreadable(ready, bpy_mod, tmp_path, content, match):
    bpy = bpy_mod
    scene, head, strip, before = ready
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    strip.sound.filepath = str(bad)
    _fails(bpy, match)
    assert _state(bpy, head) == before


def test_audio_with_no_samples(ready, bpy_mod, tmp_path):
    import soundfile as sf
    bpy = bpy_mod
    scene, head, strip, before = ready
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, np.float32), 16000)
    scene.streamtalker.source = "FILE"
    scene.streamtalker.filepath = str(empty)
    _fails(bpy, "no samples|unreadable")
    assert _state(bpy, head) == before


def test_model_load_failures(ready, bpy_mod, tmp_path, monkeypatch):
    from streamtalker_addon import planning
    bpy = bpy_mod
    scene, head, strip, before = ready
    s = scene.streamtalker
    s.checkpoint = str(tmp_path / "nope.safetensors")
    _fails(bpy, "the model could not be loaded: checkpoint file not found")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00garbage" * 64)
    (tmp_path / "bad.json").write_text("{}")
    s.checkpoint = str(tmp_path / "bad.safetensors")
    _fails(bpy, "the model could not be loaded")
    s.model_source = "DEFAULT"
    monkeypatch.setattr(planning, "default_checkpoint_path", lambda: tmp_path / "no.safetensors")
    _fails(bpy, "the bundled default model is not installed")
    assert _state(bpy, head) == before


def test_model_failure_in_the_background_leaves_no_data(ready, bpy_mod, tmp_path,
                                                        toy_checkpoint):
    """The asynchronous path: the worker's error reaches the job; nothing is written. (A
    config that cannot be read is refused at once, by planning: test_model_load_failures;
    here the config is good and the weights are not, which only loading finds out.)"""
    import shutil
    from streamtalker_addon import jobs
    bpy = bpy_mod
    scene, head, strip, before = ready
    (tmp_path / "bad.safetensors").write_bytes(b"\x00garbage" * 64)
    shutil.copyfile(toy_checkpoint.with_suffix(".json"), tmp_path / "bad.json")
    scene.streamtalker.checkpoint = str(tmp_path / "bad.safetensors")
    assert bpy.ops.streamtalker.generate() == {"FINISHED"}
    job = pump()
    assert job.state == "failed" and "the model could not be loaded" in job.error
    assert "Traceback" not in job.error
    assert jobs.active_job() is None
    assert _state(bpy, head) == before


def test_a_damaged_onnx_export_fails_in_the_background_and_leaves_no_data(
        ready, bpy_mod, tmp_path, toy_checkpoint):
    """The installed extension's path: a good checkpoint whose ONNX export (the folder the
    CPU runs, beside it) has a damaged network file. Loading finds out in the worker; the
    job fails with the one-line model error and nothing is written."""
    import shutil
    from streamtalker_addon import jobs
    bpy = bpy_mod
    scene, head, strip, before = ready
    from model_core.runtime.onnx_files import export_dir_for
    ckpt = tmp_path / "ckpt.safetensors"
    for suffix in (".safetensors", ".json"):
        shutil.copyfile(toy_checkpoint.with_suffix(suffix), ckpt.with_suffix(suffix))
    if export_dir_for(toy_checkpoint).is_dir():     # prebuilt (no torch here)
        shutil.copytree(export_dir_for(toy_checkpoint), export_dir_for(ckpt))
    else:
        from model_core.runtime.onnx_export import export_checkpoint
        export_checkpoint(ckpt, export_dir_for(ckpt))
    (export_dir_for(ckpt) / "denoise.onnx").write_bytes(b"\x00garbage" * 64)
    scene.streamtalker.checkpoint = str(ckpt)
    assert bpy.ops.streamtalker.generate() == {"FINISHED"}
    job = pump()
    assert job.state == "failed" and "the model could not be loaded" in job.error
    assert "denoise.onnx" in job.error and "export-onnx" in job.error
    assert "Traceback" not in job.error
    assert jobs.active_job() is None
    assert _state(bpy, head) == before


def test_failure_mid_stream_removes_the_partial_action(ready, bpy_mod, monkeypatch, toy_model):
    bpy = bpy_mod
    scene, head, strip, before = ready

    generate_that_fails(monkeypatch, toy_model, at_push=4)
    bpy.ops.streamtalker.generate()
    job = pump()
    assert job.state == "failed" and job.error == "disk on fire"
    assert job.writer is not None and job.writer.n_written > 0  # keys had been written
    assert _state(bpy, head) == before
    assert len(keyed(head.data.shape_keys)) == 52  # the previous capture, intact


def test_a_bug_in_the_worker_is_a_report_with_its_traceback(ready, bpy_mod, monkeypatch,
                                                           toy_model, capsys, tmp_path):
    """Issue 24: only a StreamTalkerError is a one-line message; a bug in the background
    (here a KeyError from the model) fails the job with a report that holds the traceback
    (also printed to the console), and the scene is left as it was -- while a bad setting
    stays one line."""
    bpy = bpy_mod
    scene, head, strip, before = ready
    generate_that_fails(monkeypatch, toy_model, at_push=2, error=KeyError("no_such_layer"))
    assert bpy.ops.streamtalker.generate() == {"FINISHED"}
    job = pump()
    assert job.state == "failed"
    assert job.error.startswith("unexpected error (KeyError: 'no_such_layer'), a bug")
    assert "Traceback (most recent call last)" in job.error and "in push" in job.error
    assert "Traceback (most recent call last)" in capsys.readouterr().out
    assert _state(bpy, head) == before
    assert len(keyed(head.data.shape_keys)) == 52  # the previous capture, intact
    monkeypatch.undo()
    scene.streamtalker.model_source = "FILE"
    scene.streamtalker.checkpoint = str(tmp_path / "nope.safetensors")   # a bad setting
    msg = _fails(bpy, "the model could not be loaded: checkpoint file not found")
    assert "\n" not in msg.strip()
    assert _state(bpy, head) == before


def test_unusual_and_unsupported_frame_rates(ready, bpy_mod, capsys):
    bpy = bpy_mod
    scene, head, strip, before = ready
    scene.render.fps, scene.render.fps_base = 1, 2.0
    _fails(bpy, r"frame rate is 0\.500 fps; StreamTalker needs 1-240 fps")
    scene.render.fps, scene.render.fps_base = 240, 0.5
    _fails(bpy, r"frame rate is 480\.000 fps")
    assert _state(bpy, head) == before
    scene.render.fps, scene.render.fps_base = 37, 1.0
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    assert "unusual 37.000 fps" in capsys.readouterr().out
    co = keyed(head.data.shape_keys)["jawOpen"]
    assert np.array_equal(co[:, 0], np.arange(*strip_frames(strip)[1:]))


def test_strip_choice_errors(ready, bpy_mod):
    bpy = bpy_mod
    scene, head, strip, before = ready
    add_strip(scene, "other", speech_path(), 300, channel=2)
    _fails(bpy, "has 2 sound strips: choose one under Source")
    scene.streamtalker.strip = "nope"
    _fails(bpy, "there is no sound strip called 'nope'")
    for s in list(scene.sequence_editor.strips_all):
        scene.sequence_editor.strips.remove(s)
    scene.streamtalker.strip = ""
    _fails(bpy, "the scene has no sound strip")
    scene.streamtalker.source = "FILE"
    _fails(bpy, "no audio file chosen")
    assert _state(bpy, head) == before


def test_device_without_cuda_is_reported(ready, bpy_mod):
    """Device GPU (CUDA) runs where torch sees a GPU; else it is refused before any work,
    saying why: no GPU, or (an environment without torch, as an installed extension has) no
    PyTorch at all."""
    from streamtalker_addon import core
    bpy = bpy_mod
    scene, head, strip, before = ready
    scene.streamtalker.device = "cuda"
    if not core.torch_available():
        _fails(bpy, "PyTorch is not installed: set Device to CPU")
        assert _state(bpy, head) == before
        return
    import torch
    if torch.cuda.is_available():
        assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    else:
        _fails(bpy, "torch sees no CUDA GPU")
        assert _state(bpy, head) == before


def test_cuda_without_torch_says_to_use_the_cpu(ready, bpy_mod, monkeypatch):
    """The extension bundles ONNX Runtime, never torch: choosing GPU (CUDA) where torch is
    not importable is refused before any work, naming the setting to change."""
    from streamtalker_addon import core
    bpy = bpy_mod
    scene, head, strip, before = ready
    monkeypatch.setattr(core, "torch_available", lambda: False)
    scene.streamtalker.device = "cuda"
    _fails(bpy, "PyTorch is not installed: set Device to CPU")
    assert _state(bpy, head) == before


def test_buttons_that_cannot_run_say_why(ready, bpy_mod):
    bpy = bpy_mod
    with pytest.raises(RuntimeError, match="no generation is running"):
        bpy.ops.streamtalker.cancel()
    with pytest.raises(RuntimeError, match="has no line generated by StreamTalker"):
        bpy.ops.streamtalker.restore_previous()
    bpy.context.view_layer.objects.active = None
    with pytest.raises(RuntimeError, match="select a mesh with shape keys"):
        bpy.ops.streamtalker.mapping_auto()
