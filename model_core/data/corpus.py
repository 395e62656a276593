"""The synthetic training corpus: TTS speech with exact phone timing -> teacher ARKit curves.

``build_corpus`` synthesizes sentences with eSpeak NG (many voices, variants, rates and
pitches) and Festival's voices built from real recordings, turns each utterance's phone
timing into ARKit-52 curves with :func:`model_core.data.teacher.teacher_curves` (prosody from
the clean audio), applies label-preserving augmentation to the audio (gain, noise,
reverberation, EQ / band-limiting, resampling) and writes one ``.npz`` per utterance plus a
``manifest.jsonl``. :class:`CorpusStream` streams those files for training (a small reservoir
of utterances in memory, never the whole corpus).

Sentence source: the Debian ``fortunes`` / ``fortunes-min`` packages (quotations, proverbs,
jokes: varied everyday English), split into sentences of 4-28 words.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from ..audio import Resampler
from ..fileio import atomic_write
from ..training import Utterance

FORTUNE_DIRS = (Path("/usr/share/games/fortunes"), Path("/usr/share/fortunes"))
SR = 16000


def sentence_pool(min_words: int = 4, max_words: int = 28) -> list[str]:
    """English sentences from the installed fortune files, deduplicated, sorted.

    Raises:
        FileNotFoundError: no fortune files (``apt-get install fortunes-min fortunes``).
    """
    files = [f for d in FORTUNE_DIRS if d.is_dir() for f in sorted(d.iterdir())
             if f.is_file() and not f.suffix and not f.name.startswith(".")]
    if not files:
        raise FileNotFoundError("no sentence source: install Debian's fortune files "
                                "(apt-get install -y fortunes-min fortunes)")
    out = set()
    for f in files:
        text = f.read_bytes().decode("utf-8", "ignore")
        for entry in text.split("\n%\n"):
            if re.search(r"[|_<>{}\[\]\\/=@#$^*~`]|http|www\.", entry) or re.search(r"\t|  {3,}", entry):
                continue  # ascii art, code, tables, URLs
            entry = re.sub(r"\s+", " ", entry).strip()
            entry = re.sub(r"^-+\s*|\s+--\s.*$", "", entry)
            for s in re.split(r"(?<=[.!?])\s+", entry):
                s = s.strip(" \"'()")
                words = s.split()
                if not (min_words <= len(words) <= max_words):
                    continue
                if not re.fullmatch(r"[A-Za-z0-9 ,.;:!?'\"-]+", s) or sum(c.isdigit() for c in s) > 2:
                    continue
                if sum(w.isupper() and len(w) > 1 for w in words) > 1:
                    continue
                out.add(s)
    return sorted(out)


# -- augmentation -------------------------------------------------------------------------
def _pink(n: int, rng) -> np.ndarray:
    w = rng.standard_normal(n)
    b, a = [0.049922035, -0.095993537, 0.050612699, -0.004408786], [1, -2.494956002, 2.017265875, -0.522189400]
    p = signal.lfilter(b, a, w)  # Paul Kellet's pink-noise filter
    return p / (np.std(p) + 1e-9)


def synthetic_rir(rng, rt60: float) -> np.ndarray:
    """A room impulse response: direct path + exponentially decaying noise (RT60 in s)."""
    n = int(SR * rt60 * 1.2)
    t = np.arange(n) / SR
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    pre = int(SR * rng.uniform(0.002, 0.01))  # first reflections arrive after the direct path
    tail[:pre] = 0
    rir = tail * rng.uniform(0.1, 0.5) / (np.sqrt(np.sum(tail ** 2)) + 1e-9)
    rir[0] = 1.0
    return rir.astype(np.float32)


def augment_audio(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Label-preserving augmentation of 16 kHz float32 speech [N] -> ([N], record).

    Each effect is applied with some probability: reverberation (RT60 0.15-0.7 s), band
    limiting (telephone 300-3400 Hz, or random high-pass 40-250 Hz + low-pass 3-7.5 kHz),
    resampling through 8 or 11.025 kHz, additive white/pink noise at 5-40 dB SNR, and a
    gain of -18..+3 dB. None of them moves events in time (causal filters, zero delay
    direct path), so the phone timing and the teacher curves stay valid.
    """
    rec = {}
    y = x.astype(np.float64)
    if rng.random() < 0.35:
        rt60 = rng.uniform(0.15, 0.7)
        y = signal.fftconvolve(y, synthetic_rir(rng, rt60))[: len(y)]
        rec["reverb_rt60"] = round(rt60, 3)
    r = rng.random()
    if r < 0.12:
        sos = signal.butter(4, [300, 3400], "bandpass", fs=SR, output="sos")
        y = signal.sosfilt(sos, y)
        rec["band"] = "telephone"
    elif r < 0.5:
        hp, lp = rng.uniform(40, 250), rng.uniform(3000, 7500)
        y = signal.sosfilt(signal.butter(2, hp, "highpass", fs=SR, output="sos"), y)
        y = signal.sosfilt(signal.butter(4, lp, "lowpass", fs=SR, output="sos"), y)
        rec["band"] = [round(hp), round(lp)]
    if rng.random() < 0.15:
        mid = int(rng.choice([8000, 11025]))
        z = Resampler(SR, mid).process(y.astype(np.float32), last=True)
        z = Resampler(mid, SR).process(z, last=True)
        y = np.resize(z, len(y)) if len(z) >= len(y) else np.concatenate([z, np.zeros(len(y) - len(z))])
        rec["resample_hz"] = mid
    if rng.random() < 0.6:
        snr = rng.uniform(5, 40)
        noise = _pink(len(y), rng) if rng.random() < 0.5 else rng.standard_normal(len(y))
        p_sig = np.mean(y ** 2) + 1e-12
        y = y + noise * math.sqrt(p_sig / 10 ** (snr / 10))
        rec["snr_db"] = round(snr, 1)
    peak = np.max(np.abs(y)) + 1e-9
    gain_db = rng.uniform(-18, 3)
    y = y / peak * 0.9 * 10 ** (gain_db / 20)
    rec["gain_db"] = round(gain_db, 1)
    return np.clip(y, -1, 1).astype(np.float32), rec


# -- building -----------------------------------------------------------------------------
@dataclass
class Job:
    index: int
    text: str
    engine: str          # "espeak-ng" | "festival"
    voice: str
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50
    seed: int = 0


def plan_jobs(n: int, seed: int, espeak_voices: list[str], festival_voices: list[str],
              sentences: list[str], festival_share: float = 0.5) -> list[Job]:
    """Choose text, engine, voice and prosody settings for n utterances (reproducible)."""
    rng = np.random.default_rng(seed)
    jobs = []
    for i in range(n):
        k = int(rng.integers(1, 3))  # one or two sentences
        text = " ".join(sentences[j] for j in rng.choice(len(sentences), k, replace=False))
        if festival_voices and rng.random() < festival_share:
            jobs.append(Job(i, text, "festival", str(rng.choice(festival_voices)), seed=seed * 1_000_003 + i))
        else:
            jobs.append(Job(i, text, "espeak-ng", str(rng.choice(espeak_voices)),
                            rate=int(rng.integers(120, 260)), pitch=int(rng.integers(20, 80)),
                            pitch_range=int(rng.integers(20, 90)), seed=seed * 1_000_003 + i))
    return jobs


def _finish(job: Job, utt, out_dir: Path, fps: float, augment: bool) -> dict:
    from .teacher import prosody_from_audio, teacher_curves
    rng = np.random.default_rng(job.seed)
    x = Resampler(utt.sample_rate, SR).process(utt.samples, last=True)
    x = x / (np.max(np.abs(x)) + 1e-9) * 0.9
    dur = len(x) / SR
    frames = teacher_curves(utt.phones, dur, fps, rng, prosody=prosody_from_audio(x, fps))
    aug = {}
    if augment:
        x, aug = augment_audio(x, rng)
    name = f"utt_{job.index:06d}.npz"
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, audio=np.round(x * 32767).astype(np.int16),
                     frames=frames.astype(np.float16), fps=np.float64(fps),
                     phones=json.dumps(utt.phones))
    atomic_write(out_dir / "utts" / name, write)
    return {"file": f"utts/{name}", "text": job.text, "engine": job.engine, "voice": job.voice,
            "rate": job.rate, "pitch": job.pitch, "pitch_range": job.pitch_range,
            "duration_s": round(dur, 3), "frames": int(len(frames)), "augment": aug}


def _run_jobs(args) -> list[dict]:
    jobs, out_dir, fps, augment = args
    from . import tts
    out = []
    if jobs[0].engine == "festival":
        utts = tts.festival_synthesize_batch([j.text for j in jobs], voice=jobs[0].voice)
        pairs = zip(jobs, utts)
    else:
        # stop_closure: a stop's phone covers its closure silence, not only its release, so
        # the teacher seals the lips during the silence before a "p" (as Festival labels it)
        pairs = ((j, tts.espeak_synthesize(j.text, voice=j.voice, rate=j.rate, pitch=j.pitch,
                                           pitch_range=j.pitch_range, stop_closure=True))
                 for j in jobs)
    for job, utt in pairs:
        out.append(_finish(job, utt, Path(out_dir), fps, augment))
    return out


def build_corpus(out_dir: str | os.PathLike, n: int, seed: int = 0, fps: float = 30.0,
                 workers: int = 2, augment: bool = True, engines=("espeak-ng", "festival"),
                 progress: bool = True) -> Path:
    """Synthesize a corpus of ``n`` utterances into ``out_dir`` (must not exist or be empty).

    Writes ``out_dir/utts/utt_NNNNNN.npz`` (``audio`` int16 [N] 16 kHz, ``frames`` float16
    [T, 52] ARKit weights at ``fps``, ``phones`` JSON, ``fps``), ``manifest.jsonl`` (one line
    per utterance: file, text, engine, voice, settings, duration) and ``corpus.json``.

    Raises:
        FileExistsError: ``out_dir`` holds files already (a corpus is never overwritten).
        FileNotFoundError: no sentence source / TTS engine installed (names the package).
    """
    from concurrent.futures import ProcessPoolExecutor
    from tqdm import tqdm
    from . import tts

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose a new folder (corpora are never overwritten)")
    (out / "utts").mkdir(parents=True, exist_ok=True)
    sentences = sentence_pool()
    ev = tts.espeak_voices() if "espeak-ng" in engines else []
    fv = tts.festival_voices() if "festival" in engines else []
    if not ev and not fv:
        raise FileNotFoundError("no TTS engine: apt-get install -y espeak-ng festival "
                                "festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k")
    jobs = plan_jobs(n, seed, ev or [], fv, sentences, festival_share=0.5 if ev else 1.0)
    groups: list[list[Job]] = []
    for voice in fv:
        fj = [j for j in jobs if j.engine == "festival" and j.voice == voice]
        groups += [fj[i:i + 16] for i in range(0, len(fj), 16)]
    ej = [j for j in jobs if j.engine == "espeak-ng"]
    groups += [ej[i:i + 16] for i in range(0, len(ej), 16)]
    records = []
    with ProcessPoolExecutor(max_workers=workers) as ex, \
            tqdm(total=n, desc="make-dataset", unit="utt", disable=not progress) as bar:
        for recs in ex.map(_run_jobs, [(g, str(out), fps, augment) for g in groups]):
            records += recs
            bar.update(len(recs))
    records.sort(key=lambda r: r["file"])
    with open(out / "manifest.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    hours = sum(r["duration_s"] for r in records) / 3600
    (out / "corpus.json").write_text(json.dumps({
        "utterances": len(records), "hours": round(hours, 3), "fps": fps, "seed": seed,
        "augment": augment, "espeak_voices": ev, "festival_voices": fv,
        "sentence_source": "Debian fortunes / fortunes-min", "sentences_available": len(sentences)},
        indent=2))
    return out


# -- reading ------------------------------------------------------------------------------
def read_manifest(corpus_dir: str | os.PathLike) -> list[dict]:
    """The manifest records of a corpus folder.

    Raises:
        FileNotFoundError: no ``manifest.jsonl`` (not a corpus made by make-dataset).
    """
    p = Path(corpus_dir) / "manifest.jsonl"
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: build a corpus with `streamtalker make-dataset`")
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def load_utterance(path: str | os.PathLike, style: int = 0, fps: float | None = None,
                   pad_rng: np.random.Generator | None = None) -> Utterance:
    """One corpus file -> :class:`Utterance` (audio float32 16 kHz, frames float32).

    With ``pad_rng``, the utterance is embedded in silence for training: 0-3 s before and
    after (the utterance's own noise floor, or digital silence), and the teacher curves are
    drawn anew for the padded timeline (phones shifted, fresh random upper face). Without
    it, TTS utterances hold only ~0.1-0.4 s of silence, and a model never sees long pauses.

    Raises:
        ValueError: the file's fps differs from ``fps``.
    """
    with np.load(path) as z:
        file_fps = float(z["fps"])
        if fps is not None and abs(file_fps - fps) > 1e-6:
            raise ValueError(f"{path}: made at {file_fps} fps, the model runs at {fps} fps")
        audio = z["audio"].astype(np.float32) / 32767.0
        if pad_rng is None:
            return Utterance(audio, z["frames"].astype(np.float32), style)
        phones = json.loads(str(z["phones"]))
    from .teacher import prosody_from_audio, teacher_curves
    rng = pad_rng

    def pad_len():
        return int(SR * (rng.uniform(0.5, 3.0) if rng.random() < 0.5 else rng.uniform(0.0, 0.4)))

    lead, trail = pad_len(), pad_len()
    floor = float(np.std(audio[: int(0.05 * SR)]))
    if rng.random() < 0.5:
        floor = 0.0

    def pad(n):
        return (rng.standard_normal(n) * floor).astype(np.float32)

    x = np.concatenate([pad(lead), audio, pad(trail)])
    t0, dur = lead / SR, len(x) / SR
    shifted = [("sil", 0.0, t0)] if lead else []
    shifted += [(lab, a + t0, b + t0) for lab, a, b in phones]
    if trail:
        shifted.append(("sil", shifted[-1][2], dur))
    frames = teacher_curves(shifted, dur, file_fps, rng, prosody=prosody_from_audio(x, file_fps))
    return Utterance(x, frames.astype(np.float32), style)


class CorpusStream:
    """Streams training batches from corpus files with a bounded reservoir.

    Args:
        model: the model being trained (its config sets the chunk geometry).
        files: corpus ``.npz`` paths (plus a style index each: list of (path, style)).
        reservoir: utterances held in memory at once; refresh: files swapped in per batch.
        seed: numpy seed; pad: embed utterances in 0-3 s of silence with fresh teacher
        curves (see :func:`load_utterance`).
    ``batch(batch_size)`` returns the dict :meth:`StreamTalkerModel.training_loss` takes.
    """

    def __init__(self, model, files: list[tuple[str, int]], reservoir: int = 128,
                 refresh: int = 4, seed: int = 0, pad: bool = True):
        from ..training import ChunkBatcher
        if not files:
            raise ValueError("no training files")
        self.files = list(files)
        self.rng = np.random.default_rng(seed)
        self.order = list(self.rng.permutation(len(self.files)))
        self.refresh = refresh
        self.pad = pad
        self.fps = model.config.fps
        first = [self._next() for _ in range(min(reservoir, len(self.files)))]
        self.batcher = ChunkBatcher(model, first, seed=seed)

    def _next(self) -> Utterance:
        if not self.order:
            self.order = list(self.rng.permutation(len(self.files)))
        path, style = self.files[self.order.pop()]
        return load_utterance(path, style, self.fps, pad_rng=self.rng if self.pad else None)

    def batch(self, batch_size: int, K: int | None = None):
        if len(self.files) > len(self.batcher.utts):
            for _ in range(self.refresh):
                self.batcher.replace(int(self.rng.integers(len(self.batcher.utts))), self._next())
        return self.batcher.batch(batch_size, K)
