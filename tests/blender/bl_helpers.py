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


def generated(key):
    """The action StreamTalker generated on a Key datablock: its one line on the NLA (after
    a generation ended) or the action being written (assigned while it runs)."""
    from streamtalker_addon import keyframes
    ad = key.animation_data
    if ad is not None and ad.action is not None:
        return ad.action
    found = keyframes.line_strips(key)
    assert len(found) == 1, f"expected one line on the NLA, found {len(found)}"
    return found[0][1].action


def keyed(key, action=None) -> dict[str, np.ndarray]:
    """{shape key name: float32 [n, 2] (frame, value)} of an action on a Key datablock
    (default: :func:`generated`)."""
    from streamtalker_addon.keyframes import action_fcurves
    ad = key.animation_data
    action = action or generated(key)
    out = {}
    for fc in action_fcurves(action, ad):
        co = np.zeros(2 * len(fc.keyframe_points), np.float32)
        fc.keyframe_points.foreach_get("co", co)
        name = fc.data_path.split('"')[1]
        out[name] = co.reshape(-1, 2)
    return out


def generate_that_fails(monkeypatch, toy_model, at_push: int, error=None) -> None:
    """Make the next Generate's model (the toy model) raise ``error`` (default a user-facing
    ``FileWriteError("disk on fire")``; a built-in exception stands for a bug) at push number
    ``at_push`` (4000-sample pushes), after some keys are written."""
    from model_core.errors import FileWriteError
    from streamtalker_addon import worker
    error = FileWriteError("disk on fire") if error is None else error

    class Failing:
        def __init__(self, session):
            self.session, self.n = session, 0

        def __getattr__(self, name):     # the rest of the Session protocol: the real one's
            return getattr(self.session, name)

        def push(self, x):
            self.n += 1
            if self.n == at_push:
                raise error
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


# -- dialogue scenes (issue 21) ------------------------------------------------------------

def line_action(key, line: str):
    """The action the NLA plays for ``line`` ("Scene/strip") on a Key datablock (None when
    the line is not there)."""
    from streamtalker_addon import keyframes
    found = keyframes.line_strips(key, line)
    return found[0][1].action if found else None


def earlier_values(key, frames, names) -> np.ndarray:
    """float32 [len(frames), len(names)]: what the head shows outside its lines -- the
    action it had before its first line (``key[PROP_REPLACED]``, evaluated at each frame as
    the active action would be, within the strip's frames) on the shape keys it animates,
    the rest pose (0) on the others; all 0 when it had none or the "StreamTalker Earlier"
    track is muted."""
    import bpy
    from streamtalker_addon import keyframes
    out = np.zeros((len(frames), len(names)), np.float32)
    act = bpy.data.actions.get(str(key.get(keyframes.PROP_REPLACED, "")))
    track = key.animation_data.nla_tracks.get(keyframes.EARLIER_TRACK)
    if act is None or track is None or track.mute:
        return out
    (strip,) = track.strips
    lo, hi = strip.action_frame_start, strip.action_frame_end
    curves = {fc.data_path: fc for fc in keyframes.action_fcurves(act, key.animation_data)}
    for j, n in enumerate(names):
        fc = curves.get(keyframes.shape_key_data_path(n))
        if fc is not None:
            out[:, j] = [fc.evaluate(min(max(float(f), lo), hi)) for f in frames]
    return out


def lines(key) -> dict:
    """{line: (track name, strip name, first frame, last frame, action name)} of a Key."""
    from streamtalker_addon import keyframes
    out = {}
    for tr, st in keyframes.line_strips(key):
        out[st.action[keyframes.PROP_LINE]] = (tr.name, st.name, int(st.frame_start),
                                               int(round(st.frame_end)), st.action.name)
    return out


def select_only(scene, strips) -> None:
    from streamtalker_addon import compat
    for s in compat.all_strips(scene):
        s.select = False
    for s in strips:
        s.select = True
    scene.sequence_editor.active_strip = strips[0]


def make_meta(scene, strips):
    """Put ``strips`` into a new meta strip the way the sequencer's Make Meta Strip does
    (the meta's frames fit its content, on every version); returns the meta strip."""
    import bpy
    from streamtalker_addon import compat
    select_only(scene, strips)
    with compat.sequencer_context(scene):
        assert bpy.ops.sequencer.meta_make() == {"FINISHED"}
    meta = strips[0].parent_meta()
    assert meta is not None
    return meta


def speed_up(scene, strip, percent: float = 200.0) -> None:
    """Retime a sound strip to play at ``percent`` % speed, the way the sequencer's Set
    Speed does (retiming keys; the strip gets shorter). Through the operator on every
    version: ``RetimingKeys.add`` crashes 4.5 and 5.0 on a strip without retiming data, and
    5.2's ``RetimingKey.timeline_frame`` setter crashes when several strips are at the top
    level."""
    import bpy
    from streamtalker_addon import compat
    select_only(scene, [strip])
    _, first, end = strip_frames(strip)
    old = scene.frame_current
    scene.frame_current = (first + end) // 2
    try:
        with compat.sequencer_context(scene):
            assert bpy.ops.sequencer.retiming_segment_speed_set(speed=percent) == {"FINISHED"}
    finally:
        scene.frame_current = old
    assert len(compat.retiming_frames(strip)) >= 2
    want = first + (end - first) * 100.0 / percent
    assert strip_frames(strip)[1] == first and abs(strip_frames(strip)[2] - want) <= 1


def mixdown(scene, first: int, end: int) -> np.ndarray:
    """Blender's own mixdown of ``scene`` over frames ``first <= f < end``: float32 mono at
    16 kHz (rendered at 48 kHz, brought to 16 kHz by model_core's one resampler), made in a
    child process as the add-on makes it (Blender's mixdown of retimed strips crashes now
    and then: ``audio_source.isolated_mixdown``)."""
    from model_core.io.audio import to_model_rate
    from streamtalker_addon.audio_source import isolated_mixdown
    old = scene.frame_start, scene.frame_end
    scene.frame_start, scene.frame_end = first, end - 1
    try:
        x, rate = isolated_mixdown(scene, 48000)
        x = x[:, 0]
    finally:
        scene.frame_start, scene.frame_end = old
    fps = scene.render.fps / scene.render.fps_base
    x = x[:int(round((end - first) * rate / fps))]
    return to_model_rate(x, rate)


def frame_values(scene, keys: dict, frames, names=None) -> dict:
    """Evaluate ``scene`` frame by frame: {label: float32 [len(frames), K]} the values of
    the shape keys ``names`` (default: all but the basis) of each Key in ``keys``
    ({label: Key}) as the depsgraph evaluates them (NLA included)."""
    import bpy
    out = {}
    names = names or {lbl: [kb.name for kb in k.key_blocks][1:] for lbl, k in keys.items()}
    vals = {lbl: [] for lbl in keys}
    for f in frames:
        scene.frame_set(int(f))
        dg = bpy.context.evaluated_depsgraph_get()
        for lbl, k in keys.items():
            ev = k.evaluated_get(dg)
            vals[lbl].append([ev.key_blocks[n].value for n in names[lbl]])
    for lbl in keys:
        out[lbl] = np.asarray(vals[lbl], np.float32)
    return out
