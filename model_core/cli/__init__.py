"""The ``streamtalker`` command line (also ``python -m model_core.cli``): one thin module per
group of subcommands -- :mod:`.generate`, :mod:`.export` (export-onnx), :mod:`.training` (make-dataset, make-evalset,
train, average), :mod:`.evaluate`, :mod:`.live`, :mod:`.vertex` (retarget, export-cache).

Errors a user can fix (StreamTalkerError) are printed as one line naming the file or setting,
exit status 2; any other exception is a bug and shows its traceback (exit status 1); warnings
(clipped or truncated audio) as one line each.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from ..errors import StreamTalkerError
from .evaluate import add_evaluate_parser
from .export import add_export_parser
from .generate import add_generate_parser
from .live import add_live_parser
from .training import (add_average_parser, add_make_dataset_parser, add_make_evalset_parser,
                       add_train_parser)
from .vertex import add_vertex_parsers

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="streamtalker",
                                     description="Speech-driven facial animation, streaming.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_generate_parser(sub)
    add_export_parser(sub)
    add_make_dataset_parser(sub)
    add_make_evalset_parser(sub)
    add_train_parser(sub)
    add_average_parser(sub)
    add_evaluate_parser(sub)
    add_live_parser(sub)
    add_vertex_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``streamtalker`` console script; returns the exit status.

    Errors a user can fix (:class:`~model_core.errors.StreamTalkerError`: bad files, settings,
    unwritable outputs; a command that needs an optional package, torch say, where it is not
    installed) are one line on stderr with exit status 2; anything else is a bug and
    propagates with its traceback (exit status 1); warnings one line each; Ctrl+C exits 130
    (``live`` saves its take first).
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
    except ImportError as e:   # an optional package this command needs is missing
        if (getattr(e, "name", None) or "").split(".")[0] == "torch":
            e = ("this command needs PyTorch, which is not installed here (running a model "
                 "does not: generate, evaluate and live use the onnx backend without it). "
                 "Install the CPU build, pip install torch==2.13.0 --index-url "
                 "https://download.pytorch.org/whl/cpu (PyPI's Linux wheel brings several GB "
                 "of CUDA libraries), then pip install 'streamtalker[train,export]'")
        print(f"{prefix}: error: {e}", file=sys.stderr)
        return 2
    except StreamTalkerError as e:   # anything else is a bug: its traceback is shown
        print(f"{prefix}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prefix}: cancelled", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = old_show


if __name__ == "__main__":
    sys.exit(main())
