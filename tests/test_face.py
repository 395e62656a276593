"""model_core.face: the one name matcher (the spellings of the capture readers and of the
add-on's shape-key mapping, both accepted), the regions, the viseme classes and the
frame-count rule."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from model_core import face
from model_core.face import ARKIT_52, arkit_name, frame_count, match_names, sample_frames


def _snake(n: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in n)


#: Spellings the capture readers accepted (captures.arkit_name before issue 13) ...
CAPTURE_SPELLINGS = {
    "EyeBlinkLeft": "eyeBlinkLeft", "eyeBlinkLeft": "eyeBlinkLeft",
    "eyeBlink_L": "eyeBlinkLeft", "eye_blink_left": "eyeBlinkLeft",
    "eyeBlink.L": "eyeBlinkLeft", "EYEBLINKLEFT": "eyeBlinkLeft",
    "L_eyeBlink": "eyeBlinkLeft", "Left_EyeBlink": "eyeBlinkLeft",
    "blendShape1.eyeBlinkLeft": "eyeBlinkLeft", "blendshapes.jawOpen": "jawOpen",
    "Face:mouthSmile_L": "mouthSmileLeft", "BS_jawOpen": "jawOpen",
    "\ufeff\"JawOpen\"": "jawOpen", " tongueOut ": "tongueOut", "R_browDown": "browDownRight",
}
#: ... and those the add-on's mapping matched (mapping.tokens before issue 13).
MAPPING_SPELLINGS = {
    "JawOpen": "jawOpen", "jaw_open": "jawOpen", "eyeBlink_R": "eyeBlinkRight",
    "eyeBlink.R": "eyeBlinkRight", "EyeBlink_Left": "eyeBlinkLeft",
    "blendShape1.mouthClose": "mouthClose", "blendShape1jawOpen": "jawOpen",
    "jaw-forward": "jawForward", "Face|cheekPuff": "cheekPuff", "mouth smile L": "mouthSmileLeft",
}


@pytest.mark.parametrize("spelling, want", sorted({**CAPTURE_SPELLINGS, **MAPPING_SPELLINGS}.items()))
def test_arkit_name_accepts_both_sets_of_spellings(spelling, want):
    assert arkit_name(spelling) == want


@pytest.mark.parametrize("spelling", ["Basis", "", "Key 7", "mouthSmile", "eyeBlink", "jaw"])
def test_arkit_name_rejects_what_is_no_channel(spelling):
    assert arkit_name(spelling) is None


@pytest.mark.parametrize("style", ["apple", "llf", "snake", "threejs", "dot", "prefixed",
                                   "upper", "side_first"])
def test_match_names_maps_every_style_of_rig(style):
    spell = {"apple": lambda n: n, "llf": lambda n: n[0].upper() + n[1:],
             "snake": _snake,
             "threejs": lambda n: n.replace("Left", "_L").replace("Right", "_R"),
             "dot": lambda n: n.replace("Left", ".L").replace("Right", ".R"),
             "prefixed": lambda n: "blendShape1." + n, "upper": lambda n: n.upper(),
             "side_first": lambda n: ("L_" + n[:-4] if n.endswith("Left") else
                                      "R_" + n[:-5] if n.endswith("Right") else n)}[style]
    keys = ["Basis"] + [spell(n) for n in ARKIT_52][::-1]
    found = match_names(ARKIT_52, keys)
    assert len(found) == 52 and len(set(found.values())) == 52
    assert all(arkit_name(k) == c for c, k in found.items())


def test_match_names_prefers_exact_then_shortest_and_serves_one_channel_per_key():
    keys = ["blendShape1.jawOpen", "jawOpen", "JawOpen_x", "mouthSmile_L",
            "xx.mouthSmileLeft", "mouthLeft"]
    found = match_names(ARKIT_52, keys)
    assert found["jawOpen"] == "jawOpen"                 # exact beats prefixed
    assert found["mouthSmileLeft"] == "mouthSmile_L"     # exact (spelling) beats prefixed
    assert found["mouthLeft"] == "mouthLeft"             # not served by xx.mouthSmileLeft
    assert "JawOpen_x" not in found.values()
    assert list(found) == [c for c in ARKIT_52 if c in found]   # channel order


def test_regions_are_one_rule():
    assert len(face.LIP_CHANNELS) == 27 and len(face.UPPER_CHANNELS) == 19
    assert all(n.startswith(("jaw", "mouth")) for n in face.LIP_CHANNELS)
    assert all(n.startswith(("brow", "eye")) for n in face.UPPER_CHANNELS)
    assert set(face.MOUTH_CHANNELS) | set(face.UPPER_FACE_CHANNELS) == set(ARKIT_52)
    assert not set(face.MOUTH_CHANNELS) & set(face.UPPER_FACE_CHANNELS)
    assert {face.region_of(n) for n in ARKIT_52} == {*face.STRENGTH_REGIONS, None}
    assert face.region_of("eyeBlink_L") == "blinks" and face.region_of("EyeLookUpRight") == "eyes"
    assert face.region_of("brow_inner_up") == "brows" and face.region_of("cheekPuff") == "lips"
    assert face.is_lip_channel("JawOpen") and not face.is_lip_channel("cheekPuff")
    # the other modules use these, not copies
    from model_core.evaluation import metrics
    from model_core.training import teacher
    assert metrics.LIP_CHANNELS is face.LIP_CHANNELS
    assert teacher.MOUTH_CHANNELS is face.MOUTH_CHANNELS
    assert teacher.UPPER_FACE_CHANNELS is face.UPPER_FACE_CHANNELS


def test_viseme_classes_are_the_teachers_and_the_networks():
    from model_core.training import teacher
    assert teacher.VISEME_CLASSES is face.VISEME_CLASSES
    assert tuple(teacher.VISEME_TARGETS) == face.VISEME_CLASSES
    assert len(face.VISEME_CLASSES) == 33 and face.VISEME_CLASSES[0] == "sil"
    assert face.VISEME_CLASSES.index("PP") == 2 and face.VISEME_CLASSES.index("AA") == 15
    # the IPA classes come after the 27 older checkpoints know (loading pads their heads)
    assert face.VISEME_CLASSES[27:] == ("EE", "UE", "OE", "UI", "BF", "RT")


@pytest.mark.parametrize("n, rate, fps", [(0, 16000, 30), (800, 16000, 30), (799, 16000, 30),
                                          (16000, 16000, 29.97), (44100 * 3 + 7, 44100, 24),
                                          (12345, 16000, 30000 / 1001), (533, 16000, 30)])
def test_frame_count_is_round_half_up_and_exact(n, rate, fps):
    exact = Fraction(n, rate) * face.fps_fraction(fps)
    assert sample_frames(n, rate, fps) == math.floor(exact + Fraction(1, 2))
    assert frame_count(n / rate, fps) == sample_frames(n, rate, fps)   # floats count alike
    assert frame_count(Fraction(n, rate), fps) == sample_frames(n, rate, fps)


def test_frame_count_halves_go_up():
    assert frame_count(0.05, 30) == 2          # 1.5 frames
    assert frame_count(Fraction(1, 60), 30) == 1   # 0.5 frames
    assert sample_frames(800, 16000, 30) == 2


def test_face_and_errors_import_nothing_heavy():
    import subprocess
    import sys
    code = ("import sys, model_core, model_core.face, model_core.errors; "
            "print(sorted(m for m in ('torch', 'numpy', 'soxr', 'soundfile') if m in sys.modules))")
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]"
