"""Festival speech with its own phone timing (the ``Segment`` relation): one ``festival
--batch`` subprocess per call or batch, with the Debian voices built from real recordings."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
import unicodedata
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .clip import SpeechClip, _clean_phones

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

_FESTIVAL_INSTALL = "apt-get install -y festival"

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
