"""The eSpeak NG helper process (a "zygote") and the one entry to eSpeak: :func:`_espeak_call`.

eSpeak NG keeps synthesis state between calls that no API resets (the pitch "flutter"
phase, a function-static in wavegen.c, and the echo buffer), so the same text comes out
a few samples longer or shorter from call to call. For exactly reproducible output every
synthesis runs in a child forked from a helper process ("zygote") that initialised eSpeak
but never synthesizes: each call starts from the same pristine state. The helper runs
:func:`_zygote_main` of this module (``python -P -c ...``: no working directory on
``sys.path``; the ``model_core`` the caller imported is put first, so both run the same
code) and speaks length-prefixed pickles over its stdin/stdout.
"""

from __future__ import annotations

import atexit
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path

from .espeak_binding import _Espeak, _espeak_handle

_ESPEAK_LOCK = threading.RLock()
#: {ipa: _EspeakZygote (or _EspeakInProcess where there is no fork)}, under the lock; one
#: backend per event alphabet (eSpeak NG fixes it when it is initialised)
_backends: dict = {}


_ERROR_TYPES = {"FileNotFoundError": FileNotFoundError, "ValueError": ValueError,
                "RuntimeError": RuntimeError}


class _BackendDied(Exception):
    pass


class _BackendUnavailable(Exception):
    pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int):
    parts, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _send_msg(fd: int, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    _write_all(fd, struct.pack("<Q", len(data)) + data)


def _recv_msg(fd: int):
    header = _read_exact(fd, 8)
    if header is None:
        return None
    data = _read_exact(fd, struct.unpack("<Q", header)[0])
    return None if data is None else pickle.loads(data)


def _zygote_main(ipa: bool = False) -> None:
    """Helper process: initialise eSpeak (IPA phoneme names with ``ipa``), then fork one
    child per request."""
    channel = os.dup(1)
    os.dup2(2, 1)  # stray writes to stdout (C or Python) must not corrupt the channel
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent; EOF ends us
    try:
        es = _Espeak(ipa)
    except Exception as exc:
        _send_msg(channel, ("error", type(exc).__name__, str(exc)))
        return
    _send_msg(channel, ("ready", es.sample_rate))
    while True:
        request = _recv_msg(0)
        if request is None:  # the parent closed the pipe (or exited)
            return
        op, payload = request
        pid = os.fork()
        if pid == 0:
            try:
                try:
                    msg = ("ok", _espeak_handle(es, op, payload))
                except Exception as exc:
                    msg = ("error", type(exc).__name__, str(exc))
                _send_msg(channel, msg)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            _send_msg(channel, ("error", "RuntimeError",
                                f"eSpeak NG synthesis process died (wait status {status})"))


#: The folder that holds the ``model_core`` package this module belongs to.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])
#: The helper's program (``python -P -c``; argv: the package root, then ``--ipa`` or not).
_ZYGOTE_START = ("import sys; sys.path.insert(0, sys.argv[1]); "
                 "from model_core.training.tts.helper import _zygote_main; "
                 "_zygote_main(ipa=sys.argv[2:] == ['--ipa'])")


class _EspeakZygote:
    """Parent side of the helper process. Use only while holding ``_ESPEAK_LOCK``."""

    def __init__(self, ipa: bool = False):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                   MKL_NUM_THREADS="1")
        # -P: no working directory on sys.path; the folder holding this model_core goes first
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-P", "-c", _ZYGOTE_START, _PACKAGE_ROOT]
                + (["--ipa"] if ipa else []),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                bufsize=0, env=env, close_fds=True)
        except OSError as exc:
            raise _BackendUnavailable(str(exc)) from exc
        self.owner_pid = os.getpid()
        msg = self._recv()
        if msg is None:
            self.close()
            raise _BackendUnavailable(f"{sys.executable} (the eSpeak helper) exited at start")
        if msg[0] == "error":
            self.close()
            raise _ERROR_TYPES.get(msg[1], RuntimeError)(msg[2])
        self.sample_rate = int(msg[1])

    def _recv(self):
        try:
            return _recv_msg(self.proc.stdout.fileno())
        except (OSError, EOFError, pickle.UnpicklingError, struct.error):
            return None

    def call(self, op: str, payload):
        try:
            _send_msg(self.proc.stdin.fileno(), (op, payload))
        except OSError as exc:
            raise _BackendDied(str(exc)) from exc
        msg = self._recv()
        if msg is None:
            raise _BackendDied("no answer")
        if msg[0] == "error":
            raise _ERROR_TYPES.get(msg[1], RuntimeError)(msg[2])
        return msg[1]

    def close(self) -> None:
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _EspeakInProcess:
    """Fallback where ``os.fork`` is missing: eSpeak in this process (not reproducible
    bit for bit: a few samples of drift between calls, see above)."""

    def __init__(self, ipa: bool = False):
        self.es = _Espeak(ipa)
        self.sample_rate = self.es.sample_rate
        self.owner_pid = os.getpid()

    def call(self, op: str, payload):
        return _espeak_handle(self.es, op, payload)

    def close(self) -> None:
        pass


def _close_backend(ipa: bool | None = None) -> None:
    """Close the eSpeak helper of that event alphabet (None: both)."""
    with _ESPEAK_LOCK:
        for key in ([False, True] if ipa is None else [ipa]):
            backend = _backends.pop(key, None)
            if backend is not None and backend.owner_pid == os.getpid():
                backend.close()


def _after_fork_in_child() -> None:
    # A forked child must neither share the parent's helper pipes nor inherit a held lock.
    global _ESPEAK_LOCK
    _backends.clear()
    _ESPEAK_LOCK = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_backend)


def _espeak_call(op: str, payload, ipa: bool = False):
    """Send one request to the eSpeak backend of that event alphabet (started on first
    use; ``ipa``: IPA phoneme names); returns (result, sample_rate). Raises what the
    backend raised."""
    with _ESPEAK_LOCK:
        for attempt in range(2):
            backend = _backends.get(ipa)
            if backend is None:
                try:
                    if not hasattr(os, "fork"):
                        raise _BackendUnavailable("no os.fork")
                    backend = _EspeakZygote(ipa)
                except _BackendUnavailable:  # e.g. sys.executable is not a Python
                    backend = _EspeakInProcess(ipa)
                _backends[ipa] = backend
            try:
                return backend.call(op, payload), backend.sample_rate
            except _BackendDied as exc:
                _close_backend(ipa)
                if attempt:
                    raise RuntimeError(f"the eSpeak NG helper process died: {exc}") from exc
    raise AssertionError("unreachable")
