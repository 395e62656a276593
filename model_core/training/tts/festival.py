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
from .festival_ipa import FESTIVAL_ML_VOICES, festival_ipa

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
    **{v.package: name for name, v in FESTIVAL_ML_VOICES.items()},
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
        pkg = FESTIVAL_VOICES.get(name) or getattr(FESTIVAL_ML_VOICES.get(name), "package", None)
        hint = (f"install the Debian package {pkg} (apt-get install -y {pkg})" if pkg else
                f"known voices: {', '.join([*FESTIVAL_VOICES, *FESTIVAL_ML_VOICES])}")
        raise FileNotFoundError(f"Festival voice {name!r} is not installed: {hint}")
    return name


def _scheme_string(text: str, voice: str = "") -> str:
    """Text as a Scheme string literal Festival can read (escaped, one line): ASCII for the
    English voices, the voice's own characters for a :data:`FESTIVAL_ML_VOICES` voice
    (the script is then written in its encoding).

    Raises:
        ValueError: the text holds characters the voice's encoding cannot write.
    """
    ml = FESTIVAL_ML_VOICES.get(voice)
    if ml is None:
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    else:
        text = unicodedata.normalize("NFC", text)
        try:
            text.encode(ml.encoding)
        except UnicodeEncodeError as exc:
            raise ValueError(f"Festival voice {voice!r} reads {ml.encoding} text; "
                             f"{text[exc.start:exc.end]!r} in {text[:60]!r} is not in it") from None
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


def _festival_phones(path: Path, n_samples: int, sr: int, voice: str = "") -> list:
    labels, ends = [], []
    for line in path.read_text(encoding="latin-1").splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        labels.append(parts[0])
        ends.append(float(parts[1]))
    pause = "pau"
    if voice in FESTIVAL_ML_VOICES:     # the teacher reads these in IPA
        labels, pause = festival_ipa(labels, voice), "_"
    starts = [0.0] + ends[:-1]
    # Festival's segments start at 0 and the last ends at the end of the synthesized
    # speech; diphone voices write a short extra tail (<= ~40 ms): the final phone is
    # extended (or clipped) to the wave's end so the phones cover the audio exactly.
    onsets = [int(round(s * sr)) for s in starts]
    return _clean_phones(onsets, labels, n_samples, sr, pause), (ends[-1] if ends else 0.0)


def festival_synthesize_batch(texts, voice: str = "cmu_us_slt_arctic_hts",
                              timeout_s: float | None = None) -> list:
    """Synthesize several texts with one Festival process (saves ~0.3-1.5 s start-up each).

    Args:
        texts: sequence of non-empty strings (for the English voices non-ASCII characters
            are transliterated or dropped: their front end reads ASCII; the voices of
            :data:`~.festival_ipa.FESTIVAL_ML_VOICES` read their language's script).
        voice: Festival voice name (``"cmu_us_slt_arctic_hts"``, ``"kal_diphone"``,
            ``"ked_diphone"``, or a non-English voice of
            :data:`~.festival_ipa.FESTIVAL_ML_VOICES` such as ``"czech_dita"``), its
            Debian package name, or the short alias ``"slt"``, ``"kal"``, ``"ked"``.
        timeout_s: limit for the subprocess; default 30 s + 5 s per text.

    Returns:
        list of :class:`SpeechClip` (``engine "festival"``), one per text, in order; see
        :func:`festival_synthesize`. A non-English voice's phones are IPA
        (:func:`~.festival_ipa.festival_ipa`, pauses ``"_"``) and its clips'
        ``settings["alphabet"]`` is ``"ipa"``.

    Raises:
        FileNotFoundError: festival or the voice is not installed (names the package).
        ValueError: an empty text, an unknown voice name, or a text the voice's encoding
            cannot write; DataError (a ValueError) when a non-English voice speaks a phone
            its IPA table lacks.
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
        ml = FESTIVAL_ML_VOICES.get(name)
        lines = [f"(voice_{name})"]
        for i, t in enumerate(texts):
            wav, seg = tmp / f"u{i}.wav", tmp / f"u{i}.txt"
            lines += [
                f"(set! utt (Utterance Text {_scheme_string(t, name)}))",
                "(utt.synth utt)",
                f'(utt.save.wave utt "{wav}" \'riff)',
                f'(set! fd (fopen "{seg}" "w"))',
                '(mapcar (lambda (s) (format fd "%s %f\\n" (item.name s) (item.feat s "end")))'
                " (utt.relation.items utt 'Segment))",
                "(fclose fd)",
            ]
        script = tmp / "synth.scm"
        script.write_bytes(("\n".join(lines) + "\n").encode(ml.encoding if ml else "utf-8"))
        limit = timeout_s if timeout_s is not None else 30.0 + 5.0 * len(texts)
        try:
            proc = subprocess.run([exe, "--batch", str(script)], capture_output=True,
                                  text=True, encoding="utf-8", errors="replace",
                                  timeout=limit, cwd=tmp)
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
            phones, seg_end = _festival_phones(seg, len(samples), sr, name)
            settings = {"segment_end_s": seg_end}
            if ml:
                settings["alphabet"] = "ipa"
            out.append(SpeechClip(samples=samples, sample_rate=int(sr), phones=phones, text=t,
                                 voice=name, engine="festival", settings=settings))
    return out


def festival_synthesize(text: str, voice: str = "cmu_us_slt_arctic_hts") -> SpeechClip:
    """Synthesize ``text`` with a Festival voice and return audio plus Festival's segments.

    Runs ``festival --batch`` on a generated Scheme script that synthesizes the text
    (``utt.synth``), saves the wave (``utt.save.wave``) and writes each item of the
    ``Segment`` relation with its ``end`` time; those are parsed into phones.

    Args:
        text: non-empty text: English for ``"cmu_us_slt_arctic_hts"`` (package
            ``festvox-us-slt-hts``, female, 32 kHz), ``"kal_diphone"``
            (``festvox-kallpc16k``, male, 16 kHz) or ``"ked_diphone"``
            (``festvox-kdlpc16k``, male, 16 kHz), whose package names and ``"slt"``/
            ``"kal"``/``"ked"`` are also accepted; the voice's language in its own script
            for a voice of :data:`~.festival_ipa.FESTIVAL_ML_VOICES` (``"czech_dita"``,
            ``"msu_ru_nsh_clunits"``, ``"upc_ca_ona_hts"``, ``"hindi_NSK_diphone"``, ...).
        voice: the voice name.

    Returns:
        :class:`SpeechClip`: ``samples`` float32 [N] at the voice's native rate; ``phones``
        start of each = end of the previous, first start 0, last end N / sample_rate. The
        English voices' phones are Festival ``radio`` names as-is (``"pau"`` for pauses;
        utterances start and end with ``"pau"``); a non-English voice's are IPA
        (pauses ``"_"``) and its ``settings["alphabet"]`` is ``"ipa"``.

    Raises:
        FileNotFoundError, ValueError, RuntimeError: see :func:`festival_synthesize_batch`.
    """
    return festival_synthesize_batch([text], voice)[0]


def _festival_voice_works(name: str) -> bool:
    try:
        ml = FESTIVAL_ML_VOICES.get(name)
        utt = festival_synthesize(ml.sample if ml else "a test.", name)
    except (FileNotFoundError, RuntimeError, ValueError):
        return False
    return len(utt.samples) > 0 and len(utt.phones) > 0


def _working_voices(voices) -> tuple:
    """The names of ``voices`` that are installed and synthesize (each tried once, at most
    four at a time); ``()`` without festival."""
    if shutil.which("festival") is None:
        return ()
    names = [n for n in voices if _festival_voice_installed(n)]
    with ThreadPoolExecutor(max_workers=max(1, min(4, len(names)))) as pool:
        ok = list(pool.map(_festival_voice_works, names))
    return tuple(n for n, good in zip(names, ok) if good)


@functools.lru_cache(maxsize=1)
def _festival_voices_cached() -> tuple:
    return _working_voices(FESTIVAL_VOICES)


def festival_voices() -> list:
    """Festival voices of :data:`FESTIVAL_VOICES` that are installed and synthesize.

    Each installed voice is tried once (a short test utterance, about 1.5 s in all, run
    in parallel) and the result cached for the process. Returns ``[]`` when festival
    itself is not installed (``apt-get install -y festival``).
    """
    return list(_festival_voices_cached())


@functools.lru_cache(maxsize=1)
def _festival_ml_voices_cached() -> tuple:
    return _working_voices(FESTIVAL_ML_VOICES)


def festival_ml_voices() -> dict:
    """Festival's non-English voices (:data:`~.festival_ipa.FESTIVAL_ML_VOICES`) that are
    installed and synthesize their sample sentence, as ``{voice: language}``
    (``{"czech_dita": "cs", "msu_ru_nsh_clunits": "ru", ...}``); each is tried once per
    process. ``{}`` when festival is not installed; ``tools/setup_corpus.sh`` installs the
    voices.
    """
    return {n: FESTIVAL_ML_VOICES[n].language for n in _festival_ml_voices_cached()}
