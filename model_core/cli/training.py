"""``streamtalker make-dataset``, ``make-evalset``, ``train`` and ``average``: the training
side's commands (the work is in :mod:`model_core.training`)."""

from __future__ import annotations

import json
import sys

from ..errors import SettingError
from ..runtime.device import available_cores

__all__ = ["add_average_parser", "add_make_dataset_parser", "add_make_evalset_parser",
           "add_train_parser"]


def _synthesis_parser(sub, name: str, what: str, description: str):
    """A subcommand that synthesizes speech into a new folder: ``OUT`` and ``--seed``."""
    p = sub.add_parser(name, help=what, description=description)
    p.add_argument("out", help="new folder (must not exist or be empty)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return p


def add_make_dataset_parser(sub) -> None:
    """Register ``make-dataset`` (sets ``func``)."""
    p = _synthesis_parser(
        sub, "make-dataset", "synthesize a training corpus (TTS + teacher curves)",
        "Synthesize speech with exact phone timing (eSpeak NG, Festival), turn it into "
        "ARKit-52 teacher curves, augment the audio, and write one .npz per utterance plus "
        "manifest.jsonl.")
    p.add_argument("--utterances", type=int, default=2400, help="number of utterances (default 2400)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate of the curves (the model's fps)")
    p.add_argument("--workers", type=int, default=available_cores(),
                   help="processes (default: the CPU cores this process may use)")
    p.add_argument("--no-augment", action="store_true", help="keep the audio clean")
    p.add_argument("--engines", default="espeak-ng,festival,festival-ml,piper,mbrola",
                   help="comma-separated TTS engines (espeak-ng, festival (English voices), "
                        "festival-ml (Festival's Czech, Russian, Catalan, Hindi, Marathi and "
                        "Telugu voices; recipe v6), piper, mbrola)")
    p.add_argument("--recipe", default="v2", choices=("v2", "v3", "v4", "v5", "v6"),
                   help="v2: eSpeak NG + Festival (the v1/v2 models); v3: + Piper, WORLD "
                        "speaker transforms, measured rooms, held-out sentences and voices "
                        "kept out; v4: + MBROLA voices of people in 30 languages and eSpeak "
                        "NG in 40; v5: v4 with every text in its voice's language; "
                        "v6: v5 with Festival's Czech, Russian, Catalan, Hindi, Marathi and "
                        "Telugu voices (model_core.training.corpus.RECIPES). A stopped build goes "
                        "on when the same command is run again")
    p.set_defaults(func=cmd_make_dataset)


def cmd_make_dataset(args) -> int:
    from ..training.corpus import build_corpus
    if args.utterances < 1:
        raise SettingError("--utterances must be at least 1")
    out = build_corpus(args.out, args.utterances, seed=args.seed, fps=args.fps, workers=args.workers,
                       augment=not args.no_augment, engines=tuple(args.engines.split(",")),
                       progress=sys.stderr.isatty(), recipe=args.recipe)
    info = json.loads((out / "corpus.json").read_text())
    print(f"{out}: {info['utterances']} utterances, {info['hours']:.2f} h of speech, "
          f"{len(info['espeak_voices'])} eSpeak voices, "
          f"{len(info['festival_voices']) + len(info.get('festival_ml_voices', []))} Festival voices")
    return 0


def add_make_evalset_parser(sub) -> None:
    """Register ``make-evalset`` (sets ``func``)."""
    p = _synthesis_parser(
        sub, "make-evalset", "write the synthetic held-out evaluation set",
        "Synthesize a held-out evaluation set (voices and sentences the corpus of the same "
        "recipe never trains on) for `streamtalker evaluate --inputs DIR` or --heldout DIR.")
    p.add_argument("--per-speaker", type=int, default=None,
                   help="clips per speaker (default 6 for v3, 4 for v4, 12 for festival-ml)")
    p.add_argument("--recipe", default="v3", choices=("v3", "v4", "festival-ml"),
                   help="v3: English held-out voices and sentences (pocketsphinx-aligned wav "
                        "+ txt); v4: recorded MBROLA voices no v4 corpus trains on, 14 of "
                        "them in 13 languages, with exact IPA phone timing (wav + "
                        "phones.json); festival-ml: Festival's 9 voices recorded from people "
                        "in Czech, Russian, Catalan, Hindi, Marathi and Telugu, held out from "
                        "corpora v2-v5 only (v6 trains on them)")
    p.add_argument("--split", default=None, choices=("dev", "test", "seen"),
                   help="v4: write only the dev voices (to choose checkpoints and settings on) "
                        "or only the test voices (to report on), with the same clips the "
                        "whole set holds (default: all 14 voices); seen: the dev set's "
                        "control, a voice the corpus trains on in each dev voice's place "
                        "reading the same texts (the dev set's gap to it is what an unheard "
                        "voice costs)")
    p.set_defaults(func=cmd_make_evalset)


def cmd_make_evalset(args) -> int:
    from ..training.corpus import (build_festival_evalset, build_heldout_set,
                                   build_multilingual_evalset)
    n = args.per_speaker if args.per_speaker is not None else \
        {"v4": 4, "festival-ml": 12}.get(args.recipe, 6)
    if n < 1:
        raise SettingError("--per-speaker must be at least 1")
    if args.recipe == "v4":
        out = build_multilingual_evalset(args.out, n, args.seed, split=args.split)
    elif args.split is not None:
        raise SettingError(f"--split is for --recipe v4 (the {args.recipe} set has no "
                           f"dev/test/seen halves)")
    elif args.recipe == "festival-ml":
        out = build_festival_evalset(args.out, n, args.seed)
    else:
        out = build_heldout_set(args.out, n, args.seed)
    n = len(list((out / "speech").rglob("*.wav")))
    print(f"{out}: {n} held-out clips (evaluate with --inputs {out})")
    return 0


def add_train_parser(sub) -> None:
    """Register ``train`` (sets ``func``)."""
    p = sub.add_parser("train", help="train or fine-tune a model from a TOML config",
                       description="Train (CPU or CUDA; multi-GPU with torchrun) as a TOML config says, "
                                   "on ARKit data ([data] corpus/captures) or vertex data "
                                   "([data] vertices: VOCASET/BIWI, docs/vertex_training.md); "
                                   "resumes from the newest checkpoint in the run folder.")
    p.add_argument("config", help="TOML file with [model], [data], [train] (and [codec] for "
                                  "vertex data); see configs/v4/ (the bundled model's recipe), configs/vocaset.toml")
    p.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                   help="stop after saving this step, the learning rate following the "
                        "schedule of [train] steps (overrides [train] stop_at; 0 = run to "
                        "steps); run again with a larger value, or 0, to go on")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from ..training.trainer import run_training
    final = run_training(args.config, progress=sys.stderr.isatty(), stop_at=args.stop_at)
    if final is not None:
        print(f"trained model: {final}")
    return 0


def add_average_parser(sub) -> None:
    """Register ``average`` (sets ``func``)."""
    p = sub.add_parser("average", help="average the weights of fine-tuned checkpoints (a model soup)",
                       description="Write a new checkpoint whose learned weights are the "
                                   "(weighted) mean of the given fine-tunes of one network "
                                   "(Wortsman et al. 2022, 'Model soups'); settings and "
                                   "training record from the first, the ingredients listed in "
                                   "it. Choose it on the dev sets like any checkpoint.")
    p.add_argument("checkpoints", nargs="+", help="two or more checkpoints (.safetensors with "
                                                  "their .json) of one architecture")
    p.add_argument("-o", "--out", required=True, help="new .safetensors path (never overwritten)")
    p.add_argument("--weights", default=None,
                   help="comma-separated weights, one per checkpoint, > 0, summing to 1 "
                        "(default: uniform)")
    p.add_argument("--name", default=None, help="the result's training-record name")
    p.set_defaults(func=cmd_average)


def cmd_average(args) -> int:
    """Handler of ``streamtalker average``; returns 0.

    Raises:
        SettingError: bad ``--weights``; CheckpointError: checkpoints that cannot be averaged;
        OutputExistsError: ``--out`` exists.
    """
    from ..training.soup import average_checkpoints
    weights = None
    if args.weights is not None:
        try:
            weights = [float(w) for w in args.weights.split(",")]
        except ValueError:
            raise SettingError(f"--weights {args.weights!r}: expected comma-separated numbers, "
                               f"e.g. 0.5,0.5") from None
    out = average_checkpoints(args.checkpoints, args.out, weights=weights, name=args.name)
    print(f"averaged {len(args.checkpoints)} checkpoints: {out}")
    return 0
