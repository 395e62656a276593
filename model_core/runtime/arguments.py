"""The numbers every run is given on a command line, checked by one function before any
work: ``streamtalker generate`` and the Blender batch bake (``python -m
streamtalker_addon.bake``) take the same ``--seed`` and ``--threads`` and refuse the same
values with the same sentence (exit status 2), instead of one clamping what the other
refuses.
"""

from __future__ import annotations

from .device import check_threads
from .session import MAX_SEED, check_seed

__all__ = ["MAX_SEED", "check_run_arguments"]


def check_run_arguments(seed=None, threads=None) -> None:
    """Check a run's ``--seed`` (an integer in 0..2**64-1, as the model takes it) and
    ``--threads`` (an integer in 1..the CPU cores here); None means "not given".

    Raises:
        ValueError: the first bad one, naming the option and the valid range.
    """
    if seed is not None:
        check_seed(seed, "--seed")
    if threads is not None:
        check_threads(threads, "--threads")
