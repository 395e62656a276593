"""The synthetic training corpus: TTS speech with exact phone timing -> teacher ARKit curves.

``build_corpus`` synthesizes sentences with eSpeak NG (many voices, variants, rates and
pitches) and Festival's voices built from real recordings, turns each utterance's phone
timing into ARKit-52 curves with :func:`model_core.training.teacher.teacher_curves` (prosody from
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

from ..io.audio import Resampler
from ..io.files import atomic_write
from .batches import Utterance
from .texts import FORTUNE_DIRS, fortune_files, is_heldout_sentence
from ..errors import DataError, InputNotFoundError, OutputExistsError, SettingError

SR = 16000


def sentence_pool(min_words: int = 4, max_words: int = 28, split: str = "all") -> list[str]:
    """English sentences from the installed fortune files, deduplicated, sorted.

    Args:
        min_words, max_words: sentence length bounds in words.
        split: ``"all"``; ``"train"`` (sentences a training corpus may use); or
            ``"heldout"`` (about 10 %: those whose SHA-1 starts with a byte divisible by 10,
            kept for the synthetic held-out evaluation set, never trained on).

    Raises:
        FileNotFoundError: no fortune files (``apt-get install fortunes-min fortunes``).
        ValueError: unknown split.
    """
    if split not in ("all", "train", "heldout"):
        raise SettingError(f"split must be 'all', 'train' or 'heldout', got {split!r}")
    files = fortune_files("en")
    if not files:
        raise InputNotFoundError("no sentence source: install Debian's fortune files "
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
    if split != "all":
        want = split == "heldout"
        out = {x for x in out if (_is_heldout_sentence(x) == want)}
    return sorted(out)


_is_heldout_sentence = is_heldout_sentence


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


def augment_audio(x: np.ndarray, rng: np.random.Generator,
                  real_rooms: bool = False) -> tuple[np.ndarray, dict]:
    """Label-preserving augmentation of 16 kHz float32 speech [N] -> ([N], record).

    Each effect is applied with some probability: reverberation (synthetic RT60 0.15-0.7 s,
    or with ``real_rooms`` half of the time a measured room response from
    :func:`model_core.training.voices.real_impulse_responses` at a random wet level), band
    limiting (telephone 300-3400 Hz, or random high-pass 40-250 Hz + low-pass 3-7.5 kHz),
    resampling through 8 or 11.025 kHz, additive white/pink noise at 5-40 dB SNR, and a
    gain of -18..+3 dB. None of them moves events in time (causal filters, zero delay
    direct path), so the phone timing and the teacher curves stay valid.
    """
    rec = {}
    y = x.astype(np.float64)
    if rng.random() < 0.35:
        from .voices import real_impulse_responses
        rooms = real_impulse_responses() if real_rooms else ()
        if rooms and rng.random() < 0.5:
            k = int(rng.integers(len(rooms)))
            wet = rng.uniform(0.2, 0.8)
            rir = rooms[k].astype(np.float64) * wet
            rir[0] = 1.0
            y = signal.fftconvolve(y, rir)[: len(y)]
            rec["room"] = k
            rec["room_wet"] = round(wet, 2)
        else:
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
    """One utterance to synthesize: text, engine (``"espeak-ng"``, ``"festival"``,
    ``"piper"``, ``"mbrola"``) and voice settings, the text's language, and optionally a
    WORLD speaker transform ``world = (pitch factor, formant warp)`` applied after
    synthesis."""
    index: int
    text: str
    engine: str          # "espeak-ng" | "festival" | "piper"
    voice: str
    rate: int = 175                  # eSpeak NG words per minute
    pitch: int = 50                  # eSpeak NG pitch, 0..99
    pitch_range: int = 50            # eSpeak NG pitch range, 0..99
    seed: int = 0                    # augmentation seed
    length_scale: float = 1.0        # Piper speaking-rate scale
    world: tuple | None = None
    language: str = "en"             # the text's language (eSpeak / MBROLA code)
    vowel_ratio: float | None = None  # MBROLA: mean vowel / consonant duration restored


#: Voices kept out of training corpora: the synthetic held-out evaluation set speaks with
#: them (with WORLD transforms outside the training ranges, :data:`HELDOUT_WORLD`).
HELDOUT_FESTIVAL = ("kal_diphone",)
HELDOUT_ESPEAK = ("en-us+Andrea", "en-us+m7", "en-us+f4", "en-gb-scotland", "en-us+belinda")
#: Ranges of the WORLD speaker transforms drawn for training (pitch factor, formant warp).
TRAIN_WORLD = ((0.7, 1.45), (0.88, 1.14))
#: Held-out speakers: (base engine, voice, pitch, formant), outside the training ranges.
HELDOUT_WORLD = (("piper", "en_US-joe-medium", 1.75, 1.2),
                 ("festival", "cmu_us_slt_arctic_hts", 0.6, 0.85),
                 ("festival", "ked_diphone", 1.6, 1.18))


def plan_jobs(n: int, seed: int, espeak_voices: list[str], festival_voices: list[str],
              sentences: list[str], festival_share: float = 0.5, piper_voices=(),
              shares: dict | None = None, world_share: float = 0.0,
              piper_sentences: list[str] | None = None) -> list[Job]:
    """Choose text, engine, voice and prosody settings for n utterances (reproducible).

    Args:
        n: utterances; seed: numpy seed.
        espeak_voices, festival_voices, piper_voices: the voices to draw from.
        sentences: the text pool (one or two sentences per utterance);
            piper_sentences: the pool for Piper (words pocketsphinx can align), default
            ``sentences``.
        festival_share: share of Festival when only eSpeak and Festival are used (the v1/v2
            corpora); shares: ``{engine: weight}`` overrides it (engines without voices are
            dropped).
        world_share: probability that a Festival or Piper utterance is resynthesized as a new
            speaker (:data:`TRAIN_WORLD` ranges, log-uniform).
    """
    rng = np.random.default_rng(seed)
    if shares is None:
        shares = {"espeak-ng": 1.0 - festival_share, "festival": festival_share}
    pools = {"espeak-ng": espeak_voices, "festival": festival_voices, "piper": list(piper_voices)}
    engines = [e for e in shares if pools.get(e) and shares[e] > 0]
    if not engines:
        raise SettingError("no voices for the requested engines")
    p = np.array([shares[e] for e in engines], np.float64)
    p /= p.sum()
    jobs = []
    for i in range(n):
        engine = engines[int(rng.choice(len(engines), p=p))] if len(engines) > 1 else engines[0]
        pool = piper_sentences if engine == "piper" and piper_sentences else sentences
        k = int(rng.integers(1, 3))  # one or two sentences
        text = " ".join(pool[j] for j in rng.choice(len(pool), k, replace=False))
        voice = str(rng.choice(pools[engine]))
        job = Job(i, text, engine, voice, seed=seed * 1_000_003 + i)
        if engine == "espeak-ng":
            job.rate, job.pitch = int(rng.integers(120, 260)), int(rng.integers(20, 80))
            job.pitch_range = int(rng.integers(20, 90))
        elif engine == "piper":
            job.length_scale = round(float(rng.uniform(0.8, 1.35)), 3)
        if engine != "espeak-ng" and rng.random() < world_share:
            (p0, p1), (f0, f1) = TRAIN_WORLD
            job.world = (round(float(np.exp(rng.uniform(np.log(p0), np.log(p1)))), 3),
                         round(float(np.exp(rng.uniform(np.log(f0), np.log(f1)))), 3))
        jobs.append(job)
    return jobs


def _finish(job: Job, utt, out_dir: Path, fps: float, augment: bool,
            real_rooms: bool = False) -> dict:
    from .teacher import prosody_from_audio, teacher_curves
    rng = np.random.default_rng(job.seed)
    x = Resampler(utt.sample_rate, SR).process(utt.samples, last=True)
    if job.world is not None:
        from .voices import world_transform
        x = world_transform(x, SR, *job.world)
    x = x / (np.max(np.abs(x)) + 1e-9) * 0.9
    dur = len(x) / SR
    alphabet = utt.settings.get("alphabet", "auto")
    frames = teacher_curves(utt.phones, dur, fps, rng, prosody=prosody_from_audio(x, fps),
                            alphabet=alphabet)
    aug = {}
    if augment:
        x, aug = augment_audio(x, rng, real_rooms=real_rooms)
    name = f"utt_{job.index:06d}.npz"
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, audio=np.round(x * 32767).astype(np.int16),
                     frames=frames.astype(np.float16), fps=np.float64(fps),
                     phones=json.dumps(utt.phones, ensure_ascii=False), alphabet=alphabet)
    atomic_write(out_dir / "utts" / name, write)
    return {"file": f"utts/{name}", "text": job.text, "engine": job.engine, "voice": job.voice,
            "rate": job.rate, "pitch": job.pitch, "pitch_range": job.pitch_range,
            "length_scale": job.length_scale, "world": job.world, "language": job.language,
            "alphabet": alphabet, "vowel_ratio": job.vowel_ratio,
            "missing_diphones": utt.settings.get("missing_diphones"),
            "duration_s": round(dur, 3), "frames": int(len(frames)), "augment": aug}


def _run_jobs(args) -> list[dict]:
    jobs, out_dir, fps, augment, real_rooms = args
    from . import tts
    from .align import AlignmentError
    out = []
    if jobs[0].engine == "piper":
        pairs = []
        for j in jobs:
            try:
                pairs.append((j, tts.piper_synthesize(j.text, j.voice, length_scale=j.length_scale)))
            except AlignmentError:
                continue   # pocketsphinx could not align it: leave the utterance out
    elif jobs[0].engine == "mbrola":
        from .mbrola import mbrola_synthesize
        pairs = ((j, mbrola_synthesize(j.text, j.voice, rate=j.rate, pitch=j.pitch,
                                       pitch_range=j.pitch_range, vowel_ratio=j.vowel_ratio))
                 for j in jobs)
    elif jobs[0].engine == "festival":
        utts = tts.festival_synthesize_batch([j.text for j in jobs], voice=jobs[0].voice)
        pairs = zip(jobs, utts)
    else:
        # stop_closure: a stop's phone covers its closure silence, not only its release, so
        # the teacher seals the lips during the silence before a "p" (as Festival labels it)
        # other languages than English: IPA phone names (eSpeak's mnemonics differ by
        # language; the teacher reads IPA for any)
        pairs = ((j, tts.espeak_synthesize(j.text, voice=j.voice, rate=j.rate, pitch=j.pitch,
                                           pitch_range=j.pitch_range, stop_closure=True,
                                           ipa=not j.language.startswith("en")))
                 for j in jobs)
    for job, utt in pairs:
        out.append(_finish(job, utt, Path(out_dir), fps, augment, real_rooms))
    return out


def _run_jobs_safe(args) -> list[dict]:
    """:func:`_run_jobs` one utterance at a time, skipping (and reporting) any that an
    engine cannot synthesize, so that one bad text does not lose a group (the v4 recipe)."""
    jobs, *rest = args
    out = []
    for j in jobs:
        try:
            out += _run_jobs(([j], *rest))
        except (ValueError, RuntimeError, OSError) as e:
            print(f"make-dataset: skipped utterance {j.index} ({j.engine} {j.voice}): {e}",
                  flush=True)
    return out


#: MBROLA voices (recordings of people) a corpus trains on: the voices the project may
#: train on (issue 20's list), minus those eSpeak NG cannot drive (bz1, hn1, cn1: no
#: eSpeak voice or text reader), whose phones its events name inconsistently (nl1, nz1,
#: hb1: :func:`model_core.training.mbrola.voice_agreement` below 0.8), with no text source
#: (la1, tl1), es3/es4 (eSpeak 1.51 maps their phones wrongly), and the held-out voices.
TRAIN_MBROLA = ("af1", "ar1", "br1", "br2", "br4", "ca1", "cr1", "cz1", "de3", "de4", "de6",
                "de7", "de8", "ee1", "es1", "fr2", "fr5", "fr6", "fr7", "gr1", "hb2", "ic1",
                "id1", "in1", "ir1", "it1", "jp1", "jp3", "lt1", "ma1", "mx1", "nl3", "pl1",
                "pt1", "ro1", "sw1", "us3")
#: MBROLA voices kept out of every training corpus for the multilingual held-out set, one
#: or two per language; the first group chooses checkpoints and settings (``dev``), the
#: second reports (``test``).
HELDOUT_MBROLA_DEV = ("de5", "it2", "nl2", "jp2", "ar2", "in2", "fr3")
HELDOUT_MBROLA_TEST = ("br3", "ca2", "cz2", "gr2", "lt2", "sw2", "vz1")
HELDOUT_MBROLA = HELDOUT_MBROLA_DEV + HELDOUT_MBROLA_TEST
#: A voice the corpus trains on for each dev voice, in the same language and place:
#: ``make-evalset --split seen`` has them read the dev clips' texts at the dev clips'
#: rates, so the dev set's gap to it is the voice's share of the gap to the teacher and
#: what is left on it is the network's.
SEEN_MBROLA_DEV = ("de4", "it1", "nl3", "jp1", "ar1", "in1", "fr2")
#: Languages eSpeak NG's own (formant) voices read in a v4 corpus, with IPA phone names.
ESPEAK_LANGUAGES = ("de", "fr-fr", "es", "it", "pt-br", "pt", "pl", "cs", "ru", "nl", "sv",
                    "ja", "ar", "he", "hi", "el", "lt", "tr", "fi", "hu", "id", "ro", "hr",
                    "bg", "uk", "fa", "sk", "da", "nb", "vi", "ko", "ms", "is", "ca", "et",
                    "lv", "sl", "ta", "bn", "ur")
#: The v4 mix: MBROLA voices in their own languages, eSpeak NG in 40 languages, and the v3
#: English voices (Piper joe, Festival slt / ked, eSpeak English).
V4_SHARES = {"mbrola": 0.50, "espeak-ml": 0.15, "piper": 0.12, "festival": 0.12,
             "espeak-ng": 0.11}
#: The v6 mix: v4's with Festival's voices recorded from people in Czech (4), Russian,
#: Catalan, Hindi, Marathi and Telugu (``festival-ml``, issue 20) a tenth of the utterances, the
#: other engines' shares scaled to the rest.
V6_SHARES = {"festival-ml": 0.10, **{e: round(w * 0.9, 4) for e, w in V4_SHARES.items()}}
#: Languages of the ``festival-ml`` pool (Telugu's words: Debian's hunspell-te).
FESTIVAL_ML_LANGUAGES = ("cs", "ru", "ca", "hi", "mr", "te")
#: How many texts the v5 recipe draws at most for one utterance before giving up on a voice.
TEXT_DRAWS = 50


def _own_language_draw(draw, reader: str, lang: str, tries: int, used=frozenset(),
                       ok=None) -> tuple:
    """Call ``draw()`` (it returns ``(text, ...)``) until its text is not in ``used``, passes
    ``ok(text)`` (when given) and eSpeak voice ``reader`` (``"hi"``, ``"mb-in2"``) reads it
    in ``lang`` alone, without a language switch
    (:func:`model_core.training.tts.language_switches`); the corpus's v5 texts and the
    held-out sets' draw this way.

    Returns:
        that draw's tuple.
    Raises:
        DataError: ``tries`` draws in a row found none (names the voice and its language).
    """
    from .tts import language_switches
    for _ in range(tries):
        item = draw()
        if item[0] not in used and (ok is None or ok(item[0])) \
                and not language_switches(item[0], reader):
            return item
    raise DataError(f"eSpeak voice {reader} ({lang}): {tries} draws found no new text it "
                    f"reads in {lang} alone; check its text sources (fortunes, fortunes-xx, "
                    f"wordfreq)")


def _text(lang: str, rng, sentence_share: float = 0.6, own_script: bool = False) -> str:
    """One or two sentences of ``lang`` (fortunes, train split) or else a word sequence
    (``own_script``: :func:`model_core.training.texts.wordfreq_text`'s)."""
    from .texts import fortune_sentences, wordfreq_text
    pool = fortune_sentences(lang, split="train") if not lang.startswith("en") else ()
    if pool and rng.random() < sentence_share:
        k = int(rng.integers(1, 3))
        return " ".join(pool[j] for j in rng.choice(len(pool), k, replace=False))
    return wordfreq_text(lang, rng, own_script=own_script)


def plan_jobs_v4(n: int, seed: int, espeak_voices: list[str], festival_voices: list[str],
                 sentences: list[str], piper_voices=(), piper_sentences=None,
                 mbrola_voices: dict | None = None, espeak_variants=(),
                 own_language: bool = False, festival_ml_voices: dict | None = None,
                 shares: dict | None = None) -> list[Job]:
    """The v4 corpus plan: :data:`V4_SHARES` of engines (engines without voices dropped),
    or ``shares`` (the v6 recipe's :data:`V6_SHARES`).

    MBROLA utterances: a voice of :data:`TRAIN_MBROLA` (installed), text in its language,
    rate 120-220 words/min, pitch 25-75, range 30-80, vowel/consonant duration ratio
    U(1.3, 2.0); ``espeak-ml``: a language of :data:`ESPEAK_LANGUAGES` with a random
    variant (``espeak_variants``), IPA phones; ``festival-ml``: a voice of
    ``festival_ml_voices`` (``{voice: language}``, :func:`~.tts.festival_ml_voices`,
    languages of :data:`FESTIVAL_ML_LANGUAGES`) reading its language (engine
    ``"festival"`` in the job; with ``own_language`` its text is checked with eSpeak NG's
    voice of that language, which the error then names); English engines as :func:`plan_jobs`. Half of the MBROLA,
    Festival and Piper utterances become a new speaker by WORLD (:data:`TRAIN_WORLD`
    ranges).

    ``own_language`` (the v5 recipe): word sequences of a language not written in Latin
    letters leave out the words that are (``own_script``), and an MBROLA or ``espeak-ml``
    text that eSpeak would still read partly in another language
    (:func:`model_core.training.tts.language_switches`:
    English words in a Hindi word list, kanji spelled out in English) is drawn again, up
    to :data:`TEXT_DRAWS` times, so every utterance is in its voice's language (about
    25 ms a text). False (v4) draws exactly as the v4 corpora were drawn.

    Raises:
        SettingError: no voices at all.
        DataError: ``own_language`` and :data:`TEXT_DRAWS` draws in a row gave no text a
            voice reads in its own language (names the voice and its language).
    """
    def own_text(lang: str, reader: str) -> str:
        if not own_language:
            return _text(lang, rng)
        return _own_language_draw(lambda: (_text(lang, rng, own_script=True),), reader, lang,
                                  TEXT_DRAWS)[0]

    rng = np.random.default_rng(seed)
    shares = V4_SHARES if shares is None else shares
    mb = sorted(v for v in (mbrola_voices or {}) if v in TRAIN_MBROLA)
    fml = {v: lang for v, lang in sorted((festival_ml_voices or {}).items())
           if lang in FESTIVAL_ML_LANGUAGES}
    pools = {"mbrola": mb, "espeak-ml": list(ESPEAK_LANGUAGES) if espeak_voices else [],
             "piper": list(piper_voices), "festival": festival_voices,
             "espeak-ng": espeak_voices, "festival-ml": list(fml)}
    engines = [e for e in shares if pools.get(e)]
    if not engines:
        raise SettingError("no voices for the v4 recipe: install the MBROLA voices "
                         "(tools/setup_corpus.sh) and eSpeak NG")
    p = np.array([shares[e] for e in engines])
    p /= p.sum()
    variants = [v for v in espeak_variants if f"en-us+{v}" not in HELDOUT_ESPEAK]
    jobs = []
    for i in range(n):
        engine = engines[int(rng.choice(len(engines), p=p))]
        voice = str(rng.choice(pools[engine]))
        jseed = seed * 1_000_003 + i
        if engine == "mbrola":
            lang = mbrola_voices[voice]
            job = Job(i, own_text(lang, f"mb-{voice}"), "mbrola", voice,
                      rate=int(rng.integers(120, 221)),
                      pitch=int(rng.integers(25, 76)), pitch_range=int(rng.integers(30, 81)),
                      seed=jseed, language=lang,
                      vowel_ratio=round(float(rng.uniform(1.3, 2.0)), 3))
        elif engine == "espeak-ml":
            var = f"+{rng.choice(variants)}" if variants and rng.random() < 0.7 else ""
            job = Job(i, own_text(voice, voice), "espeak-ng", voice + var,
                      rate=int(rng.integers(120, 230)), pitch=int(rng.integers(20, 80)),
                      pitch_range=int(rng.integers(20, 90)), seed=jseed, language=voice)
        elif engine == "festival-ml":
            lang = fml[voice]
            job = Job(i, own_text(lang, lang), "festival", voice, seed=jseed, language=lang)
        else:
            pool = piper_sentences if engine == "piper" and piper_sentences else sentences
            k = int(rng.integers(1, 3))
            text = " ".join(pool[j] for j in rng.choice(len(pool), k, replace=False))
            job = Job(i, text, engine, voice, seed=jseed)
            if engine == "espeak-ng":
                job.rate, job.pitch = int(rng.integers(120, 260)), int(rng.integers(20, 80))
                job.pitch_range = int(rng.integers(20, 90))
            elif engine == "piper":
                job.length_scale = round(float(rng.uniform(0.8, 1.35)), 3)
        if job.engine != "espeak-ng" and rng.random() < 0.5:
            (p0, p1), (f0, f1) = TRAIN_WORLD
            job.world = (round(float(np.exp(rng.uniform(np.log(p0), np.log(p1)))), 3),
                         round(float(np.exp(rng.uniform(np.log(f0), np.log(f1)))), 3))
        jobs.append(job)
    return jobs


#: Corpus recipes: how the engines, voices, sentences and augmentations are mixed.
#: ``v2`` made the v1/v2 default models (eSpeak NG and Festival half and half, every
#: fortune sentence); ``v3`` adds the Piper neural voice, WORLD speaker transforms of the
#: Festival and Piper voices and measured rooms, and keeps the held-out sentences and voices
#: (:data:`HELDOUT_FESTIVAL`, :data:`HELDOUT_ESPEAK`) out for the held-out evaluation set;
#: ``v4`` (:func:`plan_jobs_v4`) adds MBROLA voices of people in 30 languages and eSpeak NG
#: in 40, keeping :data:`HELDOUT_MBROLA` out; ``v5`` is v4 with every MBROLA and eSpeak NG
#: text in its voice's language (``own_language``; the v4 corpus had all sampled clips of
#: the Hindi voice in1 partly in English); ``v6`` is v5 with Festival's Czech, Russian,
#: Catalan, Hindi, Marathi and Telugu voices (:data:`V6_SHARES`). All name MBROLA phones with the
#: pairing of :func:`model_core.training.mbrola.event_names` that is current when they are
#: built.
RECIPES = {
    "v2": {"shares": {"espeak-ng": 0.5, "festival": 0.5}, "world_share": 0.0,
           "real_rooms": False, "holdout": False},
    "v3": {"shares": {"espeak-ng": 0.3, "festival": 0.3, "piper": 0.4}, "world_share": 0.6,
           "real_rooms": True, "holdout": True},
    "v4": {"shares": V4_SHARES, "world_share": 0.5, "real_rooms": True, "holdout": True,
           "multilingual": True, "own_language": False},
    "v5": {"shares": V4_SHARES, "world_share": 0.5, "real_rooms": True, "holdout": True,
           "multilingual": True, "own_language": True},
    "v6": {"shares": V6_SHARES, "world_share": 0.5, "real_rooms": True, "holdout": True,
           "multilingual": True, "own_language": True},
}


def _aligned_pool(sentences: list[str]) -> list[str]:
    """Sentences whose every word is in pocketsphinx's dictionary (Piper needs an alignment)."""
    from .align import missing_words, normalize_transcript
    return [x for x in sentences if not missing_words(normalize_transcript(x))]


def build_corpus(out_dir: str | os.PathLike, n: int, seed: int = 0, fps: float = 30.0,
                 workers: int = 2, augment: bool = True, engines=("espeak-ng", "festival"),
                 progress: bool = True, recipe: str = "v2") -> Path:
    """Synthesize a corpus of ``n`` utterances into ``out_dir`` (must not exist or be empty).

    Writes ``out_dir/utts/utt_NNNNNN.npz`` (``audio`` int16 [N] 16 kHz, ``frames`` float16
    [T, 52] ARKit weights at ``fps``, ``phones`` JSON, ``alphabet`` of the phone labels,
    ``fps``), ``manifest.jsonl`` (one line per utterance: file, text, engine, voice,
    language, settings, duration) and ``corpus.json``. A build that was stopped goes on
    where it was when run again with the same arguments (``request.json``, ``parts/``) and,
    for the multilingual recipes, the same ``mbrola_ipa.json`` (its digest is recorded).
    ``recipe`` (:data:`RECIPES`) sets the mix; ``engines`` limits the engines used. Piper
    utterances that pocketsphinx cannot align are left out, so a ``v3`` corpus may hold a
    few fewer than ``n``.

    Raises:
        FileExistsError: ``out_dir`` holds files already, other than an unfinished build
            with the same arguments (a corpus is never overwritten).
        FileNotFoundError: no sentence source / TTS engine installed (names the package).
        ValueError: unknown recipe, or ``festival-ml`` alone with a recipe that does not
            draw it (only ``v6`` does).
    """
    from concurrent.futures import ProcessPoolExecutor
    from tqdm import tqdm
    from . import tts

    if recipe not in RECIPES:
        raise SettingError(f"unknown corpus recipe {recipe!r}; use one of {sorted(RECIPES)}")
    rec = RECIPES[recipe]
    if "festival-ml" in engines and "festival-ml" not in rec["shares"] and \
            not set(engines) - {"festival-ml"}:
        raise SettingError(f"--engines festival-ml: recipe {recipe!r} does not draw Festival's "
                           f"non-English voices; use --recipe v6")
    # the engines a build asked for that its recipe draws: an unfinished build started with
    # another list of unused engines (the default list before festival-ml) still goes on
    engines = [e for e in engines if e != "festival-ml" or "festival-ml" in rec["shares"]]
    out = Path(out_dir)
    request = {"n": n, "seed": seed, "fps": fps, "augment": augment,
               "engines": list(engines), "recipe": recipe}
    from .mbrola import phone_naming    # what a resumed build must go on with
    naming = phone_naming()
    if rec.get("multilingual"):
        request.update({k: v for k, v in naming.items()
                        if "mbrola" in engines or (k == "espeak_ipa" and "espeak-ng" in engines)})
    plan_file = out / "request.json"
    if out.exists() and any(out.iterdir()):
        old = json.loads(plan_file.read_text()) if plan_file.exists() else None
        if old != request or (out / "manifest.jsonl").exists():
            why, names = "", tuple(naming)
            if old and {k: v for k, v in old.items() if k not in names} == \
                    {k: v for k, v in request.items() if k not in names}:
                why = ("; it was started under other phone names ("
                       + ", ".join(f"{k} {old.get(k) or 'unrecorded'}, now {request.get(k)}"
                                   for k in names if old.get(k) != request.get(k))
                       + ": model_core/training/mbrola_ipa.json, "
                         "model_core/training/tts/espeak_ipa.py, mbrola.repair_diphones), "
                         "which name or render phones differently")
            raise OutputExistsError(f"{out} is not empty; choose a new folder (corpora are never "
                                  f"overwritten; an unfinished build goes on only with the "
                                  f"same arguments){why}")
    (out / "utts").mkdir(parents=True, exist_ok=True)
    (out / "parts").mkdir(exist_ok=True)
    plan_file.write_text(json.dumps(request) + "\n")
    sentences = sentence_pool(split="train" if rec["holdout"] else "all")
    ev = tts.espeak_voices() if "espeak-ng" in engines else []
    fv = tts.festival_voices() if "festival" in engines else []
    fml = tts.festival_ml_voices() if "festival-ml" in engines else {}
    pv = tts.piper_voices() if "piper" in engines and "piper" in rec["shares"] else []
    mv = {}
    multilingual = rec.get("multilingual", False)
    if multilingual and "mbrola" in engines:
        from .mbrola import mbrola_voices
        mv = {v: lang for v, lang in mbrola_voices().items() if v in TRAIN_MBROLA}
    if rec["holdout"]:
        ev = [v for v in ev if v not in HELDOUT_ESPEAK]
        fv = [v for v in fv if v not in HELDOUT_FESTIVAL]
    if "festival-ml" in engines and not fml and not set(engines) - {"festival-ml"}:
        raise InputNotFoundError("--engines festival-ml: none of Festival's non-English voices "
                                 "is installed; run bash tools/setup_corpus.sh")
    if not ev and not fv and not pv and not mv and not fml:
        raise InputNotFoundError("no TTS engine: apt-get install -y espeak-ng festival "
                                "festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k")
    if multilingual:
        variants = [v.split("+", 1)[1] for v in ev if "+" in v]
        jobs = plan_jobs_v4(n, seed, ev, fv,
                            sentences, piper_voices=pv,
                            piper_sentences=_aligned_pool(sentences) if pv else None,
                            mbrola_voices=mv, espeak_variants=variants,
                            own_language=rec["own_language"], festival_ml_voices=fml,
                            shares=rec["shares"])
    else:
        shares = rec["shares"] if (ev or pv) else {"festival": 1.0}
        jobs = plan_jobs(n, seed, ev or [], fv, sentences, piper_voices=pv, shares=shares,
                         world_share=rec["world_share"],
                         piper_sentences=_aligned_pool(sentences) if pv else None)
    groups: list[list[Job]] = []
    for engine in ("festival", "piper", "mbrola"):
        for voice in sorted({j.voice for j in jobs if j.engine == engine}):
            vj = [j for j in jobs if j.engine == engine and j.voice == voice]
            groups += [vj[i:i + 16] for i in range(0, len(vj), 16)]
    ej = [j for j in jobs if j.engine == "espeak-ng"]
    groups += [ej[i:i + 16] for i in range(0, len(ej), 16)]
    # each group's records go to parts/NNNNN.jsonl when it is done: a stopped build goes
    # on where it was (run the same command again)
    parts = [out / "parts" / f"{k:05d}.jsonl" for k in range(len(groups))]
    todo = [k for k, f in enumerate(parts) if not f.exists()]
    run = _run_jobs_safe if multilingual else _run_jobs
    done_n = sum(len(groups[k]) for k in range(len(groups)) if k not in set(todo))
    with ProcessPoolExecutor(max_workers=workers) as ex, \
            tqdm(total=n, initial=done_n, desc="make-dataset", unit="utt",
                 disable=not progress) as bar:
        for k, recs in zip(todo, ex.map(run, [(groups[k], str(out), fps, augment,
                                               rec["real_rooms"]) for k in todo])):
            atomic_write(parts[k], lambda tmp, recs=recs: Path(tmp).write_text(
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)))
            bar.update(len(groups[k]))
    records = [json.loads(line) for f in parts for line in f.read_text().splitlines()
               if line.strip()]
    records.sort(key=lambda r: r["file"])
    with open(out / "manifest.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    hours = sum(r["duration_s"] for r in records) / 3600
    (out / "corpus.json").write_text(json.dumps({
        "utterances": len(records), "hours": round(hours, 3), "fps": fps, "seed": seed,
        "recipe": recipe, "augment": augment, "espeak_voices": ev, "festival_voices": fv,
        "festival_ml_voices": sorted(fml),
        "piper_voices": pv, "mbrola_voices": sorted(mv),
        "mbrola_ipa": request.get("mbrola_ipa", ""),
        "espeak_ipa": request.get("espeak_ipa", ""),
        "mbrola_repair": request.get("mbrola_repair", ""),
        "languages": sorted({r.get("language", "en") for r in records}),
        "sentence_source": "Debian fortunes / fortunes-min"
        + (" and fortunes-xx, PyPI wordfreq word sequences" if multilingual else ""),
        "sentences_available": len(sentences)},
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
        raise InputNotFoundError(f"{p} not found: build a corpus with `streamtalker make-dataset`")
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def speaker_key(record: dict) -> str:
    """The training voice a manifest record was read by, as one name: ``engine:voice``
    (``mbrola:de6``, ``piper:en_US-joe-medium``); for eSpeak NG the voice variant only
    (``espeak-ng:+Denis``, or ``espeak-ng:default`` without one), since eSpeak's
    language voices share its variants' timbres. A WORLD speaker transform keeps its
    source voice's name. Used by the speaker-adversarial loss (``[train]
    speaker_adversary``).

    Raises:
        DataError: the record names no engine or voice (not a make-dataset manifest).
    """
    engine, voice = record.get("engine"), record.get("voice")
    if not engine or not voice:
        raise DataError(f"manifest record {record.get('file', '?')}: no engine or voice; the "
                        f"speaker-adversarial loss needs a corpus made by "
                        f"`streamtalker make-dataset`")
    if engine == "espeak-ng":
        return f"espeak-ng:+{voice.split('+', 1)[1]}" if "+" in voice else "espeak-ng:default"
    return f"{engine}:{voice}"


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
            raise DataError(f"{path}: made at {file_fps} fps, the model runs at {fps} fps")
        audio = z["audio"].astype(np.float32) / 32767.0
        phones = [tuple(p) for p in json.loads(str(z["phones"]))] if "phones" in z else None
        alphabet = str(z["alphabet"]) if "alphabet" in z else "auto"
        if pad_rng is None:
            return Utterance(audio, z["frames"].astype(np.float32), style, phones, alphabet)
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
    frames = teacher_curves(shifted, dur, file_fps, rng, prosody=prosody_from_audio(x, file_fps),
                            alphabet=alphabet)
    return Utterance(x, frames.astype(np.float32), style, shifted, alphabet)


class CorpusStream:
    """Streams training batches from corpus files with a bounded reservoir.

    Args:
        model: the model being trained (its config sets the chunk geometry).
        files: corpus ``.npz`` paths (plus a style index each: list of (path, style)).
        reservoir: utterances held in memory at once; refresh: files swapped in per batch.
        seed: numpy seed; pad: embed utterances in 0-3 s of silence with fresh teacher
        curves (see :func:`load_utterance`); vtlp: vocal-tract-length perturbation of the
        features, live_pairing, clean_features: as
        :class:`~model_core.training.batches.ChunkBatcher` takes them; speakers: None, or
        each file's training voice id (path as in ``files`` -> int; -1 or absent =
        unknown): the batches then hold ``speaker`` int64 [B] (the speaker-adversarial
        loss).
    ``batch(batch_size)`` returns the dict :meth:`StreamTalkerModel.training_loss` takes.
    """

    def __init__(self, model, files: list[tuple[str, int]], reservoir: int = 128,
                 refresh: int = 4, seed: int = 0, pad: bool = True, vtlp: float = 0.0,
                 live_pairing: float = 0.0, clean_features: bool = False,
                 speakers: dict[str, int] | None = None):
        from .batches import ChunkBatcher
        if not files:
            raise DataError("no training files")
        self.files = list(files)
        self.rng = np.random.default_rng(seed)
        self.order = list(self.rng.permutation(len(self.files)))
        self.refresh = refresh
        self.pad = pad
        self.fps = model.config.fps
        self.speakers = speakers
        first = [self._next() for _ in range(min(reservoir, len(self.files)))]
        self.batcher = ChunkBatcher(model, first, seed=seed, vtlp=vtlp, live_pairing=live_pairing,
                                    clean_features=clean_features,
                                    speaker_labels=speakers is not None)

    def _next(self) -> Utterance:
        if not self.order:
            self.order = list(self.rng.permutation(len(self.files)))
        path, style = self.files[self.order.pop()]
        utt = load_utterance(path, style, self.fps, pad_rng=self.rng if self.pad else None)
        if self.speakers is not None:
            utt.speaker = int(self.speakers.get(path, -1))
        return utt

    def batch(self, batch_size: int, K: int | None = None, lookahead_ms: float | None = None):
        if len(self.files) > len(self.batcher.utts):
            for _ in range(self.refresh):
                self.batcher.replace(int(self.rng.integers(len(self.batcher.utts))), self._next())
        return self.batcher.batch(batch_size, K, lookahead_ms)


# -- the synthetic held-out evaluation set -----------------------------------------------
def build_heldout_set(out_dir: str | os.PathLike, per_speaker: int = 6, seed: int = 0) -> Path:
    """Write the synthetic held-out evaluation set: speakers and sentences no ``v3`` corpus
    trains on, as ``out_dir/speech/<speaker>/<NN>.wav`` (16 kHz mono) + ``.txt`` transcript,
    the layout ``streamtalker evaluate --inputs`` reads (clips are aligned with pocketsphinx
    like the real ones, so the teacher ceiling is computed the same way).

    Speakers (``per_speaker`` one-sentence clips each, clean audio):
    ``kal`` (Festival ``kal_diphone``, never trained on), and the three WORLD-transformed
    speakers of :data:`HELDOUT_WORLD`, outside the training transform ranges
    (``joe-high``: Piper joe with F0 x1.75 and formants x1.2; ``slt-low``: Festival slt with
    F0 x0.6 and formants x0.85; ``ked-high``: Festival ked with F0 x1.6 and formants
    x1.18). The held-out eSpeak variants (:data:`HELDOUT_ESPEAK`) are kept out of training
    too, but pocketsphinx cannot align most eSpeak voices, so they are not in this set. Sentences come from
    ``sentence_pool(split="heldout")`` restricted to words pocketsphinx knows. The same
    arguments give the same files, byte for byte, in every build (Piper's noise is seeded
    per clip).

    Raises:
        FileExistsError: ``out_dir`` is not empty.
        FileNotFoundError: a TTS engine or voice is missing (names the package).
    """
    import soundfile as sf
    from . import tts
    from .voices import world_transform

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise OutputExistsError(f"{out} is not empty; choose a new folder")
    from .align import AlignmentError, align_phones, normalize_transcript
    rng = np.random.default_rng(seed)
    pool = _aligned_pool(sentence_pool(min_words=5, max_words=16, split="heldout"))
    order = iter(rng.permutation(len(pool)))
    # Festival is deterministic; Piper's VITS noise is drawn with a seed of its own per clip
    # (so the set is the same clip for clip in every build)
    synth = {
        "kal": lambda t, s: tts.festival_synthesize(t, HELDOUT_FESTIVAL[0]),
        "joe-high": lambda t, s: tts.piper_synthesize(t, HELDOUT_WORLD[0][1], seed=s),
        "slt-low": lambda t, s: tts.festival_synthesize(t, HELDOUT_WORLD[1][1]),
        "ked-high": lambda t, s: tts.festival_synthesize(t, HELDOUT_WORLD[2][1]),
    }
    attempt = 0
    world = {"joe-high": HELDOUT_WORLD[0][2:], "slt-low": HELDOUT_WORLD[1][2:],
             "ked-high": HELDOUT_WORLD[2][2:]}
    skipped = 0
    for speaker, make in synth.items():
        folder = out / "speech" / speaker
        folder.mkdir(parents=True, exist_ok=True)
        i = 0
        while i < per_speaker:
            text = pool[next(order)]
            u = make(text, seed * 100003 + attempt)
            attempt += 1
            x = Resampler(u.sample_rate, SR).process(u.samples, last=True)
            if speaker in world:
                x = world_transform(x, SR, *world[speaker])
            x = x / (np.max(np.abs(x)) + 1e-9) * 0.9
            try:   # the evaluation aligns every clip: keep only clips it can align
                align_phones(x, normalize_transcript(text))
            except AlignmentError:
                skipped += 1
                continue
            sf.write(str(folder / f"{i:02d}.wav"), x, SR, subtype="PCM_16")
            (folder / f"{i:02d}.txt").write_text(text + "\n")
            i += 1
    (out / "heldout.json").write_text(json.dumps({
        "speakers": sorted(synth), "per_speaker": per_speaker, "seed": seed,
        "sentences_not_aligned_and_replaced": skipped,
        "espeak_voices": list(HELDOUT_ESPEAK), "festival_voices": list(HELDOUT_FESTIVAL),
        "world": [list(w) for w in HELDOUT_WORLD]}, indent=2) + "\n")
    return out


def _write_ipa_clip(folder: Path, i: int, clip, text: str, lang: str, voice: str,
                    engine: str) -> None:
    """Write ``clip`` (a :class:`~.tts.SpeechClip` with IPA phones) as ``folder/NN.wav``
    (16 kHz mono PCM, peak 0.9) and ``folder/NN.phones.json`` (``alphabet``, ``language``,
    ``voice``, ``text``, ``engine``, ``phones``), the held-out sets' layout."""
    import soundfile as sf
    x = Resampler(clip.sample_rate, SR).process(clip.samples, last=True)
    x = (x / (np.max(np.abs(x)) + 1e-9) * 0.9).astype(np.float32)
    sf.write(str(folder / f"{i:02d}.wav"), x, SR, subtype="PCM_16")
    (folder / f"{i:02d}.phones.json").write_text(json.dumps({
        "alphabet": "ipa", "language": lang, "voice": voice, "text": text,
        "engine": engine, **({"missing_diphones": clip.settings["missing_diphones"]}
                             if "missing_diphones" in clip.settings else {}),
        "phones": [list(p) for p in clip.phones]},
        ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def build_festival_evalset(out_dir: str | os.PathLike, per_voice: int = 12,
                           seed: int = 0) -> Path:
    """Write a held-out set of Festival's voices recorded from people in Czech (4), Russian,
    Catalan, Hindi, Marathi and Telugu (:data:`~.tts.FESTIVAL_ML_VOICES`), in the layout of
    :func:`build_multilingual_evalset` (``speech/<voice>/<NN>.wav``, 16 kHz mono, clean,
    with ``<NN>.phones.json``: IPA, the phone timing Festival rendered).

    Held out only from corpora without these voices (recipes v2-v5, and so the bundled
    v4.5): a network trained on a v6 corpus has heard them, and the set then measures
    unseen texts only. Text as the MBROLA set's: held-out fortune sentences where the
    language has them (Czech, Russian), else word sequences in the language's own script
    (wordfreq; Telugu: hunspell-te), drawn again when eSpeak NG would read them partly in
    another language or they hold a digit (the Russian voice cannot read digits). Each
    voice draws from a random stream of its own (the seed and its place in
    :data:`~.tts.FESTIVAL_ML_VOICES`).

    Returns:
        ``out_dir``.
    Raises:
        FileExistsError: ``out_dir`` is not empty.
        FileNotFoundError: festival or one of the voices is not installed (names the fix).
        DataError: 200 draws in a row found no text a voice reads in its own language.
    """
    from . import tts
    from .texts import fortune_sentences, wordfreq_text

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise OutputExistsError(f"{out} is not empty; choose a new folder")
    voices = tts.FESTIVAL_ML_VOICES
    installed = tts.festival_ml_voices()
    missing = [v for v in voices if v not in installed]
    if missing:
        raise InputNotFoundError(f"Festival voice(s) {', '.join(missing)} not installed: run "
                                 f"bash tools/setup_corpus.sh")
    for place, voice in enumerate(voices):
        rng = np.random.default_rng([seed, place])
        lang = voices[voice].language
        pool = fortune_sentences(lang, min_words=5, max_words=16, split="heldout")
        used: set[str] = set()
        texts = []
        for _ in range(per_voice):
            def draw():
                text = (pool[int(rng.integers(len(pool)))] if pool and rng.random() < 0.6
                        else wordfreq_text(lang, rng, int(rng.integers(7, 13)),
                                           own_script=True))
                return (text,)
            text = _own_language_draw(draw, lang, lang, 200, used,
                                      ok=lambda t: not any(c.isdigit() for c in t))[0]
            used.add(text)
            texts.append(text)
        folder = out / "speech" / voice
        folder.mkdir(parents=True, exist_ok=True)
        for i, u in enumerate(tts.festival_synthesize_batch(texts, voice)):
            _write_ipa_clip(folder, i, u, u.text, lang, voice, "festival")
    (out / "heldout.json").write_text(json.dumps({
        "recipe": "festival-ml", "voices": list(voices), "per_voice": per_voice,
        "seed": seed, "split": "all", "dev": [], "test": list(voices),
        "held_out_from": "corpus recipes v2-v5 (v6 trains on these voices)",
        "languages": {v: voices[v].language for v in voices}}, indent=2) + "\n")
    return out


def build_multilingual_evalset(out_dir: str | os.PathLike, per_voice: int = 4, seed: int = 0,
                               voices=HELDOUT_MBROLA, split: str | None = None) -> Path:
    """Write the multilingual held-out set: recorded (MBROLA) voices no v4 corpus trains on,
    each reading its own language, as ``out_dir/speech/<voice>/<NN>.wav`` (16 kHz mono,
    clean) with ``<NN>.phones.json`` beside it (``{"alphabet": "ipa", "language",
    "voice", "text", "phones"}``: the exact phone timing the voice was rendered with), the
    layout ``streamtalker evaluate --heldout`` reads. Voices :data:`HELDOUT_MBROLA_DEV`
    choose checkpoints and settings, :data:`HELDOUT_MBROLA_TEST` report
    (``heldout.json`` records which is which, and the digest of the ``mbrola_ipa.json``
    that named the phones where eSpeak's events pair none). ``split`` ``"dev"`` or
    ``"test"`` writes only
    that half's voices, with the very clips the whole set holds (each voice draws from a random
    stream of its own), so a dev folder and a test folder can be built apart. ``"seen"`` is
    the control for the dev half: :data:`SEEN_MBROLA_DEV`, voices the corpus trains on, each
    reading the texts of the dev voice in its place at the same rates (the dev voice's
    random stream; a text the seen voice would read partly in another language is drawn
    again), so the dev set's figures minus these are what the voice costs.

    Text: held-out fortune sentences of the language (the tenth no corpus uses) where it
    has some, else word sequences (PyPI wordfreq) drawn with this set's own seed; a text
    eSpeak would read partly in another language (:func:`model_core.training.mbrola.
    language_switches`: English words in a Hindi word list, Japanese characters spelled out
    in English) or that the voice already reads is drawn again, so each voice's figures are
    its own language's. Each voice draws from a random stream of its own (the seed and
    its place in ``voices``). Rate 150-190 words/min, the vowel/consonant duration ratio
    1.6.

    Raises:
        FileExistsError: ``out_dir`` is not empty.
        FileNotFoundError: mbrola or a voice is missing (names the fix).
        DataError: 200 draws in a row found no new text the voice reads in its own language.
    """
    from .mbrola import mbrola_synthesize, mbrola_voices, phone_naming
    from .texts import fortune_sentences, wordfreq_text

    halves = {"dev": HELDOUT_MBROLA_DEV, "test": HELDOUT_MBROLA_TEST, "seen": HELDOUT_MBROLA_DEV}
    if split is not None and split not in halves:
        raise SettingError(f"split must be 'dev', 'test', 'seen' or None, not {split!r}")
    keep = [v for v in voices if split is None or v in halves[split]]
    # who reads each kept voice's clips: itself, or for "seen" the training voice in its place
    reader = {v: SEEN_MBROLA_DEV[HELDOUT_MBROLA_DEV.index(v)] if split == "seen" else v
              for v in keep}
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise OutputExistsError(f"{out} is not empty; choose a new folder")
    installed = mbrola_voices()
    missing = [v for v in list(voices) + list(reader.values())   # the draws need every language
               if v not in installed]
    if missing:
        raise InputNotFoundError(f"MBROLA voice(s) {', '.join(missing)} not installed: run "
                                f"tools/setup_corpus.sh (Debian non-free mbrola-XX)")
    for place, dev_voice in enumerate(voices):
        if dev_voice not in keep:    # the other half: its own stream, nothing drawn or written
            continue
        rng = np.random.default_rng([seed, place])
        voice = reader[dev_voice]
        lang = installed[voice]
        folder = out / "speech" / voice
        pool = fortune_sentences(lang, min_words=5, max_words=16, split="heldout") \
            if not lang.startswith("en") else ()
        used: set[str] = set()
        for i in range(per_voice):
            def draw():
                text = (pool[int(rng.integers(len(pool)))] if pool and rng.random() < 0.6
                        else wordfreq_text(lang, rng, int(rng.integers(7, 13))))
                return text, int(rng.integers(150, 191))
            text, rate = _own_language_draw(draw, f"mb-{voice}", lang, 200, used)
            used.add(text)
            folder.mkdir(parents=True, exist_ok=True)
            u = mbrola_synthesize(text, voice, rate=rate, vowel_ratio=1.6)
            _write_ipa_clip(folder, i, u, text, lang, voice, "mbrola")
    written = [reader[v] for v in keep]
    (out / "heldout.json").write_text(json.dumps({
        "recipe": "v4", "voices": written, "per_voice": per_voice, "seed": seed,
        **phone_naming(),
        "split": split or "all",
        "dev": [v for v in keep if v in HELDOUT_MBROLA_DEV and split != "seen"],
        "test": [v for v in keep if v in HELDOUT_MBROLA_TEST],
        "seen": {reader[v]: v for v in keep} if split == "seen" else {},
        "languages": {v: installed[v] for v in written}}, indent=2) + "\n")
    return out
