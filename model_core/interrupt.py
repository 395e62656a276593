"""Ctrl+C as a request to stop, never a lost exception (layer 0 of docs/architecture.md).

Python turns SIGINT into a ``KeyboardInterrupt`` raised at whatever bytecode runs next. When
that is a finalizer or a weakref callback, Python prints "Exception ignored in ..." and drops
it, and a long job (a live take, a batch bake) runs on as if Ctrl+C had never been pressed.
:class:`StopOnCtrlC` sets an event instead, which the job's loop checks. Pure Python.
"""

from __future__ import annotations

import signal
import sys
import threading


class StopOnCtrlC:
    """Context manager: while active, Ctrl+C (SIGINT) sets ``event`` instead of raising
    ``KeyboardInterrupt``; the previous handler is put back on exit.

    Args:
        event: the ``threading.Event`` the job's loop checks.
        repeat_message: printed to stderr on a second Ctrl+C while the job is stopping
            (e.g. "saving the take, please wait"); None prints nothing.

    Only in the main thread (signal handlers cannot be set elsewhere; there, Ctrl+C stays a
    ``KeyboardInterrupt`` in the main thread, as Python makes it).
    """

    def __init__(self, event: threading.Event, repeat_message: str | None = None):
        self.event = event
        self.repeat_message = repeat_message
        self.old = None

    def _handler(self, signum, frame):
        if self.event.is_set() and self.repeat_message:
            print("\n" + self.repeat_message, file=sys.stderr, flush=True)
        self.event.set()

    def __enter__(self) -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, self._handler)
        return self.event

    def __exit__(self, *exc) -> None:
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
            self.old = None
