"""Checkpoints: ``NAME.safetensors`` (weights) + ``NAME.json`` (config), side by side, and
for vertex models ``NAME.codec.safetensors`` (:func:`codec_path`) beside them.

The JSON holds ``format_version``, the architecture, fps, sample rate, output channel
names and the training record (:class:`model_core.runtime.config.ModelConfig`). Files are
written to a temporary name and renamed, and an existing checkpoint is never overwritten.
:func:`describe_checkpoint` says what a checkpoint is (its kind, channels, fps, vertex
count) from the JSON alone; :func:`model_core.load_model` loads any kind.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CheckpointError, InputNotFoundError, OutputExistsError
from ..io.files import atomic_write
from .config import FORMAT_VERSION, ModelConfig

# torch (safetensors.torch, the network) is imported by the functions that need it, so that
# describe_checkpoint and read_config stay cheap (and work where torch is not installed).

#: Where the bundled default model lives.
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_CHECKPOINT = WEIGHTS_DIR / "default.safetensors"


#: An ONNX export folder (``streamtalker export-onnx``; read by :mod:`.onnx_backend`): its
#: ``model.json`` says this format, and these files are in it.
EXPORT_FORMAT = "streamtalker-onnx/2"
EXPORT_FILES = ("condition.onnx", "denoise.onnx", "timestep.onnx", "model.json",
                "normalization.npz")
#: A vertex model's export also holds its PCA motion codec, under this name.
CODEC_FILE = "codec.safetensors"
#: How to replace a damaged or outdated export (the end of the errors that find one).
REEXPORT_HINT = ("re-export with `streamtalker export-onnx CHECKPOINT -o NEW_FOLDER` (needs "
                 "torch), or reinstall the add-on if it is the bundled model")


def is_export_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding an export's ``model.json`` (of any content)."""
    p = Path(path)
    return p.is_dir() and (p / "model.json").is_file()


def read_export_meta(folder: str | os.PathLike) -> dict:
    """The ``model.json`` of an export folder, checked: the format and every file present.

    Raises:
        CheckpointError: not an export (no or unreadable ``model.json``, another format) or
            a file of :data:`EXPORT_FILES` missing, naming the folder and the fix.
    """
    p = Path(folder)
    try:
        meta = json.loads((p / "model.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{p}: not an ONNX export of a StreamTalker model ({e}); make "
                              f"one with `streamtalker export-onnx CHECKPOINT -o {p}`") from None
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise CheckpointError(f"{p / 'model.json'}: format {meta.get('format') if isinstance(meta, dict) else None!r} "
                              f"is not {EXPORT_FORMAT!r}; {REEXPORT_HINT}")
    missing = [f for f in EXPORT_FILES if not (p / f).is_file()]
    if missing:
        raise CheckpointError(f"{p}: incomplete ONNX export, missing {', '.join(missing)}; "
                              f"{REEXPORT_HINT}")
    return meta


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, config) paths for ``X.safetensors``, ``X.json``, ``X`` or a folder holding one
    ``*.safetensors``.

    Raises:
        FileNotFoundError: nothing there, or a folder with no / several checkpoints.
    """
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob("*.safetensors"))
        if len(found) != 1:
            raise InputNotFoundError(f"{p}: expected one *.safetensors checkpoint in the folder, "
                                    f"found {len(found)}")
        p = found[0]
    if p.suffix in (".safetensors", ".json"):
        base = p.with_suffix("")
    else:
        base = p
    return base.with_name(base.name + ".safetensors"), base.with_name(base.name + ".json")


def codec_path(path: str | os.PathLike) -> Path:
    """``NAME.codec.safetensors`` (a vertex model's motion codec) for a checkpoint path
    ``NAME[.safetensors|.json]``."""
    w, _ = checkpoint_paths(path)
    return w.with_name(w.name[:-len(".safetensors")] + ".codec.safetensors")


#: The model kinds :func:`describe_checkpoint` reports.
KINDS = ("arkit", "vertex", "latent")


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint is, from its JSON (no weights read).

    Attributes:
        path: the weights file (``NAME.safetensors``).
        kind: ``"arkit"`` (ARKit-52 weights in [0, 1]), ``"vertex"`` (meshes through the
            codec beside it) or ``"latent"`` (a latent model without a codec: frames are
            codec latents).
        channel_names: the model's D output channels (``pc000``... for vertex models).
        fps: model frames per second. sample_rate: 16000 Hz.
        n_styles: training identities. subjects: a vertex model's training subjects, in
            style order (empty otherwise).
        n_vertices: mesh vertices of a vertex model, None for the other kinds.
        config: the :class:`ModelConfig` (what the model declares: its chunk sizes and
            look-aheads, its sampler defaults).
    """

    path: Path
    kind: str
    channel_names: tuple[str, ...]
    fps: float
    sample_rate: int
    n_styles: int
    n_vertices: int | None = None
    subjects: tuple[str, ...] = ()
    config: ModelConfig | None = field(default=None, compare=False, repr=False)


def describe_checkpoint(path: str | os.PathLike | None = None) -> CheckpointInfo:
    """Describe a checkpoint cheaply: reads only its JSON (and whether a codec file sits
    beside it). ``path`` None describes the bundled default. This is where the ARKit /
    vertex decision is made, for the CLIs and the Blender add-on alike.

    Raises:
        FileNotFoundError: no weights or no config there (or no bundled default).
        CheckpointError: unreadable JSON, wrong format version, invalid settings, an
            incomplete export folder, or a codec
            beside a checkpoint that is not a latent model with a vertex count.
    """
    if path is not None and is_export_dir(path):
        # an ONNX export folder (what load_model runs on the onnx backend): its model.json
        wpath = cpath = Path(path) / "model.json"
        try:
            cfg = ModelConfig.from_dict(read_export_meta(path)["config"])
        except (KeyError, TypeError, ValueError) as e:   # CheckpointError is a ValueError
            if isinstance(e, CheckpointError):
                raise
            raise CheckpointError(f"{cpath}: bad config ({e}); {REEXPORT_HINT}") from None
        wpath, codec = Path(path), Path(path) / CODEC_FILE
    else:
        wpath, cpath = checkpoint_paths(DEFAULT_CHECKPOINT if path is None else path)
        if not wpath.exists():
            raise InputNotFoundError(f"checkpoint weights not found: {wpath}")
        cfg = read_config(wpath)
        codec = codec_path(wpath)
    vertex = cfg.training.get("vertex", {}) if isinstance(cfg.training, dict) else {}
    n_vertices, subjects = None, ()
    if codec.is_file():
        n = vertex.get("n_vertices") if isinstance(vertex, dict) else None
        if cfg.output_kind != "latent" or not n:
            raise CheckpointError(f"{cpath}: has a codec file beside it but is not a vertex "
                                  f"model (output_kind {cfg.output_kind!r})")
        kind, n_vertices = "vertex", int(n)
        subjects = tuple(str(s) for s in vertex.get("subjects", ()))
    else:
        kind = "arkit" if cfg.output_kind == "arkit" else "latent"
    return CheckpointInfo(path=wpath, kind=kind, channel_names=tuple(cfg.channel_names),
                          fps=float(cfg.fps), sample_rate=int(cfg.sample_rate),
                          n_styles=int(cfg.n_styles), n_vertices=n_vertices, subjects=subjects,
                          config=cfg)


def save_checkpoint(model, path: str | os.PathLike, half: bool = False) -> Path:
    """Write ``model`` to ``path`` (.safetensors) and its config beside it (.json).

    Args:
        model: a :class:`StreamTalkerModel`.
        half: store float tensors as float16 (halves the file; loaded back as float32).
    Returns:
        the weights path.
    Raises:
        FileExistsError: either file already exists (checkpoints are never overwritten).
    """
    from safetensors.torch import save_file

    wpath, cpath = checkpoint_paths(path)
    for p in (wpath, cpath):
        if p.exists():
            raise OutputExistsError(f"{p} already exists; choose a new name (checkpoints are "
                                  f"never overwritten)")
    state = {}
    for k, v in model.net.state_dict().items():
        v = v.detach().cpu().contiguous()
        state[k] = v.half() if (half and v.is_floating_point()) else v
    cfg = model.config.to_dict()
    cfg["format_version"] = FORMAT_VERSION
    atomic_write(wpath, lambda tmp: save_file(state, str(tmp),
                                              metadata={"format_version": str(FORMAT_VERSION)}),
                 overwrite=False)
    atomic_write(cpath, lambda tmp: tmp.write_text(json.dumps(cfg, indent=2)), overwrite=False)
    return wpath


def read_config(path: str | os.PathLike) -> ModelConfig:
    """Read and check the JSON config of a checkpoint.

    Raises:
        FileNotFoundError: no config file; CheckpointError: unreadable JSON, wrong format
        version or invalid settings.
    """
    _, cpath = checkpoint_paths(path)
    if not cpath.exists():
        raise InputNotFoundError(f"checkpoint config not found: {cpath} (it must sit beside "
                                f"the .safetensors file)")
    try:
        d = json.loads(cpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cpath}: not valid JSON ({e})") from None
    except OSError as e:
        raise CheckpointError(f"{cpath}: cannot read it ({e.strerror or e})") from None
    if not isinstance(d, dict):
        raise CheckpointError(f"{cpath}: expected a JSON object")
    ver = d.get("format_version")
    if ver != FORMAT_VERSION:
        raise CheckpointError(f"{cpath}: format_version {ver!r} is not supported by this "
                              f"StreamTalker (reads version {FORMAT_VERSION}); re-export it")
    try:
        return ModelConfig.from_dict(d)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{cpath}: {e}") from None


def _pad_viseme_heads(state: dict, expected: dict) -> None:
    """Checkpoints from before the IPA viseme classes hold the training-only auxiliary
    viseme heads with the first 27 rows of :data:`model_core.face.VISEME_CLASSES`; give
    them zero rows for the classes added since (in place). Inference never uses them;
    fine-tuning learns the new rows."""
    import torch
    for k, v in list(state.items()):
        want = expected.get(k)
        if k.startswith("viseme_heads.") and want is not None and v.ndim == want.ndim and \
                v.shape[0] < want.shape[0] and v.shape[1:] == want.shape[1:]:
            pad = torch.zeros((want.shape[0] - v.shape[0],) + tuple(v.shape[1:]), dtype=v.dtype)
            state[k] = torch.cat([v, pad])


def load_checkpoint(path: str | os.PathLike | None = None, device="cpu"):
    """Load a checkpoint into a :class:`StreamTalkerModel`.

    Args:
        path: checkpoint (see :func:`checkpoint_paths`); None loads the bundled default.
        device: ``"cpu"`` or ``"cuda"``.
    Raises:
        FileNotFoundError: missing weights or config (or no bundled default yet).
        CheckpointError: truncated/corrupt weights, wrong version, missing, unexpected or
            wrongly shaped tensors, NaN/inf weights, invalid config values.
        ValueError: unavailable device.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .frontend import frontend_feat_dim
    from .model import StreamTalkerModel
    from .network import StreamTalkerNet

    if path is None:
        if not DEFAULT_CHECKPOINT.exists():
            raise InputNotFoundError(
                f"no bundled default model at {DEFAULT_CHECKPOINT}; pass a checkpoint path "
                f"(e.g. --checkpoint my_model.safetensors)")
        path = DEFAULT_CHECKPOINT
    wpath, cpath = checkpoint_paths(path)
    if not wpath.exists():
        raise InputNotFoundError(f"checkpoint weights not found: {wpath}")
    if wpath.is_dir():
        raise CheckpointError(f"{wpath} is a directory, not a .safetensors file")
    cfg = read_config(wpath)
    try:
        state = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{wpath}: truncated or corrupt safetensors file ({e})") from None
    net = StreamTalkerNet(cfg, frontend_feat_dim(cfg))
    expected = net.state_dict()
    _pad_viseme_heads(state, expected)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs config {tuple(v.shape)}"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append("shape mismatch " + "; ".join(wrong[:5]))
        if missing:
            parts.append(f"missing tensors {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected tensors {unexpected[:5]}")
        raise CheckpointError(f"{wpath} does not match its config {cpath.name}: "
                              + " | ".join(parts))
    bad = sorted(k for k, v in state.items() if v.is_floating_point() and not bool(v.isfinite().all()))
    if bad:
        raise CheckpointError(f"{wpath}: tensor(s) {bad[:5]} hold NaN or infinite values; the "
                              f"checkpoint is damaged (a diverged training run?): use an "
                              f"earlier checkpoint")
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return StreamTalkerModel(cfg, net, device)
