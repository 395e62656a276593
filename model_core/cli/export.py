"""``streamtalker export-onnx CHECKPOINT -o DIR [--force]``: write a checkpoint's network as
ONNX graphs for the torch-free onnx backend (:mod:`model_core.runtime.onnx_export`; needs
torch and the ``onnx`` package). ``DIR`` = ``NAME.onnx`` beside ``NAME.safetensors`` is where
``load_model(NAME.safetensors, backend="onnx")`` finds it; any other folder is loaded by
giving the folder itself. An existing folder with files in it is refused unless ``--force``
(which replaces only the export's files). After writing, the export is checked against the
torch network on a few seconds of a test signal and the difference is printed (a vertex
checkpoint: its latent frames; its codec is copied into the folder as ``codec.safetensors``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["add_export_parser", "cmd_export_onnx"]


def add_export_parser(sub) -> None:
    """Register ``export-onnx`` on an argparse subparsers object (sets ``func``)."""
    p = sub.add_parser("export-onnx", help="export a checkpoint to ONNX (torch-free inference)",
                       description="Write CHECKPOINT's network as ONNX graphs (opset 17) for "
                                   "the onnx backend (onnxruntime, no torch).")
    p.add_argument("checkpoint", help="model checkpoint (.safetensors with its .json beside it)")
    p.add_argument("-o", "--out", required=True,
                   help="output folder; NAME.onnx beside NAME.safetensors is found "
                        "automatically by load_model(..., backend='onnx')")
    p.add_argument("--force", action="store_true",
                   help="replace the export's files in an existing folder")
    p.set_defaults(func=cmd_export_onnx)


def _test_signal(seconds: float = 3.0):
    """A deterministic speech-like test signal: a gliding harmonic tone with syllable-rate
    amplitude bursts, float32 [seconds * 16000] at 16 kHz."""
    import numpy as np
    t = np.arange(int(seconds * 16000)) / 16000.0
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000.0
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    return (0.2 * voice * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2).astype(np.float32)


def cmd_export_onnx(args) -> int:
    """Handler of ``streamtalker export-onnx``; returns 0.

    Raises:
        FileExistsError: ``--out`` holds files and no ``--force``; CheckpointError /
        FileNotFoundError: a bad checkpoint; ImportError: torch or onnx missing (main prints
        it as one line saying what to install).
    """
    import numpy as np

    from .. import describe_checkpoint, load_model
    from ..runtime.onnx_export import OPSET, export_checkpoint
    from ..runtime.onnx_files import CODEC_FILE, EXPORT_FILES, export_dir_for

    out = Path(args.out)
    vertex = describe_checkpoint(args.checkpoint).kind == "vertex"
    export_checkpoint(args.checkpoint, out, overwrite=args.force)
    files = [*EXPORT_FILES, CODEC_FILE] if vertex else list(EXPORT_FILES)
    size = sum((out / f).stat().st_size for f in files) / 1e6
    x = _test_signal()
    a, b = load_model(args.checkpoint, backend="torch"), load_model(out, backend="onnx")
    if vertex:      # compare the latent frames (meshes need a template)
        a, b = a.model, b.model
    a, b = a.generate(x, 16000), b.generate(x, 16000)
    diff = float(np.abs(a - b).max())
    beside = export_dir_for(args.checkpoint)
    where = ("found automatically by load_model(CHECKPOINT, backend='onnx')"
             if out.resolve() == beside.resolve()
             else f"load it with load_model('{out}', backend='onnx'), or put it at {beside} "
                  f"to be found automatically")
    print(f"{out}: {', '.join(files)} ({size:.1f} MB, opset {OPSET}) from "
          f"{args.checkpoint}; onnx vs torch on a {len(x) / 16000:g} s test signal: max abs "
          f"difference {diff:.1e}; {where}")
    return 0
