"""Issue 12 in Blender: a failed start leaves no empty action; Cancel puts back exactly what
was there; a take survives a failure; linked shape keys are refused before generating (an
override of the mesh data works and is saved); muted strips and an offset past the end are
reported; the "CPU Threads" preference reaches the model; the version differences (compat) on
the Blender running the tests."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from bl_helpers import (add_strip, generate_that_fails, generate_until_keyed, generated,
                        import_facecap, keyed, pump, speech_path, strip_frames)


def _actions(bpy):
    return sorted(a.name for a in bpy.data.actions)


def test_a_failed_start_of_the_keys_leaves_no_new_action(facecap_scene, bpy_mod, monkeypatch):
    """4.4/4.5 raised TypeError from fcurve_ensure_for_datablock; whatever fails there, the
    head stays on its previous action and no empty action is left. A TypeError is a bug, so
    the message is a report with its traceback (issue 24: only StreamTalkerError is one
    line)."""
    from streamtalker_addon import keyframes
    bpy = bpy_mod
    scene, head, strip = facecap_scene
    key = head.data.shape_keys
    before, prev = _actions(bpy), key.animation_data.action.name
    values = {kb.name: kb.value for kb in key.key_blocks}

    def broken(*a, **k):
        raise TypeError("Action.fcurve_ensure_for_datablock(): takes at most 3 arguments, got 4")
    monkeypatch.setattr(keyframes, "fcurve_ensure", broken)
    with pytest.raises(RuntimeError, match="takes at most 3 arguments") as e:
        bpy.ops.streamtalker.generate(wait=True)
    assert "a bug in StreamTalker" in str(e.value) and "Traceback" in str(e.value)
    assert key.animation_data.action.name == prev
    assert _actions(bpy) == before
    assert not bpy.data.actions[prev].use_fake_user or prev == "Key|Take 001|BaseLayer"
    assert {kb.name: kb.value for kb in key.key_blocks} == values


class _FakeEngine:
    """Stands in for model_core.live.engine.LiveEngine: hands out the frames the test queues."""

    def __init__(self, n_channels=52):
        self.events, self.state, self.device_name = [], "running", "fake mic"
        self.n = n_channels

    def feed(self, frames):
        self.events.append(types.SimpleNamespace(frames=np.asarray(frames, np.float32)))

    def poll(self):
        ev, self.events = self.events, []
        return ev

    def applied(self, events, t_set=None):
        pass

    def stop(self, timeout=5.0):
        if self.state == "running":
            self.state = "stopped"


def _fake_live(bpy, head):
    """A running LiveJob on ``head`` with a fake engine (no device, no model)."""
    from streamtalker_addon import core, jobs, live, planning
    channels = list(core.arkit_names())
    targets, _ = planning.resolve_mapping(head, channels)
    sess = live.LiveJob(head, targets, planning.ModelSettings(), 30.0)
    sess.channels = channels
    sess.cols = [(channels.index(c), k) for c, k in targets.items()]
    sess.engine = _FakeEngine()
    sess.state = "running"
    jobs._active = sess
    return sess


@pytest.fixture
def live_registered(bpy_mod):
    """Live's classes come with the add-on's register(); stop Live afterwards."""
    from streamtalker_addon import jobs
    yield
    jobs.cancel_active("live")


def test_live_record_failure_leaves_the_scene(facecap_scene, bpy_mod, live_registered,
                                             monkeypatch):
    """Record fails to start its keys: the head keeps its action, Live goes on, and the
    report of the bug (a TypeError) carries its traceback."""
    from streamtalker_addon import jobs, keyframes
    bpy = bpy_mod
    scene, head, _ = facecap_scene
    key = head.data.shape_keys
    before, prev = _actions(bpy), key.animation_data.action.name
    _fake_live(bpy, head)

    def broken(*a, **k):
        raise TypeError("Action.fcurve_ensure_for_datablock(): takes at most 3 arguments, got 4")
    monkeypatch.setattr(keyframes, "fcurve_ensure", broken)
    with pytest.raises(RuntimeError, match="Record failed: .*takes at most 3 arguments") as e:
        bpy.ops.streamtalker.live_record()
    assert "a bug in StreamTalker" in str(e.value) and "Traceback" in str(e.value)
    assert key.animation_data.action.name == prev and _actions(bpy) == before
    assert jobs.active_job("live") is not None and not jobs.active_job("live").recording


def test_a_take_survives_losing_the_head_mid_take(facecap_scene, bpy_mod, live_registered,
                                                 tmp_path, monkeypatch):
    """The head is deleted while recording: Live stops with a message naming the file that
    holds every frame of the take (beside the saved .blend)."""
    from streamtalker_addon import jobs
    bpy = bpy_mod
    scene, head, _ = facecap_scene
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    head = bpy.data.objects["head_geo"]
    sess = _fake_live(bpy, head)
    scene = bpy.context.scene
    scene.frame_set(40)
    sess.start_record(scene)
    rng = np.random.default_rng(0)
    frames = rng.uniform(0, 1, (25, 52)).astype(np.float32)
    for chunk in np.array_split(frames, 5):
        sess.engine.feed(chunk)
        assert jobs.drain() is not None
    mesh = head.data
    bpy.data.objects.remove(head)
    bpy.data.meshes.remove(mesh)
    sess.engine.feed(frames[:3])
    assert jobs.drain() is None
    assert sess.state == "failed"
    assert "the take could not be keyed" in sess.error and "Traceback" not in sess.error
    saved = list(tmp_path.glob("streamtalker-take-*.json"))
    assert len(saved) == 1 and str(saved[0]) in sess.error
    doc = json.loads(saved[0].read_text())
    assert doc["meta"]["first_frame"] == 40 and doc["fps"] == 30.0
    got = np.array(doc["frames"], np.float32)
    assert got.shape == (28, len(sess.cols))  # every frame, the 3 after the loss too
    col = dict((k, c) for c, k in sess.cols)["jawOpen"]
    np.testing.assert_allclose(got[:, doc["names"].index("jawOpen")],
                               np.concatenate([frames, frames[:3]])[:, col], atol=1e-6)


def test_a_take_is_kept_when_the_device_fails_mid_take(facecap_scene, bpy_mod,
                                                      live_registered):
    from streamtalker_addon import jobs, keyframes
    bpy = bpy_mod
    scene, head, _ = facecap_scene
    sess = _fake_live(bpy, head)
    scene.frame_set(7)
    name = sess.start_record(scene)
    frames = np.random.default_rng(1).uniform(0, 1, (30, 52)).astype(np.float32)
    sess.engine.feed(frames)
    assert jobs.drain() is not None
    sess.engine.state, sess.engine.error = "failed", "input device 'fake mic' stopped"
    assert jobs.drain() is None
    assert sess.state == "failed" and sess.error == "input device 'fake mic' stopped"
    act = bpy.data.actions[name]
    assert act.use_fake_user and keyframes.line_strips(head.data.shape_keys, name)
    k = keyed(head.data.shape_keys, act)["jawOpen"]
    assert np.array_equal(k[:, 0], np.arange(7, 37))
    assert head.data.shape_keys[keyframes.PROP_REPLACED] == "Key|Take 001|BaseLayer"


def test_cancel_without_a_previous_action_restores_the_values_set_by_hand(
        facecap_scene, bpy_mod, monkeypatch):
    bpy = bpy_mod
    scene, head, strip = facecap_scene
    key = head.data.shape_keys
    key.animation_data_clear()
    for kb in key.key_blocks:
        kb.value = 0.0
    key.key_blocks["jawOpen"].value = 0.3
    key.key_blocks["eyeBlink_L"].value = 0.75
    values = {kb.name: kb.value for kb in key.key_blocks}
    before = _actions(bpy)
    job, gate = generate_until_keyed(bpy, monkeypatch)
    try:
        scene.frame_set(strip_frames(strip)[1] + 3)  # the new keys now drive the values
        assert key.key_blocks["jawOpen"].value != pytest.approx(0.3)
        assert bpy.ops.streamtalker.cancel() == {"FINISHED"}
    finally:
        gate.set()
    job.worker.join(10)
    assert job.state == "cancelled"
    assert key.animation_data is None
    assert {kb.name: kb.value for kb in key.key_blocks} == values
    assert _actions(bpy) == before
    scene.frame_set(strip_frames(strip)[1] + 5)
    assert key.key_blocks["jawOpen"].value == pytest.approx(0.3)


def test_failure_on_a_head_without_animation_leaves_none(facecap_scene, bpy_mod, monkeypatch,
                                                        toy_model):
    bpy = bpy_mod
    scene, head, strip = facecap_scene
    key = head.data.shape_keys
    key.animation_data_clear()
    key.key_blocks["jawOpen"].value = 0.3

    generate_that_fails(monkeypatch, toy_model, at_push=3)
    bpy.ops.streamtalker.generate()
    job = pump()
    assert job.state == "failed" and job.writer is not None and job.writer.n_written > 0
    assert key.animation_data is None
    assert key.key_blocks["jawOpen"].value == pytest.approx(0.3)


def _library_head(bpy, tmp_path):
    """Save the Face Cap head to lib.blend; a new file with the head linked from it, the
    LibriVox strip and the toy checkpoint. Returns the linked object's name."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    head = import_facecap(bpy)
    name = head.name
    lib = tmp_path / "lib.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(lib))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    with bpy.data.libraries.load(str(lib), link=True) as (_src, dst):
        dst.objects = [name]
    obj = dst.objects[0]
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    scene = bpy.context.scene
    add_strip(scene, "speech", speech_path(), 1, offset_end=120)
    return obj


def test_linked_shape_keys_are_refused_before_generating(empty_scene, bpy_mod, tmp_path,
                                                        toy_checkpoint):
    bpy = bpy_mod
    obj = _library_head(bpy, tmp_path)
    s = bpy.context.scene.streamtalker
    s.model_source, s.checkpoint = "FILE", str(toy_checkpoint)
    n_actions = len(bpy.data.actions)
    with pytest.raises(RuntimeError, match=r"linked from the library .*lib\.blend.*make them "
                                           r"local .*library override of the mesh data"):
        bpy.ops.streamtalker.generate(wait=True)
    assert len(bpy.data.actions) == n_actions

    # a library override of the object alone: its mesh (and shape keys) are still linked
    ov = obj.override_create(remap_local_usages=True)
    bpy.context.view_layer.objects.active = ov
    with pytest.raises(RuntimeError, match="make them local"):
        bpy.ops.streamtalker.generate(wait=True)
    assert len(bpy.data.actions) == n_actions

    # the fix the message names: override the mesh data too -> Generate works and is saved
    ov.data.override_create(remap_local_usages=True)
    assert ov.data.shape_keys.library is None
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    assert keyed(ov.data.shape_keys) and generated(ov.data.shape_keys).name == "speech"
    path = tmp_path / "override.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    local = [o for o in bpy.data.objects if o.library is None and o.type == "MESH"
             and o.data.shape_keys is not None]
    assert len(local) == 1
    assert generated(local[0].data.shape_keys).name == "speech"
    assert len(keyed(local[0].data.shape_keys)) == 52


def test_muted_strip_and_an_offset_past_the_end_are_reported(facecap_scene, bpy_mod):
    bpy = bpy_mod
    scene, head, strip = facecap_scene
    from streamtalker_addon import jobs, planning
    strip.mute = True
    plan = planning.plan_generation(bpy.context)
    assert any("strip 'speech' is muted" in w for w in plan.warnings), plan.warnings
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}  # keyed, with the note
    strip.mute = False
    # the clip lasts 7.1 s: with an offset of -60 s (or +60 s) nothing of it is audible
    for offset, where in ((-60.0, "past the end"), (60.0, "before the start")):
        strip.sound_offset = offset
        assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
        notes = jobs.last_job().notes
        assert len(notes) == 1 and f"{where} of its audio file" in notes[0], notes
        assert "sound offset" in notes[0] and "silence is keyed" in notes[0]
    strip.sound_offset = -1.0  # partly audible: no note
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    assert jobs.last_job().notes == []


def test_cpu_threads_preference_reaches_the_model(facecap_scene, bpy_mod, monkeypatch):
    """The preference reaches the onnxruntime sessions the CPU runs on (a changed preference
    loads the model again), and, where torch is loaded, torch's thread count, set in the
    thread that runs the model (per thread for OpenMP, inherited by threads started later)."""
    import sys
    from streamtalker_addon import core, preferences, worker
    bpy = bpy_mod
    seen, seen_torch = [], []
    real = worker.load_model_cached

    def spy(*a, **k):
        model = real(*a, **k)
        seen.append(model.threads)      # onnxruntime's count, per model (the CPU's backend)
        if "torch" in sys.modules:
            seen_torch.append(sys.modules["torch"].get_num_threads())
        return model
    monkeypatch.setattr(worker, "load_model_cached", spy)
    monkeypatch.setattr(preferences, "cpu_threads", lambda context=None: 2)
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    monkeypatch.setattr(preferences, "cpu_threads", lambda context=None: 0)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    from model_core.runtime.device import default_threads
    assert seen == [2, default_threads(), 1]
    assert seen_torch in ([], seen)
    with pytest.raises(ValueError, match="CPU Threads"):
        core.set_threads(-1)
    with pytest.raises(ValueError, match="CPU Threads"):
        core.set_threads(10_000)


def test_compat_on_this_blender(facecap_scene, bpy_mod):
    """The compatibility layer on the Blender running the tests (4.5, 5.0 or 5.2)."""
    from streamtalker_addon import compat, keyframes
    bpy = bpy_mod
    scene, head, strip = facecap_scene
    import tomllib
    from bl_helpers import ROOT
    manifest = tomllib.loads((ROOT / "streamtalker_addon" / "blender_manifest.toml").read_text())
    assert manifest["blender_version_min"] == "%d.%d.0" % compat.MIN_VERSION
    assert compat.VERSION >= compat.MIN_VERSION
    assert compat.strip_target(strip) is None  # not an IDPropertyGroup on 4.x
    strip.streamtalker_target = head
    assert compat.strip_target(strip) == head
    props = strip.bl_rna.properties
    duration = strip.duration if "duration" in props else strip.frame_final_duration
    assert compat.strip_frames(strip) == (10.0, 18, 18 + duration)
    assert [s.name for s in compat.all_strips(scene)] == ["speech"]
    key = head.data.shape_keys
    action = bpy.data.actions.new("probe")
    compat.assign_action(key.animation_data, action)
    fc = compat.fcurve_ensure(action, key, keyframes.shape_key_data_path("jawOpen"),
                              group="StreamTalker")
    assert fc.group is not None and fc.group.name == "StreamTalker"
    assert compat.fcurve_ensure(action, key, fc.data_path, group="StreamTalker") == fc
    assert [f.data_path for f in compat.action_fcurves(action, key.animation_data)] == \
        [fc.data_path]
