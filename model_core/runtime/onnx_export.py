"""Export a checkpoint's network to ONNX for torch-free inference (onnxruntime).

The network is split where the streaming session calls it (see docs/architecture.md), so
the condition predictor runs once per chunk and only the small diffusion head runs at every
DDIM step:

``condition.onnx`` (once per chunk)
    inputs: ``feats`` float32 [B, M, F] (log-mel window), ``mel_offset`` float32 [B] (s),
    ``align_idx`` int64 [B, K], ``align_w`` float32 [B, K], ``history`` float32 [B, H, D]
    (normalized past frames), ``style`` int64 [B], ``drop_audio`` bool [B];
    output: ``base`` float32 [B, P + K, head_dim] (the head input that is fixed over the
    DDIM loop: :meth:`StreamTalkerNet.denoise_prepare` of the condition).
``denoise.onnx`` (every DDIM step)
    inputs: ``base`` [B, P + K, head_dim], ``x_t`` float32 [B, K, D], ``temb`` float32
    [1, 1, head_dim]; output: ``x0`` float32 [B, K, D] (normalized units).
``timestep.onnx``
    input: ``t`` int64 [1] (DDPM timestep); output: ``temb`` float32 [1, 1, head_dim].

B (1, or 2 with classifier-free guidance) and K (1..max_chunk_frames) are dynamic; M, F, H
and D are the checkpoint's. Opset :data:`OPSET`. ``model.json`` holds the config and
``normalization.npz`` the output normalization (``data_mean``, ``data_std``, ``rest_pose``,
float32 [D]); vertex checkpoints add ``codec.npz`` (the PCA motion codec).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

#: ONNX opset of the exported graphs.
OPSET = 17
#: File names of an exported model folder.
GRAPHS = ("condition.onnx", "denoise.onnx", "timestep.onnx")


class _Condition(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, feats, mel_offset, align_idx, align_w, history, style, drop_audio):
        cond = self.net.condition(feats, mel_offset, align_idx, align_w, history, style,
                                  drop_audio)
        return self.net.denoise_prepare(cond, history)


class _Denoise(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, base, x_t, temb):
        return self.net.denoise_step(base, x_t, temb)


class _Timestep(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, t):
        return self.net.timestep_embedding(t)


def export_onnx(model, out_dir: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``model``'s network as the three ONNX graphs of this module's docstring.

    Args:
        model: a loaded :class:`~model_core.runtime.model.StreamTalkerModel` (ARKit or latent).
        out_dir: a new (or empty) folder.
        overwrite: allow a folder that already holds an export.

    Returns:
        ``out_dir`` as a Path.

    Raises:
        FileExistsError: ``out_dir`` holds files and ``overwrite`` is False.
        ValueError: a model with a pretrained speech encoder (HuBERT / wav2vec 2.0 front ends
            run in torch only).
        ImportError: the ``onnx`` package (needed by torch's exporter) is missing.
    """
    cfg = model.config
    if cfg.speech_encoder is not None:
        raise ValueError("models with a pretrained speech encoder (speech_encoder = ...) cannot "
                         "be exported to ONNX; use the torch backend")
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
    except ImportError as e:
        raise ImportError("exporting needs the onnx package: pip install onnx") from e
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    net = model.net.to("cpu").eval()
    M, H, D, F = cfg.audio_context_frames, cfg.history_frames, cfg.dim, \
        (net.encoder.inp.in_channels if net.encoder is not None else cfg.n_mels)
    K, B = 3, 2
    feats = torch.zeros(B, M, F)
    args = (feats, torch.zeros(B), torch.zeros(B, K, dtype=torch.int64), torch.zeros(B, K),
            torch.zeros(B, H, D), torch.zeros(B, dtype=torch.int64),
            torch.tensor([False, True]))
    with torch.no_grad():
        base = _Condition(net)(*args)
        torch.onnx.export(
            _Condition(net), args, str(out / "condition.onnx"), opset_version=OPSET,
            input_names=["feats", "mel_offset", "align_idx", "align_w", "history", "style",
                         "drop_audio"],
            output_names=["base"],
            dynamic_axes={"feats": {0: "B"}, "mel_offset": {0: "B"},
                          "align_idx": {0: "B", 1: "K"}, "align_w": {0: "B", 1: "K"},
                          "history": {0: "B"}, "style": {0: "B"}, "drop_audio": {0: "B"},
                          "base": {0: "B", 1: "PK"}},
            dynamo=False)
        temb = net.timestep_embedding(torch.tensor([10]))
        torch.onnx.export(
            _Denoise(net), (base, torch.zeros(B, K, D), temb), str(out / "denoise.onnx"),
            opset_version=OPSET, input_names=["base", "x_t", "temb"], output_names=["x0"],
            dynamic_axes={"base": {0: "B", 1: "PK"}, "x_t": {0: "B", 1: "K"},
                          "x0": {0: "B", 1: "K"}},
            dynamo=False)
        torch.onnx.export(
            _Timestep(net), (torch.tensor([10]),), str(out / "timestep.onnx"),
            opset_version=OPSET, input_names=["t"], output_names=["temb"], dynamo=False)
    np.savez(out / "normalization.npz",
             data_mean=net.data_mean.detach().cpu().numpy().astype(np.float32),
             data_std=net.data_std.detach().cpu().numpy().astype(np.float32),
             rest_pose=net.rest_pose.detach().cpu().numpy().astype(np.float32),
             mel_mean=(net.encoder.mel_mean.detach().cpu().numpy().astype(np.float32)
                       if net.encoder is not None else np.zeros(0, np.float32)))
    (out / "model.json").write_text(json.dumps({"format": "streamtalker-onnx/1", "opset": OPSET,
                                                "config": cfg.to_dict()}, indent=2) + "\n")
    return out
