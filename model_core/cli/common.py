"""Helpers shared by the ``streamtalker`` subcommands (argument types and options)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError, InputNotFoundError, SettingError

__all__ = ["add_backend_argument", "add_sampler_arguments", "add_threads_argument",
           "sampler_settings", "style_arg", "template_arg"]


def add_threads_argument(p) -> None:
    """``--threads N`` (CPU threads the model computes with; default:
    model_core.runtime.device.default_threads)."""
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the model (default 1, or OMP_NUM_THREADS when it is "
                        "set: fastest here, and graceful on a busy machine)")


def add_backend_argument(p) -> None:
    """``--backend torch|onnx`` (model_core.runtime.backends; default: torch when it is
    installed, else onnx)."""
    p.add_argument("--backend", choices=("torch", "onnx"), default=None,
                   help="where the network runs: torch, or onnx (onnxruntime on the CPU, no "
                        "torch needed; the checkpoint's NAME.onnx/ export, see export-onnx). "
                        "Default: torch when it is installed, else onnx")


#: The sampler options (``SamplerSettings`` fields) and the flags that set them.
SAMPLER_FLAGS = {"steps": "--steps", "eta": "--eta", "guidance": "--guidance",
                 "guidance_channels": "--guidance-channels",
                 "lip_temperature": "--lip-temperature",
                 "blink_temperature": "--blink-temperature",
                 "chunk_frames": "--chunk-frames", "lookahead_ms": "--lookahead-ms",
                 "preset": "--preset"}


def add_sampler_arguments(p, preset: str = "quality") -> None:
    """The sampler options, one per :class:`~model_core.runtime.settings.SamplerSettings`
    field (the same in ``generate``, ``live`` and ``evaluate``); ``preset`` is the default
    of ``--preset`` (``live`` for ``streamtalker live``). Read back with
    :func:`sampler_settings`."""
    g = p.add_argument_group("sampler settings (default: the model's)")
    g.add_argument("--preset", choices=("quality", "live"), default=preset,
                   help="the model's chunk size and look-ahead: quality (its best-quality "
                        "setting) or live (its low-latency setting, where it declares one; "
                        f"else quality). Default {preset}")
    g.add_argument("--chunk-frames", type=int, default=None,
                   help="frames per streaming chunk, K (default: the preset's); smaller is "
                        "less latency")
    g.add_argument("--lookahead-ms", type=float, default=None,
                   help="audio look-ahead in ms, within the model's range (default: the "
                        "preset's); shorter is less latency")
    g.add_argument("--steps", type=int, default=None, help="DDIM steps")
    g.add_argument("--eta", type=float, default=None, help="DDIM eta (0 = deterministic)")
    g.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale (1 = off)")
    g.add_argument("--guidance-channels", choices=("all", "lips"), default=None,
                   help="channels the guidance applies to (ARKit models)")
    g.add_argument("--lip-temperature", type=float, default=None,
                   help="ARKit models: initial-noise scale on the jaw/mouth channels, [0, 2]")
    g.add_argument("--blink-temperature", type=float, default=None,
                   help="ARKit models: initial-noise scale on eyeBlinkLeft/Right in [0, 2]; "
                        "higher blinks more, the lips do not change")


def sampler_settings(args):
    """The :class:`~model_core.runtime.settings.SamplerSettings` of the options
    :func:`add_sampler_arguments` added (checked here; against the model when the session
    opens).

    Raises:
        ValueError: a bad value, naming the setting and its flag.
    """
    from ..runtime.settings import SamplerSettings
    kw = {k: getattr(args, k, None) for k in SAMPLER_FLAGS}
    kw["preset"] = kw["preset"] or "quality"
    try:
        return SamplerSettings(**kw)
    except SettingError as e:
        flag = SAMPLER_FLAGS.get(str(e).split(" ", 1)[0])
        raise SettingError(f"{flag}: {e}" if flag else str(e)) from None


def style_arg(style: str | None):
    """--style: None, an int index, or (vertex models) a subject name."""
    if style is None:
        return None
    try:
        return int(style)
    except ValueError:
        return style


def template_arg(spec: str | None, checkpoint, n_vertices: int):
    """--template: a .npy [V, 3] / [3V], or templates.pkl:SUBJECT -> float32 [V, 3].

    Raises:
        ValueError: missing, or not a mesh of ``n_vertices`` x 3 numbers;
        FileNotFoundError: no such file.
    """
    import numpy as np
    if not spec:
        raise SettingError(f"{checkpoint} is a vertex checkpoint: pass --template, the speaker's "
                         f"neutral mesh (a .npy [V, 3] or templates.pkl:SUBJECT)")
    path, _, subject = spec.rpartition(":") if ".pkl:" in spec else (spec, "", "")
    if path.endswith(".pkl"):
        from ..vertex import load_templates
        tpls = load_templates(path)
        if subject not in tpls:
            raise DataError(f"{path}: no subject {subject!r} (it has {', '.join(sorted(tpls))})")
        t = tpls[subject]
    else:
        if not Path(path).is_file():
            raise InputNotFoundError(f"template file not found: {path}")
        t = np.asarray(np.load(path), np.float32)
    if t.size != 3 * n_vertices:
        raise DataError(f"{spec}: the template must be [{n_vertices}, 3] for {checkpoint}, got "
                         f"shape {t.shape}")
    return t.reshape(-1, 3)
