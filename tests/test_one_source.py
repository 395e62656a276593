"""One source for each rule (issue 24): the frame count and its inverse, the frame-rate
range, the CPU-thread rule, the backend choice, the face regions, the blink-temperature range,
the version string, the user-facing error type and the bundled model's hand-written
training record (each value it repeats equals its config). Each test fails if a second source of its
rule appears (a grep over the code, strings and comments left out) or if a caller stops using
the one function."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("model_core/**/*.py"), *ROOT.glob("streamtalker_addon/**/*.py"),
                  ROOT / "build_addon.py"])


def code_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, code)`` of a Python file's logical lines with strings and comments
    left out (so docstrings that state a rule do not count as a second source)."""
    toks = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    out, cur, start = [], [], None
    for t in toks:
        if t.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
            if cur:
                out.append((start, " ".join(cur)))
            cur, start = [], None
        elif t.type not in (tokenize.COMMENT, tokenize.STRING, tokenize.NL, tokenize.INDENT,
                            tokenize.DEDENT, tokenize.ENCODING) and not (
                t.type == getattr(tokenize, "FSTRING_MIDDLE", -1)):
            start = start or t.start[0]
            cur.append(t.string)
    return out


def grep(pattern: str, skip: tuple[str, ...] = ()) -> list[str]:
    """Code lines of the sources matching ``pattern`` (files in ``skip``, relative to the
    project, left out)."""
    rx = re.compile(pattern)
    hits = []
    for p in SOURCES:
        rel = p.relative_to(ROOT).as_posix()
        if rel in skip:
            continue
        hits += [f"{rel}:{n}: {c}" for n, c in code_lines(p) if rx.search(c)]
    return hits


# -- 1. frame count ---------------------------------------------------------------------------

#: A rounding of something times / over a frame rate: a frame count or its inverse.
FRAME_RULE = r"\b(round|floor)\s*\(.*[*/][\w.\s()]*fps|[*/][\w.\s()]*fps\b.*\+ 0\.5"


def test_frame_count_and_its_inverse_are_computed_only_in_face():
    """Frames for N samples and samples for N frames: face.sample_frames / frame_samples."""
    hits = grep(FRAME_RULE, skip=("model_core/face.py",))
    assert hits == [], ("a second frame-count rule (use model_core.face.sample_frames / "
                        "frame_samples):\n" + "\n".join(hits))


def test_frame_samples_is_the_inverse_of_sample_frames():
    from model_core.face import frame_samples, sample_frames
    for fps in (24, 25, 29.97, 30000 / 1001, 30, 60, 1, 240):
        for sr in (16000, 44100, 48000):
            for n in range(0, 2000, 13):
                assert sample_frames(frame_samples(n, sr, fps), sr, fps) == n
    assert frame_samples(3, 16000, 30) == 1600 and frame_samples(1, 16000, 30) == 533


# -- 2. frame rate ------------------------------------------------------------------------------

def test_one_frame_rate_range():
    """Every frame-rate check is face.check_fps: no other comparison of an fps with a bound."""
    hits = grep(r"\bfps\w*\s*(<=?|>=?)\s*[\d\w]|[\d)]\s*(<=?|>=?)\s*[\w.]*fps\b(?!_)",
                skip=("model_core/face.py",))
    hits += grep(r"check_number\s*\(\s*[\w.]*fps")
    assert hits == [], "a second frame-rate rule (use model_core.face.check_fps):\n" + "\n".join(hits)


@pytest.mark.parametrize("bad", [0, -1, 0.5, 241, float("nan"), float("inf"), "30", True, None])
def test_every_frame_rate_check_refuses_the_same_values(bad):
    from model_core.evaluation.metrics import check_fps as metrics_fps
    from model_core.face import check_fps
    from model_core.training.captures.tables import _check_fps
    for check in (check_fps, metrics_fps, _check_fps):
        with pytest.raises(ValueError, match=r"\[1, 240\]"):
            check(bad)


def test_the_frame_rate_range_ends_are_accepted():
    from model_core.face import MAX_FPS, MIN_FPS, check_fps
    assert (MIN_FPS, MAX_FPS) == (1.0, 240.0)
    assert check_fps(1) == 1.0 and check_fps(240) == 240.0 and check_fps(30000 / 1001) > 29.9


# -- 5. face regions ------------------------------------------------------------------------------

def test_face_regions_come_from_one_table():
    """Every channel set and region is derived from face.FACE_PARTS: no name prefix of a face
    part is tested anywhere else."""
    hits = grep(r"startswith\s*\(.*[\"'](jaw|mouth|brow|eye|eyeBlink|cheek\w*|nose\w*|tongue\w*)[\"']",
                skip=("model_core/face.py",))
    assert hits == [], "a second face-region rule (use model_core.face):\n" + "\n".join(hits)
    from model_core import face
    part = {n: face.face_part(n) for n in face.ARKIT_52}
    assert face.LIP_CHANNELS == tuple(n for n in face.ARKIT_52 if part[n] == "lips")
    assert face.MOUTH_CHANNELS == tuple(n for n in face.ARKIT_52 if face.region_of(n) == "lips")
    assert set(face.UPPER_FACE_CHANNELS) == set(face.ARKIT_52) - set(face.MOUTH_CHANNELS)
    assert set(face.UPPER_CHANNELS) == {n for n in face.ARKIT_52
                                        if face.region_of(n) in ("brows", "eyes", "blinks")}


def test_the_models_lip_set_is_unchanged():
    """guidance_channels="lips", the lip temperature and the lip loss act on jaw* and mouth*
    (27 channels), exactly as before the regions were one table (the bundled model's frames)."""
    from model_core import face
    assert face.LIP_CHANNELS == tuple(n for n in face.ARKIT_52 if n.startswith(("jaw", "mouth")))
    assert len(face.MOUTH_CHANNELS) == 29 and len(face.UPPER_FACE_CHANNELS) == 23


def test_lips_strength_scales_only_jaw_mouth_cheek_puff_and_tongue():
    import numpy as np

    from model_core.face import ARKIT_52, MOUTH_CHANNELS
    from streamtalker_addon import mapping
    values = np.full((2, 52), 0.5, np.float32)
    out = mapping.apply_strength(values, list(ARKIT_52), {"lips": 0.5})
    scaled = {n for n, v in zip(ARKIT_52, out[0]) if v != 0.5}
    assert scaled == set(MOUTH_CHANNELS)
    assert "noseSneerLeft" not in scaled and "cheekSquintLeft" not in scaled


# -- 6. temperature range -----------------------------------------------------------------------

def test_one_temperature_bound():
    """MAX_TEMPERATURE (runtime/config.py, re-exported by runtime/settings.py) is the only bound on a temperature: no number
    compared with a temperature or a Blink Rate elsewhere, no literal slider end."""
    hits = grep(r"temperature\w*\s*<=?\s*\d|min\s*\(\s*\d[\d.]*\s*,.*(temperature|blink_rate)"
                r"|blink_rate\b.*\bmax\s*=\s*\d", skip=("model_core/runtime/config.py",))
    assert hits == [], "a second temperature bound (use MAX_TEMPERATURE):\n" + "\n".join(hits)


def test_blink_rate_end_follows_max_temperature():
    import model_core
    from model_core.runtime.settings import (MAX_TEMPERATURE, max_temperature_factor,
                                             scale_temperature)
    default = model_core.describe_checkpoint(None).config.blink_temperature
    end = max_temperature_factor(default)
    assert end * default <= MAX_TEMPERATURE < (end + 0.1) * default
    assert scale_temperature(end + 0.1, default) == MAX_TEMPERATURE
    assert max_temperature_factor(1.0) == MAX_TEMPERATURE


# -- 7. version ---------------------------------------------------------------------------------

def test_one_version():
    """model_core.__version__ is the version: pyproject.toml reads it (dynamic), the add-on's
    manifest (a literal Blender reads) equals it, and build_addon refuses a manifest that
    differs."""
    import tomllib

    import model_core
    from addon_build.zips import library_version, manifest_info
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "model_core.__version__"}
    assert manifest_info()["version"] == model_core.__version__ == library_version()
    hits = grep(r"__version__\s*=", skip=("model_core/__init__.py",))
    assert hits == [], "\n".join(hits)


def test_build_refuses_a_manifest_of_another_version(tmp_path, monkeypatch):
    from addon_build import zips
    from addon_build.common import MANIFEST, BuildError
    other = tmp_path / "blender_manifest.toml"
    other.write_text(MANIFEST.read_text(encoding="utf-8").replace(
        f'version = "{zips.library_version()}"', 'version = "9.9.9"'), encoding="utf-8")
    monkeypatch.setattr(zips, "MANIFEST", other)
    with pytest.raises(BuildError, match="9.9.9"):
        zips.manifest_info(other)


# -- 3. CPU threads -----------------------------------------------------------------------------

def test_one_thread_rule():
    """Only runtime/device.py reads OMP_NUM_THREADS or counts the cores for the model (the
    TTS helper's OMP_NUM_THREADS="1" for its own child processes is not a model rule)."""
    hits = grep(r"OMP_NUM_THREADS|cpu_count\s*\(|sched_getaffinity",
                skip=("model_core/runtime/device.py", "model_core/training/tts/helper.py"))
    assert hits == [], "a second CPU-thread rule (use model_core.runtime.device):\n" + \
        "\n".join(hits)


def test_automatic_threads_are_device_default_threads(monkeypatch):
    from model_core.runtime import device
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert device.default_threads() == device.DEFAULT_THREADS == 1
    assert device.check_threads(None) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1000")
    assert device.default_threads() == device.available_cores()
    monkeypatch.setenv("OMP_NUM_THREADS", "nonsense")
    assert device.default_threads() == 1


def test_the_addons_automatic_threads_are_the_librarys(monkeypatch):
    """The preference "CPU Threads" at 0 is device.default_threads (bpy-free core.py)."""
    from model_core.runtime import device
    from streamtalker_addon import core
    monkeypatch.setattr(device, "default_threads", lambda: 1)
    assert core.set_threads(0) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert core.set_threads(0) == device.check_threads(None) == 1
    with pytest.raises(ValueError, match="CPU Threads"):
        core.set_threads(-1)


# -- 4. backend ---------------------------------------------------------------------------------

def test_one_torch_available():
    """Only runtime/backends.py asks whether torch is there; the add-on calls it."""
    hits = grep(r"find_spec\s*\(\s*\"torch\"|def torch_available",
                skip=("model_core/runtime/backends.py", "streamtalker_addon/core.py"))
    assert hits == [], "\n".join(hits)
    assert grep(r"find_spec", skip=("model_core/runtime/backends.py",)) == [] or all(
        "torch" not in h for h in grep(r"find_spec"))


def test_the_addons_torch_available_is_the_librarys(monkeypatch):
    from model_core.runtime import backends
    from streamtalker_addon import core
    monkeypatch.setattr(backends, "torch_available", lambda: False)
    assert core.torch_available() is False
    monkeypatch.setattr(backends, "torch_available", lambda: True)
    assert core.torch_available() is True


# -- 8. errors ----------------------------------------------------------------------------------

def test_one_backend_default(monkeypatch, tmp_path):
    """One default backend rule (torch for CUDA, onnx on the CPU, whatever is installed), and
    the add-on's choice is the library's: no second rule that prefers torch wherever it is
    installed."""
    import shutil
    from model_core.runtime import backends
    from model_core.runtime.checkpoint import DEFAULT_CHECKPOINT
    from streamtalker_addon import core
    fresh = tmp_path / "fresh.safetensors"          # a checkpoint with no export beside it
    shutil.copy(DEFAULT_CHECKPOINT, fresh)
    shutil.copy(DEFAULT_CHECKPOINT.with_suffix(".json"), fresh.with_suffix(".json"))
    for available in (True, False):
        monkeypatch.setattr(backends, "torch_available", lambda: available)
        for path in (None, fresh):
            assert backends.resolve_backend(None, "cpu", path) == "onnx"
            assert core.backend_for("cpu", path) == "onnx"
    monkeypatch.setattr(backends, "torch_available", lambda: True)
    for device in ("cuda", "cuda:1"):
        assert backends.resolve_backend(None, device) == core.backend_for(device) == "torch"
    hits = grep(r"\"torch\"\s+if\s+torch_available\(\)")
    assert hits == [], "\n".join(hits)


def test_user_errors_are_streamtalker_errors_and_their_builtin(tmp_path):
    """Setting, file-exists and file-write errors are StreamTalkerError (one line at the
    boundaries) and still the builtin type callers catch."""
    from model_core.errors import OutputExistsError, SettingError, StreamTalkerError
    from model_core.io.files import check_writable
    from model_core.runtime.device import check_threads
    from model_core.runtime.settings import SamplerSettings
    f = tmp_path / "a.npz"
    f.write_bytes(b"x")
    with pytest.raises(OutputExistsError) as e:
        check_writable(f)
    assert isinstance(e.value, FileExistsError) and isinstance(e.value, StreamTalkerError)
    with pytest.raises(IsADirectoryError) as e:
        check_writable(tmp_path)
    assert isinstance(e.value, StreamTalkerError)
    for bad in (lambda: SamplerSettings(steps=0), lambda: check_threads(0),
                lambda: SamplerSettings(preset="x")):
        with pytest.raises(SettingError) as e:
            bad()
        assert isinstance(e.value, ValueError)


def test_cli_shows_a_traceback_for_a_bug_and_one_line_for_a_bad_argument(monkeypatch, capsys,
                                                                          tmp_path):
    """A programming bug (ZeroDivisionError in a command) propagates with its traceback (the
    interpreter exits 1); a bad argument is one line `streamtalker X: error: ...`, exit 2."""
    from model_core import cli

    def bug(args):
        return 1 / 0
    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_func(parser(), bug))
    with pytest.raises(ZeroDivisionError):
        cli.main(["generate", str(tmp_path / "a.wav"), "-o", str(tmp_path / "o.npz")])
    monkeypatch.setattr(cli, "build_parser", parser)
    assert cli.main(["generate", str(tmp_path / "a.wav"), "-o", str(tmp_path / "o.npz"),
                     "--threads", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("streamtalker generate: error: ")
    assert "threads" in err[0]


def _with_func(parser, func):
    """``parser`` whose parsed arguments run ``func``."""
    parse = parser.parse_args

    def parse_args(argv=None):
        args = parse(argv)
        args.func = func
        return args
    parser.parse_args = parse_args
    return parser


@pytest.mark.parametrize("bug", [KeyError("weights"), TypeError("unsupported operand"),
                                 ValueError("an internal shape check"), OSError("internal")])
def test_cli_shows_the_traceback_of_a_builtin_error(monkeypatch, bug, tmp_path):
    """Issue 24: a built-in exception from a command (ValueError and OSError included) is a
    bug, never a one-line message: it propagates (the interpreter prints its traceback)."""
    from model_core import cli

    def command(args):
        raise bug
    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_func(parser(), command))
    with pytest.raises(type(bug)):
        cli.main(["generate", str(tmp_path / "a.wav"), "-o", str(tmp_path / "o.npz")])


def test_cli_bad_inputs_are_one_line(capsys, tmp_path):
    """A missing audio file, an existing output, a bad setting: one line, exit status 2."""
    from model_core import cli
    out = tmp_path / "o.npz"
    out.write_bytes(b"x")
    for argv, words in (
            (["generate", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "n.npz")],
             "not found"),
            (["generate", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "n.xyz")],
             "unknown output format"),
            (["generate", str(tmp_path / "missing.wav"), "-o", str(out), "--seed", "-1"],
             "seed")):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("streamtalker generate: error: "), err
        assert words in err[0], err


def test_the_default_models_training_record_repeats_its_configs_exactly():
    """default.json's training record is written by hand at a release and repeats values
    its configs and its own settings hold (v4.5's record once said 24x and 0.8 where the
    network was trained at 32x and released at 0.7): each repeated value must equal its
    source, the stage's config as `streamtalker train` resolves it, or the json's own
    setting."""
    import json

    from model_core.training.trainer import read_train_config

    cfg = json.loads((ROOT / "model_core/weights/default.json").read_text(encoding="utf-8"))
    rec = cfg["training"]
    stages = rec["stages"]
    assert stages and rec["steps"] == stages[-1]["steps"]
    for st in stages:
        c = read_train_config(ROOT / st["config"])
        train, model, where = c["train"], c["model"], st["config"]
        assert (st["lr"], st["batch_size"], st["of_schedule"]) == \
            (train["lr"], train["batch_size"], train["steps"]), where
        assert 0 < st["steps"] <= train["steps"], where
        if train["stop_at"]:
            assert st["steps"] == train["stop_at"], where
        dist = st.get("guidance_distilled")
        if dist is not None:
            assert dist == {"guidance": train["distill_guidance"],
                            "guidance_channels": train["distill_guidance_channels"],
                            "history": train["distill_history"],
                            "closure_guidance": train["distill_closure_guidance"],
                            "open_floor": train["distill_open_floor"]}, where
        if "rollout" in st:
            assert st["rollout"] == {k: model[k] for k in ("rollout_chunks",
                                                           "rollout_fraction")}, where
        if "closure_loss_weight" in st:
            assert st["closure_loss_weight"] == model["closure_loss_weight"], where
    last = read_train_config(ROOT / stages[-1]["config"])["model"]
    for key in ("closure_loss_weight", "rollout_chunks", "rollout_fraction", "sample_steps"):
        assert cfg[key] == last[key], key          # the network is the last stage's
    sampler = rec["sampler"]
    assert sampler["ddim_steps"] == cfg["sample_steps"]
    for key in ("eta", "guidance", "lip_temperature", "chunk_frames", "lookahead_ms",
                "live_chunk_frames", "live_lookahead_ms", "blink_temperature",
                "live_blink_temperature"):
        assert sampler[key] == cfg[key], key
