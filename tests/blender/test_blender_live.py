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


def test_live_runs_low_latency_and_record_keeps_the_frames_shown(facecap_scene, bpy_mod, mic,
                                                                  speech, live_checkpoint):
    """Live runs at the model's low-latency setting (1-frame chunks, 20 ms look-ahead here),
    the panel's expected latency says so, Generate keeps the best quality; and Record keys
    exactly the frames Live showed: every frame that passed through the drain (strengths
    applied), in order, the last key the value last set on the shape key -- nothing added
    when it stops."""
    from streamtalker_addon import jobs, live, mapping
    from streamtalker_addon.planning import plan_generation
    from streamtalker_addon.preferences import live_preset
    from bl_helpers import keyed
    bpy = bpy_mod
    scene, head, _ = facecap_scene
    s = scene.streamtalker
    s.checkpoint = str(live_checkpoint)
    s.strength_lips = 0.5                      # what is shown is what is keyed: scaled
    assert live_preset() == "live"             # no preferences (registered by a script)
    ms, k, la = live.expected_latency(bpy.context)
    assert (k, la) == (1, 20.0) and ms == pytest.approx(1000 / 30 + 20)
    assert live.expected_latency(bpy.context, "quality")[1:] == (3, 60.0)
    plan = plan_generation(bpy.context)
    model = live.load_session_model(plan.settings)
    assert plan.settings.stream_kwargs(model)["settings"].preset == "quality"    # Generate

    key = head.data.shape_keys
    mic.start_writer(speech[:16000 * 2], lead_s=0.5)
    sess = live.start_live(bpy.context, device=mic.device, use_timer=False)
    eng = sess.engine
    st = eng.session_settings
    assert (st.chunk_frames, st.lookahead_ms, st.preset) == (1, 20.0, "live")
    polled, shown = [], []
    poll = eng.poll
    names = {c: sess.targets[c] for c in ("jawOpen", "eyeBlinkLeft", "mouthClose")}

    def spy():
        evs = poll()
        polled.extend(e.frames for e in evs)
        return evs
    eng.poll = spy
    scene.frame_set(5)
    sess.start_record(scene)
    t_end = time.monotonic() + 3.0
    while time.monotonic() < t_end:
        assert jobs.drain() is not None, sess.error
        if polled:
            shown.append((sum(len(p) for p in polled),
                          {c: key.key_blocks[n].value for c, n in names.items()}))
        time.sleep(0.01)
    name = sess.stop_record()
    n_applied = sess.frames_applied
    jobs.cancel_active("live")
    frames = mapping.apply_strength(np.concatenate(polled), list(model.channel_names),
                                    s.strengths())
    assert len(frames) == n_applied > 60
    k = keyed(key, bpy.data.actions[name])
    ch = list(model.channel_names)
    for c, n in names.items():
        assert np.array_equal(k[n][:, 0], 5 + np.arange(len(frames)))
        assert np.array_equal(k[n][:, 1], frames[:, ch.index(c)]), c
    for count, values in shown:           # each drain showed its newest frame
        for c, v in values.items():
            assert v == pytest.approx(frames[count - 1, ch.index(c)], abs=1e-7)
    assert not np.array_equal(frames[:, ch.index("jawOpen")],
                              np.concatenate(polled)[:, ch.index("jawOpen")])   # scaled

    sess = live.start_live(bpy.context, device=mic.device, use_timer=False, preset="quality")
    try:
        st = sess.engine.session_settings
        assert (st.chunk_frames, st.lookahead_ms) == (3, 60.0)
    finally:
        jobs.cancel_active("live")


def test_live_frames_redraw_the_viewport_and_the_panels_at_most_every_tenth(bpy_mod,
                                                                            monkeypatch):
    """Blender's redraw on the live path: a drain that set new keys redraws the 3D views'
    main region; the sidebar's panels and the Properties editor (Python draw code) at most
    every UI_REDRAW_INTERVAL, and once more when the job ends."""
    import types
    from streamtalker_addon import jobs
    tagged = []

    class Region:
        def __init__(self, area, kind):
            self.area, self.type = area, kind

        def tag_redraw(self):
            tagged.append((self.area, self.type))

    class Area:
        def __init__(self, kind):
            self.type = kind
            self.regions = [Region(kind, r) for r in ("HEADER", "WINDOW", "UI")]

        def tag_redraw(self):
            tagged.append((self.type, "all"))
    screen = types.SimpleNamespace(areas=[Area(a) for a in ("VIEW_3D", "PROPERTIES", "OUTLINER")])
    wm = types.SimpleNamespace(windows=[types.SimpleNamespace(screen=screen)])
    jobs.tag_redraw(ui=False, wm=wm)
    assert tagged == [("VIEW_3D", "WINDOW")]
    tagged.clear()
    jobs.tag_redraw(wm=wm)
    assert tagged == [("VIEW_3D", "all"), ("PROPERTIES", "all")]

    class Job:                      # a live job whose every drain set new keys
        kind, state, running, redraw, drain_interval = "live", "running", True, True, 0.005
        started, error = 0.0, ""
        left = 40

        def drain(self):
            self.left -= 1
            self.running = self.left > 0
            return self.running
    uis = []
    monkeypatch.setattr(jobs, "tag_redraw", lambda ui=True, wm=None: uis.append(ui))
    monkeypatch.setattr(jobs, "_ui_redrawn", 0.0)
    monkeypatch.setattr(jobs, "_active", Job())
    monkeypatch.setattr(jobs, "_last", {})
    t0 = time.monotonic()
    while jobs.drain() is not None:
        time.sleep(0.005)
    took = time.monotonic() - t0
    assert len(uis) == 40 and uis[0] and uis[-1]       # first, and when it ended
    assert 2 <= sum(uis) <= took / jobs.UI_REDRAW_INTERVAL + 2, (sum(uis), took)


def test_live_panel_shows_the_expected_latency_of_the_setting(facecap_scene, bpy_mod,
                                                              live_checkpoint, toy_checkpoint):
    import types
    from streamtalker_addon import panels
    from test_blender_register import _Layout
    bpy = bpy_mod
    scene = facecap_scene[0]

    def labels():
        calls = []
        ctx = types.SimpleNamespace(scene=scene, window_manager=bpy.context.window_manager,
                                    preferences=bpy.context.preferences)
        panels.STREAMTALKER_PT_live.draw(types.SimpleNamespace(layout=_Layout(calls)), ctx)
        return [c[2].get("text", "") for c in calls if c[0] == "label"]
    scene.streamtalker.checkpoint = str(live_checkpoint)
    assert "Expected latency 53 ms (1-frame chunks + 20 ms look-ahead)" in labels()
    scene.streamtalker.checkpoint = str(toy_checkpoint)      # declares no live setting
    assert "Expected latency 193 ms (4-frame chunks + 60 ms look-ahead)" in labels()
    scene.streamtalker.checkpoint = "/nonexistent.safetensors"
    assert not any(t.startswith("Expected latency") for t in labels())


def test_blink_rate_scales_each_presets_own_blink_temperature(bpy_mod):
    """The panel's Blink Rate is a factor on the model's default for the preset that runs:
    Live (1-frame chunks) starts from the model's ``live_blink_temperature`` when it declares
    one (1-frame chunks blink more at the same temperature), Generate from
    ``blink_temperature``; at rate 1 the preset's default applies (the session resolves it)."""
    import types
    from model_core.runtime.config import ModelConfig
    from streamtalker_addon.planning import ModelSettings
    cfg = ModelConfig(chunk_frames=3, min_lookahead_ms=0.0, live_chunk_frames=1,
                      live_lookahead_ms=20.0, blink_temperature=1.0, live_blink_temperature=0.8)
    model = types.SimpleNamespace(config=cfg)
    hot = ModelSettings(blink_rate=1.5)
    assert hot.sampler(model, live=True).blink_temperature == pytest.approx(1.2)
    assert hot.sampler(model).blink_temperature == pytest.approx(1.5)
    plain = ModelSettings()
    assert plain.sampler(model, live=True).resolve(cfg).blink_temperature == 0.8
    assert plain.sampler(model).resolve(cfg).blink_temperature == 1.0
    # Live at the best-quality setting (the preference) blinks as Generate does
    q = ModelSettings(live_preset="quality")
    assert q.sampler(model, live=True).resolve(cfg).blink_temperature == 1.0
