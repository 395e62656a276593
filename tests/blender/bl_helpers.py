"""Helpers for the Blender add-on tests: prerequisites (failing with the set-up command,
never skipping), the Face Cap head, sound strips, pumping the drain timer, reading keys."""

from __future__ import annotations

import queue
import threading
import time
import types
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
    set_trims(st, offset_start, offset_end)
    st.sound_offset = sound_offset
    return st


def set_trims(strip, start: int | None = None, end: int | None = None) -> None:
    """Trim ``start`` frames off a strip's start and ``end`` off its end (handle offsets;
    5.2 renames ``frame_offset_start`` / ``_end`` to ``left_handle_offset`` / ``right_``)."""
    new = "left_handle_offset" in strip.bl_rna.properties
    if start is not None:
        setattr(strip, "left_handle_offset" if new else "frame_offset_start", start)
    if end is not None:
        setattr(strip, "right_handle_offset" if new else "frame_offset_end", end)


def strip_frames(strip) -> tuple[float, int, int]:
    """(content start, first audible frame, end frame) of a strip: the add-on's
    ``compat.strip_frames`` (5.2 renames ``frame_start`` / ``frame_final_start`` / ``_end``)."""
    from streamtalker_addon import compat
    return compat.strip_frames(strip)


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


def generate_that_fails(monkeypatch, toy_model, at_push: int) -> None:
    """Make the next Generate's model (the toy model) raise ``OSError("disk on fire")`` at
    push number ``at_push`` (4000-sample pushes), after some keys are written."""
    from streamtalker_addon import worker

    class Failing:
        def __init__(self, session):
            self.session, self.n = session, 0

        def __getattr__(self, name):     # the rest of the Session protocol: the real one's
            return getattr(self.session, name)

        def push(self, x):
            self.n += 1
            if self.n == at_push:
                raise OSError("disk on fire")
            return self.session.push(x)

    class Model:
        channel_names = toy_model.channel_names

        def stream(self, **kw):
            return Failing(toy_model.stream(**kw))

    monkeypatch.setattr(worker, "load_model_cached", lambda *a, **k: Model())
    monkeypatch.setattr(worker, "PUSH_BLOCK", 4000)


def generate_until_keyed(bpy, monkeypatch):
    """Start Generate with the worker's final 'done' message held back and pump until part
    of the keys are written. Returns ``(job, gate)``: ``gate.set()`` lets the job finish
    (set on failure here, so no worker is left waiting)."""
    from streamtalker_addon import jobs, worker
    gate = threading.Event()

    class GatedQueue(queue.Queue):
        def put(self, item, *a, **k):
            if item[0] == "done":
                gate.wait(120)
            super().put(item, *a, **k)

    monkeypatch.setattr(worker, "queue", types.SimpleNamespace(Queue=GatedQueue,
                                                               Empty=queue.Empty))
    bpy.ops.streamtalker.generate()
    job = jobs.active_job()
    try:
        for _ in range(30000):
            jobs.drain()
            if job.writer is not None and job.writer.n_written > 0:
                break
            threading.Event().wait(0.01)
        assert job.writer.n_written > 0
    except BaseException:
        gate.set()
        raise
    return job, gate
