"""Generate on the real Face Cap head from a real LibriVox sound strip (frame 10, trimmed,
29.97 fps): audible frames keyed, values, jawOpen follows speech, equality with
``model.generate``, nothing lost (previous action, undo, cancel, a second run)."""

from __future__ import annotations


import numpy as np
import pytest

from bl_helpers import (add_strip, generate_until_keyed, generated, import_facecap, keyed,
                        pump, speech_path, strip_frames)


def _audible(strip) -> np.ndarray:
    return np.arange(*strip_frames(strip)[1:], dtype=np.float32)


def test_generate_keys_all_52_on_the_audible_frames(facecap_scene, bpy_mod, toy_model):
    import model_core as mc
    from streamtalker_addon import audio_source, jobs, keyframes

    bpy = bpy_mod
    scene, head, strip = facecap_scene
    key = head.data.shape_keys
    previous = key.animation_data.action
    prev_name, prev_slot = previous.name, key.animation_data.action_slot.identifier
    assert strip_frames(strip)[:2] == (10, 18)

    assert bpy.ops.streamtalker.generate() == {"FINISHED"}
    assert jobs.active_job() is not None  # runs in the background until pumped
    job = pump()
    assert job.state == "finished", job.error

    key = head.data.shape_keys
    assert key.animation_data.action is None      # the line plays on the NLA (issue 21)
    action = generated(key)
    assert action.name == "speech" and action is not previous
    keys = keyed(key)
    assert len(keys) == 52
    names = {kb.name for kb in key.key_blocks} - {"Basis"}
    assert set(keys) == names
    frames = _audible(strip)
    for name, co in keys.items():
        assert np.array_equal(co[:, 0], frames), name
        assert co[:, 1].min() >= 0.0 and co[:, 1].max() <= 1.0, name

    # fed the same samples with the same seed, the keys equal model.generate
    src = audio_source.strip_source(scene, strip)
    samples = src.read()
    fps = scene.render.fps / scene.render.fps_base
    expected = toy_model.generate(samples, 16000, seed=3, fps=fps)
    assert expected.shape == (len(frames), 52)
    by_channel = dict(zip(mc.ARKIT_52, expected.T))
    mapping = {it.channel: it.shape_key for it in head.streamtalker.mapping}
    assert len(mapping) == 52 and all(mapping.values())
    for ch, shape_key in mapping.items():
        np.testing.assert_allclose(keys[shape_key][:, 1], by_channel[ch], atol=1e-6, err_msg=ch)

    # the samples are the strip's audible section of the real clip
    raw = mc.load_audio(speech_path())
    s0 = int(round(((strip_frames(strip)[1] - strip_frames(strip)[0]) / fps) * 16000))
    np.testing.assert_allclose(samples, raw[s0:s0 + len(samples)], atol=1e-3)

    # jawOpen rises with speech and falls back in pauses
    jaw = keys["jawOpen"][:, 1]
    spf = 16000 / fps
    rms = np.array([np.sqrt(np.mean(samples[int(i * spf):int((i + 1) * spf)] ** 2) + 1e-12)
                    for i in range(len(jaw))])
    loud, quiet = rms > np.quantile(rms, 0.6), rms < np.quantile(rms, 0.2)
    assert jaw.max() > 0.3, f"jawOpen never opens (max {jaw.max():.3f})"
    assert jaw[loud].mean() > jaw[quiet].mean() + 0.1, (jaw[loud].mean(), jaw[quiet].mean())
    opens = np.flatnonzero((jaw[1:] > 0.25) & (jaw[:-1] <= 0.25))
    closes = np.flatnonzero((jaw[1:] < 0.1) & (jaw[:-1] >= 0.1))
    assert len(opens) >= 2 and len(closes) >= 2, (len(opens), len(closes))
    assert np.corrcoef(jaw, rms)[0, 1] > 0.3

    # the previous action is kept (fake user) and recorded for restoring
    prev = bpy.data.actions[prev_name]
    assert prev.use_fake_user and action.use_fake_user
    assert action[keyframes.PROP_PREVIOUS] == ""      # the line's first version
    assert key[keyframes.PROP_REPLACED] == prev_name
    assert key[keyframes.PROP_REPLACED_SLOT] == prev_slot
    assert len(keyed(key, prev)) == 52  # its captured keys are untouched


def test_undo_restores_the_scene(facecap_scene, bpy_mod):
    bpy = bpy_mod
    scene, head, strip = facecap_scene
    before = head.data.shape_keys.animation_data.action.name
    n_actions = len(bpy.data.actions)
    bpy.ops.streamtalker.generate()
    assert pump().state == "finished"
    assert generated(bpy.data.objects[head.name].data.shape_keys).name == "speech"
    bpy.ops.ed.undo()
    head = bpy.data.objects["head_geo"]
    assert head.data.shape_keys.animation_data.action.name == before
    assert "speech" not in bpy.data.actions and len(bpy.data.actions) == n_actions
    bpy.ops.ed.redo()
    assert generated(bpy.data.objects["head_geo"].data.shape_keys).name == "speech"


def test_cancel_removes_the_partial_action_and_restores(facecap_scene, bpy_mod, monkeypatch):
    from streamtalker_addon import jobs

    bpy = bpy_mod
    scene, head, strip = facecap_scene
    key = head.data.shape_keys
    prev = key.animation_data.action
    prev_name, prev_fake = prev.name, prev.use_fake_user
    n_actions = len(bpy.data.actions)
    job, gate = generate_until_keyed(bpy, monkeypatch)
    try:
        assert key.animation_data.action.name == "speech"
        assert bpy.ops.streamtalker.cancel() == {"FINISHED"}
    finally:
        gate.set()
    assert job.state == "cancelled" and jobs.active_job() is None
    assert jobs.drain() is None
    assert key.animation_data.action.name == prev_name
    assert key.animation_data.action_slot.identifier == prev.slots[0].identifier
    assert "speech" not in bpy.data.actions and len(bpy.data.actions) == n_actions
    assert prev.use_fake_user == prev_fake
    job.worker.join(10)
    assert not job.worker.is_alive()


def test_a_second_run_keeps_the_first_and_restore_previous(facecap_scene, bpy_mod):
    from streamtalker_addon import keyframes

    bpy = bpy_mod
    scene, head, strip = facecap_scene
    key = head.data.shape_keys
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    first = keyed(key)
    scene.streamtalker.seed = 11
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    second = generated(key)
    assert second.name == "speech.001" and second[keyframes.PROP_PREVIOUS] == "speech"
    kept = bpy.data.actions["speech"]
    assert kept.use_fake_user
    assert all(np.array_equal(first[k], v) for k, v in keyed(key, kept).items())

    assert bpy.ops.streamtalker.restore_previous() == {"FINISHED"}
    assert generated(key).name == "speech"
    assert bpy.data.actions["speech.001"].use_fake_user  # the generated one is kept too


def test_region_strength_scales_and_clips(facecap_scene, bpy_mod, toy_model):
    bpy = bpy_mod
    scene, head, strip = facecap_scene
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    base = keyed(head.data.shape_keys)
    scene.streamtalker.strength_lips = 0.5
    scene.streamtalker.strength_blinks = 0.0
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    scaled = keyed(head.data.shape_keys)
    np.testing.assert_allclose(scaled["jawOpen"][:, 1], base["jawOpen"][:, 1] * 0.5, atol=1e-6)
    assert np.all(scaled["eyeBlink_L"][:, 1] == 0)
    np.testing.assert_allclose(scaled["browInnerUp"][:, 1], base["browInnerUp"][:, 1], atol=1e-7)


@pytest.mark.parametrize("fps,fps_base,sound_offset", [(30, 1.001, 0.0), (24, 1.0, 0.3),
                                                        (25, 1.0, -0.2)])
def test_strip_timing_matches_blenders_own_mixdown(empty_scene, bpy_mod, tmp_path, fps,
                                                  fps_base, sound_offset):
    """The samples for the audible frames are what Blender itself plays on those frames."""
    import soundfile as sf
    from bl_helpers import add_strip
    from streamtalker_addon import audio_source

    bpy = bpy_mod
    scene = empty_scene
    scene.render.fps, scene.render.fps_base = fps, fps_base
    strip = add_strip(scene, "s", speech_path(), 10, offset_start=8, offset_end=20,
                      sound_offset=sound_offset)
    scene.frame_start, scene.frame_end = 1, strip_frames(strip)[2] + 10
    out = tmp_path / "mix.wav"
    bpy.ops.sound.mixdown(filepath=str(out), container="WAV", codec="PCM", format="F32",
                          mixrate=16000, channels="MONO")
    mix, sr = sf.read(str(out), dtype="float32")
    assert sr == 16000
    src = audio_source.strip_source(scene, strip)
    ours = src.read()
    f = scene.render.fps / scene.render.fps_base
    assert src.first_frame == strip_frames(strip)[1]
    assert abs(len(ours) - (strip_frames(strip)[2] - strip_frames(strip)[1]) / f * 16000) <= 1
    start = int(round((strip_frames(strip)[1] - scene.frame_start) / f * 16000))
    seg = mix[start:start + len(ours)]
    inner = slice(800, len(ours) - 800)  # edges: Blender's fades / resampling filter
    best = max(range(-40, 41), key=lambda lag: float(np.dot(seg[inner], np.roll(ours, lag)[inner])))
    assert abs(best) <= 2, f"our samples are {best} samples off Blender's mixdown"
    c = np.corrcoef(seg[inner], np.roll(ours, best)[inner])[0, 1]
    assert c > 0.99, c


def test_audio_file_source_keys_from_the_scene_start(facecap_scene, bpy_mod, toy_model):
    import model_core as mc
    bpy = bpy_mod
    scene, head, strip = facecap_scene
    scene.render.fps, scene.render.fps_base = 24, 1.0
    scene.frame_start = 7
    scene.streamtalker.source = "FILE"
    scene.streamtalker.filepath = str(speech_path("sense_and_sensibility_01_austen_64kb-0880.wav"))
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    action = generated(head.data.shape_keys)
    assert action.name == "sense_and_sensibility_01_austen_64kb-0880"
    jaw = keyed(head.data.shape_keys)["jawOpen"]
    n = round(len(mc.load_audio(scene.streamtalker.filepath)) / 16000 * 24)
    assert np.array_equal(jaw[:, 0], np.arange(7, 7 + n))


def test_without_aud_the_soundfile_reader_gives_the_same_samples(facecap_scene, monkeypatch):
    import sys
    from streamtalker_addon import audio_source
    scene, head, strip = facecap_scene
    with_aud = audio_source.strip_source(scene, strip).read()
    monkeypatch.setitem(sys.modules, "aud", None)  # as in builds without aud
    without = audio_source.strip_source(scene, strip).read()
    assert without.shape == with_aud.shape
    np.testing.assert_allclose(without, with_aud, atol=1e-3)
    bad = audio_source.AudioSource("x", str(speech_path()) + ".missing", 30.0, 1, 10)
    with pytest.raises(audio_source.SourceError, match="audio file not found"):
        bad.read()


def test_a_44k_strip_gives_the_command_lines_frames(empty_scene, bpy_mod, toy_checkpoint,
                                                   tmp_path):
    """Blender hands a strip's samples, decoded at the file's own rate (soundfile, or
    ``aud`` for formats only Blender reads: compat.audio_decoder), to model_core's one soxr
    path: a 44.1 kHz strip keys exactly the frames ``streamtalker generate`` writes for the
    same file."""
    import soundfile as sf
    import soxr

    from model_core.cli import main
    from streamtalker_addon import compat
    bpy = bpy_mod
    x, sr = sf.read(str(speech_path()), dtype="float32")
    wav = tmp_path / "speech-44k.wav"
    sf.write(str(wav), soxr.resample(x, sr, 44100, quality="HQ"), 44100, subtype="PCM_16")
    scene = empty_scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    head = import_facecap(bpy)
    bpy.context.view_layer.objects.active = head
    add_strip(scene, "speech-44k", wav, 1)
    s = scene.streamtalker
    s.model_source, s.checkpoint, s.seed = "FILE", str(toy_checkpoint), 3
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    keys = keyed(head.data.shape_keys)

    out = tmp_path / "cli.npz"
    # the CLI on the backend the add-on chose for this checkpoint (core.backend_for: the
    # library's one rule, onnx on the CPU)
    from streamtalker_addon import core
    backend = ["--backend", core.backend_for("cpu", toy_checkpoint)]
    assert main(["generate", str(wav), "-o", str(out), "--checkpoint", str(toy_checkpoint),
                 "--seed", "3", "--fps", "30", *backend]) == 0
    z = np.load(out)
    cli = dict(zip([str(n) for n in z["names"]], z["weights"].T))
    mapping = {it.channel: it.shape_key for it in head.streamtalker.mapping}
    assert len(mapping) == 52 and all(mapping.values())
    n = len(keys["jawOpen"])
    # the strip's length in frames is Blender's; the CLI counts round(duration * fps)
    assert abs(n - len(z["weights"])) <= 1, (n, len(z["weights"]))
    n = min(n, len(z["weights"]))
    assert compat.audio_decoder(str(wav)) == "soundfile"
    for ch, shape_key in mapping.items():
        np.testing.assert_array_equal(keys[shape_key][:n, 1], cli[ch][:n], err_msg=ch)
    # the panel's Blink Rate is the CLI's --blink-temperature over the model's default (1.0
    # for the toy model): the same frames again, and other blinks than at rate 1
    s.blink_rate = 1.5
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    hot = keyed(head.data.shape_keys)
    out2 = tmp_path / "cli-blink.npz"
    assert main(["generate", str(wav), "-o", str(out2), "--checkpoint", str(toy_checkpoint),
                 "--seed", "3", "--fps", "30", "--blink-temperature", "1.5", *backend]) == 0
    cli2 = dict(zip([str(n) for n in z["names"]], np.load(out2)["weights"].T))
    for ch, shape_key in mapping.items():
        np.testing.assert_array_equal(hot[shape_key][:n, 1], cli2[ch][:n], err_msg=ch)
    assert not np.array_equal(hot[mapping["eyeBlinkLeft"]][:n, 1], keys[mapping["eyeBlinkLeft"]][:n, 1])
    # the samples too, bit for bit
    from streamtalker_addon import audio_source
    from model_core import load_audio
    assert np.array_equal(audio_source.decode(str(wav)), load_audio(wav))
