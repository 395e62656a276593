"""Issue 21, model_core side, fixed by rule: one output writer (model_core.io.files.atomic_write:
OUT claimed when written, every OSError names the path, no temporary file left, a named
fallback when OUT cannot be written), push shapes [N] or [N, C] only, decoded files mixed
with their channels known, clear messages for pipes, link loops, text files, cancelling
channels and several audio streams; an ONNX export folder is a checkpoint everywhere.
(Numbered cases of the issue; the live-take ones are in tests/test_live.py.)"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import model_core as mc
from model_core.cli import main
from model_core.io import files as files_mod
from model_core.io.audio import AudioWarning
from model_core.io.frames import FrameWriter
from realdata import real_speech_path

DEFAULT_ONNX = Path(mc.__file__).parent / "weights" / "default.onnx"


def _cli(capsys, *args):
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(err: str, *needles: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("streamtalker ") and ": error: " in lines[0], err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, err)
    return lines[0]


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# -- 7, 8: ONNX export folders ---------------------------------------------------------------

def test_7_a_damaged_export_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "broken.onnx"
    shutil.copytree(DEFAULT_ONNX, bad)
    (bad / "normalization.npz").write_bytes(b"")           # emptied by a failed copy
    rc, _, err = _cli(capsys, "generate", real_speech_path(), "-o", tmp_path / "a.npz",
                      "--checkpoint", bad)
    assert rc == 2
    _one_line_error(err, str(bad / "normalization.npz"), "re-export")
    assert not (tmp_path / "a.npz").exists()


def test_8_generate_takes_the_export_folder_load_model_takes(tmp_path, capsys):
    info = mc.describe_checkpoint(DEFAULT_ONNX)
    assert info.kind == "arkit" and info.channel_names == tuple(mc.ARKIT_52)
    out = tmp_path / "a.npz"
    rc, stdout, err = _cli(capsys, "generate", real_speech_path(), "-o", out, "--checkpoint",
                           DEFAULT_ONNX, "--seed", 2)
    assert rc == 0, err
    want = mc.load_model(DEFAULT_ONNX).generate(mc.load_audio(real_speech_path()), 16000, seed=2)
    assert np.array_equal(np.load(out)["weights"], want)
    with pytest.raises(ValueError, match="ONNX export.*onnx backend"):
        mc.load_model(DEFAULT_ONNX, backend="torch")


# -- 9: retarget's output ----------------------------------------------------------------------

def _rig(tmp_path):
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(30, 3)).astype(np.float32)
    deltas = rng.normal(size=(4, 30, 3)).astype(np.float32)
    w = rng.uniform(0, 1, size=(6, 4)).astype(np.float32)
    verts = basis + np.einsum("tk,kvc->tvc", w, deltas)
    np.save(tmp_path / "v.npy", verts)
    np.savez(tmp_path / "rig.npz", basis=basis, deltas=deltas)
    return w


def test_9_retarget_writes_npz_by_any_case_and_refuses_other_names(tmp_path, capsys):
    w = _rig(tmp_path)
    args = ("retarget", tmp_path / "v.npy", "--basis", tmp_path / "rig.npz")
    for name in ("w.csv", "w"):
        rc, _, err = _cli(capsys, *args, "-o", tmp_path / name)
        assert rc == 2
        _one_line_error(err, str(tmp_path / name), ".npz")
    rc, _, err = _cli(capsys, *args, "-o", tmp_path / "W.NPZ")
    assert rc == 0, err
    np.testing.assert_allclose(np.load(tmp_path / "W.NPZ")["weights"], w, atol=1e-4)
    assert _hidden(tmp_path) == []                      # no .w.csv.tmpPID.csv.npz


def test_the_one_writer_names_the_path_in_every_os_error_and_leaves_nothing(tmp_path):
    out = tmp_path / "face.npz"

    def full(tmp):      # disk full half-way: an OSError with no file name in it
        tmp.write_bytes(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError, match=rf"cannot write {out}: No space left on device") as e:
        files_mod.atomic_write(out, full)
    assert e.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []

    def other_name(tmp):   # a writer that adds a suffix (numpy.savez on a path)
        np.savez(tmp, a=np.zeros(3))
    with pytest.raises(OSError, match=str(tmp_path / "w.csv")):
        files_mod.atomic_write(tmp_path / "w.csv", other_name)
    assert list(tmp_path.iterdir()) == []


def test_4_out_is_claimed_when_it_is_written(tmp_path):
    """An output checked free at the start but written by another program meanwhile is not
    replaced (no --force); with --force it is."""
    out = tmp_path / "take.csv"
    w = FrameWriter(out, list(mc.ARKIT_52), 30.0)       # checked: free
    w.write(np.full((5, 52), 0.5, np.float32))
    out.write_text("another program's file\n")          # ... taken meanwhile
    with pytest.raises(FileExistsError, match=str(out)):
        w.commit()
    assert out.read_text() == "another program's file\n"
    rec = w.save_recovery()                             # the take is not lost
    assert rec.parent == tmp_path and rec.name.startswith("take.recovered-")
    assert len(rec.read_text().splitlines()) == 6 and _hidden(tmp_path) == []

    def claim(p, text):
        return files_mod.atomic_write(p, lambda tmp: tmp.write_text(text), overwrite=False)
    claim(tmp_path / "a.txt", "first")
    with pytest.raises(FileExistsError, match="already exists"):
        claim(tmp_path / "a.txt", "second")
    assert (tmp_path / "a.txt").read_text() == "first"
    files_mod.atomic_write(tmp_path / "a.txt", lambda tmp: tmp.write_text("forced"))
    assert (tmp_path / "a.txt").read_text() == "forced" and _hidden(tmp_path) == []


def test_the_fallback_file_goes_where_there_is_room(tmp_path, monkeypatch):
    """write_new_file: beside OUT, else the current folder, else the temporary folder; a
    full folder is passed over and named."""
    full = tmp_path / "full"
    full.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    (cwd / "bake.partial.blend").write_text("an earlier partial bake\n")

    def write(tmp):
        if tmp.parent == full:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
        tmp.write_text("the bake\n")
    p = files_mod.write_new_file(full / "bake.blend", write, "partial")
    assert p == cwd / "bake.partial-2.blend" and p.read_text() == "the bake\n"
    assert list(full.iterdir()) == [] and _hidden(cwd) == []
    monkeypatch.chdir(full)
    monkeypatch.setattr(files_mod.tempfile, "gettempdir", lambda: str(full))
    with pytest.raises(OSError, match=rf"nothing could be saved for .*bake\.blend.*{full}.*No "
                                      rf"space left"):
        files_mod.write_new_file(full / "bake.blend", write, "partial")


# -- 12: frames kept exactly when the temporary folder fills up --------------------------------

class _FullAfter:
    """An unbuffered temporary file on a disk that is full after ``limit`` bytes: the write
    that crosses it writes what fits, the next raises ENOSPC (as a real full disk does)."""

    def __init__(self, limit, make):
        self.f, self.limit = make(buffering=0), limit

    def write(self, data):
        room = self.limit - self.f.tell()
        if room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.f.write(bytes(data)[:room])

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_12_a_full_temporary_folder_keeps_exactly_the_frames_it_reports(tmp_path, monkeypatch):
    from model_core.io import frames as frames_mod
    real = frames_mod.tempfile.TemporaryFile
    monkeypatch.setattr(frames_mod.tempfile, "TemporaryFile", lambda **k: _FullAfter(60_000, real))
    out = tmp_path / "take.csv"
    w = FrameWriter(out, list(mc.ARKIT_52), 30.0)
    rng = np.random.default_rng(1)
    with pytest.raises(OSError, match="cannot keep the frames in a temporary file in .*No space"):
        for _ in range(200):
            w.write(rng.uniform(0, 1, (7, 52)).astype(np.float32))
    n = w.n_frames
    assert 0 < n < 1400 and n % 7 == 0
    w.commit()
    rows = out.read_text().splitlines()
    assert len(rows) == 1 + n                       # as many rows as reported, all whole
    assert all(r.count(",") == 2 + 52 + 9 - 1 for r in rows)


# -- 10, 11, 17, 18: audio in ------------------------------------------------------------------

def test_10_a_nine_channel_file_is_mixed_like_any_other(tmp_path, capsys):
    x = mc.load_audio(real_speech_path())[:32000]
    gains = np.linspace(0.2, 1.0, 9, dtype=np.float32)
    sf.write(tmp_path / "nine.wav", x[:, None] * gains, 16000, subtype="FLOAT")
    got = mc.load_audio(tmp_path / "nine.wav")
    np.testing.assert_allclose(got, x * gains.mean(), atol=1e-6)
    rc, _, err = _cli(capsys, "generate", tmp_path / "nine.wav", "-o", tmp_path / "a.npz",
                      "--checkpoint", DEFAULT_ONNX)
    assert rc == 0, err
    short = np.zeros((5, 9), np.float32)              # a block shorter than its channels
    sf.write(tmp_path / "short.wav", np.concatenate([x[:16003, None] * gains, short]), 16000,
             subtype="FLOAT")
    assert len(mc.load_audio(tmp_path / "short.wav")) == 16008


def test_11_push_takes_n_or_n_by_c_in_any_chunking(toy_model, speech):
    x = speech[:16000 * 2]
    stereo = np.stack([x, 0.5 * x], 1)
    want = toy_model.generate(stereo.mean(1), 16000, seed=1)      # 60 frames at 30 fps
    s = toy_model.stream(seed=1)
    frames = [s.push(stereo[i:i + 1]) for i in range(300)]        # one stereo sample a push
    frames += [s.push(stereo[i:i + 997]) for i in range(300, len(stereo), 997)]
    frames.append(s.flush())
    got = np.concatenate(frames)
    assert got.shape == want.shape == (60, 52)
    np.testing.assert_allclose(got, want, atol=1e-5)
    s = toy_model.stream()
    with pytest.raises(mc.AudioError, match=r"\[N\] \(mono\) or \[N, channels\].*\(2, 4, 100\)"):
        s.push(np.zeros((2, 4, 100), np.float32))             # never silently flattened
    with pytest.raises(mc.AudioError, match="channels first"):
        s.push(np.zeros((2, 16000), np.float32))


def test_17_pipes_link_loops_and_text_files_say_what_they_are(tmp_path, capsys):
    flac = tmp_path / "speech.flac"
    sf.write(flac, mc.load_audio(real_speech_path()), 16000)
    out = tmp_path / "piped.npz"
    env = dict(os.environ)
    # through a real pipe (`cat speech.flac | streamtalker generate /dev/stdin`): a file
    # handed as stdin is seekable and libsndfile reads it fine; a pipe is what lost sync
    r = subprocess.run([sys.executable, "-c", "import os, stat, sys; "
                        "assert stat.S_ISFIFO(os.fstat(0).st_mode); "
                        "from model_core.cli import main; sys.exit(main(sys.argv[1:]))",
                        "generate", "/dev/stdin", "-o", str(out), "--checkpoint",
                        str(DEFAULT_ONNX)], input=flac.read_bytes(), capture_output=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    direct = mc.load_model(DEFAULT_ONNX).generate(mc.load_audio(flac), 16000)
    assert np.array_equal(np.load(out)["weights"], direct)

    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    rc, _, err = _cli(capsys, "generate", tmp_path / "a", "-o", tmp_path / "x.npz")
    assert rc == 2
    _one_line_error(err, str(tmp_path / "a"), "symbolic link loop")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere.wav")
    rc, _, err = _cli(capsys, "generate", tmp_path / "gone", "-o", tmp_path / "x.npz")
    _one_line_error(err, "broken link", "nowhere.wav")

    text = tmp_path / "notes.mp3"
    text.write_text("hello, this is not a recording\n" * 200)
    r = subprocess.run([sys.executable, "-m", "model_core.cli", "generate", str(text), "-o",
                        str(tmp_path / "x.npz")], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 2
    _one_line_error(r.stderr, str(text), "a text file, not audio")   # no mpg123 noise
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(bytes(np.random.default_rng(0).integers(1, 255, 5000, dtype=np.uint8)))
    r = subprocess.run([sys.executable, "-m", "model_core.cli", "generate", str(noise), "-o",
                        str(tmp_path / "x.npz")], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 2
    _one_line_error(r.stderr, str(noise), "not MP3 audio")
    assert not (tmp_path / "x.npz").exists()


def test_18_cancelling_channels_and_extra_streams_are_warned(tmp_path, toy_model):
    x = mc.load_audio(real_speech_path())[:32000]
    sf.write(tmp_path / "anti.wav", np.stack([x, -x], 1), 16000, subtype="FLOAT")
    with pytest.warns(AudioWarning, match=r"anti\.wav: its channels cancel out .*mono"):
        mc.load_audio(tmp_path / "anti.wav")
    with pytest.warns(AudioWarning, match="channels cancel out"):
        toy_model.generate(np.stack([x, -x], 1), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # ordinary stereo: no warning
        sf.write(tmp_path / "ok.wav", np.stack([x, 0.3 * x], 1), 16000, subtype="FLOAT")
        mc.load_audio(tmp_path / "ok.wav")
        sf.write(tmp_path / "quiet.wav", np.zeros((16000, 2), np.float32), 16000)
        mc.load_audio(tmp_path / "quiet.wav")

    m4a = tmp_path / "two.m4a"
    sf.write(tmp_path / "en.wav", x, 16000)
    sf.write(tmp_path / "fr.wav", x[::-1].copy(), 16000)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(tmp_path / "en.wav"), "-i",
                    str(tmp_path / "fr.wav"), "-map", "0:a", "-map", "1:a", "-c:a", "aac",
                    "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra",
                    str(m4a)], check=True)
    with pytest.warns(AudioWarning, match=r"two\.m4a: it holds 2 audio streams \(eng; fra\); "
                                          r"the first is used"):
        mc.load_audio(m4a)
