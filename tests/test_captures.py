"""Animator captures -> training pairs (model_core.training.captures).

Fixtures are written here in the public layouts: a Live Link Face CSV take (60 fps timecodes
with sub-frame fractions, the 9 rotation columns), Live Link Face's take-folder export, the
.npz / .csv that ``streamtalker generate`` writes, generic ARKit tables; the speech is a real
CMU ARCTIC clip (inputs/speech/arctic/arctic_a0007.wav, 4.0 s, 16 kHz)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from model_core.face import ARKIT_52, LIVE_LINK_FACE_ROTATIONS, LIVE_LINK_FACE_SHAPES
from model_core.training.captures import (
    CaptureList, arkit_channel_index, arkit_name, load_capture_folder, load_capture_pair,
    read_arkit_table, read_live_link_csv, resample_frames,
)
from model_core.errors import AudioError
from model_core.io.frames import write_frames
from model_core.training.batches import Utterance

ROOT = Path(__file__).resolve().parents[1]
ARCTIC = ROOT / "inputs" / "speech" / "arctic" / "arctic_a0007.wav"
JAW = ARKIT_52.index("jawOpen")
BLINK_L = ARKIT_52.index("eyeBlinkLeft")
SMILE_R = ARKIT_52.index("mouthSmileRight")


def jaw_curve(t):
    return 0.4 + 0.35 * np.sin(2 * np.pi * 1.5 * np.asarray(t) + 0.3)


@pytest.fixture(scope="module")
def speech_wav() -> Path:
    if not ARCTIC.exists():
        pytest.fail(f"real test input {ARCTIC} is missing: run `.venv/bin/python "
                    f"tools/fetch_inputs.py` (the README's test command does this)")
    return ARCTIC


def copy_speech(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def write_llf_take(path: Path, seconds: float = 4.05, rate: int = 60, seed: int = 0,
                   start=(14, 3, 52, 28), frac0: float = 0.207, drop=(100, 101)):
    """A Live Link Face CSV as the app exports it: timecode HH:MM:SS:FF.fff counting `rate`
    frames a second (starting mid-second, with jittered sub-frame fractions and two dropped
    frames), BlendShapeCount 61, the 52 shapes in the app's order, 9 rotations (radians).
    Returns the true capture times (s since the first row) and the [T, 52] ARKit frames."""
    rng = np.random.default_rng(seed)
    h, m, s, f = start
    g0 = ((h * 60 + m) * 60 + s) * rate + f
    n = int(seconds * rate)
    lines = [",".join(["Timecode", "BlendShapeCount", *LIVE_LINK_FACE_SHAPES,
                       *LIVE_LINK_FACE_ROTATIONS])]
    times, frames = [], []
    t_first = None
    for k in range(n):
        if k in drop:
            continue
        frac = round(frac0 + (rng.uniform(-0.15, 0.15) if k else 0.0), 3)
        g = g0 + k
        t_abs = (g + frac) / rate
        t_first = t_abs if t_first is None else t_first
        t = t_abs - t_first
        w = {n_: float(rng.uniform(0, 0.05)) for n_ in ARKIT_52}
        w["jawOpen"] = float(jaw_curve(t))
        w["eyeBlinkLeft"] = float(0.5 + 0.5 * np.cos(2 * np.pi * 0.5 * t))
        frames.append([w[n_] for n_ in ARKIT_52])
        times.append(t)
        secs, ff = divmod(g, rate)
        hh, rem = divmod(secs, 3600)
        mm, ss = divmod(rem, 60)
        tc = f"{hh % 24:02d}:{mm:02d}:{ss:02d}:{ff:02d}.{int(round(frac * 1000)):03d}"
        shapes = [f"{w[x[0].lower() + x[1:]]:.8f}" for x in LIVE_LINK_FACE_SHAPES]
        rots = [f"{v:.6f}" for v in rng.uniform(-0.3, 0.3, 9)]
        lines.append(",".join([tc, "61", *shapes, *rots]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return np.array(times), np.array(frames, np.float32)


# --------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, want", [
    ("EyeBlinkLeft", "eyeBlinkLeft"), ("eyeBlinkLeft", "eyeBlinkLeft"),
    ("eyeBlink_L", "eyeBlinkLeft"), ("eye_blink_left", "eyeBlinkLeft"),
    ("eyeBlink.L", "eyeBlinkLeft"), ("EYEBLINKLEFT", "eyeBlinkLeft"),
    ("eyeblinkleft", "eyeBlinkLeft"), ("blendShape1.eyeBlinkLeft", "eyeBlinkLeft"),
    ("blendshapes.eyeBlink_R", "eyeBlinkRight"), ("blendShape1.mouthSmile_L", "mouthSmileLeft"),
    ("Face:jawOpen", "jawOpen"), ("BS_jawOpen", "jawOpen"), ("  JawOpen ", "jawOpen"),
    ("mouthSmile.R", "mouthSmileRight"), ("Mouth Smile Right", "mouthSmileRight"),
    ("L_eyeBlink", "eyeBlinkLeft"), ("mouthLeft", "mouthLeft"), ("jawRight", "jawRight"),
    ("cheekSquint_R", "cheekSquintRight"), ("tongue_out", "tongueOut"),
    ("browInnerUp", "browInnerUp"), ("eyeLookUp_L", "eyeLookUpLeft"),
    ("HeadYaw", None), ("LeftEyeYaw", None), ("Timecode", None), ("BlendShapeCount", None),
    ("smile", None), ("", None), ("blendShape1.", None),
])
def test_arkit_name_spellings(name, want):
    assert arkit_name(name) == want


def test_arkit_channel_index_reports_unknown_duplicates_missing():
    names = ["Timecode", "EyeBlinkLeft", "blendShape1.eyeBlink_R", "jawOpen", "HeadYaw",
             "JawOpen", "mystery"]
    idx = arkit_channel_index(names)
    assert isinstance(idx, dict)
    assert idx == {"EyeBlinkLeft": BLINK_L, "blendShape1.eyeBlink_R": ARKIT_52.index("eyeBlinkRight"),
                   "jawOpen": JAW}
    assert idx.unknown == ["Timecode", "HeadYaw", "mystery"]
    assert idx.duplicates == ["JawOpen"]
    assert len(idx.missing) == 49 and "jawOpen" not in idx.missing
    # every spelling family covers all 52
    for spell in (list(LIVE_LINK_FACE_SHAPES), list(ARKIT_52),
                  [n.replace("Left", "_L").replace("Right", "_R") for n in ARKIT_52],
                  [f"blendShape1.{n}" for n in ARKIT_52]):
        m = arkit_channel_index(spell)
        assert sorted(m.values()) == list(range(52)) and not m.unknown


# --------------------------------------------------------------------------------------
# Live Link Face CSV
# --------------------------------------------------------------------------------------

def test_live_link_csv_60fps_read(tmp_path):
    path = tmp_path / "take.csv"
    times, frames = write_llf_take(path)
    report = []
    got, t = read_live_link_csv(path, report=report)
    assert got.dtype == np.float32 and got.shape == (len(times), 52)
    assert t.dtype == np.float64 and t[0] == 0.0
    np.testing.assert_allclose(t, times, atol=1e-9)
    np.testing.assert_allclose(got, frames, atol=1e-6)
    assert report == []          # rotations, Timecode, BlendShapeCount are known, nothing missing


def test_live_link_csv_resampled_to_30fps_keeps_sinusoid(tmp_path, speech_wav):
    csv_path = tmp_path / "take01.csv"
    times, frames = write_llf_take(csv_path)
    wav = copy_speech(speech_wav, tmp_path / "take01.wav")
    utt = load_capture_pair(wav, csv_path, fps=30.0, style=1)
    assert isinstance(utt, Utterance) and utt.style == 1
    assert utt.samples.dtype == np.float32 and utt.samples.shape == (64000,)
    assert utt.frames.dtype == np.float32 and utt.frames.shape == (120, 52)
    grid = np.arange(120) / 30.0
    # the known curve survives: linear interpolation of a 1.5 Hz sinusoid sampled at 60 fps
    # errs < 2e-3, and < 1e-2 across the two dropped frames (rows 100, 101: 1.67-1.70 s)
    err = np.abs(utt.frames[:, JAW] - jaw_curve(grid))
    assert err[(grid < 1.6) | (grid > 1.75)].max() < 2e-3 and err.max() < 1e-2
    # and it is exactly linear interpolation of the captured rows at their true times
    np.testing.assert_allclose(utt.frames[:, JAW], np.interp(grid, times, frames[:, JAW]), atol=1e-6)
    assert utt.frames.min() >= 0.0 and utt.frames.max() <= 1.0


def test_write_frames_csv_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    frames = rng.uniform(0, 1, (75, 52)).astype(np.float32)
    write_frames(tmp_path / "x.csv", frames, list(ARKIT_52), 30.0)
    got, t = read_live_link_csv(tmp_path / "x.csv")
    np.testing.assert_allclose(got, frames, atol=1e-5)
    np.testing.assert_allclose(t, np.arange(75) / 30.0, atol=1e-9)     # 30 fps inferred
    got2, t2 = read_arkit_table(tmp_path / "x.csv")                     # dispatches on Timecode
    np.testing.assert_allclose(got2, frames, atol=1e-5)
    np.testing.assert_allclose(t2, t)


def test_live_link_csv_timing_rules(tmp_path):
    # 30 fps timecodes shorter than a second: ambiguous, default 60 unless fps is given
    rng = np.random.default_rng(1)
    frames = rng.uniform(0, 1, (20, 52)).astype(np.float32)
    write_frames(tmp_path / "short.csv", frames, list(ARKIT_52), 30.0)
    _, t60 = read_live_link_csv(tmp_path / "short.csv")
    _, t30 = read_live_link_csv(tmp_path / "short.csv", fps=30)
    np.testing.assert_allclose(t60, np.arange(20) / 60.0)
    np.testing.assert_allclose(t30, np.arange(20) / 30.0)
    # midnight wrap, 25 fps, drop-frame separator, extra and missing columns
    p = tmp_path / "wrap.csv"
    p.write_text("Timecode,BlendShapeCount,JawOpen,Notes,MouthSmileRight\n"
                 "23:59:59:23.500,2,0.5,a,1.7\n"
                 "23:59:59:24.000,2,0.6,b,-0.2\n"
                 "00:00:00;00.000,2,0.7,c,0.3\n"
                 "00:00:00:01,2,0.8,d,0.3\n")
    report = []
    f, t = read_live_link_csv(p, report=report)
    np.testing.assert_allclose(t, np.array([0.0, 0.5, 1.5, 2.5]) / 25.0, atol=1e-9)
    np.testing.assert_allclose(f[:, JAW], [0.5, 0.6, 0.7, 0.8], atol=1e-7)
    np.testing.assert_allclose(f[:, SMILE_R], [1.0, 0.0, 0.3, 0.3], atol=1e-7)   # clipped
    assert f[:, BLINK_L].tolist() == [0, 0, 0, 0]                                # missing -> 0
    assert any("Notes" in r for r in report) and any("missing" in r for r in report)


def _header():
    return ",".join(["Timecode", "BlendShapeCount", *LIVE_LINK_FACE_SHAPES, *LIVE_LINK_FACE_ROTATIONS])


def _row(tc, vals=None):
    vals = vals or ["0.1"] * 61
    return ",".join([tc, "61", *vals])


@pytest.mark.parametrize("bad_line, pattern", [
    (_row("00:00:01:02.000", ["0.1"] * 20 + ["oops"] + ["0.1"] * 40), r"line 4: column 'MouthPucker' holds 'oops'"),
    (_row("00:00:01:02.000", ["0.1"] * 5 + ["nan"] + ["0.1"] * 55), r"line 4: column 'EyeSquintLeft' is 'nan'"),
    (_row("0:00:01.2", None), r"line 4: timecode '0:00:01.2' is not HH:MM:SS:FF"),
    (_row("00:00:01:02.000", ["0.1"] * 30), r"line 4: 32 fields but the header has 63 columns"),
    (_row("00:00:00:00.000"), r"line 4: timecode '00:00:00:00.000' is earlier"),
    (_row("00:61:01:02.000"), r"line 4: .*minutes or seconds"),
])
def test_garbage_csv_errors_name_file_and_line(tmp_path, bad_line, pattern):
    p = tmp_path / "garbage.csv"
    p.write_text("\n".join([_header(), _row("00:00:01:00.000"), _row("00:00:01:01.000"),
                            bad_line, _row("00:00:01:03.000")]) + "\n")
    with pytest.raises(ValueError, match=r"garbage\.csv, " + pattern):
        read_live_link_csv(p)


def test_not_a_live_link_csv(tmp_path):
    p = tmp_path / "plain.csv"
    p.write_text("time,jawOpen\n0,0.1\n")
    with pytest.raises(ValueError, match=r"plain\.csv, line 1: no 'Timecode' column"):
        read_live_link_csv(p)
    q = tmp_path / "noshapes.csv"
    q.write_text("Timecode,BlendShapeCount,HeadYaw\n00:00:00:00.000,0,0.1\n")
    with pytest.raises(ValueError, match=r"noshapes\.csv, line 1: no ARKit blendshape columns"):
        read_live_link_csv(q)
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(ValueError, match=r"empty\.csv: the file is empty"):
        read_live_link_csv(tmp_path / "empty.csv")
    (tmp_path / "head.csv").write_text(_header() + "\n")
    with pytest.raises(ValueError, match=r"head\.csv: a header but no data rows"):
        read_live_link_csv(tmp_path / "head.csv")
    (tmp_path / "bin.csv").write_bytes(b"\x00\x01\x02RIFF")
    with pytest.raises(ValueError, match=r"bin\.csv: binary data"):
        read_live_link_csv(tmp_path / "bin.csv")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_live_link_csv(tmp_path / "nope.csv")


# --------------------------------------------------------------------------------------
# Generic tables, npz, json
# --------------------------------------------------------------------------------------

def test_generic_csv_tables(tmp_path):
    p = tmp_path / "faceit.csv"
    p.write_text("time_s;eyeBlink_L;jawOpen;mouthSmile_R;extra\n"
                 "0.0;0.1;0.2;0.3;x\n0.02;0.2;0.3;0.4;y\n0.05;0.3;0.4;0.5;z\n")
    report = []
    f, t = read_arkit_table(p, report=report)
    np.testing.assert_allclose(t, [0.0, 0.02, 0.05])
    np.testing.assert_allclose(f[:, [BLINK_L, JAW, SMILE_R]], [[.1, .2, .3], [.2, .3, .4], [.3, .4, .5]], atol=1e-7)
    assert any("extra" in r for r in report)

    ms = tmp_path / "ms.csv"
    ms.write_text("timestamp_ms,blendShape1.jawOpen\n1000,0.1\n1016.5,0.2\n")
    _, t = read_arkit_table(ms)
    np.testing.assert_allclose(t, [0.0, 0.0165])

    fr = tmp_path / "frames.csv"
    fr.write_text("frame,jawOpen\n10,0.1\n11,0.2\n12,0.3\n")
    with pytest.raises(ValueError, match=r"frames\.csv: frame column 'frame' and no fps given"):
        read_arkit_table(fr)
    f, timing = read_arkit_table(fr, fps=24)
    assert timing == 24.0 and f.shape == (3, 52)
    gap = tmp_path / "gap.csv"
    gap.write_text("frame,jawOpen\n0,0.1\n2,0.2\n3,0.3\n")
    _, timing = read_arkit_table(gap, fps=50)
    np.testing.assert_allclose(timing, [0.0, 0.04, 0.06])

    wrong = tmp_path / "secs.csv"
    wrong.write_text("time,jawOpen\n0,0.1\n33,0.2\n66,0.3\n")
    with pytest.raises(ValueError, match=r"secs\.csv: column 'time' advances 33 per row.*time_ms"):
        read_arkit_table(wrong)
    with pytest.raises(ValueError, match=r"x\.txt: unknown animation format"):
        read_arkit_table(tmp_path / "x.txt")


def test_npz_and_json_written_by_generate(tmp_path):
    rng = np.random.default_rng(5)
    frames = rng.uniform(0, 1, (40, 52)).astype(np.float32)
    write_frames(tmp_path / "a.npz", frames, list(ARKIT_52), 24.0)
    f, fps = read_arkit_table(tmp_path / "a.npz")
    assert fps == 24.0
    np.testing.assert_array_equal(f, frames)
    write_frames(tmp_path / "a.json", frames, list(ARKIT_52), 24.0)
    f, fps = read_arkit_table(tmp_path / "a.json")
    assert fps == 24.0
    np.testing.assert_allclose(f, frames, atol=1e-6)
    # names in another spelling and order, a subset; no names needs 52 channels
    names = ["jawOpen", "eyeBlink_L", "foo"]
    np.savez(tmp_path / "b.npz", weights=frames[:, :3], names=np.array(names), fps=np.float64(60))
    f, fps = read_arkit_table(tmp_path / "b.npz")
    assert fps == 60.0 and f[:, JAW].tolist() == frames[:, 0].tolist()
    assert f[:, BLINK_L].tolist() == frames[:, 1].tolist() and np.count_nonzero(f[:, 2:17]) == 0
    np.savez(tmp_path / "c.npz", weights=frames[:, :3])
    with pytest.raises(ValueError, match=r"c\.npz: 3 channels and no 'names'"):
        read_arkit_table(tmp_path / "c.npz")
    np.savez(tmp_path / "d.npz", weights=frames)
    with pytest.raises(ValueError, match=r"d\.npz: no 'fps' or 'times'.*pass fps="):
        read_arkit_table(tmp_path / "d.npz")
    assert read_arkit_table(tmp_path / "d.npz", fps=30)[1] == 30.0
    np.savez(tmp_path / "e.npz", frames=frames)
    with pytest.raises(ValueError, match=r"e\.npz: no 'weights' array \(found: frames\)"):
        read_arkit_table(tmp_path / "e.npz")
    write_frames(tmp_path / "lat.npz", frames[:, :8], [f"z{i}" for i in range(8)], 30.0, kind="latent")
    with pytest.raises(ValueError, match=r"lat\.npz: holds 'latent' channels"):
        read_arkit_table(tmp_path / "lat.npz")


def test_npz_pair_at_model_rate_and_60fps(tmp_path, speech_wav):
    wav = copy_speech(speech_wav, tmp_path / "take02.wav")
    rng = np.random.default_rng(7)
    frames = rng.uniform(0, 1, (120, 52)).astype(np.float32)
    write_frames(tmp_path / "take02.npz", frames, list(ARKIT_52), 30.0)
    utt = load_capture_pair(wav, tmp_path / "take02.npz", fps=30)
    np.testing.assert_allclose(utt.frames, frames, atol=1e-6)
    # 60 fps capture of a known curve -> 24 fps model grid (T = round(4.0 * 24) = 96)
    t60 = np.arange(240) / 60.0
    f60 = np.zeros((240, 52), np.float32)
    f60[:, JAW] = jaw_curve(t60)
    write_frames(tmp_path / "c60.npz", f60, list(ARKIT_52), 60.0)
    utt = load_capture_pair(wav, tmp_path / "c60.npz", fps=24)
    assert utt.frames.shape == (96, 52)
    assert np.abs(utt.frames[:, JAW] - jaw_curve(np.arange(96) / 24.0)).max() < 2e-3


def test_offset_and_mismatch(tmp_path, speech_wav):
    wav = copy_speech(speech_wav, tmp_path / "s.wav")
    frames = np.zeros((120, 52), np.float32)
    frames[60:, JAW] = 1.0                                  # step at 2.0 s
    write_frames(tmp_path / "step.npz", frames, list(ARKIT_52), 30.0)
    u0 = load_capture_pair(wav, tmp_path / "step.npz", fps=30)
    u1 = load_capture_pair(wav, tmp_path / "step.npz", fps=30, offset_s=0.5)
    u2 = load_capture_pair(wav, tmp_path / "step.npz", fps=30, offset_s=-0.5)
    assert int(np.argmax(u0.frames[:, JAW] > 0.5)) == 60
    assert int(np.argmax(u1.frames[:, JAW] > 0.5)) == 75
    assert int(np.argmax(u2.frames[:, JAW] > 0.5)) == 45
    assert u1.frames[0, JAW] == 0.0 and u2.frames[-1, JAW] == 1.0      # ends held
    write_frames(tmp_path / "short.npz", frames[:30], list(ARKIT_52), 30.0)
    with pytest.raises(ValueError, match=r"short\.npz spans 0\.00-1\.00 s .*/s\.wav lasts 4\.00 s"):
        load_capture_pair(wav, tmp_path / "short.npz", fps=30)
    u = load_capture_pair(wav, tmp_path / "short.npz", fps=30, max_mismatch_s=math.inf)
    assert u.frames.shape == (120, 52)
    with pytest.raises(AudioError, match=r"ffmpeg -i .*take\.mov.* -vn -ac 1"):
        load_capture_pair(tmp_path / "take.mov", tmp_path / "step.npz", fps=30)
    with pytest.raises(ValueError, match="style"):
        load_capture_pair(wav, tmp_path / "step.npz", fps=30, style=-1)


# --------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------

def test_resample_frames_rules():
    f = np.array([[0.0], [1.0], [3.0], [0.5]], np.float32)
    t = np.array([0.1, 0.2, 0.2, 0.3])                      # duplicate time -> averaged (2.0)
    out = resample_frames(f, t, 20.0, 8)                    # grid 0, .05, ..., .35
    np.testing.assert_allclose(out[:, 0], [0, 0, 0, 1.0, 2.0, 1.25, 0.5, 0.5], atol=1e-6)
    assert out.dtype == np.float32
    assert resample_frames(f[:1], t[:1], 30, 3).tolist() == [[0.0]] * 3
    assert resample_frames(f, t, 30, 0).shape == (0, 1)
    with pytest.raises(ValueError, match="non-decreasing"):
        resample_frames(f, t[::-1], 30, 3)
    with pytest.raises(ValueError, match="4 frames"):
        resample_frames(f, t[:3], 30, 3)
    with pytest.raises(ValueError, match="fps"):
        resample_frames(f, t, 0, 3)


# --------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------

def test_capture_folder_layouts(tmp_path, speech_wav):
    root = tmp_path / "captures"
    # flat pair: Live Link Face CSV + wav
    write_llf_take(root / "take01.csv", seed=1)
    copy_speech(speech_wav, root / "take01.wav")
    # npz written by `streamtalker generate`
    write_frames(root / "take02.npz", np.full((120, 52), 0.25, np.float32), list(ARKIT_52), 30.0)
    copy_speech(speech_wav, root / "take02.WAV")
    # Live Link Face take folder, audio extracted beside the .mov, app side files present
    take = root / "20240301_MySlate_3"
    write_llf_take(take / "MySlate_3_iPhone.csv", seed=2)
    (take / "MySlate_3_iPhone.mov").write_bytes(b"\x00\x00\x00\x14ftypqt  ")
    copy_speech(speech_wav, take / "MySlate_3_iPhone.wav")
    (take / "frame_log.csv").write_text("Timecode,Frame\n00:00:00:00,0\n")
    (take / "take.json").write_text("{}")
    (take / "thumbnail.jpg").write_bytes(b"\xff\xd8\xff")
    # audio and animation in separate folders
    write_frames(root / "anim" / "take04.csv", np.full((120, 52), 0.5, np.float32), list(ARKIT_52), 30.0)
    copy_speech(speech_wav, root / "audio" / "take04.wav")
    # unpaired
    copy_speech(speech_wav, root / "orphan.wav")
    write_frames(root / "lonely.csv", np.zeros((10, 52), np.float32), list(ARKIT_52), 30.0)

    utts = load_capture_folder(root, fps=30, style=2)
    assert isinstance(utts, CaptureList) and isinstance(utts, list) and len(utts) == 4
    assert [a.name for a, _ in utts.pairs] == ["MySlate_3_iPhone.wav", "take04.wav",
                                               "take01.wav", "take02.WAV"]
    for u in utts:
        assert isinstance(u, Utterance) and u.style == 2 and u.frames.shape == (120, 52)
    np.testing.assert_allclose(utts[3].frames, 0.25)
    np.testing.assert_allclose(utts[1].frames, 0.5)
    assert any("orphan.wav" in w and "skipped" in w for w in utts.warnings)
    assert any("lonely.csv" in w and "skipped" in w for w in utts.warnings)
    assert not any("frame_log" in w or "take.json" in w or ".mov" in w for w in utts.warnings)


def test_capture_folder_errors(tmp_path, speech_wav):
    # .mov only: clear error with the ffmpeg command
    take = tmp_path / "llf" / "20240301_MySlate_4"
    write_llf_take(take / "MySlate_4_iPhone.csv", seconds=1.5)
    (take / "MySlate_4_iPhone.mov").write_bytes(b"\x00\x00\x00\x14ftypqt  ")
    with pytest.raises(ValueError, match=r"MySlate_4_iPhone\.csv \(only MySlate_4_iPhone\.mov\)"
                                         r".*ffmpeg -i .*MySlate_4_iPhone\.mov.* -vn -ac 1 .*"
                                         r"MySlate_4_iPhone\.wav"):
        load_capture_folder(tmp_path / "llf", fps=30)
    # nothing pairs
    odd = tmp_path / "odd"
    copy_speech(speech_wav, odd / "a.wav")
    write_frames(odd / "b.csv", np.zeros((10, 52), np.float32), list(ARKIT_52), 30.0)
    with pytest.raises(ValueError, match=r"odd: found no \(audio, animation\) pairs.*Found: .*a\.wav"):
        load_capture_folder(odd, fps=30)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no audio or animation files"):
        load_capture_folder(empty, fps=30)
    # two animations for one take
    amb = tmp_path / "amb"
    copy_speech(speech_wav, amb / "t.wav")
    write_frames(amb / "t.csv", np.zeros((120, 52), np.float32), list(ARKIT_52), 30.0)
    write_frames(amb / "t.npz", np.zeros((120, 52), np.float32), list(ARKIT_52), 30.0)
    with pytest.raises(ValueError, match=r"2 animation files named 't' \(t\.csv, t\.npz\); keep one"):
        load_capture_folder(amb, fps=30)
    # a broken take names its file
    bad = tmp_path / "bad"
    copy_speech(speech_wav, bad / "t.wav")
    (bad / "t.csv").write_text(_header() + "\n" + _row("00:00:00:00.000", ["x"] * 61) + "\n")
    with pytest.raises(ValueError, match=r"t\.csv, line 2: column 'EyeBlinkLeft' holds 'x'"):
        load_capture_folder(bad, fps=30)
    with pytest.raises(FileNotFoundError):
        load_capture_folder(tmp_path / "missing", fps=30)
    with pytest.raises(NotADirectoryError):
        load_capture_folder(bad / "t.wav", fps=30)
