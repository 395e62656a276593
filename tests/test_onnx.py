"""Issue 14: the onnxruntime backend. Torch-free inference (torch made unimportable in a
subprocess), parity with the torch backend on real speech (same seed, same numpy noise),
streaming in any chunking bit for bit, ``streamtalker export-onnx``, where exports are found
and the errors when they are not."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import model_core as mc
from model_core.cli import main
from model_core.errors import CheckpointError
from model_core.runtime.checkpoint import DEFAULT_CHECKPOINT
from model_core.runtime.driver import Session, run
from model_core.runtime.onnx_files import (EXPORT_FILES, checkpoint_digest, export_dir_for,
                                           read_export_meta)
from realdata import INPUTS, real_speech_path
from tiers import first_fast

ROOT = Path(__file__).resolve().parents[1]

#: Installed before anything else in the subprocess: every ``import torch`` (and torch.*)
#: raises ImportError, as where torch is not installed.
BLOCK_TORCH = textwrap.dedent("""
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                # (as a real missing torch: ModuleNotFoundError naming the top module)
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)",
                                          name=name.split(".")[0])
            return None
    sys.meta_path.insert(0, _NoTorch())
""")

#: Real clips the parity test runs on (inputs/speech; tools/fetch_inputs.py).
PARITY_CLIPS = ["librivox/sense_and_sensibility_01_austen_64kb-0870.wav",
                "arctic/arctic_a0007.wav", "cards/002.wav", "forever/input_4_16k.wav"]


def without_torch(code: str, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python with torch unimportable; returns the finished process."""
    script = tmp_path / "no_torch_script.py"
    script.write_text(BLOCK_TORCH + textwrap.dedent(code))
    e = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **env)
    return subprocess.run([sys.executable, str(script)], cwd=ROOT, env=e, capture_output=True,
                          text=True, timeout=300)


def copy_checkpoint(dst: Path, name: str = "mine") -> Path:
    """The bundled default copied to ``dst/NAME.safetensors`` (+ .json), without its export."""
    w = dst / f"{name}.safetensors"
    shutil.copy(DEFAULT_CHECKPOINT, w)
    shutil.copy(DEFAULT_CHECKPOINT.with_suffix(".json"), dst / f"{name}.json")
    return w


@pytest.fixture(scope="module")
def onnx_model():
    return mc.load_model(backend="onnx")


@pytest.fixture(scope="module")
def torch_model():
    return mc.load_model(backend="torch")


def test_torch_unimportable_picks_onnx_and_generates(tmp_path):
    clip = real_speech_path()
    r = without_torch(f"""
        import sys
        import numpy as np
        import model_core
        m = model_core.load_model()
        from model_core.runtime.driver import Session
        a = model_core.load_audio({str(clip)!r})
        f = m.generate(a, 16000)
        s = m.stream(seed=1, fps=60)
        assert isinstance(s, Session)
        g = model_core.run(s, a, 4000)
        np.save({str(tmp_path / "f.npy")!r}, f)
        print(type(m).__name__, m.backend, f.shape, g.shape, f.dtype, s.latency_ms,
              len(s.channel_names))
        print("torch modules:", sorted(k for k in sys.modules if k.split(".")[0] == "torch"))
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    first, mods = r.stdout.strip().splitlines()
    assert first == "OnnxModel onnx (213, 52) (426, 52) float32 300.0 52", first
    assert mods == "torch modules: []"
    f = np.load(tmp_path / "f.npy")
    assert np.isfinite(f).all() and f.min() >= 0 and f.max() <= 1
    assert f[:, mc.ARKIT_52.index("jawOpen")].max() > 0.1      # it speaks


def test_frames_are_the_same_bits_with_any_number_of_blas_threads(tmp_path):
    """The CLI (often under OMP_NUM_THREADS=1) and Blender (numpy's BLAS on every core) give
    the same frames for the same clip and seed: the log-mel front end does not round with the
    number of BLAS threads (a multi-threaded sgemm does)."""
    clip = real_speech_path()
    for n in ("1", "2"):
        r = without_torch(f"""
            import numpy as np, model_core
            from model_core.runtime.features import LogMel
            a = model_core.load_audio({str(clip)!r})
            np.save({str(tmp_path / f"mel{n}.npy")!r}, LogMel().whole(a, len(a) // 160))
            np.save({str(tmp_path / f"f{n}.npy")!r}, model_core.load_model().generate(a, 16000))
        """, tmp_path, OPENBLAS_NUM_THREADS=n)
        assert r.returncode == 0, r.stderr
    for name in ("mel", "f"):
        one, two = np.load(tmp_path / f"{name}1.npy"), np.load(tmp_path / f"{name}2.npy")
        assert one.shape == two.shape and np.array_equal(one, two), name


def test_cli_generate_without_torch(tmp_path):
    out = tmp_path / "a.csv"
    r = without_torch(f"""
        import sys
        from model_core.cli import main
        sys.exit(main(["generate", {str(real_speech_path())!r}, "-o", {str(out)!r}]))
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "onnx backend" in r.stdout and out.is_file()


def test_cli_commands_that_need_torch_say_how_to_install_it(tmp_path):
    """torch is an optional dependency (pyproject extras): train and export-onnx without it
    end with one line naming the CPU build to install, not a traceback."""
    w = copy_checkpoint(tmp_path)
    r = without_torch(f"""
        from model_core.cli import main
        print(main(["export-onnx", {str(w)!r}, "-o", {str(tmp_path / "x.onnx")!r}]))
        print(main(["train", "configs/v4/stage1-multilingual.toml"]))
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2", "2"]
    lines = r.stderr.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["streamtalker export-onnx", "streamtalker train"]
    for ln in lines:
        assert "needs PyTorch" in ln and "pip install torch==2.13.0 --index-url" in ln, ln
    assert not (tmp_path / "x.onnx").exists()


def test_clear_error_without_export_and_without_torch(tmp_path):
    w = copy_checkpoint(tmp_path)
    r = without_torch(f"""
        import model_core
        from model_core.errors import CheckpointError
        for backend in (None, "onnx"):
            try:
                model_core.load_model({str(w)!r}, backend=backend)
            except CheckpointError as e:
                print(e)
            else:
                raise SystemExit("no error")
    """, tmp_path, STREAMTALKER_CACHE=str(tmp_path / "cache"))   # no export made earlier
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2
    for msg in lines:
        assert f"streamtalker export-onnx {w} -o {tmp_path / 'mine.onnx'}" in msg
        assert "torch is not installed" in msg
    # a stale export (made from another version of the checkpoint) is refused too
    shutil.copytree(export_dir_for(None), tmp_path / "mine.onnx")
    r = without_torch(f"""
        import model_core
        model_core.load_model({str(w)!r}, backend="onnx")
    """, tmp_path)
    assert r.returncode == 0, r.stderr        # same weights and config: the export is current
    cfg = json.loads((tmp_path / "mine.json").read_text())
    cfg["training"]["note"] = "retrained"
    (tmp_path / "mine.json").write_text(json.dumps(cfg))
    r = without_torch(f"""
        import model_core
        model_core.load_model({str(w)!r}, backend="onnx")
    """, tmp_path)
    assert r.returncode != 0 and "another version" in r.stderr and "--force" in r.stderr


def test_bundled_export_is_current():
    meta = read_export_meta(export_dir_for(None))
    assert meta["opset"] == 17
    assert meta["source"]["sha256"] == checkpoint_digest(None), (
        "model_core/weights/default.onnx was exported from another default.safetensors: "
        "re-export it with `streamtalker export-onnx model_core/weights/default.safetensors "
        "-o model_core/weights/default.onnx --force`")


@pytest.mark.parametrize("clip", first_fast(PARITY_CLIPS))
def test_onnx_frames_equal_torch_frames(onnx_model, torch_model, clip):
    """The two backends animate a real clip alike: float rounding only. The jaw and mouth
    agree to 1e-3 (weights); the upper face to 5e-3, because the autoregressive history
    amplifies rounding where a blink starts (v3.4, cards/002, seed 3: 1.4e-3 on
    eyeBlinkRight at the blink's first frame, under 1e-6 before it)."""
    from model_core.face import is_lip_channel
    lips = np.array([is_lip_channel(n) for n in torch_model.channel_names])
    p = INPUTS / "speech" / clip
    if not p.exists():
        pytest.fail(f"real test input {p} is missing: run .venv/bin/python tools/fetch_inputs.py")
    a = mc.load_audio(p)
    ft = torch_model.generate(a, 16000, seed=3)
    fo = onnx_model.generate(a, 16000, seed=3)
    assert fo.shape == ft.shape == (mc.face.sample_frames(len(a), 16000, 30.0), 52)
    d = np.abs(fo - ft)
    assert d[:, lips].max() <= 1e-3 and d.max() <= 5e-3 and d.mean() <= 1e-5
    # another seed gives other frames (the comparison can fail)
    assert np.abs(onnx_model.generate(a, 16000, seed=4) - ft).max() > 1e-2


def test_parity_with_guidance_eta_and_chunk_frames(onnx_model, torch_model, speech):
    kw = dict(seed=7, guidance=2.0, eta=0.5, chunk_frames=5, steps=6, lip_temperature=1.0)
    ft = torch_model.generate(speech[:16000 * 3], 16000, **kw)
    fo = onnx_model.generate(speech[:16000 * 3], 16000, **kw)
    assert np.abs(fo - ft).max() <= 1e-3


@pytest.mark.parametrize("sizes", first_fast([[1, 7, 160, 333], [16000], [4801, 1]]))
def test_any_chunking_is_bit_identical_on_onnx(onnx_model, speech, sizes):
    x = speech[:16000 * 4]
    whole = onnx_model.generate(x, 16000, seed=5, eta=0.3, guidance=1.5)
    s = onnx_model.stream(seed=5, eta=0.3, guidance=1.5)
    out, i, k = [], 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        out.append(s.push(x[i:i + n]))
        i, k = i + n, k + 1
    out.append(s.flush())
    assert np.array_equal(np.concatenate(out), whole)


def test_same_api_and_settings_checked(onnx_model, torch_model):
    s = onnx_model.stream()
    assert isinstance(s, Session)
    assert s.latency_ms == torch_model.stream().latency_ms == onnx_model.latency_ms()
    assert s.channel_names == torch_model.channel_names and s.fps == 30.0
    assert onnx_model.config.to_dict() == torch_model.config.to_dict()
    with pytest.raises(ValueError, match="style"):
        onnx_model.stream(style=3)
    with pytest.raises(ValueError, match="guidance"):
        onnx_model.stream(guidance=float("nan"))
    with pytest.raises(ValueError, match="CPU only"):
        mc.load_model(backend="onnx", device="cuda")
    with pytest.raises(ValueError, match="unknown backend"):
        mc.load_model(backend="tensorflow")
    assert len(run(s, np.zeros(8000, np.float32))) == 15


@pytest.mark.slow   # exports twice
def test_export_cli_writes_refuses_and_replaces(tmp_path, capsys):
    w = copy_checkpoint(tmp_path)
    out = tmp_path / "mine.onnx"
    assert main(["export-onnx", str(w), "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "max abs difference" in said and "found automatically" in said
    assert sorted(p.name for p in out.iterdir()) == sorted(EXPORT_FILES)
    meta = read_export_meta(out)
    assert meta["source"] == {"weights": "mine.safetensors", "sha256": checkpoint_digest(w)}
    before = {f: (out / f).stat().st_mtime_ns for f in EXPORT_FILES}
    assert main(["export-onnx", str(w), "-o", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert before == {f: (out / f).stat().st_mtime_ns for f in EXPORT_FILES}   # untouched
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["export-onnx", str(w), "-o", str(other)]) == 2
    assert (other / "notes.txt").read_text() == "mine" and not (other / "model.json").exists()
    assert main(["export-onnx", str(w), "-o", str(out), "--force"]) == 0
    # found beside the checkpoint; an export folder given directly picks the onnx backend
    m = mc.load_model(w, backend="onnx")
    assert m.backend == "onnx" and m.folder == out
    assert mc.load_model(out).backend == "onnx"


def test_missing_export_is_made_in_the_cache_when_torch_is_there(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMTALKER_CACHE", str(tmp_path / "cache"))
    w = copy_checkpoint(tmp_path / "", "fresh")
    m = mc.load_model(w, backend="onnx")
    assert m.folder.parent == tmp_path / "cache" / "onnx"
    assert read_export_meta(m.folder)["source"]["sha256"] == checkpoint_digest(w)
    assert not (tmp_path / "fresh.onnx").exists()          # the user's folder is not written
    assert mc.load_model(w, backend="onnx").folder == m.folder   # made once


def test_a_broken_export_is_named(tmp_path):
    out = tmp_path / "x.onnx"
    shutil.copytree(export_dir_for(None), out)
    (out / "denoise.onnx").unlink()
    with pytest.raises(CheckpointError, match="missing denoise.onnx"):
        mc.load_model(out)
    shutil.copy(export_dir_for(None) / "denoise.onnx", out / "denoise.onnx")
    (out / "condition.onnx").write_bytes(b"not a graph")
    with pytest.raises(CheckpointError, match="condition.onnx: onnxruntime cannot load"):
        mc.load_model(out)


def test_an_export_of_the_old_format_is_refused_with_the_command(tmp_path):
    """Format 1 exports took one audio window per guidance row; format 2 takes one window
    for all rows. An old export gets an error naming the re-export command, not wrong frames."""
    out = tmp_path / "old.onnx"
    shutil.copytree(export_dir_for(None), out)
    meta = json.loads((out / "model.json").read_text())
    meta["format"] = "streamtalker-onnx/1"
    (out / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"streamtalker-onnx/1.*re-export with "
                                              r"`streamtalker export-onnx"):
        mc.load_model(out)


def test_guidance_rows_share_one_audio_window(torch_model, speech):
    """With classifier-free guidance both rows hear the same audio, so the encoder runs on
    one window: the condition equals the one computed from the window repeated per row."""
    import torch
    from model_core.runtime.frontend import make_frontend
    cfg, net = torch_model.config, torch_model.net
    mel = make_frontend(cfg, "cpu").padded_whole(speech[:16000], 80)   # [M + 80, n_mels]
    feats = torch.from_numpy(np.ascontiguousarray(mel[None, -cfg.audio_context_frames:],
                                                  np.float32))
    B, K = 2, 3
    args = (torch.zeros(B), torch.tensor([[50, 53, 56]] * B), torch.full((B, K), 0.5),
            torch_model.rest_history(B), torch.full((B,), cfg.n_styles),
            torch.tensor([False, True]))
    with torch.no_grad():
        shared = net.condition(feats, *args)
        repeated = net.condition(feats.expand(B, -1, -1).contiguous(), *args)
    assert shared.shape == (B, K, cfg.d_model)
    assert torch.allclose(shared, repeated, atol=1e-5)
    assert not torch.allclose(shared[0], shared[1], atol=1e-3)   # the rows do differ
