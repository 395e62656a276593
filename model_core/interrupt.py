"""Every stop signal as a request to stop, never a lost exception or lost work (layer 0 of
docs/architecture.md).

Python turns SIGINT into a ``KeyboardInterrupt`` raised at whatever bytecode runs next. When
that is a finalizer or a weakref callback, Python prints "Exception ignored in ..." and drops
it, and a long job (a live take, a batch bake) runs on as if Ctrl+C had never been pressed.
SIGTERM (``kill``, service managers, CI cancelling a job) and SIGHUP (the terminal closed)
end the process at once by default, and the job's work with it. :class:`StopOnCtrlC` makes
all of them one thing: they set an event, which the job's loop checks, and the job stops and
saves what it has exactly as on Ctrl+C. On Windows: Ctrl+C, Ctrl+Break (SIGBREAK) and the
console window being closed (``CTRL_CLOSE_EVENT``, through ``SetConsoleCtrlHandler``: Windows
ends the process once the handler returns, so it waits there, up to
:data:`WINDOWS_CLOSE_WAIT_S`, for the job to finish saving). Pure Python.
"""

from __future__ import annotations

import signal
import sys
import threading

#: The signals that stop a job, where the platform has them: Ctrl+C, ``kill`` / service
#: managers, a closed terminal (POSIX), Ctrl+Break (Windows).
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK")
                     if hasattr(signal, n))

#: Seconds a closed Windows console waits for the job to save (Windows allows about 5 s).
WINDOWS_CLOSE_WAIT_S = 4.5

#: ``CTRL_CLOSE_EVENT`` of the Windows console API.
_CTRL_CLOSE_EVENT = 2


def signal_label(signum: int | None) -> str:
    """How a stop signal is named to the user: "Ctrl+C" for SIGINT, "Ctrl+Break", else its
    name ("SIGTERM", "SIGHUP"); "the console window closing" for the Windows close event."""
    if signum is None:
        return "a stop request"
    if signum == signal.SIGINT:
        return "Ctrl+C"
    if signum == getattr(signal, "SIGBREAK", None):
        return "Ctrl+Break"
    if signum == -_CTRL_CLOSE_EVENT:
        return "the console window closing"
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_status(signum: int | None) -> int:
    """The exit status of a job stopped by ``signum``: 128 + the signal number, as shells
    report a process ended by it (130 for Ctrl+C, 143 for SIGTERM, 129 for SIGHUP)."""
    if signum is None or signum < 0:
        return 130
    return 128 + int(signum)


class StopOnCtrlC:
    """Context manager: while active, every stop signal (:data:`STOP_SIGNALS`: Ctrl+C,
    SIGTERM, SIGHUP; on Windows Ctrl+Break and the console closing) sets ``event`` instead of
    raising ``KeyboardInterrupt`` or ending the process; the previous handlers are put back
    on exit.

    Args:
        event: the ``threading.Event`` the job's loop checks.
        repeat_message: printed to stderr on a second signal while the job is stopping
            (e.g. "saving the take, please wait"); None prints nothing.

    Attributes:
        signum: the first signal received (None until one came); :func:`signal_label` names
            it, :func:`exit_status` gives the status to exit with.

    Only in the main thread (signal handlers cannot be set elsewhere; there, Ctrl+C stays a
    ``KeyboardInterrupt`` in the main thread, as Python makes it).
    """

    def __init__(self, event: threading.Event, repeat_message: str | None = None):
        self.event = event
        self.repeat_message = repeat_message
        self.signum: int | None = None
        self.old: dict | None = None
        self._console = None
        self._done = threading.Event()

    @property
    def label(self) -> str:
        """The first stop signal, named for the user (:func:`signal_label`)."""
        return signal_label(self.signum)

    def _handler(self, signum, frame):
        if self.event.is_set():
            if self.repeat_message:
                try:
                    print("\n" + self.repeat_message, file=sys.stderr, flush=True)
                except (OSError, ValueError):   # the terminal is gone (SIGHUP)
                    pass
            return
        self.signum = signum
        self.event.set()

    def _console_handler(self, ctrl_type: int) -> bool:
        """Windows console control handler (runs in a thread Windows starts): the close
        event stops the job and waits for it to finish; the rest go to the signal
        handlers."""
        if ctrl_type != _CTRL_CLOSE_EVENT:
            return False
        if not self.event.is_set():
            self.signum = -_CTRL_CLOSE_EVENT
            self.event.set()
        self._done.wait(WINDOWS_CLOSE_WAIT_S)
        return True

    def __enter__(self) -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            self.old = {}
            for s in STOP_SIGNALS:
                try:
                    self.old[s] = signal.signal(s, self._handler)
                except (OSError, ValueError, RuntimeError):
                    pass
            if sys.platform == "win32":
                self._install_console_handler()
        return self.event

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self.old is not None:
            for s, h in self.old.items():
                try:
                    signal.signal(s, h if h is not None else signal.SIG_DFL)
                except (OSError, ValueError, RuntimeError):
                    pass
            self.old = None
        if self._console is not None:
            self._remove_console_handler()

    # -- Windows -------------------------------------------------------------------------
    def _install_console_handler(self) -> None:
        try:
            import ctypes
            from ctypes import wintypes
            proto = ctypes.WINFUNCTYPE(wintypes.BOOL, wintypes.DWORD)
            fn = proto(lambda t: bool(self._console_handler(int(t))))
            if ctypes.windll.kernel32.SetConsoleCtrlHandler(fn, True):
                self._console = fn      # kept alive while installed
        except Exception:   # noqa: BLE001  (no console, no ctypes: Ctrl+C/Break still work)
            self._console = None

    def _remove_console_handler(self) -> None:
        try:
            import ctypes
            ctypes.windll.kernel32.SetConsoleCtrlHandler(self._console, False)
        except Exception:   # noqa: BLE001
            pass
        self._console = None
