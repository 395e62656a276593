"""Channel -> shape-key mapping: spellings, partial rigs, presets, the editable list."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import model_core as mc
from model_core.face import name_forms, name_key
from bl_helpers import add_strip, keyed, speech_path, strip_frames
from streamtalker_addon import mapping

FACECAP_NAMES = [
    "browInnerUp", "browDown_L", "browDown_R", "browOuterUp_L", "browOuterUp_R", "eyeLookUp_L",
    "eyeLookUp_R", "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R",
    "eyeLookOut_L", "eyeLookOut_R", "eyeBlink_L", "eyeBlink_R", "eyeSquint_L", "eyeSquint_R",
    "eyeWide_L", "eyeWide_R", "cheekPuff", "cheekSquint_L", "cheekSquint_R", "noseSneer_L",
    "noseSneer_R", "jawOpen", "jawForward", "jawLeft", "jawRight", "mouthFunnel", "mouthPucker",
    "mouthLeft", "mouthRight", "mouthRollUpper", "mouthRollLower", "mouthShrugUpper",
    "mouthShrugLower", "mouthClose", "mouthSmile_L", "mouthSmile_R", "mouthFrown_L",
    "mouthFrown_R", "mouthDimple_L", "mouthDimple_R", "mouthUpperUp_L", "mouthUpperUp_R",
    "mouthLowerDown_L", "mouthLowerDown_R", "mouthPress_L", "mouthPress_R", "mouthStretch_L",
    "mouthStretch_R", "tongueOut"]


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


SPELLINGS = {
    "apple": list(mc.ARKIT_52),
    "live_link_face": [n[0].upper() + n[1:] for n in mc.ARKIT_52],
    "snake": [_snake(n) for n in mc.ARKIT_52],
    "face_cap": FACECAP_NAMES,
    "dot_side": [n.replace("_L", ".L").replace("_R", ".R") for n in FACECAP_NAMES],
    "blendshape_prefix": ["blendShape1." + n for n in FACECAP_NAMES],
    "maya_namespace": ["Face:blendShape1." + n for n in mc.ARKIT_52],
    "upper_snake": [_snake(n).upper() for n in mc.ARKIT_52],
}


@pytest.mark.parametrize("style", sorted(SPELLINGS))
def test_every_spelling_maps_all_52_to_the_same_shape(style):
    keys = ["Basis"] + SPELLINGS[style][::-1]  # order must not matter
    found = mapping.match_channels(mc.ARKIT_52, keys)
    assert mapping.unmatched(mc.ARKIT_52, found) == []
    assert len(set(found.values())) == 52
    for ch, k in found.items():
        assert name_key(ch) in name_forms(k), (ch, k)   # the key spells the channel


def test_examples_from_the_issue():
    keys = ["jawOpen", "JawOpen_x", "eyeBlink_L", "eyeBlink.R", "blendShape1.mouthClose",
            "jaw_forward", "EyeWideLeft", "Key 7", "mouthSmile"]
    found = mapping.match_channels(mc.ARKIT_52, keys)
    assert found == {"eyeBlinkLeft": "eyeBlink_L", "eyeWideLeft": "EyeWideLeft",
                     "eyeBlinkRight": "eyeBlink.R", "jawForward": "jaw_forward",
                     "jawOpen": "jawOpen", "mouthClose": "blendShape1.mouthClose"}
    # similar names do not steal: mouthSmile has no side, mouthLeft is not mouthSmileLeft
    assert "mouthSmileLeft" not in found and "mouthLeft" not in found
    assert mapping.match_channels(mc.ARKIT_52, ["mouthSmile_L"]) == {"mouthSmileLeft": "mouthSmile_L"}


def test_exact_spelling_wins_over_prefixed_and_each_key_used_once():
    found = mapping.match_channels(["jawOpen"], ["rig.jawOpen", "jaw_open"])
    assert found == {"jawOpen": "jaw_open"}
    found = mapping.match_channels(["jawOpen", "mouthClose"], ["jawOpen"])
    assert found == {"jawOpen": "jawOpen"}


def test_preset_round_trip_and_bad_files(tmp_path):
    m = {"jawOpen": "JawOpen", "eyeBlinkLeft": "eyeBlink_L"}
    p = mapping.save_preset(tmp_path / "rig", m)
    assert p.suffix == ".json" and mapping.load_preset(p) == m
    assert json.loads(p.read_text())["format"] == "streamtalker-mapping"
    with pytest.raises(FileNotFoundError):
        mapping.load_preset(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{nope")
    with pytest.raises(ValueError, match="not a JSON mapping preset"):
        mapping.load_preset(tmp_path / "x.json")
    (tmp_path / "y.json").write_text('{"mapping": {}}')
    with pytest.raises(ValueError, match="not a StreamTalker mapping preset"):
        mapping.load_preset(tmp_path / "y.json")


def _mesh_with_keys(bpy, names, obj_name="rig"):
    mesh = bpy.data.meshes.new(obj_name)
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    obj = bpy.data.objects.new(obj_name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis")
    for n in names:
        obj.shape_key_add(name=n)
    bpy.context.view_layer.objects.active = obj
    return obj


def test_a_mesh_with_a_few_keys_generates_those_and_lists_the_rest(empty_scene, bpy_mod,
                                                                 toy_checkpoint, capsys):
    bpy = bpy_mod
    scene = empty_scene
    obj = _mesh_with_keys(bpy, ["JawOpen", "eyeBlink.L", "blendShape1.mouthClose", "Smile"])
    strip = add_strip(scene, "line", speech_path(), 1, offset_end=100)
    scene.streamtalker.model_source = "FILE"
    scene.streamtalker.checkpoint = str(toy_checkpoint)
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    keys = keyed(obj.data.shape_keys)
    assert set(keys) == {"JawOpen", "eyeBlink.L", "blendShape1.mouthClose"}
    frames = np.arange(*strip_frames(strip)[1:])
    assert all(np.array_equal(v[:, 0], frames) for v in keys.values())
    rows = {it.channel: it.shape_key for it in obj.streamtalker.mapping}
    assert len(rows) == 52 and sum(bool(v) for v in rows.values()) == 3
    out = capsys.readouterr()
    assert "49 of 52 channels have no shape key on 'rig'" in out.out + out.err
    assert "eyeBlinkRight" in out.out + out.err


def test_the_edited_list_is_what_gets_keyed(empty_scene, bpy_mod, toy_checkpoint):
    bpy = bpy_mod
    scene = empty_scene
    obj = _mesh_with_keys(bpy, ["jawOpen", "MyJaw"])
    add_strip(scene, "line", speech_path(), 1, offset_end=150)
    scene.streamtalker.model_source = "FILE"
    scene.streamtalker.checkpoint = str(toy_checkpoint)
    assert bpy.ops.streamtalker.mapping_auto() == {"FINISHED"}
    row = next(it for it in obj.streamtalker.mapping if it.channel == "jawOpen")
    assert row.shape_key == "jawOpen"
    row.shape_key = "MyJaw"  # the user edits the list
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    assert set(keyed(obj.data.shape_keys)) == {"MyJaw"}


def test_preset_operators_save_and_load(empty_scene, bpy_mod, tmp_path):
    bpy = bpy_mod
    src = _mesh_with_keys(bpy, ["A_jaw", "B_blink"], "src")
    src.streamtalker.mapping.clear()
    bpy.ops.streamtalker.mapping_auto()  # nothing matches A_jaw / B_blink automatically
    assert not any(it.shape_key for it in src.streamtalker.mapping)
    for it in src.streamtalker.mapping:
        it.shape_key = {"jawOpen": "A_jaw", "eyeBlinkLeft": "B_blink"}.get(it.channel, "")
    path = tmp_path / "presets" / "my rig.json"
    assert bpy.ops.streamtalker.mapping_save(filepath=str(path)) == {"FINISHED"}
    assert mapping.load_preset(path) == {"eyeBlinkLeft": "B_blink", "jawOpen": "A_jaw"}

    dst = _mesh_with_keys(bpy, ["A_jaw"], "dst")  # lacks B_blink
    assert bpy.ops.streamtalker.mapping_load(filepath=str(path)) == {"FINISHED"}
    rows = {it.channel: it.shape_key for it in dst.streamtalker.mapping if it.shape_key}
    assert rows == {"jawOpen": "A_jaw"}
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(RuntimeError, match="not a StreamTalker mapping preset"):
        bpy.ops.streamtalker.mapping_load(filepath=str(tmp_path / "bad.json"))
