"""Live microphone input: device -> ring buffer -> resampler -> model session -> newest frame.

Threads and data flow (one :class:`LiveEngine`)::

    PortAudio callback thread          worker thread                      consumer (main thread)
    sounddevice.InputStream  --write-->  RingBuffer  --read-->  Resampler -> session.push
                                                                  --> LiveEvent deque --poll()-->

* The audio callback only copies samples into a :class:`RingBuffer` (a short lock held for
  one ``memcpy``; no allocation beyond the block stamp), notes the capture time
  (``time.monotonic()`` at the callback, seconds) and the input level.
* The worker reads what is waiting, block by block, resamples each block to 16 kHz with
  :class:`model_core.io.audio.Resampler` (the same resampler files use) and pushes it into
  the model's streaming session. Frames that become ready are handed over as
  :class:`LiveEvent` objects; :meth:`LiveEngine.poll` returns them (the newest frame is
  ``events[-1].frames[-1]``), :meth:`LiveEngine.latest` gives the newest frame only.
* Falling behind: when more than ``max_backlog_s`` of audio waits in the ring, the worker
  drops the oldest audio and keeps the newest ``keep_s`` (counted in
  ``stats.dropped_samples``); the ring itself holds at most ``ring_s`` seconds, so nothing
  grows without bound. Undelivered events are bounded too (``max_events``).

Latency (``LiveStats``): for every chunk of frames, *captured -> ready* is measured from
the capture time of the audio block that completed the chunk to the moment the frames were
ready; split into ``buffer_ms`` (waiting in the ring until the worker took it), ``model_ms``
(resampling + ``session.push``) and ``handover_ms`` (frames ready -> applied by the
consumer, recorded when the consumer calls :meth:`LiveEngine.applied`). This excludes the
model's algorithmic latency (chunk length + look-ahead, ``session.latency_ms``), which is
reported separately.

Errors (all :class:`LiveError`, a ``RuntimeError`` with a sentence for the user):
:class:`NoInputDevice` (no device / no device of that name / not an input),
:class:`SampleRateRefused` (the device accepts none of the rates tried),
:class:`DeviceError` (PortAudio failed opening the device, or mid-stream: the stream
ended, the callback stopped delivering for ``stall_s`` seconds). Mid-stream errors stop the
engine; the message is in ``engine.error`` and ``engine.state == "failed"``.

No ``bpy`` here; the Blender add-on and ``streamtalker live`` share this code path.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..io.audio import MODEL_SAMPLE_RATE, Resampler, check_sample_rate
from ..errors import SettingError, StreamTalkerError
from ..runtime.driver import run
from ..runtime.session import check_seed
from ..runtime.settings import SamplerSettings


class LiveError(StreamTalkerError, RuntimeError):
    """A live-input failure, with a message for the user."""


class NoInputDevice(LiveError):
    """No input device, or none matching the requested name."""


class SampleRateRefused(LiveError):
    """The input device accepts none of the sample rates tried."""


class DeviceError(LiveError):
    """PortAudio could not open the device, or the device failed mid-stream."""


def _sd():
    """The ``sounddevice`` module. Raises :class:`NoInputDevice` when it (or the PortAudio
    library) cannot be loaded."""
    try:
        import sounddevice
    except (ImportError, OSError) as e:
        raise NoInputDevice(f"live input needs the PortAudio library and the Python package "
                            f"sounddevice ({e}); on Debian/Ubuntu: apt-get install "
                            f"libportaudio2") from None
    return sounddevice


# ---------------------------------------------------------------------------------------
# Ring buffer

class RingBuffer:
    """Single-producer / single-consumer ring of mono float32 samples with block stamps.

    Args:
        capacity: samples held at most (> 0). Writing more than fits overwrites the oldest
            samples; the reader counts them as dropped.
        max_blocks: block stamps held at most.

    :meth:`write` (audio callback) copies a block [n] and stamps it with its capture time
    (seconds, ``time.monotonic``) and the running sample index of its end. :meth:`read`
    (worker) returns the waiting blocks. A lock is held only for the copies.
    """

    def __init__(self, capacity: int, max_blocks: int = 4096):
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0 samples, got {capacity}")
        self.capacity = int(capacity)
        self._buf = np.zeros(self.capacity, np.float32)
        self._w = 0   # total samples written (absolute index)
        self._r = 0   # total samples consumed or dropped (absolute index)
        self._stamps: collections.deque = collections.deque(maxlen=max_blocks)  # (end, t)
        self._lock = threading.Lock()
        self.overwritten = 0   # samples lost to overwriting (consumer too slow)

    def write(self, x: np.ndarray, t_capture: float) -> None:
        """Append samples float32 [n] captured at ``t_capture`` (monotonic s). Never blocks
        for long; overwrites the oldest samples when full."""
        n = len(x)
        if n == 0:
            return
        if n > self.capacity:
            x = x[-self.capacity:]
        with self._lock:
            w = self._w
            m = len(x)
            start = (w + n - m) % self.capacity
            first = min(m, self.capacity - start)
            self._buf[start:start + first] = x[:first]
            if first < m:
                self._buf[:m - first] = x[first:]
            self._w = w + n
            if self._w - self._r > self.capacity:
                self.overwritten += self._w - self.capacity - self._r
                self._r = self._w - self.capacity
            self._stamps.append((self._w, t_capture))

    @property
    def available(self) -> int:
        """Samples waiting to be read."""
        return self._w - self._r

    @property
    def written(self) -> int:
        """Samples written since creation."""
        return self._w

    def read(self, keep_newest: int | None = None):
        """Take every waiting sample.

        Args:
            keep_newest: if given and more samples wait, drop all but the newest
                ``keep_newest`` (they count in the returned ``dropped``).
        Returns:
            (blocks, dropped): blocks is a list of (samples float32 [n], t_capture s,
            end_index) in order; dropped is the number of samples skipped by
            ``keep_newest``.
        """
        with self._lock:
            r, w = self._r, self._w
            dropped = 0
            if keep_newest is not None and w - r > keep_newest:
                dropped = w - r - keep_newest
                r = w - keep_newest
            n = w - r
            if n <= 0:
                return [], dropped
            start = r % self.capacity
            first = min(n, self.capacity - start)
            data = np.empty(n, np.float32)
            data[:first] = self._buf[start:start + first]
            if first < n:
                data[first:] = self._buf[:n - first]
            stamps = [(e, t) for e, t in self._stamps if e > r]
            self._stamps.clear()
            self._r = w
        blocks, pos = [], r
        for end, t in stamps:
            if end <= pos:
                continue
            blocks.append((data[pos - r:end - r], t, end))
            pos = end
        if pos < w:  # stamps lost (more blocks than max_blocks): give the rest unstamped
            blocks.append((data[pos - r:], time.monotonic(), w))
        return blocks, dropped


# ---------------------------------------------------------------------------------------
# Events and statistics

@dataclass
class LiveEvent:
    """Frames that became ready together.

    Attributes:
        seq: running number; frames: float32 [n, D] weights; end_index: device samples
        captured up to the block that completed them; t_capture, t_taken, t_ready:
        monotonic seconds (block captured, taken by the worker, frames ready);
        level_db: input RMS level of that block, dBFS.
    """

    seq: int
    frames: np.ndarray
    end_index: int
    t_capture: float
    t_taken: float
    t_ready: float
    level_db: float


@dataclass
class LiveStats:
    """Running measurements (read from any thread; written by the worker and consumer).

    Latencies are milliseconds, sizes samples at the device rate, times monotonic seconds.
    ``latency`` holds (buffer_ms, model_ms, handover_ms, total_ms) rows of applied chunks,
    ``backlog`` (t, samples waiting) rows; both bounded.
    """

    samplerate: float = 0.0              # device rate, Hz
    frames: int = 0                      # frames made
    chunks: int = 0                      # pushes that made frames
    dropped_samples: int = 0             # audio dropped (model behind) or overwritten
    dropped_events: int = 0              # events the consumer never took
    status_flags: int = 0                # PortAudio callbacks with a status flag
    last_status: str = ""                # the last such status
    level_db: float = -120.0             # input level of the last block
    peak_db: float = -120.0              # decaying peak level
    backlog_samples: int = 0             # audio waiting now
    max_backlog_samples: int = 0         # the most that ever waited
    t_first_audio: float | None = None   # first callback (monotonic s)
    t_started: float = 0.0               # engine start (monotonic s)
    # -- bounded histories
    latency: collections.deque = field(default_factory=lambda: collections.deque(maxlen=4096))
    backlog: collections.deque = field(default_factory=lambda: collections.deque(maxlen=36000))

    @property
    def dropped_s(self) -> float:
        """Dropped audio, seconds."""
        return self.dropped_samples / self.samplerate if self.samplerate else 0.0

    @property
    def latency_ms(self) -> float:
        """Median captured -> applied latency of the last 30 chunks, ms (nan before any)."""
        rows = list(self.latency)[-30:]
        return float(np.median([r[3] for r in rows])) if rows else float("nan")

    def percentiles(self, q=(50, 95)) -> dict:
        """{"total": {50: ms, 95: ms}, "buffer": ..., "model": ..., "handover": ...}."""
        rows = np.array(list(self.latency), np.float64).reshape(-1, 4)
        out = {}
        for j, name in enumerate(("buffer", "model", "handover", "total")):
            out[name] = {p: (float(np.percentile(rows[:, j], p)) if len(rows) else float("nan"))
                         for p in q}
        return out


def level_db(x: np.ndarray) -> float:
    """RMS level of float32 samples [n] in dBFS (-120 for silence)."""
    if len(x) == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return max(-120.0, 20.0 * math.log10(rms)) if rms > 0 else -120.0


def level_meter(db: float, width: int = 30) -> str:
    """A text bar for a level in dBFS (-60..0 dB over ``width`` characters)."""
    n = int(round(max(0.0, min(1.0, (db + 60.0) / 60.0)) * width))
    return "#" * n + "-" * (width - n)


# ---------------------------------------------------------------------------------------
# Devices

def list_input_devices() -> list[dict]:
    """[{"index", "name", "channels", "default_samplerate"}] of devices with inputs.

    Raises:
        NoInputDevice: PortAudio is not available.
    """
    sd = _sd()
    out = []
    for i, d in enumerate(sd.query_devices()):
        if d.get("max_input_channels", 0) > 0:
            out.append({"index": i, "name": d["name"], "channels": d["max_input_channels"],
                        "default_samplerate": d["default_samplerate"]})
    return out


def resolve_input_device(device=None) -> tuple[int | None, dict]:
    """(PortAudio index or None for the default, device info dict) of an input device.

    Args:
        device: None / "" (the default input), an index, or a (part of a) device name.
    Raises:
        NoInputDevice: no default input, no device with that name, or not an input.
    """
    sd = _sd()
    names = ", ".join(repr(d["name"]) for d in _safe_inputs(sd)) or "none"
    try:
        if device is None or device == "":
            info = sd.query_devices(kind="input")
            return None, dict(info)
        dev = int(device) if isinstance(device, int) or str(device).isdigit() else device
        info = sd.query_devices(dev)
    except (ValueError, sd.PortAudioError) as e:
        what = "no default input device" if not device else f"no input device {device!r}"
        raise NoInputDevice(f"{what} ({e}); input devices: {names}") from None
    if info.get("max_input_channels", 0) < 1:
        raise NoInputDevice(f"device {info['name']!r} has no inputs; input devices: {names}")
    return int(info["index"]), dict(info)


def _safe_inputs(sd) -> list:
    try:
        return [d for d in sd.query_devices() if d.get("max_input_channels", 0) > 0]
    except Exception:
        return []


# ---------------------------------------------------------------------------------------
# The engine

class LiveEngine:
    """Live microphone -> model frames.

    Args:
        model: anything with ``stream(seed, style, steps, fps)``, ``fps`` and
            ``channel_names``: a loaded ARKit model (either backend), or a vertex model seen
            through a shape-key rig (:class:`~model_core.vertex.retarget.RetargetedModel`).
        device: input device (None: default input; index or name, see :func:`resolve_input_device`).
        samplerate: device rate in Hz (4000..384000); None tries 16000 then the device's
            default rate.
        fps: output frame rate (None: the model's).
        seed, style: passed to ``model.stream``.
        settings: the :class:`~model_core.runtime.settings.SamplerSettings` of the session
            (None: ``SamplerSettings(preset="live")``, the model's low-latency chunk and
            look-ahead where it declares one, else its defaults).
        steps, blink_temperature: the keyword API: put into ``settings`` when not None
            (``blink_temperature`` only for ARKit models).
        blocksize: samples per callback (0: PortAudio decides; default 10 ms).
        device_latency: PortAudio's suggested input latency: ``"low"`` (default),
            ``"high"``, seconds, or None for sounddevice's default (``"high"``). With
            ``"high"`` PortAudio's ALSA host reads in larger periods and a 10 ms block waits
            up to one more block (benchmarks/bench_live.py: device p95 13 ms against 0.2 ms).
        ring_s: ring capacity, seconds of audio. max_backlog_s: waiting audio above which
            the worker drops to the newest ``keep_s`` seconds.
        stall_s: seconds without a callback (after the first) that count as a device error;
            start_timeout_s: seconds to wait for the first callback.
        max_events: undelivered :class:`LiveEvent` kept at most (oldest dropped, counted).

    Raises (on creation): ValueError for a bad samplerate, seed or sampler setting (named);
    a bad style or fps, or a setting the model does not support (a chunk size or look-ahead
    outside its range), is refused by :meth:`start` before the device is opened.

    Use: ``eng.start()`` (opens the device: raises :class:`LiveError` subclasses), then
    ``eng.poll()`` / ``eng.latest()`` from the consumer, ``eng.applied(events)`` after using
    them, ``eng.stop()`` (idempotent; joins the worker, closes the stream). Also a context
    manager.
    """

    def __init__(self, model, device=None, samplerate: float | None = None,
                 fps: float | None = None, seed: int = 0, style: int | None = None,
                 steps: int | None = None, blink_temperature: float | None = None,
                 blocksize: int | None = None, ring_s: float = 4.0,
                 max_backlog_s: float = 0.5, keep_s: float = 0.2, stall_s: float = 2.0,
                 start_timeout_s: float = 10.0, max_events: int = 1024, *,
                 settings: SamplerSettings | None = None, device_latency="low"):
        self.model = model
        self.device = device
        self.requested_samplerate = (None if samplerate is None else
                                     check_sample_rate(samplerate, "samplerate (input device rate)"))
        self.fps = float(fps) if fps is not None else float(model.fps)
        self.seed, self.style = check_seed(seed), style
        #: the session's sampler settings, as asked (resolved: ``session_settings``)
        self.settings = SamplerSettings.of(
            SamplerSettings(preset="live") if settings is None else settings,
            steps=steps, blink_temperature=blink_temperature)
        #: the settings the running session resolved (every field set); None before start
        self.session_settings: SamplerSettings | None = None
        self.blocksize = blocksize
        self.device_latency = device_latency
        self.ring_s, self.max_backlog_s, self.keep_s = ring_s, max_backlog_s, keep_s
        self.stall_s, self.start_timeout_s = stall_s, start_timeout_s
        self.channel_names = list(model.channel_names)
        self.state = "new"       # new -> running -> stopped | failed
        self.error = ""
        self.stats = LiveStats()
        self.device_name = ""
        self.samplerate = 0.0
        self.latency_ms = float("nan")  # algorithmic latency of the session
        self._events: collections.deque = collections.deque()
        self._max_events = int(max_events)
        self._ev_lock = threading.Lock()
        self._latest: np.ndarray | None = None
        self._seq = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._stream = None
        self._worker: threading.Thread | None = None
        self._ring: RingBuffer | None = None
        self._t_last_cb: float | None = None
        self._cb_error: str = ""
        #: more blocks than this waiting at once are pushed as one (the model is behind)
        self.merge_blocks = 8

    # -- lifecycle --------------------------------------------------------------------------
    def _open(self, sd, index, info):
        rates = ([self.requested_samplerate] if self.requested_samplerate else
                 [MODEL_SAMPLE_RATE, float(info.get("default_samplerate") or 0)])
        rates = [r for r in dict.fromkeys(rates) if r and r > 0]
        errors = []
        for rate in rates:
            bs = self.blocksize if self.blocksize is not None else int(round(rate / 100))
            try:
                stream = sd.InputStream(device=index, samplerate=rate, channels=1,
                                        dtype="float32", blocksize=bs, callback=self._callback,
                                        **({} if self.device_latency is None else
                                           {"latency": self.device_latency}),
                                        finished_callback=self._finished)
            except sd.PortAudioError as e:
                msg = str(e)
                errors.append((rate, msg))
                if "sample rate" in msg.lower() or "-9997" in msg:
                    continue
                raise DeviceError(f"input device {self.device_name!r} could not be opened: "
                                  f"{msg}") from None
            except ValueError as e:
                raise NoInputDevice(f"input device {self.device_name!r}: {e}") from None
            return stream, float(stream.samplerate)
        tried = ", ".join(f"{r:g} Hz" for r, _ in errors)
        raise SampleRateRefused(f"input device {self.device_name!r} refused the sample "
                                f"rate(s) {tried}: {errors[-1][1] if errors else ''}; choose "
                                f"another rate or device")

    def start(self) -> "LiveEngine":
        """Open the input device, start the stream and the worker.

        Raises:
            NoInputDevice, SampleRateRefused, DeviceError: nothing is left open.
            RuntimeError: already started.
        """
        if self.state != "new":
            raise RuntimeError("this LiveEngine was already started; make a new one")
        # the session first: a bad setting is refused before the device is opened
        self._open_session()
        sd = _sd()
        index, info = resolve_input_device(self.device)
        self.device_name = str(info.get("name", self.device))
        stream, rate = self._open(sd, index, info)
        self._begin(rate, stream)
        try:
            stream.start()
        except Exception as e:
            self.state = "failed"
            self._close_stream()
            raise DeviceError(f"input device {self.device_name!r} could not start: {e}") from None
        self._worker.start()
        return self

    def _open_session(self) -> None:
        """Open the model's session (refusing bad settings by name before any device)."""
        self._session = self.model.stream(seed=self.seed, style=self.style, fps=self.fps,
                                          settings=self.settings)
        self.session_settings = getattr(self._session, "settings", None)
        self.latency_ms = float(self._session.latency_ms)

    def _begin(self, rate: float, stream=None) -> None:
        """Set up the ring, resampler and worker for a device at ``rate`` Hz (the worker is
        created, not started). Benchmarks and tests feed the ring directly after
        :meth:`start_fed`."""
        self._stream = stream
        self.samplerate = rate
        self.stats = LiveStats(samplerate=rate, t_started=time.monotonic())
        self._ring = RingBuffer(int(round(self.ring_s * rate)))
        self._resampler = Resampler(rate, MODEL_SAMPLE_RATE)
        self.state = "running"
        self._worker = threading.Thread(target=self._run, name="StreamTalker live worker",
                                        daemon=True)

    def start_fed(self, samplerate: float = MODEL_SAMPLE_RATE) -> "LiveEngine":
        """Start the engine without an audio device: the caller plays the device's part by
        calling :meth:`feed` (the same ring buffer and worker as a device's callback feeds).
        For benchmarks and tests.

        Raises:
            RuntimeError: already started; ValueError: bad settings.
        """
        if self.state != "new":
            raise RuntimeError("this LiveEngine was already started; make a new one")
        self._open_session()
        self.device_name = "fed directly"
        self._begin(check_sample_rate(samplerate, "samplerate"))
        self._worker.start()
        return self

    def feed(self, samples: np.ndarray) -> None:
        """Write float32 mono samples [n] into the ring as a device callback would (after
        :meth:`start_fed`)."""
        t = time.monotonic()
        self._ring.write(np.asarray(samples, np.float32), t)
        self._t_last_cb = t
        if self.stats.t_first_audio is None:
            self.stats.t_first_audio = t
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker and close the stream (idempotent, any thread but the worker)."""
        self._stop.set()
        self._wake.set()
        w = self._worker
        if w is not None and w.is_alive() and w is not threading.current_thread():
            w.join(timeout)
        self._close_stream()
        if self.state == "running":
            self.state = "stopped"

    def _close_stream(self) -> None:
        s, self._stream = self._stream, None
        if s is None:
            return
        try:
            s.abort()   # stop() waits for buffers to drain, which may never happen
        except Exception:
            pass
        try:
            s.close()
        except Exception:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def running(self) -> bool:
        return self.state == "running"

    # -- PortAudio callback thread ----------------------------------------------------------
    def _callback(self, indata, frames, time_info, status) -> None:
        t = time.monotonic()
        if status:
            self.stats.status_flags += 1
            self.stats.last_status = str(status)
        x = indata[:, 0] if indata.ndim == 2 else indata
        self._ring.write(np.asarray(x, np.float32), t)
        self._t_last_cb = t
        if self.stats.t_first_audio is None:
            self.stats.t_first_audio = t
        self._wake.set()

    def _finished(self) -> None:
        if not self._stop.is_set():
            self._cb_error = "the input stream ended (device unplugged or failed)"
            self._wake.set()

    # -- worker -------------------------------------------------------------------------------
    def _fail(self, message: str) -> None:
        self.error = message
        self.state = "failed"
        self._stop.set()

    def _run(self) -> None:
        try:
            # the one driver: pushes each block _blocks() yields, hands the frames to _deliver;
            # the stream ends when the engine stops (no flush: stopping drops the rest)
            run(self._session, self._blocks(), on_frames=self._deliver, flush=False)
        except Exception as e:  # reported to the consumer, never raised in this thread
            self._fail(f"live input failed: {type(e).__name__}: {e}")
        finally:
            if self.state == "failed":
                self._close_stream()

    def _blocks(self):
        """Generator of 16 kHz sample blocks from the ring buffer, for :func:`run`: waits
        for audio, watches the device (failing the engine on a stall or a closed stream),
        drops the backlog when the model is behind, and before each block yields records
        its capture times in ``self._block`` for :meth:`_deliver`."""
        st, ring, rate = self.stats, self._ring, self.samplerate
        max_backlog = int(self.max_backlog_s * rate)
        keep = max(1, int(self.keep_s * rate))
        while not self._stop.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            if self._stop.is_set():
                break
            now = time.monotonic()
            if self._cb_error:
                self._fail(f"input device {self.device_name!r}: {self._cb_error}")
                break
            last = self._t_last_cb
            if last is None and now - st.t_started > self.start_timeout_s:
                self._fail(f"input device {self.device_name!r} delivered no audio within "
                           f"{self.start_timeout_s:g} s")
                break
            if last is not None and now - last > self.stall_s:
                self._fail(f"input device {self.device_name!r} stopped delivering audio "
                           f"({now - last:.1f} s without samples): unplugged or failed")
                break
            stream = self._stream
            if stream is not None and last is not None and not _active(stream):
                self._fail(f"input device {self.device_name!r}: the input stream stopped "
                           f"(device unplugged or failed)")
                break
            waiting = ring.available
            st.backlog_samples = waiting
            st.max_backlog_samples = max(st.max_backlog_samples, waiting)
            st.backlog.append((now, waiting))
            lost = ring.overwritten
            blocks, dropped = ring.read(keep_newest=keep if waiting > max_backlog else None)
            st.dropped_samples += dropped + lost
            ring.overwritten -= lost
            t_taken = time.monotonic()
            if len(blocks) > self.merge_blocks:
                # behind: one push for everything taken (stamped with the OLDEST capture
                # time, so the latency reported is an upper bound, never flattering)
                blocks = [(np.concatenate([b[0] for b in blocks]), blocks[0][1], blocks[-1][2])]
            for x, t_cap, end in blocks:
                lv = level_db(x)
                st.level_db = lv
                st.peak_db = max(lv, st.peak_db - 0.5)
                y = self._resampler.process(x)
                if len(y):
                    self._block = (t_cap, t_taken, end, lv)
                    yield y

    def _deliver(self, frames: np.ndarray) -> None:
        """:func:`run`'s ``on_frames``: queue the frames of the block just pushed as a
        :class:`LiveEvent` (the oldest events dropped beyond ``max_events``)."""
        st = self.stats
        t_cap, t_taken, end, lv = self._block
        ev = LiveEvent(self._seq, frames, end, t_cap, t_taken, time.monotonic(), lv)
        self._seq += 1
        st.frames += len(frames)
        st.chunks += 1
        with self._ev_lock:
            self._events.append(ev)
            while len(self._events) > self._max_events:
                self._events.popleft()
                st.dropped_events += 1
            self._latest = frames[-1]

    # -- consumer -----------------------------------------------------------------------------
    def poll(self) -> list[LiveEvent]:
        """Events ready since the last call, oldest first (consumer thread)."""
        with self._ev_lock:
            out = list(self._events)
            self._events.clear()
        return out

    def latest(self) -> np.ndarray | None:
        """The newest frame, float32 [D], or None before the first."""
        return self._latest

    def applied(self, events: list[LiveEvent], t_set: float | None = None) -> None:
        """Record that ``events`` were applied at ``t_set`` (monotonic s, default now):
        adds their latency rows (buffer, model, hand-over, total ms) to ``stats``."""
        t_set = time.monotonic() if t_set is None else t_set
        for ev in events:
            self.stats.latency.append(((ev.t_taken - ev.t_capture) * 1e3,
                                       (ev.t_ready - ev.t_taken) * 1e3,
                                       (t_set - ev.t_ready) * 1e3,
                                       (t_set - ev.t_capture) * 1e3))


def _active(stream) -> bool:
    try:
        return bool(stream.active)
    except Exception:
        return False


def run_live(model, device=None, seconds: float | None = None, on_frames=None,
             samplerate: float | None = None, fps: float | None = None, seed: int = 0,
             poll_s: float = 0.02, stop_event: threading.Event | None = None,
             keep_frames: bool = True, **engine_kw) -> tuple[np.ndarray, LiveEngine]:
    """Run a :class:`LiveEngine` in the calling thread until ``seconds`` pass, ``stop_event``
    is set, or Ctrl+C (KeyboardInterrupt), collecting every frame. Ctrl+C ends the run like
    the other two: the frames so far are returned (``engine.interrupted`` is True).

    Args:
        seconds: None (until stopped) or a positive finite number of seconds.
        on_frames: called as ``on_frames(engine, events)`` after each poll that returned
            events (e.g. to print, apply or write them), the last time after the engine
            stopped, so every frame passes through it.
        keep_frames: False returns an empty array (frames only go to ``on_frames``), so
            memory does not grow with the length of the take.
    Returns:
        (frames float32 [T, D], the stopped engine).
    Raises:
        ValueError: bad ``seconds`` (named) or engine settings.
        LiveError: opening failed, or the device failed mid-stream; the frames so far are
            in ``err.frames`` (and went through ``on_frames``).
    """
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(
            seconds, (int, float, np.integer, np.floating)) or not (
            math.isfinite(seconds) and seconds > 0)):
        raise SettingError(f"seconds must be a positive number of seconds (or None: until "
                         f"stopped), got {seconds!r}")
    eng = LiveEngine(model, device=device, samplerate=samplerate, fps=fps, seed=seed, **engine_kw)
    eng.interrupted = False
    chunks = []

    def take(evs):
        eng.applied(evs)
        if keep_frames:
            chunks.extend(ev.frames for ev in evs)
        if on_frames is not None and evs:
            on_frames(eng, evs)

    eng.start()
    t0 = time.monotonic()
    try:
        while eng.running:
            if seconds is not None and time.monotonic() - t0 >= seconds:
                break
            if stop_event is not None and stop_event.is_set():
                break
            time.sleep(poll_s)
            evs = eng.poll()
            if evs:
                take(evs)
    except KeyboardInterrupt:
        eng.interrupted = True
    finally:
        eng.stop()
    take(eng.poll())
    frames = (np.concatenate(chunks) if chunks
              else np.zeros((0, len(eng.channel_names)), np.float32))
    if eng.state == "failed":
        err = DeviceError(eng.error)
        err.frames = frames
        raise err
    return frames, eng
