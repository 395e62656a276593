"""Ctrl+C as a stop event (model_core.interrupt.StopOnCtrlC), which the live take and the
batch bake rely on: a KeyboardInterrupt can be dropped by Python inside a weakref callback,
a set event cannot."""

from __future__ import annotations

import os
import signal
import threading

from model_core.interrupt import StopOnCtrlC


def _wait(event: threading.Event) -> bool:
    for _ in range(1000):  # the handler runs between bytecodes of the main thread
        if event.is_set():
            return True
    return event.is_set()


def test_ctrl_c_sets_the_event_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGINT)
    with StopOnCtrlC(threading.Event()) as stop:
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGINT)   # no KeyboardInterrupt is raised here
        assert _wait(stop)
    assert signal.getsignal(signal.SIGINT) is before


def test_a_second_ctrl_c_says_the_job_is_stopping(capsys):
    with StopOnCtrlC(threading.Event(), "tool: stopping and saving, please wait") as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert _wait(stop)
        assert "please wait" not in capsys.readouterr().err
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass
    assert "tool: stopping and saving, please wait" in capsys.readouterr().err


def test_off_the_main_thread_nothing_is_changed():
    before = signal.getsignal(signal.SIGINT)
    seen = []

    def body():
        with StopOnCtrlC(threading.Event()) as stop:
            seen.append((signal.getsignal(signal.SIGINT), stop.is_set()))

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [(before, False)]
    assert signal.getsignal(signal.SIGINT) is before


# -- issue 21: every stop signal is Ctrl+C ------------------------------------------------

def test_sigterm_and_sighup_set_the_event_like_ctrl_c_and_are_put_back():
    # Python's own Ctrl+C handler, as in a terminal (a test run started in the background
    # by a non-interactive shell inherits SIGINT ignored, and Python leaves it so)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _sigterm_and_sighup_are_ctrl_c()
    finally:
        signal.signal(signal.SIGINT, old)


def _sigterm_and_sighup_are_ctrl_c():
    import pytest
    from model_core.interrupt import STOP_SIGNALS, exit_status, signal_label
    assert {signal.SIGINT, signal.SIGTERM, signal.SIGHUP} <= set(STOP_SIGNALS)
    for sig, label, status in ((signal.SIGTERM, "SIGTERM", 143), (signal.SIGHUP, "SIGHUP", 129)):
        before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        guard = StopOnCtrlC(threading.Event())
        with guard as stop:
            os.kill(os.getpid(), sig)       # the process would end here without the guard
            assert _wait(stop)
            assert guard.signum == sig and guard.label == label
            assert exit_status(guard.signum) == status
        assert {s: signal.getsignal(s) for s in STOP_SIGNALS} == before
    assert signal_label(signal.SIGINT) == "Ctrl+C" and exit_status(signal.SIGINT) == 130
    with pytest.raises(KeyboardInterrupt):   # outside the guard, Ctrl+C is Python's again
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100000):
            pass


def test_the_first_signal_is_the_one_reported():
    guard = StopOnCtrlC(threading.Event(), "tool: stopping, please wait")
    with guard as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert _wait(stop)
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass
    assert guard.label == "SIGTERM"


def test_a_closed_windows_console_stops_the_job_and_waits_for_it_to_save():
    """The CTRL_CLOSE_EVENT handler (called by Windows in a thread of its own; Windows ends
    the process when it returns): it sets the event, and returns only once the job left the
    guard (its work saved), not before."""
    guard = StopOnCtrlC(threading.Event())
    returned = threading.Event()
    with guard as stop:
        t = threading.Thread(target=lambda: (guard._console_handler(2), returned.set()))
        t.start()
        assert stop.wait(5) and guard.label == "the console window closing"
        assert not returned.wait(0.3)       # still waiting: the job is saving
        assert guard._console_handler(0) is False   # Ctrl+C itself goes to the signal handler
    t.join(5)
    assert returned.is_set()
