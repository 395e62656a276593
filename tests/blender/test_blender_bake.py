"""Batch bake: ``python -m streamtalker_addon.bake IN.blend -o OUT.blend`` on a file with two
scenes and three strips, one of them broken."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from bl_helpers import (ROOT, add_strip, generated, import_facecap, keyed, set_trims, speech_path,
                        strip_frames)


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
    return {"hello": strip_frames(a)[1:]}


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
    assert "ok      Dialogue / hello -> HeadA: NLA track 'StreamTalker', strip 'hello'" in r.stdout
    assert "ok      Reply / reply -> HeadB: NLA track 'StreamTalker', strip 'reply'" in r.stdout
    assert "FAILED  Dialogue / broken: strip 'broken': its audio file is missing" in r.stdout
    assert "bake: failed: Dialogue / broken" in r.stderr
    assert _sha(src) == before  # IN untouched

    bpy.ops.wm.open_mainfile(filepath=str(out))
    assert "broken" not in bpy.data.actions
    head_a, head_b = bpy.data.objects["HeadA"], bpy.data.objects["HeadB"]
    assert generated(head_a.data.shape_keys).name == "hello"
    assert generated(head_b.data.shape_keys).name == "reply"
    assert bpy.data.actions["Key|Take 001|BaseLayer"].use_fake_user  # previous kept

    for scene, head, name in (("Dialogue", head_a, "hello"), ("Reply", head_b, "reply")):
        sc = bpy.data.scenes[scene]
        strip = sc.sequence_editor.strips_all[name]
        keys = keyed(head.data.shape_keys)
        assert len(keys) == 52
        frames = np.arange(*strip_frames(strip)[1:])
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


# -- issue 12: nothing the user has is replaced, no bake is lost, bad files are one line ----

def _one_scene(bpy, path: Path, strips, whole=()):
    """A .blend with the Face Cap head active and sound strips [(name, wav)] at 24 fps, each
    trimmed to about 2 s except those named in ``whole``."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = 24
    head = import_facecap(bpy)
    bpy.context.view_layer.objects.active = head
    from streamtalker_addon import compat
    for i, (name, wav) in enumerate(strips):
        st = add_strip(scene, name, wav, 1 + 200 * i, channel=1 + i)
        _, first, end = compat.strip_frames(st)
        if name not in whole:
            set_trims(st, end=max(0, end - first - 48))
    bpy.ops.wm.save_as_mainfile(filepath=str(path))


def _start_two_strip_bake(bpy, tmp_path: Path, checkpoint):
    """A scene of two strips (one short line, then the whole 7.1 s clip) saved as
    ``tmp_path/in.blend``, and ``python -m streamtalker_addon.bake`` started on it into
    ``tmp_path/out.blend``, its output piped; SIGINT back to its default in the child (a test
    run started in the background by a non-interactive shell ignores it, and the child would
    inherit that). Returns (src, out, the Popen)."""
    src, out = tmp_path / "in.blend", tmp_path / "out.blend"
    _one_scene(bpy, src, [("one", speech_path("sense_and_sensibility_01_austen_64kb-0880.wav")),
                          ("two", speech_path())], whole=("two",))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-u", "-m", "streamtalker_addon.bake", str(src), "-o",
                          str(out), "--checkpoint", str(checkpoint)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return src, out, p


def _when_strip_one_baked(p, act) -> list[str]:
    """Read the bake's output until it reports strip one baked, then call ``act()``;
    returns the lines read."""
    lines = []
    for line in p.stdout:
        lines.append(line)
        if line.startswith("  ok      Scene / one"):
            act()
            break
    return lines


def _one_line_error(r, code, match):
    assert r.returncode == code, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    err = r.stderr.strip()
    assert err.count("\n") == 0 and err.startswith("bake: error: "), err
    assert re.search(match, err), err
    assert "tmp" not in err.replace(str(Path(tempfile.gettempdir())), "") and "probe" not in err
    return err


def test_bake_never_replaces_without_force_and_keeps_a_good_bake(empty_scene, bpy_mod,
                                                                  tmp_path, toy_checkpoint):
    bpy = bpy_mod
    wav = speech_path()
    gone = tmp_path / "gone.wav"
    gone.write_bytes(wav.read_bytes())
    good, partial, failed = tmp_path / "good.blend", tmp_path / "partial.blend", \
        tmp_path / "failed.blend"
    _one_scene(bpy, good, [("hello", wav)])
    _one_scene(bpy, partial, [("hello", wav), ("broken", gone)])
    _one_scene(bpy, failed, [("broken", gone)])
    gone.unlink()
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "baked.blend"
    backup = outdir / "baked.blend1"
    backup.write_text("the user's own backup\n")
    ck = ("--checkpoint", toy_checkpoint)

    r = _bake(good, "-o", out, *ck)
    assert r.returncode == 0 and "saved" in r.stdout, r.stdout + r.stderr
    first = _sha(out)
    assert backup.read_text() == "the user's own backup\n"

    # an existing OUT: refused before any work without --force
    r = _bake(good, "-o", out, *ck)
    _one_line_error(r, 2, r"baked\.blend already exists: .*--force")
    assert " ok " not in r.stdout and _sha(out) == first

    # two failed bakes in a row (one strip of two fails) never replace the good bake: each
    # goes to a new recovery file beside it
    for n, name in ((1, "baked.partial.blend"), (2, "baked.partial-2.blend")):
        r = _bake(partial, "-o", out, "--force", *ck)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "Traceback" not in r.stdout + r.stderr
        assert f"{out} kept as it was, this partial bake saved as {outdir / name}" in r.stdout
        assert _sha(out) == first and (outdir / name).is_file()
    # every strip failed: nothing is written at all
    r = _bake(failed, "-o", out, "--force", *ck)
    assert r.returncode == 1 and "no strip baked; " + str(out) + " not written" in r.stderr
    assert _sha(out) == first

    # --force with a complete bake replaces OUT; Blender's .blend1 backup step never runs
    r = _bake(partial, "-o", out, "--force", "--scene", "Scene", *ck)  # still partial
    assert r.returncode == 1 and _sha(out) == first
    r = _bake(good, "-o", out, "--force", "--seed", 5, *ck)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _sha(out) != first
    assert backup.read_text() == "the user's own backup\n"
    assert sorted(p.name for p in outdir.iterdir()) == [
        "baked.blend", "baked.blend1", "baked.partial-2.blend", "baked.partial-3.blend",
        "baked.partial.blend"]  # no hidden temporary file left


def test_bake_checks_its_destination_before_any_work(empty_scene, bpy_mod, tmp_path):
    bpy = bpy_mod
    src = tmp_path / "in.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(src))
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    for args in (("-o", notes), ("-o", notes, "--force")):
        _one_line_error(_bake(src, *args), 2, r"the output must be a \.blend file: .*notes\.txt")
    assert notes.read_text() == "my notes\n"
    fake = tmp_path / "fake.blend"
    fake.write_text("not a blend\n")
    _one_line_error(_bake(src, "-o", fake, "--force"), 2,
                    r"fake\.blend exists and is not a Blender file")
    assert fake.read_text() == "not a blend\n"
    err = _one_line_error(_bake(src, "-o", notes / "sub" / "o.blend"), 2,
                          r"cannot write the output .*notes\.txt/sub/o\.blend")
    assert "streamtalker-probe" not in err


@pytest.mark.parametrize("kind", ["corrupt", "text", "empty", "truncated", "folder"])
def test_bake_on_a_bad_input_file_is_one_line(empty_scene, bpy_mod, tmp_path, kind):
    bpy = bpy_mod
    good = tmp_path / "good.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(good), compress=False)
    data = good.read_bytes()
    bad = tmp_path / f"{kind}.blend"
    if kind == "corrupt":
        b = bytearray(data)
        for i in range(2000, len(b), 97):
            b[i] ^= 0xFF
        bad.write_bytes(bytes(b))
    elif kind == "text":
        bad.write_text("hello\n" * 100)
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "truncated":
        bad.write_bytes(data[:len(data) // 2])
    else:
        bad.mkdir()
    out = tmp_path / "out.blend"
    match = {"text": "is not a Blender file", "empty": r"is empty \(0 bytes\)",
             "folder": "is a folder"}.get(kind, "it is damaged or not a Blender file")
    _one_line_error(_bake(bad, "-o", out), 2, match)
    assert not out.exists()


@pytest.mark.parametrize("signame,status,said", [("SIGINT", 130, "Ctrl+C"),
                                                  ("SIGTERM", 143, "SIGTERM"),
                                                  ("SIGHUP", 129, "SIGHUP")])
def test_ctrl_c_saves_the_strips_baked_so_far(empty_scene, bpy_mod, tmp_path, toy_checkpoint,
                                              signame, status, said):
    """Every stop signal is Ctrl+C (issue 21, case 3): SIGTERM (kill, a CI job cancelled)
    and SIGHUP (the terminal closed: here the output is gone too) save the strips baked so
    far exactly as Ctrl+C does."""
    bpy = bpy_mod
    # strip two is the whole 7.1 s clip, so Ctrl+C, sent when strip one is reported, lands
    # while it bakes
    src, out, p = _start_two_strip_bake(bpy, tmp_path, toy_checkpoint)

    def stop():
        if signame == "SIGHUP":         # the terminal is gone: printing fails from now
            p.stdout.close()
        p.send_signal(getattr(signal, signame))
    lines = _when_strip_one_baked(p, stop)
    if signame == "SIGHUP":
        rest, err = "", p.stderr.read()
        p.wait(300)
    else:
        rest, err = p.communicate(timeout=300)
    text = "".join(lines) + rest
    assert p.returncode == status, text + err
    assert "Traceback" not in text + err
    assert f"stopped by {said}" in err
    if signame != "SIGHUP":
        assert f"stopped ({said})" in text and "1 of 2 strip(s) baked" in text, text + err
    bpy.ops.wm.open_mainfile(filepath=str(out))
    assert "one" in bpy.data.actions and "two" not in bpy.data.actions



# -- issue 21: OUT claimed when written, a named fallback, one argument check, no leftovers --

def test_4_a_bake_never_replaces_an_out_written_meanwhile(empty_scene, bpy_mod, tmp_path,
                                                          toy_checkpoint):
    """Another bake (here: any program) writes OUT while this one runs: OUT is claimed when
    it is written, so the other file stays and this bake goes to a named recovery file."""
    bpy = bpy_mod
    src, out, p = _start_two_strip_bake(bpy, tmp_path, toy_checkpoint)
    # the other bake saved first
    lines = _when_strip_one_baked(p, lambda: out.write_bytes(src.read_bytes()))
    rest, err = p.communicate(timeout=300)
    text = "".join(lines) + rest
    assert p.returncode == 1, text + err
    rec = tmp_path / "out.recovered.blend"
    assert (f"{out} could not be written (another program wrote it during the bake), so the "
            f"bake was saved as {rec}") in text, text + err
    assert out.read_bytes() == src.read_bytes()        # the other bake's file, untouched
    bpy.ops.wm.open_mainfile(filepath=str(rec))
    assert {"one", "two"} <= set(bpy.data.actions.keys())
    assert sorted(x.name for x in tmp_path.iterdir()) == ["in.blend", "out.blend",
                                                          "out.recovered.blend"]


def test_13_out_on_a_full_disk_goes_to_a_named_fallback(empty_scene, bpy_mod, tmp_path,
                                                        toy_checkpoint, monkeypatch, capsys):
    from streamtalker_addon import bake
    bpy = bpy_mod
    src = tmp_path / "in.blend"
    _one_scene(bpy, src, [("hello", speech_path())])
    full = tmp_path / "full"
    full.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    real = bake._write_blend

    def write(path):
        if os.path.dirname(path) == str(full):        # OUT's disk is full
            Path(path + "@").write_bytes(b"BLENDER-half")
            raise OSError("No space left on device")
        real(path)
    monkeypatch.setattr(bake, "_write_blend", write)
    rc = bake.main([str(src), "-o", str(full / "baked.blend"), "--checkpoint",
                    str(toy_checkpoint)])
    out, err = capsys.readouterr()
    rec = cwd / "baked.recovered.blend"
    assert rc == 1, out + err
    assert (f"{full / 'baked.blend'} could not be written (cannot write "
            f"{full / 'baked.blend'}: No space left on device), so the bake was saved as "
            f"{rec}") in out, out + err
    assert list(full.iterdir()) == [] and rec.is_file()       # nothing half-written left
    bpy.ops.wm.open_mainfile(filepath=str(rec))
    assert "hello" in bpy.data.actions


def test_14_16_bake_and_generate_check_their_numbers_alike_and_leave_no_temp_folder(
        empty_scene, bpy_mod, tmp_path, toy_checkpoint, toy_model, capsys):
    """--seed and --threads: one check for the bake and `streamtalker generate`, before any
    work, exit 2 (the bake clamped -5 to 0 and failed on 3000000000, and a bad --threads
    failed each strip); a seed beyond the panel's 32 bits bakes as generate makes it. And
    no blender_XXXXXX folder is left in the temporary folder."""
    import model_core as mc
    from model_core.cli import main as cli_main
    bpy = bpy_mod
    src = tmp_path / "in.blend"
    _one_scene(bpy, src, [("hello", speech_path())])
    for args, name in ((("--seed", "-5"), "--seed"), (("--seed", "1e3"), "--seed"),
                       (("--threads", "0"), "--threads"), (("--threads", "99999"), "--threads")):
        r = _bake(src, "-o", tmp_path / "x.blend", "--checkpoint", toy_checkpoint, *args)
        assert r.returncode == 2 and name in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert " ok " not in r.stdout and not (tmp_path / "x.blend").exists()
        if args[1] != "1e3":      # the same sentence from `streamtalker generate`
            said = r.stderr.strip().removeprefix("bake: error: ")
            capsys.readouterr()
            rc = cli_main(["generate", str(speech_path()), "-o", str(tmp_path / "x.npz"),
                           "--checkpoint", str(toy_checkpoint), *args])
            err = capsys.readouterr().err.strip()
            assert rc == 2 and not (tmp_path / "x.npz").exists()
            assert err.endswith(said), (err, said)

    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), TMPDIR=str(tmpdir))
    r = subprocess.run([sys.executable, "-m", "streamtalker_addon.bake", str(src), "-o",
                        str(tmp_path / "big_seed.blend"), "--checkpoint", str(toy_checkpoint),
                        "--seed", "3000000000"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert list(tmpdir.iterdir()) == []            # no blender_XXXXXX left behind (case 16)
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "big_seed.blend"))
    scene = bpy.context.scene
    strip = scene.sequence_editor.strips_all["hello"]
    from streamtalker_addon import audio_source
    key = bpy.data.objects["head_geo"].data.shape_keys
    want = toy_model.generate(audio_source.strip_source(scene, strip).read(), 16000,
                              seed=3000000000, fps=24.0)
    np.testing.assert_allclose(keyed(key, generated(key))["jawOpen"][:, 1],
                               want[:, mc.ARKIT_52.index("jawOpen")], atol=1e-6)
