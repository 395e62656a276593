"""Offline forced phone alignment of real speech with pocketsphinx (en-us, ARPAbet).

Given 16 kHz mono speech and its transcript, :func:`align_phones` returns when each phone
was spoken, as ``(ARPAbet label, start_s, end_s)`` tuples with 10 ms resolution. It uses
the acoustic model (``en-us/en-us``) and CMU dictionary (``en-us/cmudict-en-us.dict``)
bundled in the ``pocketsphinx==5.1.1`` wheel, so it runs offline with no downloads.

How it works (the pocketsphinx 5 Python API, as its ``pocketsphinx align -phone_align yes``
command does it)::

    decoder = Decoder(hmm=..., dict=..., lm=None, bestpath=False)
    decoder.set_align_text("hello world")        # word-level alignment search
    decoder.start_utt(); decoder.process_raw(pcm16, full_utt=True); decoder.end_utt()
    decoder.set_alignment()                      # second pass: sub-word alignment
    decoder.start_utt(); decoder.process_raw(pcm16, full_utt=True); decoder.end_utt()
    for word in decoder.get_alignment():         # words -> phones, times in 10 ms frames
        for phone in word: phone.name, phone.start, phone.duration

Two refinements over that recipe: before each call the decoder's cross-utterance state
(live cepstral mean and noise statistics) is reset, so results never depend on what was
aligned before; and by default one extra first pass adapts that state to the clip itself,
which fixes onsets on short clips (see ``adapt`` in :func:`align_phones`). With
``adapt=False`` the output equals pocketsphinx's own reference alignments of its LibriVox
test clips frame for frame; with the default it stays within one 10 ms frame of them.

One decoder is loaded lazily per process (about 0.15 s) and reused under a lock; aligning
a 3-7 s clip takes about 0.1-0.3 s on one CPU core (roughly 0.04 s per second of audio).

Phone labels are the 39 CMU ARPAbet phones without stress digits (``AE``, ``M``, ``NG``)
plus ``SIL`` for silence (leading, trailing and optional pauses between words). With the
silences kept, the phones tile the clip: each starts where the previous one ended, the first
at 0 s, the last within a frame or two of the end of the audio.

Requires ``pip install pocketsphinx==5.1.1`` (imported only when an alignment is run).
"""

from __future__ import annotations

import re
import threading
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import AudioError

__all__ = [
    "AlignmentError",
    "SAMPLE_RATE",
    "SILENCE_PHONE",
    "align_phones",
    "align_words",
    "load_transcript",
    "missing_words",
    "normalize_transcript",
]

#: Sample rate pocketsphinx's en-us model expects, Hz.
SAMPLE_RATE = 16000
#: Label of silence segments in the output.
SILENCE_PHONE = "SIL"
#: Shortest audio accepted, seconds (a few 10 ms frames are needed for any alignment).
_MIN_DURATION_S = 0.05

_PS_HINT = "install it with `pip install pocketsphinx==5.1.1`"


class AlignmentError(RuntimeError):
    """pocketsphinx could not align the transcript to the audio.

    Typical causes: the audio holds no speech, is far too short for the transcript, or says
    something else entirely.
    """


# --------------------------------------------------------------------------------------
# Transcripts
# --------------------------------------------------------------------------------------

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_NON_WORD = re.compile(r"[^\w\s']|_")


def normalize_transcript(text: str) -> str:
    """Normalise text for the aligner: lower case, punctuation removed, single spaces.

    Apostrophes inside words are kept (``"don't"``, ``"john's"`` are dictionary words);
    typographic apostrophes become ``'``. Every other punctuation character, including
    hyphens and dashes, becomes a word break (``"cold-hearted"`` -> ``"cold hearted"``).
    Digits are kept as they are (they are not dictionary words: spell numbers out).

    Args:
        text: any string.

    Returns:
        str: space-separated lower-case words, possibly empty.

    Raises:
        TypeError: if ``text`` is not a str.
    """
    if not isinstance(text, str):
        raise TypeError(f"transcript must be a str, got {type(text).__name__}")
    t = _NON_WORD.sub(" ", text.lower().translate(_APOSTROPHES))
    words = (w.strip("'") for w in t.split())
    return " ".join(w for w in words if w)


def load_transcript(path: str | Path) -> str:
    """Read a UTF-8 transcript file and normalise it (see :func:`normalize_transcript`).

    Args:
        path: text file with the words spoken; line breaks count as spaces.

    Returns:
        str: space-separated lower-case words, never empty.

    Raises:
        FileNotFoundError / OSError: the file cannot be read.
        UnicodeDecodeError: the file is not UTF-8.
        ValueError: the file holds no words.
    """
    text = normalize_transcript(Path(path).read_text(encoding="utf-8"))
    if not text:
        raise ValueError(f"transcript {path} holds no words")
    return text


# --------------------------------------------------------------------------------------
# The decoder
# --------------------------------------------------------------------------------------

class _Aligner:
    """One pocketsphinx decoder in forced-alignment mode; not thread-safe by itself."""

    def __init__(self):
        try:
            from pocketsphinx import Decoder, get_model_path
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(f"phone alignment needs pocketsphinx: {_PS_HINT}") from exc
        # lm=None and bestpath=False as in `pocketsphinx align` ("do not use bestpath for
        # alignment"); loglevel FATAL keeps the C library quiet on stderr.
        self.decoder = Decoder(
            hmm=get_model_path("en-us/en-us"),
            dict=get_model_path("en-us/cmudict-en-us.dict"),
            lm=None,
            bestpath=False,
            samprate=SAMPLE_RATE,
            loglevel="FATAL",
        )
        self.frame_rate = int(self.decoder.config["frate"])  # frames per second (100)
        self.initial_cmn = self.decoder.get_cmn()

    def missing(self, words: Sequence[str]) -> list[str]:
        seen, out = set(), []
        for w in words:
            if w not in seen and self.decoder.lookup_word(w) is None:
                out.append(w)
            seen.add(w)
        return out

    def _pass(self, pcm: bytes) -> None:
        d = self.decoder
        d.start_utt()
        d.process_raw(pcm, no_search=False, full_utt=True)
        d.end_utt()

    def _reset(self) -> None:
        """Put the front end back in the state of a freshly loaded decoder.

        Two pieces of state outlive an utterance: the live cepstral mean (CMN) and the
        noise-removal statistics of the front end. Resetting both makes every call give
        exactly what a new decoder would, whatever was aligned before.
        """
        d = self.decoder
        d.set_cmn(self.initial_cmn)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                d.start_stream()  # resets the noise statistics (deprecated name, still works)
            except RuntimeError:
                pass  # no noise removal configured: nothing to reset

    def align(self, pcm: bytes, text: str, adapt: bool
              ) -> list[tuple[str, int, int, list[tuple[str, int, int]]]]:
        """Words with their phones, in frames: [(word, start, end, [(phone, start, end)])]."""
        d = self.decoder
        self._reset()
        try:
            d.set_align_text(text)
        except RuntimeError as exc:
            raise AlignmentError(f"pocketsphinx rejected the transcript {text!r}: {exc}") from exc
        if adapt:
            self._pass(pcm)  # adapts the cepstral mean and noise estimate to this clip
        self._pass(pcm)
        if d.hyp() is None:
            raise AlignmentError(
                f"pocketsphinx found no alignment of {text!r} to {len(pcm) // 2} samples "
                "(no speech, audio too short for the text, or a different text)")
        try:
            d.set_alignment()
        except RuntimeError as exc:
            raise AlignmentError(f"pocketsphinx could not set up phone alignment: {exc}") from exc
        self._pass(pcm)
        al = d.get_alignment()
        if al is None:
            raise AlignmentError("pocketsphinx returned no phone alignment")
        out = []
        # Iterate every level to the end: the binding leaks if an iteration stops short.
        for word in al:
            phones = [(p.name, p.start, p.start + p.duration) for p in word]
            out.append((word.name, word.start, word.start + word.duration, phones))
        return out


_LOCK = threading.Lock()
_ALIGNER: _Aligner | None = None


def _with_aligner(fn):
    """Run ``fn(aligner)`` under the module lock; drop the decoder if it raised."""
    global _ALIGNER
    with _LOCK:
        if _ALIGNER is None:
            _ALIGNER = _Aligner()
        try:
            return fn(_ALIGNER)
        except ValueError:
            raise  # bad input, found before the decoder ran: the decoder is still fine
        except BaseException:
            _ALIGNER = None  # never reuse a decoder left in an unknown state
            raise


def missing_words(transcript: str) -> list[str]:
    """Words of ``transcript`` (after normalisation) that the en-us dictionary lacks.

    Args:
        transcript: text; normalised with :func:`normalize_transcript`.

    Returns:
        list[str]: the missing words, each once, in order of first appearance.

    Raises:
        ImportError: pocketsphinx is not installed.
    """
    words = normalize_transcript(transcript).split()
    return _with_aligner(lambda a: a.missing(words))


# --------------------------------------------------------------------------------------
# Alignment
# --------------------------------------------------------------------------------------

def _to_pcm16(samples, sample_rate: int) -> bytes:
    x = np.asarray(samples)
    if x.ndim != 1:
        raise AudioError(f"samples must be mono, shape [N]; got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise AudioError(f"samples must be floating point in [-1, 1]; got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise AudioError("samples contain NaN or infinite values")
    if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
    if sample_rate != SAMPLE_RATE:
        import soxr
        x = soxr.resample(x, int(sample_rate), SAMPLE_RATE, quality="HQ").astype(np.float32)
    if x.shape[0] < _MIN_DURATION_S * SAMPLE_RATE:
        raise AudioError(f"audio is {x.shape[0] / SAMPLE_RATE:.3f} s long; alignment needs "
                         f"at least {_MIN_DURATION_S} s")
    pcm = np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")
    return pcm.tobytes()


def _run(samples, transcript: str, sample_rate: int, on_missing: str, adapt: bool):
    if on_missing not in ("error", "skip"):
        raise ValueError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
    words = normalize_transcript(transcript).split()
    if not words:
        raise ValueError("transcript holds no words")
    pcm = _to_pcm16(samples, sample_rate)

    def job(a: _Aligner):
        missing = a.missing(words)
        kept = words
        if missing:
            if on_missing == "error":
                raise ValueError(
                    "words not in the pocketsphinx en-us dictionary: "
                    + ", ".join(repr(w) for w in missing)
                    + " (spell them as dictionary words, or pass on_missing='skip')")
            kept = [w for w in words if w not in set(missing)]
            if not kept:
                raise ValueError("no word of the transcript is in the pocketsphinx en-us "
                                 "dictionary: " + ", ".join(repr(w) for w in missing))
        return a.align(pcm, " ".join(kept), bool(adapt)), a.frame_rate

    return _with_aligner(job)


def align_phones(samples_16k, transcript: str, *, sample_rate: int = SAMPLE_RATE,
                 keep_silence: bool = True, on_missing: str = "error",
                 adapt: bool = True) -> list[tuple[str, float, float]]:
    """Force-align a transcript to speech and return the phones with their times.

    Args:
        samples_16k: mono speech, float ``[N]`` (float32 preferred; other float dtypes are
            converted) in [-1, 1] (values outside are clipped), at ``sample_rate`` Hz.
        transcript: the words spoken. Normalised with :func:`normalize_transcript`
            (case and punctuation do not matter); every word must be in the CMU en-us
            dictionary bundled with pocketsphinx.
        sample_rate: rate of ``samples_16k`` in Hz; anything other than 16000 is resampled
            to 16 kHz (soxr HQ) first.
        keep_silence: keep the ``"SIL"`` segments (leading, trailing and pauses between
            words). With them the phones tile the whole clip; without them only speech
            phones are returned.
        on_missing: what to do with words missing from the dictionary: ``"error"``
            (default) raises ValueError naming them; ``"skip"`` drops them from the text
            and aligns the rest (their audio is then absorbed by neighbouring phones or
            silence, so timings near them are approximate).
        adapt: run one extra pass first that adapts pocketsphinx's cepstral mean and noise
            estimate to this clip (about 45 % more time). Without it, a clip shorter than
            about 2 s is normalised mostly with the model's generic prior mean, and its first
            phone can be pulled back to 0 s over leading silence (seen on the pocketsphinx
            ``cards`` clips: 0.15-0.18 s too early). ``adapt=False`` reproduces
            ``pocketsphinx align -phone_align yes`` exactly; on 3-7 s clips both agree
            within one 10 ms frame.

    Returns:
        list of ``(label, start_s, end_s)``: ``label`` an ARPAbet phone without stress digit
        (``"AE"``, ``"M"``) or ``"SIL"``; ``start_s < end_s`` in seconds from the start of
        the audio, multiples of 0.01 s; in time order, not overlapping. Deterministic: the
        same audio and text always give the same list.

    Raises:
        model_core.errors.AudioError (a ValueError): samples not 1-D, not floating point,
            non-finite, or shorter than 0.05 s.
        ValueError: empty transcript, words missing from the dictionary (with
            ``on_missing="error"``), bad ``sample_rate`` or ``on_missing``.
        AlignmentError (a RuntimeError): pocketsphinx found no alignment (no speech, audio
            far too short for the text, or a different text).
        ImportError: pocketsphinx is not installed.
    """
    words, frate = _run(samples_16k, transcript, sample_rate, on_missing, adapt)
    out = []
    for _word, _ws, _we, phones in words:
        for name, start, end in phones:
            if end <= start:
                continue
            if not keep_silence and name == SILENCE_PHONE:
                continue
            out.append((name, start / frate, end / frate))
    return out


def align_words(samples_16k, transcript: str, *, sample_rate: int = SAMPLE_RATE,
                keep_silence: bool = False, on_missing: str = "error",
                adapt: bool = True) -> list[tuple[str, float, float]]:
    """Force-align a transcript and return the words with their times.

    Same arguments, errors and determinism as :func:`align_phones` (one alignment run).

    Returns:
        list of ``(word, start_s, end_s)`` in time order, seconds, multiples of 0.01 s.
        ``word`` is the dictionary word without pronunciation-variant suffix (``"and"``,
        not ``"and(2)"``); silences are ``"<sil>"`` and are left out unless
        ``keep_silence=True``.
    """
    words, frate = _run(samples_16k, transcript, sample_rate, on_missing, adapt)
    out = []
    for name, start, end, _phones in words:
        if end <= start:
            continue
        if name == "<sil>" and not keep_silence:
            continue
        out.append((re.sub(r"\(\d+\)$", "", name), start / frate, end / frate))
    return out
