"""``streamtalker generate AUDIO -o OUT [--checkpoint P] [--fps 30] [--seed S] [--style I]
[--device cpu|cuda] [--threads N] [--backend torch|onnx] [--rig arkit|oculus|vrm|mmd]`` and
the sampler settings (``--preset quality|live``, ``--chunk-frames K``, ``--lookahead-ms L``,
``--steps N``, ...: :func:`~model_core.cli.common.add_sampler_arguments`) writes .npz, .csv
(Live Link Face) or .json (with ``--rig``, a viseme or vowel rig's channels,
:mod:`model_core.runtime.rigs`: .npz / .json); with a vertex checkpoint and ``--template``, meshes as .npy / .npz or a
point cache (.pc2 / .mdd for Blender's Mesh Cache modifier). The output is checked for
writability before any work; the audio is decoded and the frames written block by block
(the one driver, :func:`model_core.runtime.driver.run`), so memory does not grow with the
file's length.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import SettingError
from .common import (add_backend_argument, add_sampler_arguments, add_threads_argument,
                     sampler_settings, style_arg, template_arg)

__all__ = ["add_generate_parser", "cmd_generate"]


def add_generate_parser(sub) -> None:
    """Register ``generate`` on an argparse subparsers object (sets ``func``)."""
    p = sub.add_parser("generate", help="animate a speech file (ARKit-52 weights, or meshes)",
                       description="Generate facial animation from a speech file with the "
                                   "streaming model (the same session as live input).")
    p.add_argument("audio", help="speech file: wav, flac, ogg, mp3 or aiff (any rate, mono or "
                                 "stereo); m4a/aac/mp4/webm through ffmpeg when it is installed")
    p.add_argument("-o", "--out", required=True,
                   help="output file: .npz, .csv (Live Link Face) or .json; for a vertex "
                        "checkpoint .npy / .npz (vertices [T, V, 3]) or .pc2 / .mdd")
    p.add_argument("--checkpoint", default=None,
                   help="model checkpoint (.safetensors with its .json); default: the bundled model")
    p.add_argument("--fps", type=float, default=None, help="output frame rate (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--style", default=None,
                   help="training identity index, or for a vertex model a training subject's "
                        "name (default: the unknown style)")
    p.add_argument("--template", default=None,
                   help="vertex checkpoints: the speaker's neutral mesh, a .npy [V, 3] or "
                        "templates.pkl:SUBJECT")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--rig", default="arkit", choices=["arkit", "oculus", "vrm", "mmd"],
                   help="ARKit models: the face rig the frames are for (default arkit, the "
                        "model's 52 weights); oculus: the 15 visemes viseme_sil ... viseme_U; "
                        "vrm: aa ih ou ee oh; mmd: あ い う え お; each with blink and "
                        "brow channels. Columns are named as the rig names them (.npz / .json)")
    add_sampler_arguments(p)
    add_threads_argument(p)
    add_backend_argument(p)
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=cmd_generate)


VERTEX_FORMATS = (".npy", ".npz", ".pc2", ".mdd")


def _save_npy(path: Path, verts, fps: float | None = None) -> None:
    """.npy (or .npz with ``fps``) through a file handle, so numpy adds no suffix."""
    import numpy as np
    with open(path, "wb") as f:
        if fps is None:
            np.save(f, verts)
        else:
            np.savez(f, vertices=verts, fps=fps)


def _generate_vertices(args, out: Path, n_vertices: int, settings) -> int:
    """``generate`` with a vertex checkpoint: meshes [T, V, 3] to .npy/.npz/.pc2/.mdd."""
    from .. import load_audio, load_model
    from ..io.files import atomic_write
    from ..io.pointcache import write_point_cache

    if out.suffix.lower() not in VERTEX_FORMATS:
        raise SettingError(f"{out}: a vertex model writes meshes: use one of "
                         f"{', '.join(VERTEX_FORMATS)}")
    template = template_arg(args.template, args.checkpoint, n_vertices)
    audio = load_audio(args.audio)
    vm = load_model(args.checkpoint, device=args.device, threads=args.threads,
                    backend=args.backend)
    t0 = time.perf_counter()
    verts = vm.generate(audio, vm.model.sample_rate, template, seed=args.seed,
                        style=style_arg(args.style), settings=settings, fps=args.fps)
    dt = time.perf_counter() - t0
    fps = args.fps or vm.fps
    if out.suffix.lower() in (".pc2", ".mdd"):
        write_point_cache(out, verts, fps, overwrite=args.force)
    elif out.suffix.lower() == ".npy":
        atomic_write(out, lambda tmp: _save_npy(tmp, verts), overwrite=args.force)
    else:
        atomic_write(out, lambda tmp: _save_npy(tmp, verts, fps=fps), overwrite=args.force)
    dur = len(audio) / vm.model.sample_rate
    print(f"{out}: {len(verts)} meshes of {verts.shape[1]} vertices at {fps:g} fps from "
          f"{dur:.2f} s of audio in {dt:.2f} s (real-time factor {dt / max(dur, 1e-9):.3f})")
    return 0


def cmd_generate(args) -> int:
    """Handler of ``streamtalker generate``; returns 0.

    Raises:
        ValueError / OSError / StreamTalkerError: bad settings, files or checkpoint (main
        prints them as one line).
    """
    from tqdm import tqdm

    from .. import AudioFileReader, describe_checkpoint, load_model
    from ..io.files import check_writable
    from ..io.frames import FORMATS, FrameWriter
    from ..runtime.backends import resolve_backend
    from ..runtime.arguments import check_run_arguments
    from ..runtime.driver import run

    out = Path(args.out)
    settings = sampler_settings(args)
    check_run_arguments(args.seed, args.threads)   # the same check as the Blender bake's
    resolve_backend(args.backend, args.device)
    check_writable(out, args.force)     # before any work: exists, folder, permission
    info = describe_checkpoint(args.checkpoint)
    rig = getattr(args, "rig", "arkit") or "arkit"
    if info.kind == "vertex":
        if rig != "arkit":
            raise SettingError(f"--rig {rig} is for ARKit models; {args.checkpoint} is a vertex "
                             f"model (it makes meshes, not blendshape weights)")
        for flag, value in (("--blink-temperature", settings.blink_temperature),
                            ("--lip-temperature", settings.lip_temperature)):
            if value is not None:
                raise SettingError(f"{flag} is for ARKit models; {args.checkpoint} is a vertex "
                                 f"model (it has no lip or blink channels)")
        return _generate_vertices(args, out, info.n_vertices, settings)
    if args.template:
        raise SettingError(f"--template is for vertex checkpoints; "
                         f"{args.checkpoint or 'the bundled model'} makes ARKit weights")
    style = style_arg(args.style)
    if isinstance(style, str):
        raise SettingError(f"--style {style!r}: this model takes an identity index (an integer)")
    if out.suffix.lower() not in FORMATS:
        raise SettingError(f"{out}: unknown output format {out.suffix!r}; use one of {', '.join(FORMATS)}")
    if rig != "arkit" and out.suffix.lower() == ".csv":
        raise SettingError(f"{out}: the Live Link Face CSV layout holds ARKit blendshapes; with "
                         f"--rig {rig} write .npz or .json")
    reader = AudioFileReader(args.audio)        # opened (and checked) before the model loads
    try:
        model = load_model(args.checkpoint, device=args.device, threads=args.threads,
                           backend=args.backend)
        if rig != "arkit":
            from ..runtime.rigs import RiggedModel
            model = RiggedModel(model, rig)
        # every setting is checked here, before any audio is decoded
        session = model.stream(seed=args.seed, style=style, fps=args.fps, settings=settings)
    except BaseException:
        reader.close()
        raise
    fps = session.fps
    meta = {"audio": str(args.audio), "checkpoint": str(args.checkpoint or "default"),
            "seed": args.seed, "style": args.style, "steps": session.settings.steps,
            "latency_ms": session.latency_ms, "sampler": session.settings.to_dict()}
    kind = model.config.output_kind
    if rig != "arkit":
        meta["rig"], kind = rig, "shape_keys"
    with reader, FrameWriter(out, session.channel_names, fps, kind, meta,
                             overwrite=args.force) as writer:
        total = reader.duration_s
        bar = tqdm(total=round(total) if total else None, unit="s", desc="generate", leave=False,
                   disable=not (total and total > 10 and sys.stderr.isatty()))
        def blocks():
            for block in reader:
                yield block
                bar.update(len(block) / model.sample_rate)

        t0 = time.perf_counter()
        run(session, blocks(), on_frames=writer.write)
        dt = time.perf_counter() - t0
        bar.close()
        dur = reader.n_out / model.sample_rate
        n = writer.n_frames
    print(f"{out}: {n} frames at {fps:g} fps from {dur:.2f} s of audio in {dt:.2f} s "
          f"(real-time factor {dt / max(dur, 1e-9):.3f}, algorithmic latency "
          f"{session.latency_ms:.0f} ms: {session.settings.chunk_frames}-frame chunks, "
          f"{session.settings.lookahead_ms:g} ms look-ahead; {model.backend} backend)")
    return 0
