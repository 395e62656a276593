"""Generate with a vertex checkpoint: the model's meshes are fitted onto the mesh's own
shape keys (bounded least squares, ``model_core.vertex.retarget``) and keyed like an ARKit run;
a mesh of another topology gets a clear error and nothing is written."""

from __future__ import annotations

import numpy as np
import pytest

from bl_helpers import add_strip, import_facecap, keyed, pump, speech_path, strip_frames

from toy import VERTEX_RIG_K as K, VERTEX_RIG_V as V


@pytest.fixture(scope="module")
def vertex_rig_and_checkpoint(tmp_path_factory):
    """(basis [V, 3], deltas [K, V, 3], names, checkpoint path): a small rig and a small
    (untrained: the test is about the pipeline) vertex model whose codec spans it
    (tests/toy.py; prebuilt where torch is not installed)."""
    from toy import checkpoint_for_tests, vertex_rig
    basis, deltas, names, _ = vertex_rig()
    return basis, deltas, names, checkpoint_for_tests("vertex", tmp_path_factory.mktemp("vertex"))


def _rig_mesh(bpy, basis, deltas, names):
    mesh = bpy.data.meshes.new("VertexFace")
    mesh.from_pydata([tuple(v) for v in basis], [], [])
    obj = bpy.data.objects.new("VertexFace", mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis")
    for name, d in zip(names, deltas):
        kb = obj.shape_key_add(name=name, from_mix=False)
        kb.data.foreach_set("co", (basis + d).ravel())
    muted = obj.shape_key_add(name="muted", from_mix=False)
    muted.mute = True
    bpy.context.view_layer.objects.active = obj
    return obj


def test_generate_with_a_vertex_checkpoint_keys_the_fitted_weights(empty_scene, bpy_mod,
                                                                   vertex_rig_and_checkpoint):
    import model_core as mc
    from model_core.vertex.retarget import fit_shape_key_weights
    from streamtalker_addon import audio_source

    bpy = bpy_mod
    basis, deltas, names, path = vertex_rig_and_checkpoint
    scene = empty_scene
    scene.render.fps = 25
    obj = _rig_mesh(bpy, basis, deltas, names)
    strip = add_strip(scene, "speech", speech_path(), 5)
    s = scene.streamtalker
    s.model_source, s.checkpoint, s.seed = "FILE", str(path), 2
    s.strength_lips = 0.5        # region strengths are for ARKit channels: not applied here

    assert bpy.ops.streamtalker.generate() == {"FINISHED"}
    job = pump()
    assert job.state == "finished", job.error
    keys = keyed(obj.data.shape_keys)
    assert sorted(keys) == names                      # every unmuted key, not the muted one
    frames = np.arange(*strip_frames(strip)[1:], dtype=np.float32)
    samples = audio_source.strip_source(scene, strip).read()
    # the add-on runs the CPU on onnxruntime (torch and onnx agree: tests/test_vertex.py)
    model = mc.load_model(path, backend="onnx")
    verts = model.generate(samples, mc.MODEL_SAMPLE_RATE, basis, seed=2, fps=25.0)
    expected = fit_shape_key_weights(verts, basis, deltas)
    assert expected.shape == (len(frames), K)
    for k, name in enumerate(names):
        co = keys[name]
        assert np.array_equal(co[:, 0], frames), name
        assert co[:, 1].min() >= 0.0 and co[:, 1].max() <= 1.0, name
        np.testing.assert_allclose(co[:, 1], expected[:, k], atol=1e-5, err_msg=name)
    assert np.ptp(expected) > 0.05                    # the weights move: a real fit, not 0s


def test_vertex_checkpoint_on_another_topology_is_refused(empty_scene, bpy_mod,
                                                          vertex_rig_and_checkpoint):
    bpy = bpy_mod
    *_, path = vertex_rig_and_checkpoint
    scene = empty_scene
    head = import_facecap(bpy)
    bpy.context.view_layer.objects.active = head
    add_strip(scene, "speech", speech_path(), 1)
    key = head.data.shape_keys
    before = key.animation_data.action
    s = scene.streamtalker
    s.model_source, s.checkpoint = "FILE", str(path)
    with pytest.raises(RuntimeError, match=f"has 2694 vertices but the vertex model makes {V}-vertex"):
        bpy.ops.streamtalker.generate()
    assert head.data.shape_keys.animation_data.action == before


def test_live_with_a_vertex_checkpoint_moves_the_rigs_shape_keys(empty_scene, bpy_mod, mic,
                                                                 speech,
                                                                 vertex_rig_and_checkpoint):
    """Live drives a vertex model like Generate does (one path: the meshes fitted onto the
    mesh's unmuted shape keys, region strengths not applied); another topology is refused
    before the microphone opens."""
    import time
    from streamtalker_addon import jobs, live
    from streamtalker_addon.errors import StreamTalkerError
    bpy = bpy_mod
    basis, deltas, names, path = vertex_rig_and_checkpoint
    s = empty_scene.streamtalker
    s.model_source, s.checkpoint = "FILE", str(path)
    s.strength_lips = 0.0                    # ARKit regions: must not zero the rig's keys
    head = import_facecap(bpy)
    bpy.context.view_layer.objects.active = head
    with pytest.raises(StreamTalkerError, match=f"has 2694 vertices but the vertex model "
                                                f"makes {V}-vertex"):
        live.start_live(bpy.context, device=mic.device, use_timer=False)
    assert jobs.active_job("live") is None

    obj = _rig_mesh(bpy, basis, deltas, names)
    kb = obj.data.shape_keys.key_blocks
    muted_before = kb["muted"].value
    mic.start_writer(speech[:4 * 16000], lead_s=0.5)
    sess = live.start_live(bpy.context, device=mic.device, use_timer=False)
    assert sess.channels == names
    seen = []
    t_end = time.monotonic() + 4.0
    while time.monotonic() < t_end:
        assert jobs.drain() is not None, sess.error
        seen.append([kb[n].value for n in names])
        time.sleep(0.02)
    jobs.cancel_active("live")
    assert sess.state == "stopped" and sess.frames_applied > 0
    seen = np.array(seen)
    assert seen.min() >= 0.0 and seen.max() <= 1.0
    assert np.ptp(seen) > 0.01, "the rig's shape keys did not move"
    assert kb["muted"].value == muted_before      # not a target: left alone


def test_panel_names_a_vertex_checkpoint_without_loading_it(bpy_mod, vertex_rig_and_checkpoint,
                                                           toy_checkpoint):
    from streamtalker_addon import panels
    *_, path = vertex_rig_and_checkpoint
    assert panels._vertex_model_size(str(path)) == V
    assert panels._vertex_model_size(str(path.with_suffix(".json"))) == V
    assert panels._vertex_model_size(str(toy_checkpoint)) is None
    assert panels._vertex_model_size("/no/such/file.safetensors") is None


def test_model_panel_greys_out_region_strengths_for_a_vertex_model(empty_scene, bpy_mod,
                                                                   vertex_rig_and_checkpoint,
                                                                   toy_checkpoint):
    """Region strengths scale ARKit channels; with a vertex checkpoint the panel says so and
    disables them (Generate and Live do not apply them)."""
    import types
    from streamtalker_addon import panels

    class Recorder:                      # stands in for a UILayout
        def __init__(self, log):
            self.log, self.enabled = log, True

        def __getattr__(self, name):
            def call(*args, **kw):
                sub = Recorder(self.log)
                self.log.append((name, kw.get("text", ""), sub))
                return sub
            return call

    *_, path = vertex_rig_and_checkpoint
    s = empty_scene.streamtalker
    s.model_source = "FILE"
    for ckpt, label, enabled in ((path, "Strength (ARKit models only)", False),
                                 (toy_checkpoint, "Strength", True)):
        s.checkpoint = str(ckpt)
        log = []
        panels.STREAMTALKER_PT_model.draw(types.SimpleNamespace(layout=Recorder(log)),
                                          types.SimpleNamespace(scene=empty_scene))
        strength = [sub for name, text, sub in log if name == "column"][-1]
        assert [t for n, t, _ in log if n == "label" and t.startswith("Strength")] == [label]
        assert strength.enabled is enabled
