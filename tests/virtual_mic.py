"""A virtual microphone for tests and benchmarks (docs/architecture.md, "Real inputs and test doubles"): PulseAudio run as an
ordinary process with ``module-pipe-source`` reading a fifo; PortAudio sees it through ALSA's
``pulse`` device (Debian ``libasound2-plugins``). Samples written into the fifo at real-time
pace behave like a live microphone.

    with VirtualMic(tmp_path) as mic:          # starts pulseaudio, sets PULSE_SERVER
        mic.start_writer(speech, lead_s=3.0)   # silence, then the clip, at real-time pace
        ... LiveEngine(model, device=mic.device) ...
        mic.written  # [(sample index after the write, monotonic time of the write)]

Needs the Debian packages ``pulseaudio libasound2-plugins libportaudio2``
(tools/apt-packages.txt); :func:`require` fails the test with that command otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

RATE = 16000
INSTALL_HINT = ("the live-input tests need PulseAudio, the ALSA pulse plugin and PortAudio: "
                "apt-get install -y pulseaudio libasound2-plugins libportaudio2 "
                "(tools/setup.sh installs tools/apt-packages.txt)")


def missing() -> str:
    """'' when the virtual microphone can run here, else why not."""
    if shutil.which("pulseaudio") is None:
        return "pulseaudio is not installed"
    if not any(Path(p).exists() for p in ("/usr/lib/x86_64-linux-gnu/alsa-lib/libasound_module_pcm_pulse.so",
                                          "/usr/lib/aarch64-linux-gnu/alsa-lib/libasound_module_pcm_pulse.so",
                                          "/usr/share/alsa/alsa.conf.d/pulse.conf")):
        return "the ALSA pulse plugin (libasound2-plugins) is not installed"
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError) as e:
        return f"sounddevice/PortAudio cannot be loaded ({e})"
    return ""


def require() -> None:
    """Fail the calling test (never skip) when the virtual microphone cannot run."""
    why = missing()
    if why:
        import pytest
        pytest.fail(f"{why}; {INSTALL_HINT}", pytrace=False)


class VirtualMic:
    """A PulseAudio server with one pipe source at 16 kHz mono s16le.

    Args:
        workdir: a private folder (the socket, fifo, config and log go there).
    Attributes:
        device: the PortAudio input device name to open (``"pulse"``).
        written: [(samples written so far, monotonic seconds)] per block the writer wrote.
    """

    device = "pulse"

    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fifo = self.dir / "mic.fifo"
        self.socket = self.dir / "native"
        self.proc: subprocess.Popen | None = None
        self.written: list[tuple[int, float]] = []
        self._writer: threading.Thread | None = None
        self._stop = threading.Event()
        self._old_env: dict = {}

    def start(self, timeout: float = 10.0) -> "VirtualMic":
        """Start pulseaudio and point PULSE_SERVER at it (PortAudio rescanned)."""
        for p in (self.fifo, self.socket):
            if p.exists():
                p.unlink()
        rt = self.dir / "rt"
        rt.mkdir(exist_ok=True)
        pa = self.dir / "test.pa"
        pa.write_text(
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1\n"
            f"load-module module-null-sink sink_name=null\n"
            f"load-module module-pipe-source source_name=virtual_mic file={self.fifo} "
            f"format=s16le rate={RATE} channels=1\n"
            f"set-default-source virtual_mic\n")
        env = dict(os.environ, HOME=str(self.dir), PULSE_RUNTIME_PATH=str(rt),
                   XDG_RUNTIME_DIR=str(rt))
        self.log = open(self.dir / "pulseaudio.log", "wb")
        self.proc = subprocess.Popen(["pulseaudio", "-n", "-F", str(pa), "--daemonize=no",
                                      "--exit-idle-time=-1", "--use-pid-file=no"],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        while not (self.socket.exists() and self.fifo.exists()):
            if self.proc.poll() is not None or time.monotonic() - t0 > timeout:
                self.stop()
                raise RuntimeError(f"pulseaudio did not start; see {self.dir / 'pulseaudio.log'}")
            time.sleep(0.05)
        for k, v in (("PULSE_SERVER", f"unix:{self.socket}"), ("PULSE_RUNTIME_PATH", str(rt))):
            self._old_env[k] = os.environ.get(k)
            os.environ[k] = v
        self._fd = open(self.fifo, "wb", buffering=0)
        rescan_portaudio()
        return self

    def start_writer(self, clip: np.ndarray, lead_s: float = 3.0, tail_s: float = 2.0,
                     block: int = 160, loop: bool = False) -> int:
        """Write ``lead_s`` of silence, the clip (float32 [N], 16 kHz) and ``tail_s`` of
        silence into the fifo at real-time pace, in a thread; then silence until stopped
        (the source never starves). Returns the sample index where the clip starts."""
        clip = np.clip(np.asarray(clip, np.float32), -1, 1)
        lead = np.zeros(int(lead_s * RATE), np.float32)
        tail = np.zeros(int(tail_s * RATE), np.float32)
        data = (np.concatenate([lead, clip, tail]) * 32767).astype("<i2")
        self.written = []
        self._stop.clear()

        def run():
            t0 = time.monotonic()
            pos, i = 0, 0
            silence = np.zeros(block, "<i2")
            while not self._stop.is_set():
                if pos < len(data):
                    x = data[pos:pos + block]
                elif loop:
                    pos = int(lead_s * RATE)
                    continue
                else:
                    x = silence
                try:
                    self._fd.write(x.tobytes())
                except (BrokenPipeError, ValueError, OSError):
                    return
                pos += len(x)
                i += len(x)
                self.written.append((i, time.monotonic()))
                dt = t0 + i / RATE - time.monotonic()
                if dt > 0:
                    time.sleep(dt)

        self._writer = threading.Thread(target=run, name="virtual mic writer", daemon=True)
        self._writer.start()
        return len(lead)

    def stop_writer(self) -> None:
        self._stop.set()
        if self._writer is not None:
            self._writer.join(5)
            self._writer = None

    def stop(self) -> None:
        """Stop the writer and pulseaudio; restore the environment."""
        self.stop_writer()
        fd = getattr(self, "_fd", None)
        if fd is not None:
            try:
                fd.close()
            except OSError:
                pass
            self._fd = None
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None
        for k, v in self._old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._old_env = {}

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def rescan_portaudio() -> None:
    """Make PortAudio enumerate devices again (after the sound server changed)."""
    import sounddevice as sd
    try:
        sd._terminate()
    finally:
        sd._initialize()
