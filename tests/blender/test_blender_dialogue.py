"""Issue 21: a whole dialogue scene. Several sound strips drive one head (or three heads):
every line is a strip on the head's StreamTalker NLA track at the frames Blender plays it,
and plays there and nowhere else -- in Generate, Generate All, Bake and Record; meta strips
and retimed strips as Blender plays them (checked against Blender's own mixdown); a line
re-generated replaces only that line, its previous version stays reachable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bl_helpers import (ROOT, add_strip, earlier_values, frame_values, import_facecap, keyed,
                        line_action, lines, make_meta, mixdown, pump, set_trims, speech_path,
                        speed_up, strip_frames)

CLIPS = ("sense_and_sensibility_01_austen_64kb-0870.wav",
         "sense_and_sensibility_01_austen_64kb-0880.wav",
         "sense_and_sensibility_01_austen_64kb-0890.wav")


def _bake(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "streamtalker_addon.bake", *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def _line(scene, strip, head, n: int, clip: int = 0, channel: int = 1):
    """A sound strip ``strip`` at its frame, about ``n`` frames long, driving ``head``."""
    st = add_strip(scene, strip[0], speech_path(CLIPS[clip]), strip[1], channel=channel)
    _, first, end = strip_frames(st)
    set_trims(st, end=max(0, end - first - n))
    st.streamtalker_target = head
    return st


def _scene(bpy, toy_checkpoint, fps=24):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = fps
    s = scene.streamtalker
    s.model_source, s.checkpoint, s.seed = "FILE", str(toy_checkpoint), 1
    return scene


def _heads(bpy, n):
    heads = []
    for i in range(n):
        h = import_facecap(bpy)
        h.name = "ABC"[i] if n > 1 else "Head"
        heads.append(h)
    bpy.context.view_layer.objects.active = heads[0]
    return heads


def _check_plays(scene, heads: dict, expect: dict, frames) -> dict:
    """Evaluate ``scene`` frame by frame: each head's shape keys equal its lines' keys on
    the lines' frames and, on every other frame, what it showed before its first line (its
    earlier action, still playing under the lines; the rest pose 0 where it had none).
    ``expect``: {head: {line: (first, last)}}. Returns {head: values [frames, 52]}."""
    frames = np.asarray(list(frames))
    keys = {h: heads[h].data.shape_keys for h in heads}
    names = {h: [kb.name for kb in keys[h].key_blocks][1:] for h in heads}
    got = frame_values(scene, keys, frames, names)
    for h, ls in expect.items():
        speaking = np.zeros(len(frames), bool)
        for line, (first, last) in ls.items():
            act = line_action(keys[h], line)
            assert act is not None, (h, line)
            k = keyed(keys[h], act)
            inside = (frames >= first) & (frames <= last)
            speaking |= inside
            want = np.stack([np.interp(frames[inside], k[n][:, 0], k[n][:, 1])
                             for n in names[h]], 1)
            np.testing.assert_allclose(got[h][inside], want, atol=1e-5, err_msg=f"{h} {line}")
            jaw = got[h][inside, names[h].index("jawOpen")]
            assert jaw.max() > 0.05, f"{h} does not open its mouth in {line}"
        np.testing.assert_allclose(
            got[h][~speaking], earlier_values(keys[h], frames[~speaking], names[h]),
            atol=1e-5, err_msg=f"{h}: outside its lines, not what it had before them")
    return got


# -- case 1: several lines for one head all play -------------------------------------------

def test_1_two_lines_for_one_head_both_play_after_a_bake(empty_scene, bpy_mod, tmp_path,
                                                        toy_checkpoint):
    bpy = bpy_mod
    scene = _scene(bpy, toy_checkpoint)
    (head,) = _heads(bpy, 1)
    one = _line(scene, ("one", 1), head, 40)
    two = _line(scene, ("two", 200), head, 40, clip=1, channel=2)
    src, out = tmp_path / "two_lines.blend", tmp_path / "out.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(src))
    spans = {f"Scene/{st.name}": (strip_frames(st)[1], strip_frames(st)[2] - 1)
             for st in (one, two)}

    r = _bake(src, "-o", out, "--checkpoint", toy_checkpoint)
    assert r.returncode == 0, r.stdout + r.stderr
    for name, (a, b) in (("one", spans["Scene/one"]), ("two", spans["Scene/two"])):
        assert (f"ok      Scene / {name} -> Head: NLA track 'StreamTalker', strip '{name}', "
                f"frames {a}-{b}, action '{name}'") in r.stdout, r.stdout

    bpy.ops.wm.open_mainfile(filepath=str(out))
    scene, head = bpy.context.scene, bpy.data.objects["Head"]
    key = head.data.shape_keys
    assert key.animation_data.action is None        # an active action would hide the lines
    assert lines(key) == {"Scene/one": ("StreamTalker", "one", *spans["Scene/one"], "one"),
                          "Scene/two": ("StreamTalker", "two", *spans["Scene/two"], "two")}
    for st in (s for _, s in [(t, s) for t in key.animation_data.nla_tracks for s in t.strips]
               if s.name in ("one", "two")):
        assert st.extrapolation == "NOTHING" and st.blend_type == "REPLACE"
        assert st.action_slot is not None and st.action_slot == st.action.slots[0]
    assert key["streamtalker_replaced_action"] == "Key|Take 001|BaseLayer"
    assert bpy.data.actions["Key|Take 001|BaseLayer"].use_fake_user   # kept
    # and still playing: on its own track between the rest pose and the lines
    tracks = key.animation_data.nla_tracks
    assert [t.name for t in tracks][-3:] == ["StreamTalker Rest", "StreamTalker Earlier",
                                             "StreamTalker"]
    (earlier,) = tracks["StreamTalker Earlier"].strips
    assert earlier.action.name == "Key|Take 001|BaseLayer" and earlier.extrapolation == "HOLD"
    names = [kb.name for kb in key.key_blocks][1:]
    assert np.abs(earlier_values(key, range(60, 190), names)).max() > 0.05   # it moves there
    _check_plays(scene, {"Head": head}, {"Head": spans}, range(1, 260))
    tracks["StreamTalker Earlier"].mute = True      # muted: the head rests between lines
    _check_plays(scene, {"Head": head}, {"Head": spans}, range(1, 260))


def test_1_generate_in_the_panel_places_a_second_line_beside_the_first(empty_scene, bpy_mod,
                                                                       toy_checkpoint):
    bpy = bpy_mod
    scene = _scene(bpy, toy_checkpoint)
    (head,) = _heads(bpy, 1)
    one = _line(scene, ("one", 5), head, 30)
    two = _line(scene, ("two", 60), head, 30, clip=1, channel=2)
    for st in (one, two):
        assert bpy.ops.streamtalker.generate(wait=True, strip=st.name) == {"FINISHED"}
    spans = {f"Scene/{st.name}": (strip_frames(st)[1], strip_frames(st)[2] - 1)
             for st in (one, two)}
    _check_plays(scene, {"Head": head}, {"Head": spans}, range(1, 100))


# -- re-generating one line; Restore Previous; Generate All --------------------------------

def test_regenerating_one_line_replaces_only_it_and_the_previous_version_comes_back(
        empty_scene, bpy_mod, toy_checkpoint):
    from streamtalker_addon import keyframes
    bpy = bpy_mod
    scene = _scene(bpy, toy_checkpoint)
    (head,) = _heads(bpy, 1)
    one = _line(scene, ("one", 5), head, 30)
    _line(scene, ("two", 60), head, 30, clip=1, channel=2)
    assert bpy.ops.streamtalker.generate_all(wait=True) == {"FINISHED"}
    key = head.data.shape_keys
    before = lines(key)
    first_one = keyed(key, line_action(key, "Scene/one"))["jawOpen"].copy()

    scene.streamtalker.seed = 7         # a new take of line one
    scene.streamtalker.strip = "one"
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    after = lines(key)
    assert after["Scene/two"] == before["Scene/two"]              # untouched
    assert after["Scene/one"][4] == "one.001" and after["Scene/one"][:4] == before["Scene/one"][:4]
    new = line_action(key, "Scene/one")
    assert new[keyframes.PROP_PREVIOUS] == "one"                  # reachable
    assert bpy.data.actions["one"].use_fake_user
    assert not np.array_equal(keyed(key, new)["jawOpen"], first_one)

    assert bpy.ops.streamtalker.restore_previous() == {"FINISHED"}   # the line under Source
    assert lines(key)["Scene/one"][4] == "one" and lines(key)["Scene/two"] == before["Scene/two"]
    np.testing.assert_array_equal(keyed(key, line_action(key, "Scene/one"))["jawOpen"],
                                  first_one)
    assert bpy.data.actions["one.001"].use_fake_user                # and the new take kept
    # one more step back: line one had no version before, so it is taken off the NLA; the
    # last line off gives the shape keys their old action back
    assert bpy.ops.streamtalker.restore_previous() == {"FINISHED"}
    assert set(lines(key)) == {"Scene/two"}
    bpy.ops.streamtalker.restore_previous(line="Scene/two")
    assert lines(key) == {}
    assert key.animation_data.action.name == "Key|Take 001|BaseLayer"
    assert [t.name for t in key.animation_data.nla_tracks] == ["Key|Take 001|BaseLayer"]
    assert one.name == "one"


def test_generate_all_bakes_every_strip_that_drives_the_selected_head(empty_scene, bpy_mod,
                                                                      toy_checkpoint):
    bpy = bpy_mod
    scene = _scene(bpy, toy_checkpoint)
    a, b = _heads(bpy, 2)
    _line(scene, ("a1", 1), a, 24)
    _line(scene, ("b1", 30), b, 24, clip=1, channel=2)
    free = _line(scene, ("a2", 60), a, 24, clip=2, channel=3)
    free.streamtalker_target = None         # no target: the selected head's
    bpy.context.view_layer.objects.active = a
    assert bpy.ops.streamtalker.generate_all(wait=True) == {"FINISHED"}
    assert set(lines(a.data.shape_keys)) == {"Scene/a1", "Scene/a2"}
    assert lines(b.data.shape_keys) == {} and b.data.shape_keys.animation_data.action is not None
    from streamtalker_addon import jobs
    job = jobs.last_job("generate")
    assert job.state == "finished" and "2 of 2 lines generated" in job.summary
    assert "'a1' -> NLA track 'StreamTalker', strip 'a1'" in job.summary
    bpy.context.view_layer.objects.active = b       # the strip with no target follows
    assert bpy.ops.streamtalker.generate_all(wait=True) == {"FINISHED"}
    assert set(lines(b.data.shape_keys)) == {"Scene/b1", "Scene/a2"}
    assert set(lines(a.data.shape_keys)) == {"Scene/a1", "Scene/a2"}


def test_lines_of_one_head_that_overlap_go_on_a_second_track(empty_scene, bpy_mod,
                                                             toy_checkpoint):
    """Two lines of one head at overlapping frames (an NLA track holds no overlapping
    strips): the later one goes on "StreamTalker 2" above and plays where they overlap."""
    bpy = bpy_mod
    scene = _scene(bpy, toy_checkpoint)
    (head,) = _heads(bpy, 1)
    _line(scene, ("one", 1), head, 40)
    _line(scene, ("two", 21), head, 40, clip=1, channel=2)
    assert bpy.ops.streamtalker.generate_all(wait=True) == {"FINISHED"}
    got = lines(head.data.shape_keys)
    assert got["Scene/one"][:4] == ("StreamTalker", "one", 1, 40)
    assert got["Scene/two"][:4] == ("StreamTalker 2", "two", 21, 60)
    names = [t.name for t in head.data.shape_keys.animation_data.nla_tracks]
    assert names[-4:] == ["StreamTalker Rest", "StreamTalker Earlier", "StreamTalker",
                          "StreamTalker 2"]
    _check_plays(scene, {"Head": head}, {"Head": {"Scene/one": (1, 20), "Scene/two": (21, 60)}},
                 range(1, 80))


def test_the_earlier_animation_plays_on_as_it_did_and_is_given_back(empty_scene, bpy_mod,
                                                                     toy_checkpoint):
    """What the head had keyed before its first line plays under the lines at the frames it
    played at, F-curve modifiers included (a cycling blink goes on cycling); a track the
    user deletes stays deleted; the last line's Restore Previous gives the action back."""
    from streamtalker_addon import keyframes
    bpy = bpy_mod
    scene = _scene(bpy, toy_checkpoint)
    scene.frame_start, scene.frame_end = 1, 200
    (head,) = _heads(bpy, 1)
    key = head.data.shape_keys
    blink = bpy.data.actions.new("hand blink")          # keys 1-9, then cycling
    key.animation_data.action = blink
    for f, v in ((1, 0.0), (5, 0.8), (9, 0.0)):
        key.key_blocks["eyeBlink_L"].value = v
        key.key_blocks["eyeBlink_L"].keyframe_insert("value", frame=f)
    fc = keyframes.action_fcurves(blink, key.animation_data)[0]
    fc.modifiers.new("CYCLES")
    _line(scene, ("one", 60), head, 30)
    assert bpy.ops.streamtalker.generate_all(wait=True) == {"FINISHED"}
    assert key.animation_data.action is None
    (st,) = key.animation_data.nla_tracks[keyframes.EARLIER_TRACK].strips
    assert st.action == blink and st.frame_start <= 1 and st.frame_end >= 200
    frames = np.array([3, 5, 13, 45, 150, 197])        # outside the line (60-89)
    got = frame_values(scene, {"h": key}, frames, {"h": ["eyeBlink_L"]})["h"][:, 0]
    np.testing.assert_allclose(got, [fc.evaluate(f) for f in frames], atol=1e-5)
    assert got[frames == 45][0] == pytest.approx(0.8, abs=1e-5)   # frame 45 = 5 + 5 cycles

    # deleted by the user: not put back by the next line
    key.animation_data.nla_tracks.remove(key.animation_data.nla_tracks[keyframes.EARLIER_TRACK])
    _line(scene, ("two", 120), head, 30, clip=1, channel=2)
    scene.streamtalker.strip = "two"
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    assert keyframes.EARLIER_TRACK not in key.animation_data.nla_tracks

    # the last line off: the earlier action is the active one again, the track gone
    bpy.ops.streamtalker.restore_previous(line="Scene/two")
    bpy.ops.streamtalker.restore_previous(line="Scene/one")
    assert lines(key) == {} and key.animation_data.action == blink
    assert keyframes.PROP_REPLACED not in key and keyframes.PROP_EARLIER_PLACED not in key


def test_the_last_line_off_keeps_the_earlier_track_when_another_action_was_assigned(
        empty_scene, bpy_mod, toy_checkpoint):
    from streamtalker_addon import keyframes
    bpy = bpy_mod
    scene = _scene(bpy, toy_checkpoint)
    (head,) = _heads(bpy, 1)
    key = head.data.shape_keys
    _line(scene, ("one", 5), head, 30)
    assert bpy.ops.streamtalker.generate_all(wait=True) == {"FINISHED"}
    mine = bpy.data.actions.new("keyed since")
    key.animation_data.action = mine
    bpy.ops.streamtalker.restore_previous(line="Scene/one")
    assert lines(key) == {} and key.animation_data.action == mine       # left as assigned
    (st,) = key.animation_data.nla_tracks[keyframes.EARLIER_TRACK].strips
    assert st.action.name == key[keyframes.PROP_REPLACED] == "Key|Take 001|BaseLayer"


def test_keys_added_after_the_lines_are_pushed_down_and_keep_playing(empty_scene, bpy_mod,
                                                                     toy_checkpoint):
    """Keying a shape key once lines exist makes a new active action (it would play over
    every line); the next line pushes it onto a track of its own under the lines, above
    the first earlier action's, where it keeps playing."""
    from streamtalker_addon import keyframes
    bpy = bpy_mod
    scene = _scene(bpy, toy_checkpoint)
    scene.frame_start, scene.frame_end = 1, 150
    (head,) = _heads(bpy, 1)
    key = head.data.shape_keys
    _line(scene, ("one", 5), head, 30)
    assert bpy.ops.streamtalker.generate_all(wait=True) == {"FINISHED"}
    kb = key.key_blocks["browInnerUp"]
    for f, v in ((40, 0.2), (60, 0.9)):
        kb.value = v
        kb.keyframe_insert("value", frame=f)
    added = key.animation_data.action
    assert added is not None and keyframes.PROP_SOURCE not in added
    fc = keyframes.action_fcurves(added, key.animation_data)[0]
    _line(scene, ("two", 100), head, 30, clip=1, channel=2)
    scene.streamtalker.strip = "two"
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    assert key.animation_data.action is None and added.use_fake_user
    names = [t.name for t in key.animation_data.nla_tracks]
    assert names[-4:] == ["StreamTalker Rest", "StreamTalker Earlier", "StreamTalker Earlier 2",
                          "StreamTalker"]
    assert key.animation_data.nla_tracks["StreamTalker Earlier 2"].strips[0].action == added
    assert key[keyframes.PROP_REPLACED] == "Key|Take 001|BaseLayer"
    got = frame_values(scene, {"h": key}, [50, 60, 95], {"h": ["browInnerUp"]})["h"][:, 0]
    np.testing.assert_allclose(got, [fc.evaluate(f) for f in (50, 60, 95)], atol=1e-5)
    assert got[1] == pytest.approx(0.9, abs=1e-5)
    # assigned again and another line made: not pushed a second time
    key.animation_data.action = added
    scene.streamtalker.seed = 5
    assert bpy.ops.streamtalker.generate(wait=True) == {"FINISHED"}
    earlier = [t for t in key.animation_data.nla_tracks
               if t.name.startswith("StreamTalker Earlier")]
    assert len(earlier) == 2


def test_an_old_lip_sync_take_is_kept_but_not_played_between_lines(empty_scene, bpy_mod,
                                                                   toy_checkpoint):
    """A StreamTalker action from before lines were on the NLA (active, no line) is kept
    and named, not put on the earlier track: it would talk between the lines."""
    from streamtalker_addon import keyframes
    bpy = bpy_mod
    scene = _scene(bpy, toy_checkpoint)
    (head,) = _heads(bpy, 1)
    key = head.data.shape_keys
    old = bpy.data.actions.new("old take")
    old[keyframes.PROP_SOURCE] = "speech.wav"
    old[keyframes.PROP_PREVIOUS] = ""
    key.animation_data.action = old
    key.key_blocks["jawOpen"].keyframe_insert("value", frame=1)
    _line(scene, ("one", 5), head, 30)
    assert bpy.ops.streamtalker.generate_all(wait=True) == {"FINISHED"}
    assert key[keyframes.PROP_REPLACED] == "old take" and old.use_fake_user
    assert keyframes.EARLIER_TRACK not in key.animation_data.nla_tracks


def test_a_live_take_is_a_line_too(empty_scene, bpy_mod, toy_checkpoint):
    """Record places the take like Generate: an NLA strip at the frames it was recorded."""
    from test_blender_nothing_lost import _fake_live
    bpy = bpy_mod
    scene = _scene(bpy, toy_checkpoint)
    (head,) = _heads(bpy, 1)
    scene.frame_current = 40
    sess = _fake_live(bpy, head)
    name = sess.start_record(scene)
    sess.engine.feed(np.full((12, 52), 0.4, np.float32))
    sess.drain()
    assert sess.stop_record() == name
    key = head.data.shape_keys
    assert lines(key)[name] == ("StreamTalker", name, 40, 51, name)
    got = _check_plays(scene, {"Head": head}, {"Head": {name: (40, 51)}}, range(30, 60))
    assert np.allclose(got["Head"][10:22], 0.4)


# -- cases 5 and 6: strips as Blender plays them ---------------------------------------------

def _correlate(a: np.ndarray, b: np.ndarray, lag: int = 8) -> float:
    n = min(len(a), len(b)) - 2 * lag
    return max(float(np.corrcoef(a[lag:lag + n], b[lag + d:lag + d + n])[0, 1])
               for d in range(-lag, lag + 1))


def test_5_meta_strips_trims_mute_and_nesting_as_blender_plays_them(empty_scene, bpy_mod,
                                                                    toy_checkpoint):
    from streamtalker_addon import audio_source, planning
    bpy = bpy_mod
    scene = _scene(bpy, toy_checkpoint)
    (head,) = _heads(bpy, 1)
    st = add_strip(scene, "inner", speech_path(), 20, channel=3)
    other = add_strip(scene, "other", speech_path(CLIPS[1]), 300, channel=4)
    inner_meta = make_meta(scene, [st])
    outer = make_meta(scene, [inner_meta, other])
    set_trims(inner_meta, start=10)                       # the inner meta starts later
    set_trims(outer, end=(strip_frames(outer)[2] - 120))  # the outer one ends at frame 120
    assert strip_frames(outer)[2] == 120
    own = strip_frames(st)[1:]
    src = audio_source.strip_source(scene, st)
    assert (src.first_frame, src.first_frame + src.n_frames) == (30, 120)
    assert own[0] == 20 and own[1] > 120                  # its own handles say 20..end
    ours = src.read()
    mix = mixdown(scene, 1, 200)
    fps = 24
    lo, hi = (round((f - 1) * 16000 / fps) for f in (30, 120))
    spf = round(16000 / fps)            # silent a frame before and after (resampler ringing)
    assert np.abs(mix[:lo - spf]).max() < 1e-4 and np.abs(mix[hi + spf:]).max() < 1e-4
    assert _correlate(mix[lo:hi], ours) > 0.99
    # keyed frames are exactly those
    plan = planning.plan_generation(bpy.context, scene, st, head.name)
    assert plan.warnings == []
    inner_meta.mute = True
    plan = planning.plan_generation(bpy.context, scene, st, head.name)
    assert plan.warnings == ["strip 'inner' is silent in playback (its meta strip "
                             f"'{inner_meta.name}' is muted); it is keyed all the same"]
    assert np.abs(mixdown(scene, 1, 200)).max() < 1e-4
    inner_meta.mute = False
    off = "right_handle_offset" if "right_handle_offset" in outer.bl_rna.properties else \
        "frame_offset_end"
    set_trims(outer, end=getattr(outer, off) + strip_frames(outer)[2] - 25)
    assert strip_frames(outer)[2] == 25           # now it ends before the inner meta starts
    with pytest.raises(Exception, match=r"strip 'inner' plays nothing: its meta strip '.*' is "
                                        r"trimmed so that none of its frames"):
        audio_source.strip_source(scene, st)


def test_6_a_retimed_strip_is_keyed_over_all_it_plays(empty_scene, bpy_mod, toy_checkpoint):
    """A whole clip sped up 2x: Blender plays all of it, the last second of speech
    included, in half the frames; the line covers exactly those frames, with the audio
    Blender plays (its own mixdown), which is the clip at twice the speed."""
    import model_core as mc
    from streamtalker_addon import audio_source
    bpy = bpy_mod
    scene = _scene(bpy, toy_checkpoint)
    _heads(bpy, 1)
    clip = speech_path()
    st = add_strip(scene, "fast", clip, 10)
    _, first, end = strip_frames(st)              # 10 .. 10 + 7.1 s * 24
    other = add_strip(scene, "other", speech_path(CLIPS[1]), 1, channel=2)   # muted by the
    other.mute = True                                                       # render only
    speed_up(scene, st, 200)
    _, first2, end2 = strip_frames(st)
    assert first2 == first and abs((end2 - first2) - (end - first) / 2) <= 1
    src = audio_source.strip_source(scene, st)
    assert (src.first_frame, src.first_frame + src.n_frames) == (first2, end2)
    ours = src.read()
    assert other.mute                                      # every setting put back
    mix = mixdown(scene, first2, end2)
    assert _correlate(mix, ours, 2) > 0.999                # what Blender plays
    # it is the whole clip at twice the speed: its loudness follows the source's at 2x,
    # to the end
    raw = mc.load_audio(clip)
    env = lambda x, hop: np.sqrt(np.square(x[:len(x) // hop * hop]).reshape(-1, hop).mean(1))
    e1, e2 = env(ours, 160), env(raw, 320)        # 10 ms of it = 20 ms of the source
    assert abs(len(e1) - len(e2)) <= 3 and len(e1) > 300
    # (4.5 plays the retimed sound some 50 ms early: best of lags up to 100 ms)
    assert _correlate(e1, e2, 10) > 0.9
    assert _correlate(e1[-120:], e2[len(e2) - 120:len(e2)], 10) > 0.8   # the last second too


def test_a_crash_of_blenders_mixdown_is_survived(empty_scene, bpy_mod, toy_checkpoint,
                                                 tmp_path, monkeypatch):
    """Blender's mixdown of a retimed strip dies of SIGFPE now and then (audaspace's
    resampler); it runs in a child process: a child that crashes is tried again and the
    line gets the same audio; one that always crashes gives a clear error, and the scene
    (mutes, frame range) is as it was."""
    import signal
    from streamtalker_addon import audio_source
    bpy = bpy_mod
    scene = _scene(bpy, toy_checkpoint)
    _heads(bpy, 1)
    st = add_strip(scene, "fast", speech_path(), 10)
    other = add_strip(scene, "other", speech_path(CLIPS[1]), 1, channel=2)
    speed_up(scene, st, 200)
    want = audio_source.strip_source(scene, st).read()
    real = audio_source._mixdown_command
    runs = tmp_path / "runs"
    crash = (f"import os, signal, sys; open({str(runs)!r}, 'a').write('x'); "
             f"n = len(open({str(runs)!r}).read()); "
             f"os.kill(os.getpid(), signal.SIGFPE) if n <= int(sys.argv[1]) else None; "
             f"os.execv(sys.argv[2], sys.argv[2:])")

    def crashing(times):
        def cmd(*args):
            return [sys.executable, "-c", crash, str(times), *real(*args)]
        return cmd
    monkeypatch.setattr(audio_source, "_mixdown_command", crashing(2))
    got = audio_source.strip_source(scene, st).read()
    # two crashes, then at least two renders (until two agree; Blender's own crashes and
    # disagreements may add more)
    assert runs.read_text().startswith("xxx") and len(runs.read_text()) >= 4
    np.testing.assert_array_equal(got, want)
    runs.unlink()
    monkeypatch.setattr(audio_source, "_mixdown_command", crashing(99))
    before = (scene.frame_start, scene.frame_end, st.mute, other.mute)
    with pytest.raises(audio_source.SourceError,
                       match=f"fast.*retimed audio.*signal {int(signal.SIGFPE)}"):
        audio_source.strip_source(scene, st)
    assert len(runs.read_text()) == audio_source.MIXDOWN_TRIES
    assert (scene.frame_start, scene.frame_end, st.mute, other.mute) == before


def test_a_mixdown_that_differs_between_runs_is_rendered_until_two_renders_agree(
        empty_scene, bpy_mod, toy_checkpoint, tmp_path, monkeypatch):
    """Blender's mixdown of a retimed strip is not repeatable (a file of several strips on
    4.5 and 5.0: the sound shifted by up to 66 ms in some runs, almost silent in a few, which
    baked a silent line now and then): the line gets the render two children agree on,
    never a silent or shifted one; when no two agree, the one nearest the others."""
    import soundfile
    from streamtalker_addon import audio_source
    bpy = bpy_mod
    scene = _scene(bpy, toy_checkpoint)
    _heads(bpy, 1)
    st = add_strip(scene, "fast", speech_path(), 10)
    speed_up(scene, st, 200)
    p = audio_source.playback(scene, st)
    old = scene.frame_start, scene.frame_end
    scene.frame_start, scene.frame_end = p.first, p.end - 1
    mix, rate = audio_source.isolated_mixdown(scene, 48000)
    scene.frame_start, scene.frame_end = old
    assert np.sqrt(np.mean(mix ** 2)) > 0.01
    variants = {"real": mix, "silent": mix * 0.005, "silent2": mix * 0.004,
                "shifted": np.roll(mix, 654, axis=0), "louder": mix * 1.001,
                "softer": mix * 0.999}
    for name, x in variants.items():
        soundfile.write(tmp_path / f"{name}.wav", x, rate, subtype="FLOAT")
    runs = tmp_path / "runs"
    child = (f"import shutil, sys; open({str(runs)!r}, 'a').write('x'); "
             f"n = len(open({str(runs)!r}).read()); order = sys.argv[1].split(','); "
             f"shutil.copy({str(tmp_path)!r} + '/' + order[n - 1] + '.wav', sys.argv[-2])")

    def renders(*order):
        runs.unlink(missing_ok=True)
        monkeypatch.setattr(audio_source, "_mixdown_command", lambda blend, scene_name, out,
                            rate: [sys.executable, "-c", child, ",".join(order), out, "48000"])
        return audio_source.strip_source(scene, st).read()

    want = renders("real", "real")                 # what the line gets of the real render
    assert runs.read_text() == "xx"
    got = renders("silent", "real", "shifted", "real", "silent2", "shifted")
    assert runs.read_text() == "xxxx"              # the fourth agrees with the second
    np.testing.assert_array_equal(got, want)
    got = renders("silent", "real", "shifted", "silent2", "louder", "softer")
    assert len(runs.read_text()) == audio_source.MIXDOWN_RENDERS     # none agree
    assert _correlate(got, want, 0) > 0.9999           # one of the three near the real one
    assert abs(np.std(got) / np.std(want) - 1) < 0.002


def test_when_no_two_mixdowns_agree_an_almost_silent_one_is_never_taken():
    """``audio_source._medoid``: of renders that all differ, one near the others that is
    not almost silent, even where almost silent renders sit nearer the rest than shifted
    copies of the sound do (a plain medoid would take a silent one here); a single render
    is taken as it is; samples that are not finite do not break the choice."""
    from streamtalker_addon.audio_source import _medoid
    rng = np.random.default_rng(0)
    sound = rng.standard_normal((48000, 1)).astype(np.float32) * 0.1
    shifted = [np.roll(sound, k, axis=0) for k in (0, 3000, 7000)]    # uncorrelated copies
    silent = [sound * 0.004, sound * 0.005]
    renders = silent[:1] + shifted + silent[1:]
    plain = [sum(float(np.sum((a - b) ** 2)) for b in renders) for a in renders]
    assert int(np.argmin(plain)) in (0, 4)          # what a plain medoid would take
    assert _medoid(renders) in (1, 2, 3)
    assert _medoid([silent[0]]) == 0
    nan = shifted[0].copy()
    nan[100] = np.nan
    assert _medoid([nan, shifted[1], silent[0], shifted[2]]) in (0, 1, 3)


# -- the must-hold scene ---------------------------------------------------------------------

def test_three_heads_nine_lines_one_in_a_meta_one_retimed_baked_headless(
        empty_scene, bpy_mod, tmp_path, toy_checkpoint):
    """Lines alternate between heads A, B, C; line 5 sits in a trimmed meta strip, line 9
    (the whole clip) is sped up 2x. Baked headless, then the saved
    file evaluated frame by frame: each line moves its own head's mouth during its own
    frames and nowhere else."""
    bpy = bpy_mod
    scene = _scene(bpy, toy_checkpoint)
    heads = _heads(bpy, 3)
    strips = []
    for i in range(9):
        head = heads[i % 3]
        strips.append(_line(scene, (f"line{i + 1}", 1 + 45 * i), head, 30 if i < 8 else 999,
                            clip=i % 3, channel=1 + i % 3))
    meta = make_meta(scene, [strips[4]])
    set_trims(meta, start=4)                               # heard from 4 frames later
    speed_up(scene, strips[8], 200)                       # the whole clip, 2x
    scene.frame_end = strip_frames(strips[8])[2] + 10
    want = {}
    from streamtalker_addon import audio_source
    for i, st in enumerate(strips):
        p = audio_source.playback(scene, st)
        want.setdefault("ABC"[i % 3], {})[f"Scene/{st.name}"] = (p.first, p.end - 1)
    # the frames Blender itself plays each line at (its strips' final frames; line 5's
    # start clipped by its meta strip), not only what the add-on computes
    for i, st in enumerate(strips):
        _, first, end = strip_frames(st)
        assert want["ABC"[i % 3]][f"Scene/{st.name}"] == (first + 4 * (i == 4), end - 1), i
    assert want["B"]["Scene/line5"][0] == 1 + 45 * 4 + 4
    assert want["C"]["Scene/line9"][1] - want["C"]["Scene/line9"][0] < 100   # 7.1 s at 2x
    src, out = tmp_path / "dialogue.blend", tmp_path / "baked.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(src))

    r = _bake(src, "-o", out, "--checkpoint", toy_checkpoint)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "9 of 9 strip(s) baked" in r.stdout and r.stdout.count("NLA track 'StreamTalker'") == 9

    bpy.ops.wm.open_mainfile(filepath=str(out))
    scene = bpy.context.scene
    heads = {h: bpy.data.objects[h] for h in "ABC"}
    for h in "ABC":
        got = lines(heads[h].data.shape_keys)
        assert {ln: got[ln][2:4] for ln in got} == want[h]
    _check_plays(scene, heads, want, range(1, scene.frame_end + 1))


# -- case 15: the action being written ---------------------------------------------------------

def test_15_renaming_the_action_being_written_then_cancel_or_fail_leaves_nothing(
        facecap_scene, bpy_mod, monkeypatch, tmp_path):
    from bl_helpers import generate_until_keyed
    from streamtalker_addon import jobs, keyframes
    bpy = bpy_mod
    scene, head, strip = facecap_scene
    key = head.data.shape_keys
    prev = key.animation_data.action.name
    before = sorted(a.name for a in bpy.data.actions)

    job, gate = generate_until_keyed(bpy, monkeypatch)
    act = key.animation_data.action
    assert keyframes.PROP_PARTIAL in act                  # a file saved now says so
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "during.blend"), copy=True)
    act.name = "my take"                                  # renamed by the user meanwhile
    jobs.cancel_active("generate")
    gate.set()
    assert key.animation_data.action.name == prev
    assert sorted(a.name for a in bpy.data.actions) == before

    job, gate = generate_until_keyed(bpy, monkeypatch)
    key.animation_data.action.name = "renamed again"
    bpy.data.objects[head.name].data.shape_keys.key_blocks  # (still there)
    job._fail("disk on fire")                             # a failure now
    gate.set()
    assert key.animation_data.action.name == prev
    assert sorted(a.name for a in bpy.data.actions) == before

    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "during.blend"))
    partial = [a for a in bpy.data.actions if keyframes.PROP_PARTIAL in a]
    assert [a.name for a in partial] == ["speech"]
    assert "incomplete" in partial[0][keyframes.PROP_PARTIAL]
