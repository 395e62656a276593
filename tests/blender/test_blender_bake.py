"""Batch bake: ``python -m streamtalker_addon.bake IN.blend -o OUT.blend`` on a file with two
scenes and three strips, one of them broken."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from bl_helpers import ROOT, add_strip, import_facecap, keyed, speech_path


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _bake(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "streamtalker_addon.bake", *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _make_file(bpy, path: Path, broken_wav: Path):
    """Scene 'Dialogue' (24 fps): head A; strip 'hello' targets A by property, strip 'broken'
    (file gone) too. Scene 'Reply' (25 fps): head B active; strip 'reply', no target set."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    s1 = bpy.context.scene
    s1.name = "Dialogue"
    s1.render.fps = 24
    head_a = import_facecap(bpy)
    head_a.name = "HeadA"
    a = add_strip(s1, "hello", speech_path(), 5, offset_end=60)
    a.streamtalker_target = head_a
    b = add_strip(s1, "broken", broken_wav, 200, channel=2, offset_end=60)
    b.streamtalker_target = head_a
    bpy.context.view_layer.objects.active = None

    s2 = bpy.data.scenes.new("Reply")
    s2.render.fps = 25
    head_b = head_a.copy()
    head_b.data = head_a.data.copy()
    head_b.name = "HeadB"
    head_b.data.shape_keys.animation_data_clear()
    s2.collection.objects.link(head_b)
    s2.view_layers[0].objects.active = head_b
    add_strip(s2, "reply", speech_path("sense_and_sensibility_01_austen_64kb-0880.wav"), 30,
              offset_start=6, offset_end=50)
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return {"hello": (a.frame_final_start, a.frame_final_end)}


def test_bake_two_scenes_three_strips_one_broken(empty_scene, bpy_mod, tmp_path,
                                                 toy_checkpoint, toy_model):
    import model_core as mc

    bpy = bpy_mod
    broken = tmp_path / "to_be_deleted.wav"
    broken.write_bytes(speech_path().read_bytes())
    src = tmp_path / "in.blend"
    _make_file(bpy, src, broken)
    broken.unlink()
    before = _sha(src)
    out = tmp_path / "out" / "baked.blend"

    r = _bake(src, "-o", out, "--checkpoint", toy_checkpoint, "--seed", 2)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "2 of 3 strip(s) baked" in r.stdout
    assert "ok      Dialogue / hello -> HeadA: action 'hello'" in r.stdout
    assert "ok      Reply / reply -> HeadB: action 'reply'" in r.stdout
    assert "FAILED  Dialogue / broken: strip 'broken': its audio file is missing" in r.stdout
    assert "bake: failed: Dialogue / broken" in r.stderr
    assert _sha(src) == before  # IN untouched

    bpy.ops.wm.open_mainfile(filepath=str(out))
    assert "broken" not in bpy.data.actions
    head_a, head_b = bpy.data.objects["HeadA"], bpy.data.objects["HeadB"]
    assert head_a.data.shape_keys.animation_data.action.name == "hello"
    assert head_b.data.shape_keys.animation_data.action.name == "reply"
    assert bpy.data.actions["Key|Take 001|BaseLayer"].use_fake_user  # previous kept

    for scene, head, name in (("Dialogue", head_a, "hello"), ("Reply", head_b, "reply")):
        sc = bpy.data.scenes[scene]
        strip = sc.sequence_editor.strips_all[name]
        keys = keyed(head.data.shape_keys)
        assert len(keys) == 52
        frames = np.arange(strip.frame_final_start, strip.frame_final_end)
        assert all(np.array_equal(v[:, 0], frames) for v in keys.values())
        from streamtalker_addon import audio_source
        fps = audio_source.scene_fps(sc)
        want = toy_model.generate(audio_source.strip_source(sc, strip).read(), 16000, seed=2,
                                  fps=fps)
        np.testing.assert_allclose(keys["jawOpen"][:, 1], want[:, mc.ARKIT_52.index("jawOpen")],
                                   atol=1e-6)

    # one scene only: everything bakes, exit 0
    r = _bake(src, "-o", tmp_path / "reply_only.blend", "--scene", "Reply",
              "--checkpoint", toy_checkpoint)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 of 1 strip(s) baked" in r.stdout


def test_bake_refuses_to_write_over_its_input_and_bad_arguments(empty_scene, bpy_mod, tmp_path):
    bpy = bpy_mod
    src = tmp_path / "in.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(src))
    before = _sha(src)
    r = _bake(src, "-o", src)
    assert r.returncode == 2 and "IN is never overwritten" in r.stderr
    assert _sha(src) == before
    r = _bake(tmp_path / "missing.blend", "-o", tmp_path / "o.blend")
    assert r.returncode == 2 and "input file not found" in r.stderr
    r = _bake(src, "-o", tmp_path / "o.blend", "--scene", "Nope")
    assert r.returncode == 2 and "no scene called 'Nope'" in r.stderr
    r = _bake(src, "-o", tmp_path / "o.blend")
    assert r.returncode == 1 and "no sound strips found" in r.stderr
