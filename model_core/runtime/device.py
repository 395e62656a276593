"""Devices and CPU threads: :func:`resolve_device` (the one place a device name becomes a
torch device) and how many CPU threads the model computes with (the one place that chooses
and applies it).

The bundled network is small (about 51 MFLOP per frame): splitting one chunk's work over
several intra-op threads costs more in synchronisation than it gains, and on a busy machine
(Blender's viewport, renders, other programs) every thread that waits for a descheduled
sibling stalls the whole step. Measured on this project's 2-core machine (generate, 7.1 s
clip; benchmarks/bench_streaming.py has the full table): torch's default of 2 threads took
11.7 s against 0.59 s with one thread while other jobs ran, and 39.6 s against 2.4 s with four
CPU-bound processes beside it. So the default is one thread (``DEFAULT_THREADS``), or
``OMP_NUM_THREADS`` where the environment sets it (at most the cores): :func:`default_threads`,
the ONE automatic rule -- ``threads=None`` in :func:`model_core.load_model`, no ``--threads`` on
the command line, the add-on's preference "CPU Threads" at 0. A caller may ask for more
(``threads=``, ``--threads N``, the preference at N).

torch's thread count is process-wide: :func:`set_threads` applies to every model in the
process, and to threads started afterwards (the live worker included).
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import SettingError

#: Intra-op threads the model uses unless told otherwise.
DEFAULT_THREADS = 1


def exact_matmul(a, b) -> np.ndarray:
    """``a @ b`` (float arrays [..., n] and [n, m] -> [..., m], numpy's promoted dtype) with
    the same bits whatever the number of BLAS threads: numpy's own einsum loop instead of
    BLAS, whose multi-threaded sgemm rounds differently with its thread count, so a process
    under ``OMP_NUM_THREADS=1`` (the CLI in many setups) and one with BLAS on every core
    (Blender) would differ in the last bit. For the numpy products frames depend on (the
    log-mel front end, the vertex codec's decode); a few times slower than BLAS.
    """
    return np.einsum("...n,nm->...m", a, b, optimize=False)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one), >= 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """The automatic intra-op thread count: ``OMP_NUM_THREADS`` when the environment sets it
    to a whole number >= 1, else ``DEFAULT_THREADS`` (1); never more than the cores."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    want = int(env) if env.isdigit() and int(env) > 0 else DEFAULT_THREADS
    return min(want, available_cores())


def check_threads(threads, what: str = "threads") -> int:
    """Validate a thread count from a user: None (the default) or an integer in 1..cores.

    Returns:
        the thread count to use, int >= 1.
    Raises:
        ValueError: a bool, non-integer, or a value outside 1..available_cores(), naming
            ``what``.
    """
    if threads is None:
        return default_threads()
    cores = available_cores()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) \
            or not 1 <= int(threads) <= cores:
        raise SettingError(f"{what} must be an integer in 1..{cores} (CPU cores here); 1 is the "
                         f"default and the fastest on a busy machine; got {threads!r}")
    return int(threads)


def set_threads(threads: int | None = None) -> int:
    """Set torch's intra-op CPU threads for this process: ``threads``, or the default
    (:func:`default_threads`: 1, or ``OMP_NUM_THREADS``) when None. Cheap; call it again to change.

    Args:
        threads: None or an integer in 1..available_cores().
    Returns:
        the thread count now in effect (int).
    Raises:
        ValueError: see :func:`check_threads`.
    """
    import torch

    n = check_threads(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def resolve_device(device):
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a torch.device -> torch.device.

    Raises:
        ValueError: unknown device string, or CUDA asked for where torch sees no GPU.
    """
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise SettingError(f"unknown device {device!r}; use 'cpu' or 'cuda'") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SettingError("device 'cuda' asked for but torch sees no CUDA GPU "
                         f"(torch {torch.__version__}); use device='cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise SettingError(f"device {device!r} is not supported; use 'cpu' or 'cuda'")
    return dev
