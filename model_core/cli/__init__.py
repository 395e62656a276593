"""The ``streamtalker`` command line.

``streamtalker generate AUDIO -o OUT [--checkpoint P] [--fps 30] [--steps N] [--seed S]
[--style I] [--device cpu|cuda] [--chunk-frames K] [--threads N]`` writes .npz, .csv (Live
Link Face) or .json; with a vertex checkpoint and ``--template``, meshes as .npy / .npz or a
point cache (.pc2 / .mdd for Blender's Mesh Cache modifier). The output is checked for
writability before any work; the audio is decoded and the frames written block by block, so
memory does not grow with the file's length. Errors are printed as one line naming the file or
setting, exit status 2; warnings (clipped or truncated audio) as one line each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from ..errors import AudioError, CheckpointError


def _add_generate(sub):
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
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the model's)")
    p.add_argument("--eta", type=float, default=None, help="DDIM eta (0 = deterministic)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (1 = off)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--style", default=None,
                   help="training identity index, or for a vertex model a training subject's "
                        "name (default: the unknown style)")
    p.add_argument("--template", default=None,
                   help="vertex checkpoints: the speaker's neutral mesh, a .npy [V, 3] or "
                        "templates.pkl:SUBJECT")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--chunk-frames", type=int, default=None,
                   help="frames per streaming chunk, K (default: the model's)")
    add_threads_argument(p)
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=cmd_generate)


def add_threads_argument(p) -> None:
    """``--threads N`` (CPU threads torch computes with; default 1, model_core.runtime.device)."""
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the model (default 1: fastest here, and graceful on a "
                        "busy machine)")


VERTEX_FORMATS = (".npy", ".npz", ".pc2", ".mdd")


def _style_arg(style: str | None):
    """--style: None, an int index, or (vertex models) a subject name."""
    if style is None:
        return None
    try:
        return int(style)
    except ValueError:
        return style


def _template_arg(spec: str | None, checkpoint, n_vertices: int):
    """--template: a .npy [V, 3] / [3V], or templates.pkl:SUBJECT -> float32 [V, 3].

    Raises:
        ValueError: missing, or not a mesh of ``n_vertices`` x 3 numbers;
        FileNotFoundError: no such file.
    """
    import numpy as np
    if not spec:
        raise ValueError(f"{checkpoint} is a vertex checkpoint: pass --template, the speaker's "
                         f"neutral mesh (a .npy [V, 3] or templates.pkl:SUBJECT)")
    path, _, subject = spec.rpartition(":") if ".pkl:" in spec else (spec, "", "")
    if path.endswith(".pkl"):
        from ..vertex import load_templates
        tpls = load_templates(path)
        if subject not in tpls:
            raise ValueError(f"{path}: no subject {subject!r} (it has {', '.join(sorted(tpls))})")
        t = tpls[subject]
    else:
        if not Path(path).is_file():
            raise FileNotFoundError(f"template file not found: {path}")
        t = np.asarray(np.load(path), np.float32)
    if t.size != 3 * n_vertices:
        raise ValueError(f"{spec}: the template must be [{n_vertices}, 3] for {checkpoint}, got "
                         f"shape {t.shape}")
    return t.reshape(-1, 3)


def _save_npy(path: Path, verts, fps: float | None = None) -> None:
    """.npy (or .npz with ``fps``) through a file handle, so numpy adds no suffix."""
    import numpy as np
    with open(path, "wb") as f:
        if fps is None:
            np.save(f, verts)
        else:
            np.savez(f, vertices=verts, fps=fps)


def _generate_vertices(args, out: Path, n_vertices: int) -> int:
    """``generate`` with a vertex checkpoint: meshes [T, V, 3] to .npy/.npz/.pc2/.mdd."""
    from .. import load_audio
    from ..io.files import atomic_write
    from ..io.pointcache import write_point_cache
    from ..vertex import VertexModel

    if out.suffix.lower() not in VERTEX_FORMATS:
        raise ValueError(f"{out}: a vertex model writes meshes: use one of "
                         f"{', '.join(VERTEX_FORMATS)}")
    template = _template_arg(args.template, args.checkpoint, n_vertices)
    audio = load_audio(args.audio)
    vm = VertexModel.load(args.checkpoint, device=args.device)
    t0 = time.perf_counter()
    verts = vm.generate(audio, vm.model.sample_rate, template, seed=args.seed,
                        style=_style_arg(args.style), chunk_frames=args.chunk_frames,
                        steps=args.steps, eta=args.eta, guidance=args.guidance, fps=args.fps)
    dt = time.perf_counter() - t0
    fps = args.fps or vm.fps
    if out.suffix.lower() in (".pc2", ".mdd"):
        write_point_cache(out, verts, fps, overwrite=args.force)
    elif out.suffix.lower() == ".npy":
        atomic_write(out, lambda tmp: _save_npy(tmp, verts))
    else:
        atomic_write(out, lambda tmp: _save_npy(tmp, verts, fps=fps))
    dur = len(audio) / vm.model.sample_rate
    print(f"{out}: {len(verts)} meshes of {verts.shape[1]} vertices at {fps:g} fps from "
          f"{dur:.2f} s of audio in {dt:.2f} s (real-time factor {dt / max(dur, 1e-9):.3f})")
    return 0


def cmd_generate(args) -> int:
    from tqdm import tqdm

    from .. import AudioFileReader, load_model
    from ..io.frames import FORMATS, FrameWriter
    from ..io.files import check_writable
    from ..runtime.device import set_threads
    from ..vertex import vertex_checkpoint_vertices

    out = Path(args.out)
    set_threads(args.threads)
    check_writable(out, args.force)     # before any work: exists, folder, permission
    n_vertices = vertex_checkpoint_vertices(args.checkpoint) if args.checkpoint else None
    if n_vertices is not None:
        return _generate_vertices(args, out, n_vertices)
    if args.template:
        raise ValueError(f"--template is for vertex checkpoints; "
                         f"{args.checkpoint or 'the bundled model'} makes ARKit weights")
    style = _style_arg(args.style)
    if isinstance(style, str):
        raise ValueError(f"--style {style!r}: this model takes an identity index (an integer)")
    if out.suffix.lower() not in FORMATS:
        raise ValueError(f"{out}: unknown output format {out.suffix!r}; use one of {', '.join(FORMATS)}")
    reader = AudioFileReader(args.audio)        # opened (and checked) before the model loads
    try:
        model = load_model(args.checkpoint, device=args.device, threads=args.threads)
        # every setting is checked here, before any audio is decoded
        session = model.stream(seed=args.seed, style=style, chunk_frames=args.chunk_frames,
                               steps=args.steps, eta=args.eta, guidance=args.guidance,
                               fps=args.fps)
    except BaseException:
        reader.close()
        raise
    fps = session.fps
    meta = {"audio": str(args.audio), "checkpoint": str(args.checkpoint or "default"),
            "seed": args.seed, "style": args.style, "steps": args.steps or model.config.sample_steps,
            "latency_ms": session.latency_ms}
    with reader, FrameWriter(out, model.channel_names, fps, model.config.output_kind, meta,
                             overwrite=args.force) as writer:
        total = reader.duration_s
        bar = tqdm(total=round(total) if total else None, unit="s", desc="generate", leave=False,
                   disable=not (total and total > 10 and sys.stderr.isatty()))
        t0 = time.perf_counter()
        for block in reader:
            writer.write(session.push(block))
            bar.update(len(block) / model.sample_rate)
        writer.write(session.flush())
        dt = time.perf_counter() - t0
        bar.close()
        dur = reader.n_out / model.sample_rate
        n = writer.n_frames
    print(f"{out}: {n} frames at {fps:g} fps from {dur:.2f} s of audio in {dt:.2f} s "
          f"(real-time factor {dt / max(dur, 1e-9):.3f}, algorithmic latency "
          f"{session.latency_ms:.0f} ms)")
    return 0


def _add_make_dataset(sub):
    p = sub.add_parser("make-dataset", help="synthesize a training corpus (TTS + teacher curves)",
                       description="Synthesize speech with exact phone timing (eSpeak NG, Festival), "
                                   "turn it into ARKit-52 teacher curves, augment the audio, and "
                                   "write one .npz per utterance plus manifest.jsonl.")
    p.add_argument("out", help="new folder for the corpus (must not exist or be empty)")
    p.add_argument("--utterances", type=int, default=2400, help="number of utterances (default 2400)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=float, default=30.0, help="frame rate of the curves (the model's fps)")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2)), help="processes")
    p.add_argument("--no-augment", action="store_true", help="keep the audio clean")
    p.add_argument("--engines", default="espeak-ng,festival,piper",
                   help="comma-separated TTS engines (espeak-ng, festival, piper)")
    p.add_argument("--recipe", default="v2", choices=("v2", "v3"),
                   help="v2: eSpeak NG + Festival (the v1/v2 models); v3: + Piper, WORLD "
                        "speaker transforms, measured rooms, held-out sentences and voices "
                        "kept out (model_core.training.corpus.RECIPES)")
    p.set_defaults(func=cmd_make_dataset)


def cmd_make_dataset(args) -> int:
    from ..training.corpus import build_corpus
    if args.utterances < 1:
        raise ValueError("--utterances must be at least 1")
    out = build_corpus(args.out, args.utterances, seed=args.seed, fps=args.fps, workers=args.workers,
                       augment=not args.no_augment, engines=tuple(args.engines.split(",")),
                       progress=sys.stderr.isatty(), recipe=args.recipe)
    info = json.loads((out / "corpus.json").read_text())
    print(f"{out}: {info['utterances']} utterances, {info['hours']:.2f} h of speech, "
          f"{len(info['espeak_voices'])} eSpeak voices, {len(info['festival_voices'])} Festival voices")
    return 0


def _add_make_evalset(sub):
    p = sub.add_parser("make-evalset", help="write the synthetic held-out evaluation set",
                       description="Synthesize the held-out evaluation set (speakers and "
                                   "sentences a v3 corpus never trains on) as wav + txt for "
                                   "`streamtalker evaluate --inputs DIR`.")
    p.add_argument("out", help="new folder (must not exist or be empty)")
    p.add_argument("--per-speaker", type=int, default=6, help="clips per speaker (default 6)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_make_evalset)


def cmd_make_evalset(args) -> int:
    from ..training.corpus import build_heldout_set
    if args.per_speaker < 1:
        raise ValueError("--per-speaker must be at least 1")
    out = build_heldout_set(args.out, args.per_speaker, args.seed)
    n = len(list((out / "speech").rglob("*.wav")))
    print(f"{out}: {n} held-out clips (evaluate with --inputs {out})")
    return 0


def _add_train(sub):
    p = sub.add_parser("train", help="train or fine-tune a model from a TOML config",
                       description="Train (CPU or CUDA; multi-GPU with torchrun) as a TOML config says, "
                                   "on ARKit data ([data] corpus/captures) or vertex data "
                                   "([data] vertices: VOCASET/BIWI, docs/vertex_training.md); "
                                   "resumes from the newest checkpoint in the run folder.")
    p.add_argument("config", help="TOML file with [model], [data], [train] (and [codec] for "
                                  "vertex data); see configs/default.toml, configs/vocaset.toml")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from ..training.trainer import run_training
    final = run_training(args.config, progress=sys.stderr.isatty())
    if final is not None:
        print(f"trained model: {final}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="streamtalker",
                                     description="Speech-driven facial animation, streaming.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_generate(sub)
    _add_make_dataset(sub)
    _add_make_evalset(sub)
    _add_train(sub)
    from .evaluate import add_evaluate_parser
    from .live import add_live_parser
    from .vertex import add_vertex_parsers
    add_evaluate_parser(sub)
    add_live_parser(sub)
    add_vertex_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``streamtalker`` console script; returns the exit status.

    Errors (bad files, settings, unwritable outputs: ValueError, OSError and their kin) are
    one line on stderr with exit status 2; warnings one line each; Ctrl+C exits 130 (``live``
    saves its take first).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    prefix = f"streamtalker {args.command}"

    def one_line(message, category, filename, lineno, file=None, line=None):
        print(f"{prefix}: warning: {message}", file=sys.stderr, flush=True)

    old_show = warnings.showwarning
    warnings.showwarning = one_line
    try:
        return args.func(args)
    except (AudioError, CheckpointError, ValueError, OSError) as e:
        print(f"{prefix}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prefix}: cancelled", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = old_show


if __name__ == "__main__":
    sys.exit(main())
