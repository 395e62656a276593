"""The result of every engine: a :class:`SpeechClip` (samples plus exact phone timing), and
the rule that turns phone onsets into its contiguous phone list."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
            it, slt's ends exactly there), and ``alphabet`` ``"ipa"`` for the non-English
            voices, whose phones are IPA.
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
