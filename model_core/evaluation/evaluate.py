"""Evaluation of a model on real speech: lip-sync measures against the phone alignment and
the procedural teacher, plus the field's vertex metrics for vertex models.

Public API::

    items = build_eval_set(inputs_dir, fps)                 # real speech + phones + reference
    results = evaluate_model(model, items, seeds=(0, 1, 2)) # dict (JSON-ready via save_results)
    print(format_table(results))                            # Markdown
    save_results(results, "results.json")                   # temp file + rename, no overwrite
    results = evaluate_teacher(items, seeds=(0, 1, 2))      # the teacher itself, a sanity line
    figures = evaluate_vertices(pred_list, gt_list, template, lip_idx, upper_idx)

Command line (registered by :func:`model_core.cli.evaluate.add_evaluate_parser`)::

    streamtalker evaluate [--checkpoint P | --teacher] [--inputs DIR] [--items GLOB]
                          [--seeds 0,1,2] [--steps N] [--device cpu] [-o results.json]
                          [--force] [--strict]

The evaluation set is every ``*.wav`` under ``<inputs>/speech/`` that has a ``.txt``
transcript next to it (the real clips fetched by ``tools/fetch_inputs.py``: LibriVox,
CMU ARCTIC, pocketsphinx ``cards`` and ``forever``). Each clip is aligned with
:func:`model_core.training.align.align_phones` (pocketsphinx, offline) and given a reference:
:func:`model_core.training.teacher.teacher_curves` on those phones with the clip's prosody
(:func:`~model_core.training.teacher.prosody_from_audio`) and a generator seeded from the clip's
name, so the reference is the same in every run.

"Must hold" checks (:data:`CHECKS`): jawOpen correlation with the reference >= 0.7,
bilabial closure rate >= 0.8, blink rate within 8-25 per minute, lips vary less across
seeds than the upper face. The metric rules are in :mod:`model_core.evaluation.metrics`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import metrics as M
from ..face import ARKIT_52
from ..io.files import atomic_write, check_writable
from ..errors import DataError, InputNotFoundError, SettingError

__all__ = ["CHECKS", "EvalItem", "add_evaluate_parser", "build_eval_set", "cmd_evaluate",
           "default_inputs_dir", "evaluate_model", "evaluate_predictions", "evaluate_teacher",
           "evaluate_vertices", "format_sets", "format_table", "item_seed", "save_results",
           "teacher_reference", "LIP_FIGURES", "speaker_of"]

SAMPLE_RATE = 16000
_LIP_IDX = np.array([ARKIT_52.index(n) for n in M.LIP_CHANNELS], dtype=np.int64)
FETCH_HINT = "run `.venv/bin/python tools/fetch_inputs.py` from the project root to fetch them"

#: The must-hold checks: key -> (description, lower bound, upper bound) on the overall value.
#: The lip checks are measured on the lip gap of a real head (:mod:`model_core.evaluation.arkit_head`).
CHECKS: dict[str, tuple[str, float, float]] = {
    "lip_closure": ("lip-gap closure on P/B/M >= 0.9", 0.9, math.inf),
    "open_closed_ratio": ("lip gap on open vowels / on P/B/M >= 5", 5.0, math.inf),
    "openness_r": ("openness correlation of the lip gap >= 0.65", 0.65, math.inf),
    "rounding": ("rounding (funnel + pucker, rounded - spread vowels) >= 0.25", 0.25, math.inf),
    "blink_rate": ("blink rate in 8-25 per minute", 8.0, 25.0),
    "seed_diversity": ("lips vary less across seeds than the upper face", -math.inf, 0.0),
}
#: The lip-gap figures, in table order: key -> column title.
LIP_FIGURES = {"closure": "closure", "open_closed_ratio": "open/closed gap",
               "openness_r": "openness r", "rounding": "rounding"}


def speaker_of(name: str) -> str:
    """The speaker group of a clip name: its folder (``"librivox/..."`` -> ``"librivox"``);
    a clip at the top level is its own speaker."""
    return name.split("/", 1)[0]


def default_inputs_dir() -> Path:
    """``<project root>/inputs`` (the folder ``tools/fetch_inputs.py`` fills)."""
    return Path(__file__).resolve().parents[2] / "inputs"


# --------------------------------------------------------------------------------------
# The evaluation set
# --------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class EvalItem:
    """One evaluation clip.

    Attributes:
        name: ``"<folder>/<stem>"``, e.g. ``"librivox/sense_and_sensibility_01_austen_64kb-0870"``.
        path: the wav file.
        samples: float32 ``[N]`` mono speech at 16 kHz.
        transcript: normalised transcript (lower case words).
        phones: ``[(ARPAbet label, start_s, end_s)]`` from pocketsphinx, silences kept
            (``"SIL"``); they tile the clip. Or, for a clip with a ``.phones.json`` beside
            it (a synthetic clip whose engine gave exact timing: ``streamtalker
            make-evalset --recipe v4``), its phones in ``alphabet``.
        reference: float32 ``[T, 52]`` teacher curves (ARKit-52 order) at ``fps``,
            ``T = round(N / 16000 * fps)``.
        fps: frame rate of ``reference``.
        alphabet: ``"arpabet"`` or ``"ipa"``: how the phones are read.
        language: the speech's language code (``"en"``, ``"de"``, ``"pt-br"``...).
        voice: the speaker / voice, for the per-voice table (default: the clip's folder).
    """

    name: str
    path: Path
    samples: np.ndarray
    transcript: str
    phones: tuple
    reference: np.ndarray
    fps: float
    alphabet: str = "arpabet"
    language: str = "en"
    voice: str = ""

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def n_frames(self) -> int:
        return int(self.reference.shape[0])


_ALIGN_CACHE: dict[tuple[str, str], tuple] = {}
_ALIGN_LOCK = threading.Lock()


def _aligned(samples: np.ndarray, transcript: str) -> tuple:
    """align_phones, cached in memory by (sha1 of the samples, transcript)."""
    from ..training.align import align_phones

    key = (hashlib.sha1(np.ascontiguousarray(samples, dtype=np.float32).tobytes()).hexdigest(),
           transcript)
    with _ALIGN_LOCK:
        hit = _ALIGN_CACHE.get(key)
    if hit is None:
        hit = tuple(align_phones(samples, transcript))
        with _ALIGN_LOCK:
            _ALIGN_CACHE[key] = hit
    return hit


def item_seed(name: str) -> int:
    """Seed of a clip's reference generator: the first 8 bytes of SHA-256(name), little
    endian (stable across runs, processes and platforms)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


def teacher_reference(name: str, samples: np.ndarray, phones, fps: float,
                      seed: int | None = None, alphabet: str = "auto") -> np.ndarray:
    """Teacher curves for a clip: :func:`~model_core.training.teacher.teacher_curves` with the
    clip's prosody.

    Args:
        name: the clip's name (seeds the upper-face generator, see :func:`item_seed`).
        samples: float ``[N]`` mono speech at 16 kHz.
        phones: ``[(label, start_s, end_s)]``.
        fps: frame rate (> 0).
        seed: None for the reference itself (generator ``default_rng(item_seed(name))``);
            an int ``s`` for another draw of the upper face (``default_rng([item_seed(name),
            s + 1])``): the teacher as a "model" sampled with seed ``s``.
        alphabet: how to read the phones (as :func:`~model_core.training.teacher.teacher_curves`).

    Returns:
        float32 ``[round(N / 16000 * fps), 52]``.
    """
    from ..training.teacher import prosody_from_audio, teacher_curves

    base = item_seed(name)
    rng = np.random.default_rng(base if seed is None else [base, int(seed) + 1])
    return teacher_curves(list(phones), len(samples) / SAMPLE_RATE, fps, rng,
                          prosody=prosody_from_audio(samples, fps), alphabet=alphabet)


def _clip_name(wav: Path, root: Path) -> str:
    rel = wav.relative_to(root).with_suffix("")
    return rel.as_posix()


def build_eval_set(inputs_dir=None, fps: float = 30.0, *,
                   names: Sequence[str] | None = None) -> list[EvalItem]:
    """Build the evaluation set from the real speech in ``inputs_dir``.

    Args:
        inputs_dir: the project's ``inputs/`` folder (its ``speech/`` subfolder is searched)
            or a folder of clips itself; None for :func:`default_inputs_dir`. Every
            ``*.wav`` found (recursively) with a ``.txt`` transcript beside it is a clip
            (aligned with pocketsphinx, English), and so is one with a ``.phones.json``
            beside it (``{"alphabet", "language", "voice", "phones": [[label, start_s,
            end_s], ...]}``: exact timing from the engine, any language); other clips are
            skipped.
        fps: frame rate of the references, frames per second (> 0); use the model's.
        names: optional glob patterns (``fnmatch``) on the clip names (``"cards/*"``,
            ``"*0870"``); None keeps every clip.

    Returns:
        list of :class:`EvalItem`, sorted by name. Phones come from
        :func:`model_core.training.align.align_phones` (cached in memory by audio and text);
        the reference from :func:`teacher_reference` (reproducible: the generator is seeded
        from the name).

    Raises:
        FileNotFoundError: the folder is missing or holds no transcribed wav (with the hint
            to run ``tools/fetch_inputs.py``).
        ValueError: ``fps`` not > 0, or ``names`` matches no clip.
        model_core.training.align.AlignmentError / ImportError: alignment failed or
            pocketsphinx is missing.
    """
    from ..io.audio import load_audio
    from ..training.align import load_transcript

    f = M.check_fps(fps)
    root = Path(inputs_dir) if inputs_dir is not None else default_inputs_dir()
    if not root.is_dir():
        raise InputNotFoundError(f"evaluation inputs folder {root} is missing: {FETCH_HINT}")
    speech = root / "speech" if (root / "speech").is_dir() else root
    wavs = sorted(p for p in speech.rglob("*") if p.suffix.lower() == ".wav" and p.is_file()
                  and (p.with_suffix(".txt").is_file() or _phones_file(p).is_file()))
    if not wavs:
        raise InputNotFoundError(f"no speech clips with transcripts (*.wav + *.txt) under "
                                f"{speech}: {FETCH_HINT}")
    found = [(_clip_name(w, speech), w) for w in wavs]
    if names is not None:
        if isinstance(names, str):
            names = [names]
        pats = list(names)
        kept = [(n, w) for n, w in found if any(fnmatch.fnmatchcase(n, p) for p in pats)]
        if not kept:
            raise SettingError(f"no evaluation clip matches {', '.join(pats)}; clips: "
                             + ", ".join(n for n, _ in found))
        found = kept
    items = []
    for name, wav in found:
        samples = load_audio(wav)
        side = _phones_file(wav)
        if side.is_file():
            info = json.loads(side.read_text(encoding="utf-8"))
            alphabet, language = info.get("alphabet", "ipa"), info.get("language", "")
            phones = tuple((str(a), float(b), float(c)) for a, b, c in info["phones"])
            transcript = info.get("text", "")
            voice = info.get("voice", "") or speaker_of(name)
        else:
            alphabet, language, voice = "arpabet", "en", speaker_of(name)
            transcript = load_transcript(wav.with_suffix(".txt"))
            phones = _aligned(samples, transcript)
        ref = teacher_reference(name, samples, phones, f, alphabet=alphabet)
        ref.setflags(write=False)
        items.append(EvalItem(name, wav, samples, transcript, phones, ref, f, alphabet,
                              language, voice))
    return items


def _phones_file(wav: Path) -> Path:
    """``clip.phones.json`` beside ``clip.wav``."""
    return wav.with_name(wav.stem + ".phones.json")


# --------------------------------------------------------------------------------------
# Evaluation of ARKit curves
# --------------------------------------------------------------------------------------

def _nan_to_zero(x: float) -> float:
    return 0.0 if not math.isfinite(x) else x


def _check_items(items) -> list[EvalItem]:
    items = list(items)
    if not items:
        raise ValueError("no evaluation items")
    for it in items:
        if not isinstance(it, EvalItem):
            raise ValueError(f"items must be EvalItem (from build_eval_set), got "
                             f"{type(it).__name__}")
    return items


def _check_seeds(seeds) -> list[int]:
    if isinstance(seeds, (int, np.integer)):
        seeds = [seeds]
    try:
        out = [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise SettingError(f"seeds must be integers, got {seeds!r}") from None
    if not out:
        raise SettingError("at least one seed is needed")
    if len(set(out)) != len(out):
        raise SettingError(f"seeds repeat: {out}")
    return out


def evaluate_predictions(items, preds, seeds: Sequence[int] | None = None, head=None) -> dict:
    """Score given predictions on the evaluation set (the core of :func:`evaluate_model`).

    Args:
        items: :class:`EvalItem` list (from :func:`build_eval_set`).
        preds: for each item, a list of float ``[T, 52]`` ARKit-52 predictions at the item's
            fps, one per seed (same number of seeds for every item, T = the item's frames).
        seeds: the seeds' values, for the record (default ``0 .. S-1``).
        head: the :class:`~model_core.evaluation.arkit_head.ArkitHead` the lip gap is measured on
            (default :func:`model_core.evaluation.arkit_head.load_head`, the fetched Face Cap head).

    Returns:
        the results dict described in :func:`evaluate_model`.

    Raises:
        ValueError: empty items, mismatched counts or shapes, non-finite values.
    """
    items = _check_items(items)
    preds = [list(p) for p in preds]
    if len(preds) != len(items):
        raise ValueError(f"{len(preds)} prediction lists for {len(items)} items")
    n_seeds = len(preds[0]) if preds else 0
    if n_seeds == 0 or any(len(p) != n_seeds for p in preds):
        raise ValueError("every item needs the same number (>= 1) of predictions, one per seed")
    seeds = list(range(n_seeds)) if seeds is None else _check_seeds(seeds)
    if len(seeds) != n_seeds:
        raise ValueError(f"{len(seeds)} seeds but {n_seeds} predictions per item")
    fps = items[0].fps
    if any(abs(it.fps - fps) > 1e-9 for it in items):
        raise ValueError("all items must have the same fps")
    if head is None:
        from .arkit_head import load_head
        head = load_head()

    def lip(a, it):
        return M.lip_gap_measures(head.lip_gap(a), a, it.phones, fps, alphabet=it.alphabet)

    lip_parts: dict[str, list] = {}      # speaker -> model lip measures (clips x seeds)
    lip_ref_parts: dict[str, list] = {}  # speaker -> teacher lip measures (clips)
    lang_parts: dict[str, list] = {}     # language -> model lip measures
    lang_ref_parts: dict[str, list] = {}

    per_item = []
    tot = {"closed": 0, "eligible": 0, "open_sum": 0.0, "open_n": 0, "other_sum": 0.0,
           "other_n": 0, "ref_closed": 0, "ref_eligible": 0, "ref_open_sum": 0.0,
           "ref_open_n": 0, "ref_other_sum": 0.0, "ref_other_n": 0, "frames": 0}
    mae_sum = np.zeros(len(ARKIT_52))
    corr = []
    for it, plist in zip(items, preds):
        arrs = []
        for k, p in enumerate(plist):
            a = np.asarray(p, dtype=np.float64)
            if a.shape != it.reference.shape:
                raise ValueError(f"{it.name}: prediction for seed {seeds[k]} has shape "
                                 f"{a.shape}, the reference {it.reference.shape}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{it.name}: prediction for seed {seeds[k]} is not finite")
            arrs.append(a)
        ref = it.reference
        T = it.n_frames
        c_item, closed, eligible = [], 0, 0
        o_sum = o_n = r_sum = r_n = 0.0
        mae_item = np.zeros(len(ARKIT_52))
        blinks = []
        for a in arrs:
            c_item.append(_nan_to_zero(M.jaw_correlation(a, ref)) if T >= 2 else 0.0)
            b = M.bilabial_closures(a, it.phones, fps)
            closed += b["n_closed"]
            eligible += b["n_eligible"]
            ov = M.open_vowel_jaw(a, it.phones, fps)
            if ov["n_open"]:
                o_sum += ov["open"] * ov["n_open"]
                o_n += ov["n_open"]
            if ov["n_other"]:
                r_sum += ov["other"] * ov["n_other"]
                r_n += ov["n_other"]
            mae_item += np.mean(np.abs(a - ref), axis=0)
            blinks.append(M.count_blinks(a))
        mae_item /= len(arrs)
        mae_sum += mae_item * T
        tot["frames"] += T
        tot["closed"] += closed
        tot["eligible"] += eligible
        tot["open_sum"] += o_sum
        tot["open_n"] += o_n
        tot["other_sum"] += r_sum
        tot["other_n"] += r_n
        corr.append(float(np.mean(c_item)))
        rb = M.bilabial_closures(ref, it.phones, fps)
        rov = M.open_vowel_jaw(ref, it.phones, fps)
        tot["ref_closed"] += rb["n_closed"]
        tot["ref_eligible"] += rb["n_eligible"]
        if rov["n_open"]:
            tot["ref_open_sum"] += rov["open"] * rov["n_open"]
            tot["ref_open_n"] += rov["n_open"]
        if rov["n_other"]:
            tot["ref_other_sum"] += rov["other"] * rov["n_other"]
            tot["ref_other_n"] += rov["n_other"]
        div = M.seed_diversity(arrs) if len(arrs) >= 2 else None
        spk = it.voice or speaker_of(it.name)
        parts = [lip(a, it) for a in arrs]
        ref_part = lip(ref, it)
        lip_parts.setdefault(spk, []).extend(parts)
        lip_ref_parts.setdefault(spk, []).append(ref_part)
        lang_parts.setdefault(it.language, []).extend(parts)
        lang_ref_parts.setdefault(it.language, []).append(ref_part)
        open_m = o_sum / o_n if o_n else float("nan")
        other_m = r_sum / r_n if r_n else float("nan")
        per_item.append({
            "name": it.name,
            "duration_s": it.duration_s,
            "n_frames": T,
            "jaw_corr": corr[-1],
            "bilabial_closure": closed / eligible if eligible else float("nan"),
            "bilabial_closed": closed,
            "bilabial_eligible": eligible,
            "n_bilabials": eligible // len(arrs),
            "open_jaw": open_m,
            "other_jaw": other_m,
            "open_vowel_ratio": M.ratio_of(open_m, other_m),
            "mae_mean": float(mae_item.mean()),
            "mae_mouth": float(mae_item[_LIP_IDX].mean()),
            "blinks": float(np.mean(blinks)),
            "seed_diversity_lips": div["lips"] if div else float("nan"),
            "seed_diversity_upper": div["upper"] if div else float("nan"),
            "lip": M.pool_lip_gap_measures(parts),
            "lip_reference": M.pool_lip_gap_measures([ref_part]),
            "reference": {"bilabial_closure": rb["rate"],
                          "bilabial_eligible": rb["n_eligible"],
                          "open_vowel_ratio": rov["ratio"],
                          "blinks": M.count_blinks(ref)},
        })

    # overall figures
    mae = mae_sum / max(tot["frames"], 1)
    per_seed_concat = [np.concatenate([np.asarray(p[k], dtype=np.float64) for p in preds])
                       for k in range(n_seeds)]
    blink_rates = [M.blink_rate(c, fps) for c in per_seed_concat]
    ref_concat = np.concatenate([it.reference for it in items])
    div = M.seed_diversity(per_seed_concat) if n_seeds >= 2 else None
    open_m = tot["open_sum"] / tot["open_n"] if tot["open_n"] else float("nan")
    other_m = tot["other_sum"] / tot["other_n"] if tot["other_n"] else float("nan")
    ref_open = tot["ref_open_sum"] / tot["ref_open_n"] if tot["ref_open_n"] else float("nan")
    ref_other = (tot["ref_other_sum"] / tot["ref_other_n"] if tot["ref_other_n"]
                 else float("nan"))
    overall = {
        "duration_s": float(sum(it.duration_s for it in items)),
        "n_frames": tot["frames"],
        "jaw_corr": float(np.mean(corr)),
        "bilabial_closure": (tot["closed"] / tot["eligible"] if tot["eligible"]
                             else float("nan")),
        "bilabial_closed": tot["closed"],
        "bilabial_eligible": tot["eligible"],
        "n_bilabials": tot["eligible"] // n_seeds,
        "open_jaw": open_m,
        "other_jaw": other_m,
        "open_vowel_ratio": M.ratio_of(open_m, other_m),
        "mae_mean": float(mae.mean()),
        "mae_mouth": float(mae[_LIP_IDX].mean()),
        "mae_per_channel": {n: float(v) for n, v in zip(ARKIT_52, mae)},
        "blink_rate_per_min": float(np.mean(blink_rates)),
        "blink_rate_per_seed": [float(b) for b in blink_rates],
        "seed_diversity_lips": div["lips"] if div else float("nan"),
        "seed_diversity_upper": div["upper"] if div else float("nan"),
        "reference": {
            "jaw_corr": float(np.mean([_nan_to_zero(M.jaw_correlation(it.reference,
                                                                       it.reference))
                                       for it in items if it.n_frames >= 2] or [0.0])),
            "bilabial_closure": (tot["ref_closed"] / tot["ref_eligible"]
                                 if tot["ref_eligible"] else float("nan")),
            "bilabial_closed": tot["ref_closed"],
            "bilabial_eligible": tot["ref_eligible"],
            "open_vowel_ratio": M.ratio_of(ref_open, ref_other),
            "blink_rate_per_min": M.blink_rate(ref_concat, fps),
        },
    }

    all_parts = [p for v in lip_parts.values() for p in v]
    all_ref = [p for v in lip_ref_parts.values() for p in v]
    overall["lip"] = M.pool_lip_gap_measures(all_parts)
    overall["lip_reference"] = M.pool_lip_gap_measures(all_ref)
    speakers = {spk: {"clips": sum((it.voice or speaker_of(it.name)) == spk for it in items),
                      "language": next(it.language for it in items
                                       if (it.voice or speaker_of(it.name)) == spk),
                      "lip": M.pool_lip_gap_measures(lip_parts[spk]),
                      "lip_reference": M.pool_lip_gap_measures(lip_ref_parts[spk])}
                for spk in lip_parts}
    languages = {lang: {"clips": sum(it.language == lang for it in items),
                        "voices": sorted({it.voice or speaker_of(it.name) for it in items
                                          if it.language == lang}),
                        "lip": M.pool_lip_gap_measures(lang_parts[lang]),
                        "lip_reference": M.pool_lip_gap_measures(lang_ref_parts[lang])}
                 for lang in lang_parts}
    lip_ov = overall["lip"]

    def verdict(key: str, value, ok=None):
        desc, lo, hi = CHECKS[key]
        if value is not None and ok is None:
            ok = bool(math.isfinite(value) and lo <= value <= hi)
        return {"rule": desc, "value": value, "pass": ok}

    checks = {
        "lip_closure": verdict("lip_closure",
                               lip_ov["closure"] if lip_ov["n_bilabials"] else None),
        "open_closed_ratio": verdict("open_closed_ratio", lip_ov["open_closed_ratio"]),
        "openness_r": verdict("openness_r", lip_ov["openness_r"]),
        "rounding": verdict("rounding", lip_ov["rounding"]),
        "blink_rate": verdict("blink_rate", overall["blink_rate_per_min"]),
        # value: lips - upper (< 0 passes); None with one seed
        "seed_diversity": verdict(
            "seed_diversity", div["lips"] - div["upper"] if div else None,
            bool(div["lips"] < div["upper"]) if div else None),
    }
    return {
        "schema": "streamtalker-eval/1",
        "settings": {"seeds": seeds, "fps": fps, "n_items": len(items),
                     "items": [it.name for it in items]},
        "items": per_item,
        "speakers": speakers,
        "languages": languages,
        "overall": overall,
        "checks": checks,
        "all_pass": all(c["pass"] is True for c in checks.values()),
    }


def evaluate_model(model, items, seeds=(0, 1, 2), steps: int | None = None, *,
                   guidance: float | None = None, progress: bool = False, head=None,
                   rig: str | None = None, settings=None, **stream_kwargs) -> dict:
    """Generate with ``model`` for every clip and seed, and score the result.

    Args:
        model: a loaded ARKit-52 model (:func:`model_core.load_model`); its
            ``output_kind`` must be ``"arkit"`` with the 52 channels in ARKit order.
        items: :class:`EvalItem` list from :func:`build_eval_set` (at any fps: the model's
            output is resampled to it when it differs).
        seeds: sampling seeds (>= 1, distinct; >= 2 to measure seed diversity).
        steps: DDIM steps (None: the model's default).
        guidance: classifier-free guidance scale (None: the model's default).
        progress: print one line per clip to stderr.
        head: the head the lip gap is measured on (see :func:`evaluate_predictions`).
        rig: ``"oculus"``, ``"vrm"`` or ``"mmd"``: also the checks on that face rig
            (:func:`model_core.evaluation.rig_checks.evaluate_rig`, in ``results["rig"]``;
            ``all_pass`` includes them); None for none.
        settings: the :class:`~model_core.runtime.settings.SamplerSettings` (None: the
            model's defaults); ``steps``, ``guidance`` and the sampler keywords among
            ``stream_kwargs`` (``chunk_frames``, ``lookahead_ms`` ...) are put into it.
        stream_kwargs: other session keywords.

    Returns:
        dict (JSON-ready through :func:`save_results`):

        * ``settings``: seeds, steps, fps, items; ``sampler`` (every sampler setting as
          the model resolved it), ``setting`` (one line naming them, as the table prints
          it) and ``latency_ms`` (the setting's algorithmic latency).
        * ``items``: one dict per clip: ``name``, ``duration_s``, ``n_frames``, ``jaw_corr``
          (Pearson of jawOpen with the reference, mean over seeds; an undefined correlation,
          i.e. a constant jaw, counts as 0), ``bilabial_closure`` (closed / eligible pooled
          over seeds) with ``bilabial_closed`` / ``bilabial_eligible``, ``open_jaw``,
          ``other_jaw`` and ``open_vowel_ratio`` (frame-weighted over seeds), ``mae_mean``
          and ``mae_mouth`` (per-channel MAE against the reference, mean over seeds),
          ``blinks`` (mean count over seeds), ``seed_diversity_lips`` / ``_upper`` (NaN
          with one seed), and ``reference`` (the teacher's own closure rate, open-vowel
          ratio and blinks).
        * ``overall``: the same pooled over clips (jaw_corr: mean over clips; closure:
          pooled counts; open/other jaw and MAE: frame-weighted), ``mae_per_channel``,
          ``blink_rate_per_min`` (each seed's clips concatenated, then the mean over
          seeds) with ``blink_rate_per_seed``, seed diversity on the concatenated clips,
          and ``reference`` (the teacher's jaw_corr = 1, closure rate, open-vowel ratio,
          blink rate) as a sanity line.
        * ``checks``: for each of :data:`CHECKS` ``{"rule", "value", "pass"}``; ``pass`` is
          True / False, or None when it cannot be measured (one seed for diversity, no
          eligible bilabial). ``all_pass``: every check True.

        NaN values stay NaN in the dict (``save_results`` writes them as null).

    Raises:
        ValueError: the model is not an ARKit-52 model, no items, bad seeds, or output
            frames that do not match the references.
    """
    from ..runtime.settings import SamplerSettings
    items = _check_items(items)
    seeds = _check_seeds(seeds)
    cfg = model.config
    sampler_kw = {k: stream_kwargs.pop(k) for k in list(stream_kwargs)
                  if k in SamplerSettings.names()}
    asked = SamplerSettings.of(settings, steps=steps, guidance=guidance, **sampler_kw)
    resolved = asked.resolve(cfg)       # a setting the model does not take: refused here
    if (getattr(cfg, "output_kind", "arkit") != "arkit"
            or list(model.channel_names) != list(ARKIT_52)):
        raise SettingError("evaluate_model needs an ARKit-52 model (output_kind 'arkit' with the "
                         "52 channels in ARKit order); use evaluate_vertices for vertex models")
    preds = []
    for k, it in enumerate(items):
        fps_kw = {} if abs(it.fps - model.fps) < 1e-9 else {"fps": it.fps}
        out = []
        for s in seeds:
            y = model.generate(it.samples, SAMPLE_RATE, seed=s, settings=asked,
                               **fps_kw, **stream_kwargs)
            if y.shape != it.reference.shape:
                raise ValueError(f"{it.name}: the model gave {y.shape[0]} frames, the "
                                 f"reference has {it.n_frames}")
            out.append(y)
        preds.append(out)
        if progress:
            print(f"evaluate: {k + 1}/{len(items)} {it.name}", file=sys.stderr, flush=True)
    res = evaluate_predictions(items, preds, seeds, head=head)
    _add_rig(res, items, preds, rig)
    res["settings"]["steps"] = int(resolved.steps)
    res["settings"]["guidance"] = asked.guidance
    res["settings"].update({k: v for k, v in stream_kwargs.items() if v is not None})
    res["settings"].update({k: v for k, v in asked.to_dict().items()
                            if k not in ("steps", "guidance", "preset")})
    res["settings"]["sampler"] = resolved.to_dict()
    res["settings"]["setting"] = _setting_line(resolved, cfg)
    res["settings"]["latency_ms"] = resolved.latency_ms(cfg)
    res["settings"]["model"] = {"fps": float(model.fps),
                                "training": getattr(cfg, "training", None)}
    return res


def evaluate_teacher(items, seeds=(0, 1, 2), head=None, rig: str | None = None) -> dict:
    """Score the procedural teacher itself as if it were a model (the ceiling a model can
    reach against these references): for seed ``s`` the mouth is the reference's (it uses
    no randomness) and the upper face is a fresh draw (:func:`teacher_reference` with
    ``seed=s``). Same result layout as :func:`evaluate_model` (``rig`` as there)."""
    items = _check_items(items)
    seeds = _check_seeds(seeds)
    preds = [[teacher_reference(it.name, it.samples, it.phones, it.fps, seed=s,
                                alphabet=it.alphabet)
              for s in seeds] for it in items]
    res = evaluate_predictions(items, preds, seeds, head=head)
    _add_rig(res, items, preds, rig)
    res["settings"]["model"] = "teacher"
    return res


def _add_rig(res: dict, items, preds, rig: str | None) -> None:
    """With a viseme or vowel ``rig``: its checks into ``res["rig"]`` (and ``all_pass``)."""
    if rig is None or rig == "arkit":
        return
    from .rig_checks import evaluate_rig
    res["rig"] = evaluate_rig(items, preds, rig)
    res["settings"]["rig"] = rig
    res["all_pass"] = bool(res["all_pass"] and res["rig"]["all_pass"])


# --------------------------------------------------------------------------------------
# Vertex metrics over a test set
# --------------------------------------------------------------------------------------

def evaluate_vertices(pred_list, gt_list, template, lip_idx, upper_idx) -> dict:
    """LVE, FDD and MVE per sequence and over a test set, as FaceFormer / CodeTalker report
    them.

    Args:
        pred_list, gt_list: sequences of float ``[T_i, V, 3]`` vertex arrays (native units),
            pairwise the same shape; V the same for all.
        template: the neutral mesh ``[V, 3]``, or one per sequence (a list, or an array
            ``[n_sequences, V, 3]``) when the speakers differ.
        lip_idx, upper_idx: vertex indices (int sequences or bool masks of length V).

    Returns:
        ``{"sequences": [{"lve", "fdd", "mve", "n_frames"}], "overall": {"lve", "fdd",
        "mve", "n_frames", "n_sequences"}, "units": {...}}``. Overall LVE and MVE pool every
        frame of every sequence (frame-weighted: the scripts concatenate the sequences
        before the mean); overall FDD is the mean of the per-sequence FDDs (as
        ``sum(motion_std_difference) / len(...)``). LVE and FDD are in squared native
        units, MVE in native units (see :mod:`model_core.evaluation.metrics`).

    Raises:
        ValueError: empty or mismatched lists, bad shapes or indices (as the metrics).
    """
    preds, gts = list(pred_list), list(gt_list)
    if not preds:
        raise ValueError("pred_list is empty")
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predicted sequences but {len(gts)} ground truths")
    tpl = template
    if isinstance(tpl, np.ndarray) and tpl.ndim == 2:
        tpls = [tpl] * len(preds)
    elif isinstance(tpl, np.ndarray) and tpl.ndim == 3:
        tpls = list(tpl)
    elif isinstance(tpl, (list, tuple)) and tpl and np.asarray(tpl[0]).ndim == 2:
        tpls = list(tpl)
    else:
        tpls = [np.asarray(tpl)] * len(preds)
    if len(tpls) != len(preds):
        raise ValueError(f"{len(tpls)} templates for {len(preds)} sequences")
    seqs = []
    lve_sum = mve_sum = 0.0
    frames = 0
    V = None
    for k, (p, g, t) in enumerate(zip(preds, gts, tpls)):
        p, g = np.asarray(p), np.asarray(g)
        if p.ndim == 3 and V is not None and p.shape[1] != V:
            raise ValueError(f"sequence {k} has {p.shape[1]} vertices, the first has {V}")
        row = {"lve": M.lve(p, g, lip_idx), "fdd": M.fdd(p, g, t, upper_idx),
               "mve": M.mve(p, g), "n_frames": int(p.shape[0])}
        V = p.shape[1]
        seqs.append(row)
        lve_sum += row["lve"] * row["n_frames"]
        mve_sum += row["mve"] * row["n_frames"]
        frames += row["n_frames"]
    return {"sequences": seqs,
            "overall": {"lve": lve_sum / frames, "fdd": float(np.mean([s["fdd"] for s in seqs])),
                        "mve": mve_sum / frames, "n_frames": frames, "n_sequences": len(seqs)},
            "units": {"lve": "squared native units (max over lip vertices per frame)",
                      "fdd": "squared native units (std_gt - std_pred; > 0: prediction "
                             "moves less)",
                      "mve": "native units"}}


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------

def _fmt(x, digits: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and not math.isfinite(x):
        return "∞" if x == math.inf else "–"
    return f"{x:.{digits}f}"


def _lip_cells(lip: dict, ref: dict | None) -> list[str]:
    """The four lip-gap figures as table cells, ``model (teacher)`` when ``ref`` is given."""
    cells = []
    for key in LIP_FIGURES:
        digits = 1 if key == "open_closed_ratio" else 2
        c = _fmt(lip.get(key), digits)
        if key == "closure" and lip.get("n_bilabials"):
            c += f" ({lip['n_closed']}/{lip['n_bilabials']})"
        if ref is not None:
            c += f" [{_fmt(ref.get(key), digits)}]"
        cells.append(c)
    return cells


def _setting_line(resolved, cfg) -> str:
    """``"live (1-frame chunks, 20 ms look-ahead: 53 ms), 4 DDIM steps"``: the setting a
    table was measured at."""
    return (f"{resolved.preset} ({resolved.chunk_frames}-frame chunks, "
            f"{resolved.lookahead_ms:g} ms look-ahead: {resolved.latency_ms(cfg):.0f} ms), "
            f"{resolved.steps} DDIM steps")


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(head[j]), *(len(r[j]) for r in rows)) for j in range(len(head))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    return [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + \
        [line(r) for r in rows]


def format_table(results: dict) -> str:
    """A Markdown summary of :func:`evaluate_model` results: one row per clip, one per
    speaker, an overall row (lip-gap figures as ``model [teacher]``, the teacher being the
    ceiling), then the must-hold checks (PASS / FAIL / n/a) and the older jaw-level figures.

    Raises:
        ValueError: ``results`` lacks ``items`` / ``overall`` / ``checks``.
    """
    try:
        items, ov, checks = results["items"], results["overall"], results["checks"]
    except (KeyError, TypeError):
        raise ValueError("results must come from evaluate_model / evaluate_predictions") \
            from None
    lip_head = list(LIP_FIGURES.values())
    head = ["clip", "s", *lip_head, "jaw r", "jaw closure", "div lips", "div upper"]
    rows = []
    for r in items:
        rows.append([r["name"], _fmt(r["duration_s"], 1),
                     *_lip_cells(r.get("lip", {}), r.get("lip_reference")),
                     _fmt(r["jaw_corr"]), _fmt(r["bilabial_closure"]),
                     _fmt(r["seed_diversity_lips"], 3), _fmt(r["seed_diversity_upper"], 3)])
    rows.append(["**overall**", _fmt(ov["duration_s"], 1),
                 *_lip_cells(ov.get("lip", {}), ov.get("lip_reference")),
                 _fmt(ov["jaw_corr"]), _fmt(ov["bilabial_closure"]),
                 _fmt(ov["seed_diversity_lips"], 3), _fmt(ov["seed_diversity_upper"], 3)])
    out = ["Lip-gap figures on the head's geometry: model [teacher ceiling]."]
    setting = results.get("settings", {}).get("setting")
    if setting:
        out.append(f"Setting: {setting}.")
    out += [""] + _table(head, rows)
    speakers = results.get("speakers") or {}
    if speakers:
        out.append("")
        srows = [[spk, str(v["clips"]), *_lip_cells(v["lip"], v["lip_reference"])]
                 for spk, v in sorted(speakers.items())]
        out += _table(["speaker", "clips", *lip_head], srows)
    languages = results.get("languages") or {}
    if set(languages) - {"en"}:
        out += ["", "Per language (held-out voices; lip-gap figures model [teacher]; "
                "front rounding on y ʏ ø œ; must hold: " + LANGUAGE_RULE + "):", ""]
        lrows = []
        for lang, v in sorted(languages.items()):
            ok = language_pass(v["lip"])
            lrows.append([lang, " ".join(v["voices"]), str(v["clips"]),
                          *_lip_cells(v["lip"], v["lip_reference"]),
                          f"{_fmt(v['lip'].get('front_rounding'))} "
                          f"[{_fmt(v['lip_reference'].get('front_rounding'))}]",
                          "PASS" if ok else "FAIL"])
        out += _table(["language", "voices", "clips", *lip_head, "front rounding", "holds"],
                      lrows)
        n_ok = sum(language_pass(v["lip"]) for v in languages.values())
        out.append(f"\n{n_ok} of {len(languages)} languages hold.")
    out.append("")
    for key, c in checks.items():
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[c["pass"]]
        v = c["value"]
        what = " (lips - upper std)" if key == "seed_diversity" else ""
        out.append(f"- {verdict}: {c['rule']}: {_fmt(v, 3)}{what}")
    ref = ov.get("reference", {})
    per_seed = ", ".join(_fmt(b, 1) for b in ov.get("blink_rate_per_seed", []))
    out.append(f"- blinks {_fmt(ov['blink_rate_per_min'], 1)}/min (per seed {per_seed}; teacher "
               f"{_fmt(ref.get('blink_rate_per_min'), 1)}); older jaw-level figures: jawOpen r "
               f"{_fmt(ov['jaw_corr'])}, jaw closure {_fmt(ov['bilabial_closure'])} "
               f"(teacher {_fmt(ref.get('bilabial_closure'))}), open/other jaw "
               f"{_fmt(ov['open_vowel_ratio'])} (teacher {_fmt(ref.get('open_vowel_ratio'))}), "
               f"MAE {_fmt(ov['mae_mean'], 3)} (mouth {_fmt(ov['mae_mouth'], 3)})")
    ovl, ovr = ov.get("lip", {}), ov.get("lip_reference") or {}
    out.append(f"- openness r without AH {_fmt(ovl.get('openness_r_no_ah'))} (teacher "
               f"{_fmt(ovr.get('openness_r_no_ah'))}); among the vowels only (P/B/M left "
               f"out) {_fmt(ovl.get('openness_r_vowels'))} (teacher "
               f"{_fmt(ovr.get('openness_r_vowels'))}); front-rounded rounding "
               f"{_fmt(ovl.get('front_rounding'))} (teacher {_fmt(ovr.get('front_rounding'))})")
    if ovl.get("n_seal_free"):
        out.append(f"- false seals (lips shut on a vowel or lingual consonant not next to "
                   f"P/B/M): {_fmt(ovl.get('false_seals'), 3)} ({ovl['n_false_seals']} of "
                   f"{ovl['n_seal_free']}; teacher {_fmt(ovr.get('false_seals'), 3)})")
    classes = _openness_class_cells(ov.get("lip", {}), ov.get("lip_reference"))
    if classes:
        out.append("- openness by class, lip gap / open level, mean ± sd [teacher] (r is "
                   "lost where the spread inside a class is wide): " + "; ".join(classes))
    out.append(f"- all checks pass: {'yes' if results.get('all_pass') else 'no'}")
    return "\n".join(out)


#: Issue 20's must-hold per language of the held-out recorded voices.
LANGUAGE_RULE = ("closure >= 0.9, open/closed >= 5, openness r >= 0.6, rounding >= 0.3, "
                 "front rounding >= 0.25 where the language has front rounded vowels")


def language_pass(lip: dict) -> bool:
    """Whether one language's pooled lip-gap figures hold :data:`LANGUAGE_RULE`."""
    def ge(key, lo):
        v = lip.get(key)
        return v is not None and math.isfinite(v) and v >= lo
    fr = lip.get("front_rounding")
    return (ge("closure", 0.9) and ge("open_closed_ratio", 5.0) and ge("openness_r", 0.6)
            and ge("rounding", 0.3) and (fr is None or not math.isfinite(fr) or fr >= 0.25))


def _openness_class_cells(lip: dict, ref: dict | None) -> list[str]:
    """``name mean ± sd [teacher mean ± sd]`` per openness class, most open first."""
    mine, theirs = lip.get("openness_classes") or {}, (ref or {}).get("openness_classes") or {}
    cells = []
    for t in sorted(mine, key=float, reverse=True):
        c, r = mine[t], theirs.get(t)
        phones = " ".join(p for p, v in M.OPENNESS_TARGETS.items() if v == float(t))
        cell = f"{phones} {_fmt(c['mean'])} ± {_fmt(c['sd'])}"
        if r is not None:
            cell += f" [{_fmt(r['mean'])} ± {_fmt(r['sd'])}]"
        cells.append(cell)
    return cells


def format_sets(sets: dict) -> str:
    """A Markdown table of the overall lip-gap figures of several evaluation sets side by
    side: for each set (name -> :func:`evaluate_model` results) a row for the model and a
    row for the teacher on the same alignments (the ceiling), plus blinks.

    Raises:
        ValueError: a value is not an evaluation result.
    """
    rows = []
    for name, res in sets.items():
        try:
            ov = res["overall"]
        except (KeyError, TypeError):
            raise DataError(f"{name}: not an evaluation result") from None
        who = res.get("settings", {}).get("checkpoint", "model")
        if res.get("settings", {}).get("setting"):
            who = f"{who}, {res['settings']['setting']}"
        rows.append([name, str(who), str(len(res["items"])),
                     *_lip_cells(ov["lip"], None), _fmt(ov["blink_rate_per_min"], 1)])
        rows.append([name, "teacher (ceiling)", str(len(res["items"])),
                     *_lip_cells(ov["lip_reference"], None),
                     _fmt(ov["reference"]["blink_rate_per_min"], 1)])
    return "\n".join(_table(["set", "who", "clips", *LIP_FIGURES.values(), "blinks/min"],
                            rows))


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, Path):
        return str(x)
    return x


def save_results(results: dict, path, *, force: bool = False) -> Path:
    """Write results as JSON (UTF-8, indented; NaN and infinities as null).

    The file is written to a temporary file in the same folder and renamed into place, so
    a reader never sees half a file.

    Args:
        results: a dict from :func:`evaluate_model` (or any JSON-like dict).
        path: output file.
        force: replace an existing file.

    Returns:
        the path written.

    Raises:
        FileExistsError: ``path`` exists and ``force`` is False.
        FileNotFoundError: the folder of ``path`` does not exist.
        IsADirectoryError: ``path`` is a folder. (See :func:`model_core.io.files.check_writable`.)
    """
    out = check_writable(path, force, make_folders=False)
    text = json.dumps(_jsonable(results), indent=2, ensure_ascii=False, allow_nan=False)
    return atomic_write(out, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------
