"""Weight averaging of fine-tuned checkpoints (``streamtalker average``,
model_core.training.soup): the weighted mean of the learned tensors, buffers kept, the
ingredients recorded, and checkpoints that cannot be averaged refused by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import model_core as mc  # noqa: E402
from model_core.cli import main  # noqa: E402
from model_core.errors import CheckpointError, OutputExistsError, SettingError  # noqa: E402
from model_core.runtime.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from model_core.training.soup import average_checkpoints  # noqa: E402


def _copy(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


@pytest.fixture(scope="module")
def fine_tune(toy_checkpoint, tmp_path_factory) -> Path:
    """The toy checkpoint with every learned tensor moved (a stand-in for a second
    fine-tune of the same network), named in its training record."""
    import torch
    model = load_checkpoint(toy_checkpoint)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=gen))
    model.config.training = {**model.config.training, "name": "moved"}
    return save_checkpoint(model, tmp_path_factory.mktemp("soup") / "moved.safetensors")


def test_weighted_mean_of_learned_tensors(toy_checkpoint, fine_tune, tmp_path, capsys):
    out = tmp_path / "soup.safetensors"
    assert main(["average", str(toy_checkpoint), str(fine_tune), "-o", str(out),
                 "--weights", "0.25,0.75", "--name", "my-soup"]) == 0
    assert str(out) in capsys.readouterr().out
    a, b, s = (load_checkpoint(p) for p in (toy_checkpoint, fine_tune, out))
    learned = {k for k, _ in a.net.named_parameters()}
    sa, sb, ss = a.net.state_dict(), b.net.state_dict(), s.net.state_dict()
    for k in learned:
        np.testing.assert_allclose(ss[k].numpy(), 0.25 * sa[k].numpy() + 0.75 * sb[k].numpy(),
                                   rtol=0, atol=1e-6, err_msg=k)
    for k in set(sa) - learned:                      # normalization statistics, rest pose
        assert np.array_equal(ss[k].numpy(), sa[k].numpy()), k
    rec = json.loads(out.with_suffix(".json").read_text())["training"]
    assert rec["name"] == "my-soup"
    assert [(i["checkpoint"], i["name"], i["weight"]) for i in rec["averaged_from"]] == [
        (toy_checkpoint.name, a.config.training.get("name"), 0.25),
        (fine_tune.name, "moved", 0.75)]
    # the soup is a model like any other: it loads on the default backend path and streams
    frames = mc.load_model(out, backend="torch").generate(
        np.zeros(8000, np.float32), 16000, seed=0)
    assert frames.shape == (15, len(a.config.channel_names)) and np.isfinite(frames).all()
    # never overwritten
    before = out.read_bytes()
    with pytest.raises(OutputExistsError):
        average_checkpoints([toy_checkpoint, fine_tune], out)
    assert out.read_bytes() == before


def test_a_network_averaged_with_itself_is_itself(toy_checkpoint, tmp_path):
    twin = _copy(toy_checkpoint, tmp_path / "twin.safetensors")
    out = average_checkpoints([toy_checkpoint, twin], tmp_path / "same.safetensors")
    audio = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    frames = [mc.load_model(p, backend="torch").generate(audio, 16000, seed=3)
              for p in (toy_checkpoint, out)]
    assert np.array_equal(frames[0], frames[1])


def test_checkpoints_that_cannot_be_averaged_are_refused(toy_checkpoint, fine_tune, tmp_path):
    out = tmp_path / "never.safetensors"
    # another frame rate: the same tensors, a different meaning
    other = _copy(fine_tune, tmp_path / "fps.safetensors")
    cfg = json.loads(other.with_suffix(".json").read_text())
    cfg["fps"] = 25.0
    other.with_suffix(".json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"fps = 25\.0 .* 30\.0"):
        average_checkpoints([toy_checkpoint, other], out)
    # normalization statistics fitted on other data
    import torch
    m = load_checkpoint(fine_tune)
    with torch.no_grad():
        m.net.data_mean.add_(0.5)
    other = save_checkpoint(m, tmp_path / "stats.safetensors")
    with pytest.raises(CheckpointError, match="buffer data_mean"):
        average_checkpoints([toy_checkpoint, other], out)
    # weights
    for weights, what in (([1.0], "one per checkpoint"), ([0.5, 0.6], "sum to 1"),
                          ([1.5, -0.5], "must be > 0")):
        with pytest.raises(SettingError, match=what):
            average_checkpoints([toy_checkpoint, fine_tune], out, weights=weights)
    with pytest.raises(SettingError, match="two or more"):
        average_checkpoints([toy_checkpoint], out)
    assert main(["average", str(toy_checkpoint), str(fine_tune), "-o", str(out),
                 "--weights", "half,half"]) == 2
    assert not out.exists()


def test_ingredients_may_differ_where_fine_tunes_may(toy_checkpoint, tmp_path):
    """The fine-tuning rule decides (model_core.training.trainer.changes_network): a sampler
    setting may differ (the first checkpoint's is kept), a setting of the network may not."""
    def variant(name, **settings):
        other = _copy(toy_checkpoint, tmp_path / f"{name}.safetensors")
        cfg = json.loads(other.with_suffix(".json").read_text())
        cfg.update(settings)
        other.with_suffix(".json").write_text(json.dumps(cfg))
        return other
    out = average_checkpoints([toy_checkpoint, variant("calm", lip_temperature=0.2,
                                                       live_blink_temperature=0.7)],
                              tmp_path / "ok.safetensors")
    first = json.loads(toy_checkpoint.with_suffix(".json").read_text())
    assert json.loads(out.with_suffix(".json").read_text())["lip_temperature"] == \
        first["lip_temperature"]
    with pytest.raises(CheckpointError, match="n_heads"):
        average_checkpoints([toy_checkpoint, variant("heads", n_heads=first["n_heads"] * 2)],
                            tmp_path / "no.safetensors")
