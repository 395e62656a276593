"""Helpers for the Blender add-on tests: prerequisites (failing with the set-up command,
never skipping), the Face Cap head, sound strips, pumping the drain timer, reading keys."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
FACECAP = ROOT / "inputs" / "facecap" / "facecap.glb"
LIBRIVOX = ROOT / "inputs" / "speech" / "librivox"
CLIP = "sense_and_sensibility_01_austen_64kb-0870.wav"
SETUP_HINT = "run `bash tools/setup.sh` (installs the bpy wheels and fetches the real inputs)"


def import_bpy():
    try:
        import bpy
    except ImportError as e:
        pytest.fail(f"the Blender tests need the `bpy` module ({e}); {SETUP_HINT}",
                    pytrace=False)
    return bpy


def speech_path(name: str = CLIP) -> Path:
    p = LIBRIVOX / name
    if not p.exists():
        pytest.fail(f"real speech {p} is missing; run `.venv/bin/python tools/fetch_inputs.py` "
                    f"or {SETUP_HINT}", pytrace=False)
    return p


def facecap_path() -> Path:
    if not FACECAP.exists():
        pytest.fail(f"the Face Cap head {FACECAP} is missing; run `.venv/bin/python "
                    f"tools/fetch_facecap.py` or {SETUP_HINT}", pytrace=False)
    return FACECAP


def import_facecap(bpy):
    """Import the Face Cap head into the current scene; returns the head mesh object
    (2694 vertices, Basis + 52 ARKit shape keys, its captured action assigned)."""
    before = set(bpy.data.objects)
    bpy.ops.import_scene.gltf(filepath=str(facecap_path()))
    new = [o for o in bpy.data.objects if o not in before]
    heads = [o for o in new if o.type == "MESH" and o.data.shape_keys is not None]
    assert len(heads) == 1, f"expected one head with shape keys, got {heads}"
    return heads[0]


def add_strip(scene, name: str, path, frame_start: int, channel: int = 1,
              offset_start: int = 0, offset_end: int = 0, sound_offset: float = 0.0):
    """A sound strip with trims and offset."""
    ed = scene.sequence_editor or scene.sequence_editor_create()
    st = ed.strips.new_sound(name, str(path), channel, frame_start)
    st.frame_offset_start = offset_start
    st.frame_offset_end = offset_end
    st.sound_offset = sound_offset
    return st


def pump(timeout: float = 300.0):
    """Call the timer callback until the active job ends; returns the job."""
    from streamtalker_addon import jobs
    t0 = time.monotonic()
    job = jobs.active_job()
    while jobs.drain() is not None:
        assert time.monotonic() - t0 < timeout, "generation did not end"
        time.sleep(0.01)
    return job or jobs.last_job()


def keyed(key, action=None) -> dict[str, np.ndarray]:
    """{shape key name: float32 [n, 2] (frame, value)} of an action on a Key datablock
    (default: the assigned one)."""
    from streamtalker_addon.keyframes import action_fcurves
    ad = key.animation_data
    action = action or ad.action
    out = {}
    for fc in action_fcurves(action, ad):
        co = np.zeros(2 * len(fc.keyframe_points), np.float32)
        fc.keyframe_points.foreach_get("co", co)
        name = fc.data_path.split('"')[1]
        out[name] = co.reshape(-1, 2)
    return out
