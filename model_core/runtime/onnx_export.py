"""Export a checkpoint's network to ONNX for torch-free inference (onnxruntime).

The network is split where the streaming session calls it (see docs/architecture.md), so
the condition predictor runs once per chunk and only the small diffusion head runs at every
DDIM step:

``condition.onnx`` (once per chunk)
    inputs: ``feats`` float32 [A, M, F] (log-mel window; A = 1: one window shared by the B
    rows, so the audio encoder runs once; or A = B), ``mel_offset`` float32 [B] (s),
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
and D are the checkpoint's. Opset :data:`OPSET`. ``model.json`` holds ``format``
(``"streamtalker-onnx/2"``; format 1 took ``feats`` with B rows), ``opset``, the ``config``
and the ``source`` checkpoint (file name and SHA-256 of weights + config, :func:`~model_core.runtime.onnx_files.checkpoint_digest`:
how a stale export is recognised); ``normalization.npz`` the output normalization
(``data_mean``, ``data_std``, ``rest_pose``, float32 [D]). A vertex checkpoint's export is its
latent network plus its PCA codec, copied as ``codec.safetensors``.

The files are written into a temporary folder beside ``out_dir`` and moved in at the end, so a
failed export leaves no half-written graphs. The onnxruntime side is
:mod:`model_core.runtime.onnx_backend`; the command line is ``streamtalker export-onnx``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .onnx_files import CODEC_FILE, EXPORT_FILES, EXPORT_FORMAT, checkpoint_digest
from ..errors import OutputExistsError, SettingError

#: ONNX opset of the exported graphs.
OPSET = 17


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


def export_onnx(model, out_dir: str | os.PathLike, *, overwrite: bool = False,
                source: dict | None = None, extra_files: dict | None = None) -> Path:
    """Write ``model``'s network as the three ONNX graphs of this module's docstring.

    Args:
        model: a loaded :class:`~model_core.runtime.model.StreamTalkerModel` (ARKit or latent).
        out_dir: a new (or empty) folder.
        overwrite: allow a folder that already holds files (the export's files are replaced;
            nothing else in it is touched).
        source: what to record as the source checkpoint in ``model.json`` (``weights``,
            ``sha256``), or None.
        extra_files: {name in the folder: file to copy there} (a vertex model's codec).

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
        raise SettingError("models with a pretrained speech encoder (speech_encoder = ...) cannot "
                         "be exported to ONNX; use the torch backend")
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
    except ImportError as e:
        raise ImportError("exporting needs the onnx package: pip install onnx") from e
    final = Path(out_dir)
    if final.exists() and not final.is_dir():
        raise OutputExistsError(f"{final} is a file, not a folder; choose a new folder")
    if final.exists() and any(final.iterdir()) and not overwrite:
        raise OutputExistsError(f"{final} is not empty; choose a new folder (or --force to "
                              f"replace the export's files in it)")
    final.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=".export-", dir=final))
    try:
        _write_graphs(model, out, source)
        extra = dict(extra_files or {})
        for name, src in extra.items():
            shutil.copyfile(src, out / name)
        for name in (*EXPORT_FILES, *extra):
            os.replace(out / name, final / name)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return final


def export_checkpoint(checkpoint: str | os.PathLike | None, out_dir: str | os.PathLike, *,
                      overwrite: bool = False) -> Path:
    """Export a checkpoint file (None: the bundled default) to ``out_dir`` on the CPU,
    recording its name and SHA-256 as the source.

    A vertex checkpoint's codec (``NAME.codec.safetensors``) goes in as ``codec.safetensors``.

    Raises:
        CheckpointError / FileNotFoundError: whatever
            :func:`model_core.runtime.checkpoint.load_checkpoint` raises;
        FileExistsError / ValueError / ImportError: see :func:`export_onnx`.
    """
    from .checkpoint import codec_path, describe_checkpoint, load_checkpoint
    info = describe_checkpoint(checkpoint)
    model = load_checkpoint(info.path, "cpu")
    extra = {CODEC_FILE: codec_path(info.path)} if info.kind == "vertex" else None
    return export_onnx(model, out_dir, overwrite=overwrite, extra_files=extra,
                       source={"weights": info.path.name,
                               "sha256": checkpoint_digest(info.path)})


def _write_graphs(model, out: Path, source: dict | None) -> None:
    cfg = model.config
    net = model.net.to("cpu").eval()
    M, H, D, F = cfg.audio_context_frames, cfg.history_frames, cfg.dim, \
        (net.encoder.inp.in_channels if net.encoder is not None else cfg.n_mels)
    K, B = 3, 2
    feats = torch.zeros(1, M, F)
    args = (feats, torch.zeros(B), torch.zeros(B, K, dtype=torch.int64), torch.zeros(B, K),
            torch.zeros(B, H, D), torch.zeros(B, dtype=torch.int64),
            torch.tensor([False, True]))
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer warns about unpacking q, k, v from a fixed leading dim of 3: harmless
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # the TorchScript-based exporter is deprecated in favour of torch.export; it is the
        # one these graphs were parity-tested with (tests/test_onnx.py)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
        base = _Condition(net)(*args)
        torch.onnx.export(
            _Condition(net), args, str(out / "condition.onnx"), opset_version=OPSET,
            input_names=["feats", "mel_offset", "align_idx", "align_w", "history", "style",
                         "drop_audio"],
            output_names=["base"],
            dynamic_axes={"feats": {0: "A"}, "mel_offset": {0: "B"},
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
    meta = {"format": EXPORT_FORMAT, "opset": OPSET, "config": cfg.to_dict()}
    if source is not None:
        meta["source"] = source
    (out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
