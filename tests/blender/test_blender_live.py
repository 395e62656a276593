"""Live microphone in Blender: the Face Cap head's shape keys follow a virtual microphone
(PulseAudio pipe source), Record keys a new action at scene time, start/stop leaves no
timer/thread/stream, device errors become one clear ERROR report. Tests pump the drain."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="module")
def live_registered(bpy_mod):
    """Live's classes come with the add-on's register(); stop Live afterwards."""
    from streamtalker_addon import jobs
    yield
    jobs.cancel_active("live")



def _pump(seconds: float):
    from streamtalker_addon import jobs
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        if jobs.drain() is None:
            return False
        time.sleep(0.02)
    return True


def test_live_moves_facecap_shape_keys_and_records(facecap_scene, bpy_mod, mic, speech):
    from streamtalker_addon import jobs, keyframes, live
    bpy = bpy_mod
    scene, head, _ = facecap_scene
    key = head.data.shape_keys
    prev = key.animation_data.action
    mic.start_writer(speech, lead_s=2.0)
    sess = live.start_live(bpy.context, device=mic.device, use_timer=False)
    jaw = key.key_blocks["jawOpen"]
    seen = []
    t_end = time.monotonic() + 2.0 + len(speech) / 16000
    scene.frame_set(40)
    recorded_from = None
    while time.monotonic() < t_end:
        assert jobs.drain() is not None, sess.error
        seen.append(jaw.value)
        if recorded_from is None and time.monotonic() > t_end - 4.0:
            recorded_from = sess.start_record(scene)
        time.sleep(0.02)
    name = sess.stop_record()
    assert name == recorded_from
    stats = sess.engine.stats
    jobs.cancel_active("live")
    assert sess.state == "stopped" and jobs.active_job("live") is None
    assert np.ptp(seen) > 0.01, "jawOpen did not move"
    assert stats.frames > 0 and len(stats.latency) > 0 and stats.dropped_samples == 0
    act = bpy.data.actions[name]
    assert key.animation_data.action is None and act.use_fake_user   # a line on the NLA
    assert key[keyframes.PROP_REPLACED] == prev.name and prev.use_fake_user
    from bl_helpers import keyed, lines
    k = keyed(key, act)
    assert len(k) > 40
    frames = k["jawOpen"][:, 0]
    assert frames[0] == 40 and np.all(np.diff(frames) == 1) and len(frames) > 60
    assert lines(key)[name][2:4] == (40, int(frames[-1]))
    gen, restored = keyframes.restore_previous(key, name)
    assert restored == prev.name and key.animation_data.action == prev


def test_live_start_stop_20_times_leaves_nothing(facecap_scene, bpy_mod, mic):
    from streamtalker_addon import jobs
    bpy = bpy_mod
    mic.start_writer(np.zeros(16000, np.float32), lead_s=0.0)
    before = {t for t in threading.enumerate()}
    n_actions = len(bpy.data.actions)
    for i in range(20):
        assert bpy.ops.streamtalker.live_start(device=mic.device) == {"FINISHED"}
        sess = jobs.active_job("live")
        assert sess is not None
        _pump(0.05)
        if i % 5 == 0:
            bpy.ops.streamtalker.live_record()
            _pump(0.1)
            bpy.ops.streamtalker.live_record()
        assert bpy.ops.streamtalker.live_stop() == {"FINISHED"}
        assert sess.engine._stream is None and not sess.engine._worker.is_alive()
    mic.stop_writer()
    time.sleep(0.2)
    left = {t for t in threading.enumerate() if t.is_alive()} - before
    assert not left, left
    assert not bpy.app.timers.is_registered(jobs.drain)
    assert jobs.active_job("live") is None
    assert len(bpy.data.actions) <= n_actions + 4   # only the takes that got frames


def test_live_device_errors_are_reported(facecap_scene, bpy_mod, monkeypatch):
    import sounddevice as sd
    from streamtalker_addon import jobs, live
    from streamtalker_addon.errors import StreamTalkerError
    bpy = bpy_mod
    reports = []

    def refuse(**kw):
        raise sd.PortAudioError("Error opening InputStream: Invalid sample rate [PaErrorCode -9997]")
    monkeypatch.setattr(sd, "InputStream", refuse)
    monkeypatch.setattr(sd, "query_devices", lambda device=None, kind=None: (
        {"name": "fake mic", "index": 0, "max_input_channels": 1, "default_samplerate": 44100.0}
        if (kind or device is not None) else
        [{"name": "fake mic", "index": 0, "max_input_channels": 1, "default_samplerate": 44100.0}]))
    with pytest.raises(StreamTalkerError, match="refused the sample rate"):
        live.start_live(bpy.context, use_timer=False)
    with pytest.raises(RuntimeError, match="refused the sample rate"):
        bpy.ops.streamtalker.live_start()  # ERROR report -> RuntimeError in scripts
    del reports
    assert jobs.active_job("live") is None

    class Stalls:
        def __init__(self, callback=None, finished_callback=None, **kw):
            self.samplerate, self.active = kw.get("samplerate", 16000), False
            self.fin = finished_callback

        def start(self):
            self.active = True
            threading.Timer(0.3, self._die).start()

        def _die(self):
            self.active = False
            self.fin()

        def abort(self):
            self.active = False

        close = abort
    monkeypatch.setattr(sd, "InputStream", Stalls)
    sess = live.start_live(bpy.context, use_timer=False)
    assert not _pump(5.0)
    assert sess.state == "failed" and "ended" in sess.error
    assert jobs.active_job("live") is None and sess.engine._stream is None
