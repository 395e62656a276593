"""The eSpeak NG C API through :mod:`ctypes` (``libespeak-ng.so.1``): the engine's
constants and structures, :class:`_Espeak` (the process-wide instance: voices, parameters,
synthesis with phoneme events, voice lists) and :func:`_espeak_handle`, one request served
on it. Used by the helper process (:mod:`.helper`), never directly by callers: eSpeak NG is a
process-wide singleton whose state carries from one synthesis to the next."""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path

import numpy as np

ESPEAK_INSTALL = "apt-get install -y libespeak-ng1 espeak-ng-data"

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


class _Espeak:
    """The process-wide eSpeak NG instance. Use only while holding :data:`.helper._ESPEAK_LOCK`.
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
                f"libespeak-ng1 ({ESPEAK_INSTALL})")
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
                f"({ESPEAK_INSTALL})")
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
