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
