"""``streamtalker train CONFIG.toml``: train or fine-tune a model, on CPU or CUDA, resumable,
multi-GPU through ``torchrun`` (DistributedDataParallel). Two kinds of data, one loop:
ARKit blendshape data (``[data] corpus`` / ``captures``) and vertex data sets
(``[data] vertices``, VOCASET/BIWI; the model then runs in the latent space of a PCA codec
fitted on the training split, see :mod:`model_core.vertex`).

Config (TOML), ARKit blendshapes::

    [model]                 # ModelConfig fields; when fine-tuning (init_from) or resuming only
                            # TUNABLE_MODEL_SETTINGS may differ from the checkpoint (and a
                            # fine-tune may append encoder_dilations: grows_encoder)
    fps = 30.0
    [data]
    corpus = ["data/corpus-default"]   # folders from `streamtalker make-dataset`
    corpus_style = "per_folder"  # one style per corpus folder; "shared": parts of one corpus
    captures = []           # folders of (wav, ARKit CSV / npz) pairs (model_core.training.captures)
    val_fraction = 0.02
    pad_silence = true      # embed corpus utterances in 0-3 s of silence (fresh teacher curves)
    [train]
    out = "runs/default"    # run folder: checkpoints, losses.csv, losses.png, config.toml
    steps = 10000
    batch_size = 64
    lr = 1e-3
    warmup = 500
    weight_decay = 0.01
    seed = 0
    device = "auto"         # cpu | cuda | auto
    amp = true              # bfloat16 autocast on CUDA (ignored on CPU)
    save_every = 1000
    init_from = ""          # fine-tune from this checkpoint
    resume = true           # continue from the newest checkpoint in `out`
    stop_at = 0             # stop after saving this step (0 = run to `steps`); the learning
                            # rate still follows the schedule of `steps`
    distill_from = ""       # guidance distillation: the frozen parent checkpoint
    distill_guidance = 0.0  # its guidance (0 = its own setting), on
    distill_guidance_channels = ""   # "all" | "lips" ("" = its own setting)
    distill_closure_guidance = 0.0   # guidance on the lip-sealing channels (mouthClose,
                                     # mouthPress*, mouthRoll*; 0 = as the others)
    distill_open_floor = 0.0         # in [0, 1]: away from P/B/M, the guided target moves this
                                     # share of the way to the teacher where the teacher parts
                                     # the lips more (jawOpen, mouthLowerDown*, mouthUpperUp*
                                     # higher, the sealing channels lower; 1: the teacher's
                                     # opening as a floor); needs closure_loss_weight != 1
    distill_open_ceiling = 0.0       # in [0, 1]: the same where the guided target parts the
                                     # lips further than the teacher (floor = ceiling: the
                                     # target pulled that share toward the teacher)
    distill_seal_floor = 0.0         # in [0, 1]: on P/B/M frames, the guided target moves this
                                     # share of the way to the teacher where the teacher seals
                                     # the lips more (1: the teacher's seal as a floor)
    distill_history = "student"      # the history the parent sees: the student's, or the
                                     # true one: "true" | "true_lips" (jaw/mouth channels)
    threads = 0             # CPU threads for torch (0 = torch's default)
    norm_std_floor = 0.02   # output normalization: per-channel std, at least this (weights)
    vtlp = 0.0              # vocal-tract-length perturbation of the features: each corpus
                            # utterance heard with a warp in [1/(1+vtlp), 1+vtlp] (0 = off);
                            # with distill_from, the parent hears it unwarped
    live_pairing = 0.0      # share of the live-K batches that take the live look-ahead
                            # ([model] live_lookahead_ms) instead of a drawn one (0-1)
    speaker_adversary = 0.0 # weight of the speaker-adversarial loss (0 = off): a classifier
                            # of the corpus voice on the encoder frames, its gradient
                            # reversed into the encoder (DANN; objective.SpeakerAdversary)

A config may start from another: ``base = "stage2-distill.toml"`` (a top-level key, before
the first section; relative to this file's folder) reads that config first, then this one's
settings replace its settings key by key, section by section (a list such as ``corpus``, or
a table inside a section, is replaced whole). The base's relative paths stay relative to
its own folder. A config with a base must set its own ``[train] out`` (it would otherwise
resume the base's run). An ablation then says only what it changes.

Vertex data (VOCASET / BIWI in the FaceFormer layout, ``docs/vertex_training.md``)::

    [data]
    vertices = "data/vocaset"   # vertices_npy/, wav/, templates.pkl
    dataset = "vocaset"         # or "biwi"
    split = "train"             # the training subjects (style i = i-th training subject)
    val_split = "val"           # validation loss on these sequences ("" = none)
    max_sequences = 0           # 0 = all (smoke runs: a few)
    [codec]
    components = 128            # PCA components (the model's channels)
    max_frames = 50000          # frames used to fit the PCA
    [model]                     # ModelConfig fields; fps, channels and n_styles are set
    [train]                     # as above; checkpoints also get NAME.codec.safetensors

Each style index is one data source (a corpus folder or a capture folder), in the order
given; with ``corpus_style = "shared"`` all corpus folders are one source (a corpus built in
parts). Checkpoints are written as ``out/step-NNNNNNN.safetensors`` (+ .json, + .state.pt with
optimizer and step) and ``out/final.safetensors``; nothing is overwritten.
"""

from __future__ import annotations

import csv
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import torch

from ..runtime.checkpoint import load_checkpoint, save_checkpoint
from ..runtime.config import ModelConfig
from ..io.files import atomic_write, read_toml
from ..runtime.model import StreamTalkerModel
from ..runtime.network import Block
from .objective import (CLOSURE_CHANNELS, OPENING_CHANNELS, DDPMNoiser, Distillation,
                        SpeakerAdversary, adversary_scale, check_parent_history,
                        check_open_floor, distill_scale,
                        training_loss)
from ..errors import ConfigError, InputNotFoundError, OutputExistsError

TRAIN_DEFAULTS = dict(out="runs/default", steps=10000, batch_size=64, lr=1e-3, warmup=500,
                      weight_decay=0.01, seed=0, device="auto", amp=True, save_every=1000,
                      init_from="", resume=True, reservoir=128, val_batches=8, log_every=50,
                      threads=0, norm_std_floor=0.02, distill_from="", distill_guidance=0.0,
                      distill_guidance_channels="", distill_history="student", stop_at=0,
                      distill_closure_guidance=0.0, distill_open_floor=0.0,
                      distill_open_ceiling=0.0, distill_seal_floor=0.0,
                      vtlp=0.0, live_pairing=0.0, speaker_adversary=0.0)
DATA_DEFAULTS = dict(corpus=[], captures=[], val_fraction=0.02, pad_silence=True, vertices="",
                     dataset="vocaset", split="train", val_split="val", max_sequences=0,
                     corpus_style="per_folder")
CODEC_DEFAULTS = dict(components=128, max_frames=50000)
#: [model] settings a fine-tune (init_from) or a resumed run may change: they do not change
#: the network's weights or shapes. Every other [model] setting must match the checkpoint.
TUNABLE_MODEL_SETTINGS = ("chunk_frames", "lookahead_ms", "min_lookahead_ms",
                          "live_chunk_frames", "live_lookahead_ms", "sample_steps", "eta",
                          "guidance",
                          "guidance_channels", "lip_temperature", "blink_temperature",
                          "live_blink_temperature",
                          "cond_drop", "style_drop", "velocity_weight", "diffusion_repeats",
                          "history_noise", "history_drop", "history_shrink", "history_corrupt",
                          "lip_loss_weight", "closure_loss_weight", "rollout_chunks",
                          "rollout_fraction", "dropout")
#: [model] settings a fine-tune may change as long as they stay above 0 (at 0 the network
#: has no auxiliary viseme heads; any positive weight keeps them and only scales their loss).
POSITIVE_TUNABLE_MODEL_SETTINGS = ("aux_viseme_weight",)


def changes_network(key: str, old, new) -> bool:
    """Whether model setting ``key`` going from ``old`` to ``new`` makes another network
    (weights or shapes): not for :data:`TUNABLE_MODEL_SETTINGS`, nor for
    :data:`POSITIVE_TUNABLE_MODEL_SETTINGS` between positive values, nor when equal. The one
    rule for what fine-tunes of one network may differ in (fine-tuning, resuming,
    averaging)."""
    if old == new or key in TUNABLE_MODEL_SETTINGS:
        return False
    return not (key in POSITIVE_TUNABLE_MODEL_SETTINGS and old > 0 and new > 0)


def grows_encoder(key: str, old, new) -> bool:
    """Whether model setting ``key`` going from ``old`` to ``new`` only appends layers to the
    log-mel encoder: ``encoder_dilations`` whose old list is a proper prefix of the new one.
    A fine-tune (``init_from``) may do that (:meth:`MelEncoder.grow` starts the new layers
    at zero, so the network begins as its parent); resuming and averaging may not."""
    return (key == "encoder_dilations" and isinstance(old, list) and isinstance(new, list)
            and len(new) > len(old) and list(new[:len(old)]) == list(old))


def apply_model_settings(model, settings: dict, source, grow: bool = False) -> dict:
    """Apply a config's ``[model]`` settings to a model loaded from ``source`` (the
    ``init_from`` checkpoint or the run's newest checkpoint when resuming).

    Settings in :data:`TUNABLE_MODEL_SETTINGS` replace the checkpoint's (e.g. a fine-tune
    that makes 3-frame chunks the session default, which also makes the training batches
    use K = 3 half of the time), and those in :data:`POSITIVE_TUNABLE_MODEL_SETTINGS` may
    move between positive values; with ``grow`` (a fine-tune, not a resumed run)
    ``encoder_dilations`` may append layers (:func:`grows_encoder`); any other setting must
    equal the checkpoint's. Returns {setting: (old, new)} for the ones that changed.

    Raises:
        ValueError: an unknown setting, an architecture setting that differs from the
        checkpoint (naming both values), or an invalid value.
    """
    cfg = model.config
    changed = {}
    for key, value in settings.items():
        if key == "training":
            continue
        if not hasattr(cfg, key):
            raise ConfigError(f"unknown [model] setting {key!r}")
        old = getattr(cfg, key)
        if old == value:
            continue
        if grow and grows_encoder(key, old, value):
            if model.net.encoder is None:
                raise ConfigError(f"[model] encoder_dilations: {source} has no log-mel encoder "
                                  f"(speech_encoder is set); remove encoder_dilations from "
                                  f"[model]")
            value = list(value)
        elif changes_network(key, old, value):
            raise ConfigError(f"[model] {key} = {value!r} differs from {source} ({old!r}); it "
                             f"changes the network, so it cannot change when fine-tuning or "
                             f"resuming: remove it from [model], or train from scratch "
                             f"(settings that may change: {', '.join(TUNABLE_MODEL_SETTINGS)}; "
                             f"{', '.join(POSITIVE_TUNABLE_MODEL_SETTINGS)} while above 0; "
                             f"a fine-tune may append encoder_dilations)")
        setattr(cfg, key, value)
        changed[key] = (old, value)
    try:
        cfg.validate()
    except ValueError as e:
        raise ConfigError(f"[model]: {e}") from None
    if "encoder_dilations" in changed:   # validated (only a grown list gets here): add them
        old, new = changed["encoder_dilations"]
        model.net.encoder.grow(new[len(old):])
    if "dropout" in changed:     # the transformer blocks keep their own rate
        for block in model.net.modules():
            if isinstance(block, Block):
                block.p = cfg.dropout
    return changed


#: [section] keys holding paths, relative to the folder of the config that sets them
_PATH_KEYS = {"data": ("corpus", "captures", "vertices"),
              "train": ("out", "init_from", "distill_from")}


def _absolute(path: str, folder: Path) -> str:
    """``path`` as it stands if absolute, else resolved against ``folder`` (a config's)."""
    return path if Path(path).is_absolute() else str((folder / path).resolve())


def _check_keys(cfg: dict, p: Path) -> None:
    """Refuse unknown sections and [train] / [data] / [codec] keys of the file ``p``
    (ConfigError naming the file and the known ones)."""
    unknown = set(cfg) - {"model", "data", "train", "codec"}
    if unknown:
        raise ConfigError(f"{p}: unknown section(s) {sorted(unknown)}; use [model], [data], "
                         f"[train] (and [codec] for vertex data)")
    for name, defaults in (("train", TRAIN_DEFAULTS), ("data", DATA_DEFAULTS),
                           ("codec", CODEC_DEFAULTS)):
        bad = set(cfg.get(name, {})) - set(defaults)
        if bad:
            raise ConfigError(f"{p}: unknown [{name}] setting(s) {sorted(bad)}; known: "
                             f"{sorted(defaults)}")
    for key in ("corpus", "captures"):
        v = cfg.get("data", {}).get(key)
        if isinstance(v, list) and not all(isinstance(c, str) for c in v):
            raise ConfigError(f"{p}: [data] {key} must be a folder or a list of folders "
                             f"(strings), got {v!r}")


def _read_with_base(p: Path, seen: tuple = ()) -> dict:
    """The TOML of training config ``p`` with its ``base`` chain merged in (module
    docstring): {section: {key: value}}; the base's relative paths made absolute against
    its own folder.

    Raises:
        FileNotFoundError: ``p`` or a base missing; ConfigError: ``base`` not a path, a
        cycle of bases, or a config with a base and no ``[train] out`` of its own.
    """
    cfg = read_toml(p, "training config")
    base = cfg.pop("base", None)
    _check_keys(cfg, p)
    if base is None:
        return cfg
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{p}: base must be the path of another training config "
                          f"(base = \"stage2-distill.toml\"), got {base!r}; a top-level key "
                          f"goes before the first [section]")
    bp = Path(base) if Path(base).is_absolute() else p.parent / base
    chain = seen + (p.resolve(),)
    if bp.resolve() in chain:
        raise ConfigError(f"{p}: base = {base!r} leads back to "
                          f"{bp.resolve()}: configs cannot be each other's base")
    if not bp.is_file():
        raise InputNotFoundError(f"{p}: base = {base!r}: no such training config {bp}")
    if "out" not in cfg.get("train", {}):
        raise ConfigError(f"{p}: set [train] out: with base = {base!r} it would otherwise "
                          f"write into (and resume) the base's run folder")
    parent = _read_with_base(bp, chain)
    for sec, keys in _PATH_KEYS.items():
        for k in keys:
            v = parent.get(sec, {}).get(k)
            if isinstance(v, str) and v:
                parent[sec][k] = _absolute(v, bp.parent)
            elif isinstance(v, list):       # entries checked to be strings (_check_keys)
                parent[sec][k] = [_absolute(c, bp.parent) for c in v]
    merged = {sec: dict(v) if isinstance(v, dict) else v for sec, v in parent.items()}
    for sec, v in cfg.items():
        if isinstance(v, dict) and isinstance(merged.get(sec), dict):
            merged[sec].update(v)
        else:
            merged[sec] = v
    return merged


def read_train_config(path: str | os.PathLike) -> dict:
    """Parse a training TOML file into {"model", "data", "train", "codec"} dicts, defaults
    filled in and relative paths resolved against the folder of the file that sets them
    (a ``base`` config's against its own: module docstring).

    Raises:
        FileNotFoundError: no such file or base; ValueError: bad TOML, unknown sections or
        keys, vertex data mixed with ARKit data, a bad ``base`` (a cycle, no ``[train] out``
        of its own).
    """
    p = Path(path)
    cfg = _read_with_base(p)
    sections = {name: {**defaults, **cfg.get(name, {})} for name, defaults in
                (("train", TRAIN_DEFAULTS), ("data", DATA_DEFAULTS), ("codec", CODEC_DEFAULTS))}
    train, data = sections["train"], sections["data"]

    if data["corpus_style"] not in ("per_folder", "shared"):
        raise ConfigError(f"{p}: [data] corpus_style must be 'per_folder' (one style per corpus "
                         f"folder) or 'shared' (the folders are parts of one corpus), got "
                         f"{data['corpus_style']!r}")
    for key in ("corpus", "captures"):
        if isinstance(data[key], str):
            data[key] = [data[key]]
        data[key] = [_absolute(c, p.parent) for c in data[key]]
    if data["vertices"]:
        if data["corpus"] or data["captures"]:
            raise ConfigError(f"{p}: [data] vertices cannot be mixed with corpus/captures (a "
                             f"vertex model and an ARKit model have different channels)")
        data["vertices"] = _absolute(data["vertices"], p.parent)
    elif "codec" in cfg:
        raise ConfigError(f"{p}: [codec] is for vertex data; set [data] vertices")
    _check_stop_at(train["stop_at"], train["steps"], f"{p}: [train] stop_at")
    if not isinstance(train["speaker_adversary"], (int, float)) or \
            not train["speaker_adversary"] >= 0:
        raise ConfigError(f"{p}: [train] speaker_adversary must be >= 0 (0 = off), got "
                         f"{train['speaker_adversary']!r}")
    if train["speaker_adversary"] and data["vertices"]:
        raise ConfigError(f"{p}: [train] speaker_adversary needs corpus data whose manifest "
                         f"names each voice; vertex data has no such voices: set it to 0")
    train["out"] = _absolute(train["out"], p.parent)
    for key in ("init_from", "distill_from"):
        if train[key]:
            train[key] = _absolute(train[key], p.parent)
    return {"model": cfg.get("model", {}), "data": data, "train": train,
            "codec": sections["codec"]}


def _sources(data: dict, fps: float, speakers: dict | None = None) -> tuple[list, list]:
    """(files [(path, style)], capture utterances) from the [data] section; with
    ``speakers`` (a dict), also each corpus file's training voice into it ({path:
    :func:`~.corpus.speaker_key`}), from the same reading of the manifests.

    Raises:
        InputNotFoundError: a corpus folder has no ``manifest.jsonl``.
        ConfigError: no corpus or capture data at all.
        DataError: ``speakers`` given and a record names no engine or voice."""
    from .corpus import read_manifest, speaker_key
    files, captures = [], []
    style = 0
    for folder in data["corpus"]:
        recs = read_manifest(folder)
        files += [(str(Path(folder) / r["file"]), style) for r in recs]
        if speakers is not None:
            speakers.update((str(Path(folder) / r["file"]), speaker_key(r)) for r in recs)
        if data.get("corpus_style", "per_folder") == "per_folder":
            style += 1
    if data["corpus"] and data.get("corpus_style") == "shared":
        style += 1
    for folder in data["captures"]:
        from .captures import load_capture_folder
        res = load_capture_folder(folder, fps, style=style)
        utts = res[0] if isinstance(res, tuple) else res
        captures += utts
        style += 1
    if not files and not captures:
        raise ConfigError("no training data: set [data] corpus (from `streamtalker make-dataset`) "
                         "and/or captures")
    return files, captures


def _step_stem(step: int) -> str:
    """``step-NNNNNNN``: the name every file of a step checkpoint starts with."""
    return f"step-{step:07d}"


def _check_stop_at(value, steps: int, where: str) -> int:
    """``stop_at`` checked: a whole step in 0..steps (0 = run to ``steps``).

    Raises:
        ValueError: anything else, naming ``where`` the value came from."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= steps:
        raise ConfigError(f"{where} must be a whole step from 0 (run to `steps`) to steps = "
                         f"{steps}, got {value!r}")
    return value


def _latest_state(out: Path) -> Path | None:
    states = sorted(out.glob("step-*.state.pt"))
    return states[-1] if states else None


def _state_step(state_path: Path) -> int:
    """The step of ``step-NNNNNNN.state.pt``."""
    return int(state_path.name.split(".")[0].split("-")[1])


_CHECKPOINT_FILE = re.compile(r"^step-(\d{7})\.(safetensors|json|codec\.safetensors|state\.pt)$")


def _set_aside_incomplete(out: Path, step0: int) -> list[Path]:
    """Rename the files of step checkpoints newer than ``step0`` that have no ``.state.pt`` (a
    run stopped while saving them) to ``step-N.interrupted-I.EXT`` (one I per step), so the
    resumed run can save that step again; nothing is deleted, and only files named exactly
    like a checkpoint's are touched. Returns the new paths."""
    by_step: dict[int, list[Path]] = {}
    for f in out.iterdir():
        m = _CHECKPOINT_FILE.match(f.name)
        if m and f.is_file() and int(m.group(1)) > step0:
            by_step.setdefault(int(m.group(1)), []).append(f)
    moved = []
    for step, files in sorted(by_step.items()):
        stem = _step_stem(step)
        if (out / f"{stem}.state.pt").exists():
            continue
        i = 1
        while any(out.glob(f"{stem}.interrupted-{i}.*")):
            i += 1
        for f in sorted(files):
            dest = f.with_name(f"{stem}.interrupted-{i}{f.name[len(stem):]}")
            f.rename(dest)
            moved.append(dest)
    if moved:
        print(f"set aside {len(moved)} file(s) of an interrupted save: "
              f"{', '.join(p.name for p in moved)}")
    return moved


def _plot(csv_path: Path, png_path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = list({int(r["step"]): r for r in csv.DictReader(open(csv_path))}.values())
    rows.sort(key=lambda r: int(r["step"]))   # a resumed run logs its steps again: keep the last
    if not rows:
        return
    step = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in ("loss", "x0", "velocity"):
        ax.plot(step, [float(r[key]) for r in rows], label=f"train {key}", lw=1)
    val = [(int(r["step"]), float(r["val_loss"])) for r in rows if r.get("val_loss")]
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (normalized units)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(png_path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


class _Job:
    """What differs between ARKit and vertex training: the model, the batches, the files.

    Attributes: model (StreamTalkerModel), next_batch() -> batch dict, val_batches (list),
    n_train (training utterances, all ranks), save(path) writes a checkpoint (for vertex
    data also NAME.codec.safetensors), data_record (for the checkpoint's training record),
    speakers (the training voices' names, id order, when the batches hold speaker ids for
    ``[train] speaker_adversary``; else None).
    """

    def __init__(self, model, next_batch, val_batches, n_train, save, data_record,
                 speakers=None):
        self.model, self.next_batch, self.val_batches = model, next_batch, val_batches
        self.n_train, self.save, self.data_record = n_train, save, data_record
        self.speakers = speakers


def _speaker_ids(keys: dict[str, str]) -> tuple[dict[str, int], list[str]]:
    """Each corpus file's training voice id ({path as :func:`_sources` names it: id}) and
    the voices' names in id order (sorted :func:`~.corpus.speaker_key`), from the voices
    :func:`_sources` read (``keys``: {path: speaker_key})."""
    names = sorted(set(keys.values()))
    index = {k: i for i, k in enumerate(names)}
    return {path: index[k] for path, k in keys.items()}, names


def _continued_from(state_path: Path | None, tr: dict):
    """The checkpoint a run continues from: the resumed step's weights, else ``init_from``,
    else None (a fresh run)."""
    if state_path is not None:
        return state_path.with_name(state_path.name.replace(".state.pt", ".safetensors"))
    return tr["init_from"] or None


def _continue(model, cfg: dict, src, resumed: bool) -> None:
    """A model loaded from ``src``: record a fine-tune's origin, apply the [model] settings."""
    if not resumed:
        model.config.training = {**model.config.training, "fine_tuned_from": str(src)}
    apply_model_settings(model, cfg["model"], src, grow=not resumed)


def _arkit_job(cfg: dict, dev: str, state_path: Path | None, rank: int, world: int,
               data_seed: int) -> _Job:
    """ARKit blendshape data: corpus folders (streamed, optionally silence-padded) and
    capture folders. ``data_seed`` seeds this rank's example draws (see :func:`run_training`)."""
    from .corpus import CorpusStream, load_utterance
    from .batches import ChunkBatcher, fit_normalization

    tr, data = cfg["train"], cfg["data"]
    src = _continued_from(state_path, tr)
    if src is not None:
        model = load_checkpoint(src, dev)
        _continue(model, cfg, src, resumed=state_path is not None)
    else:
        model = StreamTalkerModel.from_config(ModelConfig.from_dict(cfg["model"]), dev, seed=tr["seed"])
    mcfg = model.config
    if tr["speaker_adversary"] and data["captures"]:
        raise ConfigError("[train] speaker_adversary: capture folders name no voice; train "
                         "on corpus folders only, or set it to 0")
    voice_of = {} if tr["speaker_adversary"] else None
    files, captures = _sources(data, mcfg.fps, speakers=voice_of)
    n_sources = (1 if data["corpus_style"] == "shared" and data["corpus"] else
                 len(data["corpus"])) + len(data["captures"])
    if n_sources > mcfg.n_styles:
        how = ("raise [model] n_styles" if state_path is None and not tr["init_from"] else
               "a fine-tune or a resumed run cannot add identities: use at most "
               f"{mcfg.n_styles} data source(s), or train from scratch")
        raise ConfigError(f"{n_sources} data sources but the model has n_styles={mcfg.n_styles}; "
                         f"{how}")
    rng = np.random.default_rng(tr["seed"])
    idx = rng.permutation(len(files))
    n_val = int(round(len(files) * data["val_fraction"]))
    val_files = [files[i] for i in idx[:n_val]]
    train_files = [files[i] for i in idx[n_val:]][rank::world]   # each rank its own part
    if state_path is None and not tr["init_from"]:
        sample = [load_utterance(p, s, mcfg.fps) for p, s in train_files[:300]] + captures
        fit_normalization(model, sample, std_floor=float(tr["norm_std_floor"]))
    stream = cap_batcher = None
    speaker_of, speakers = _speaker_ids(voice_of) if tr["speaker_adversary"] else \
        (None, None)
    if train_files:
        stream = CorpusStream(model, train_files, reservoir=tr["reservoir"], seed=data_seed,
                              pad=bool(data["pad_silence"]), vtlp=float(tr["vtlp"]),
                              live_pairing=float(tr["live_pairing"]),
                              clean_features=bool(tr["distill_from"]), speakers=speaker_of)
    if captures:
        cap_batcher = ChunkBatcher(model, captures, seed=data_seed + 7,
                                   live_pairing=float(tr["live_pairing"]))
    mix = np.random.default_rng([data_seed, 1])   # not the stream's own draws

    def next_batch():
        if stream is not None and (cap_batcher is None or mix.random() < 0.7):
            return stream.batch(tr["batch_size"])
        return cap_batcher.batch(tr["batch_size"])

    val_batches = []
    if val_files:
        vs = CorpusStream(model, val_files, reservoir=len(val_files), refresh=0, seed=12345, pad=False)
        val_batches = [vs.batch(tr["batch_size"], mcfg.chunk_frames, mcfg.lookahead_ms)
                       for _ in range(tr["val_batches"])]
    return _Job(model, next_batch, val_batches, len(files) - n_val + len(captures),
                lambda path: save_checkpoint(model, path),
                {"corpus": data["corpus"], "captures": data["captures"]}, speakers)


#: [model] settings a vertex run sets itself (from the data set and the codec).
VERTEX_SET_SETTINGS = ("fps", "channel_names", "output_kind", "n_styles")


def _vertex_job(cfg: dict, dev: str, state_path: Path | None, rank: int, world: int,
                data_seed: int) -> _Job:
    """Vertex data (VOCASET/BIWI): a PCA codec fitted on the training split (fresh runs; on
    the CPU under DDP, so every rank gets the same codec), speaker one-hot styles in split
    order, the model trained in the codec's latent space."""
    from .batches import ChunkBatcher
    from ..vertex import PCACodec, VertexModel, list_sequences, load_split
    from .vertex import prepare_vertex_training, vertex_utterances
    from ..vertex.datasets import get_spec

    tr, data, cc = cfg["train"], cfg["data"], cfg["codec"]
    fixed = sorted(set(cfg["model"]) & set(VERTEX_SET_SETTINGS))
    if fixed:
        raise ConfigError(f"[model] {', '.join(fixed)}: set from the data set and the codec for "
                         f"vertex data (VOCASET 30 fps, BIWI 25 fps; one style per training "
                         f"speaker); remove them from [model]")
    spec = get_spec(data["dataset"])
    root = data["vertices"]
    limit = int(data["max_sequences"]) or None
    seqs = load_split(root, spec, data["split"], max_sequences=limit)
    if rank == 0:
        print(f"{spec.name}: {len(seqs)} sequences, {sum(len(s.vertices) for s in seqs)} frames "
              f"at {spec.fps:g} fps from {root}")
    src = _continued_from(state_path, tr)
    if src is not None:
        vm = VertexModel.load(src, dev)
        _continue(vm.model, cfg, src, resumed=state_path is not None)
        utts = vertex_utterances(vm, seqs)
    else:
        codec = PCACodec.fit([s.offsets for s in seqs], n_components=int(cc["components"]),
                             max_frames=cc["max_frames"], seed=int(tr["seed"]),
                             device=dev if world == 1 else "cpu")
        if rank == 0:
            print(codec.summary())
        mcfg = dict(cfg["model"])
        mcfg["training"] = {**mcfg.get("training", {}), "data": root}
        vm = VertexModel.create(codec, list(spec.train_subjects), fps=spec.fps, dataset=spec.name,
                                device=dev, seed=int(tr["seed"]), **mcfg)
        utts = prepare_vertex_training(vm, seqs)
    model = vm.model
    batcher = ChunkBatcher(model, utts[rank::world], seed=data_seed,
                           live_pairing=float(tr["live_pairing"]))
    val_batches = []
    if data["val_split"]:
        vseqs = []
        if list_sequences(root, spec, data["val_split"]):   # raises on an unknown split
            vseqs = load_split(root, spec, data["val_split"], max_sequences=limit)
        elif rank == 0:   # e.g. only the training speakers were downloaded
            print(f"no validation loss: no {spec.name} sequences of split "
                  f"{data['val_split']!r} under {root}")
        if vseqs:
            vb = ChunkBatcher(model, vertex_utterances(vm, vseqs, unseen="unknown"), seed=12345)
            val_batches = [vb.batch(tr["batch_size"], model.config.chunk_frames)
                           for _ in range(tr["val_batches"])]
    return _Job(model, lambda: batcher.batch(tr["batch_size"]), val_batches, len(utts),
                vm.save, {"vertices": root, "dataset": spec.name, "split": data["split"]})


#: The ``[train]`` settings that move the distillation target toward the teacher's curves
#: on the lip channels (:func:`~.objective.open_floor`); each needs P/B/M frames marked.
_TARGET_FLOORS = ("distill_open_floor", "distill_open_ceiling", "distill_seal_floor")


def _distillation(model, tr: dict, dev: str) -> Distillation | None:
    """``[train] distill_from``: guidance distillation (:class:`~.objective.Distillation`:
    the frozen distillation parent, a guided model, not the phone-rule teacher of
    :mod:`.teacher`, and the options below), or None. Its guidance is
    ``[train] distill_guidance`` on ``distill_guidance_channels`` ("all" or "lips"), each
    defaulting (0, "") to the parent checkpoint's own sampler settings;
    ``distill_closure_guidance`` (> 0) puts its own guidance on the lip-sealing channels
    (:data:`~.objective.CLOSURE_CHANNELS`, :func:`~.objective.distill_scale`). The student
    (``model``) is set to sample without guidance (``guidance = 1``: its single pass learns
    the parent's guided prediction) and records where its guidance came from.

    ``[train] distill_history`` says which history the parent sees (see
    :func:`~.objective.training_loss`).

    Raises:
        ConfigError (a ValueError): no guidance to distil (1, and no target floor), a bad
            or parent-less ``distill_history``, the parent's channels differ from the
            student's, ``distill_closure_guidance`` < 1 or without the ARKit sealing
            channels, or a target floor (``distill_open_floor``, ``distill_open_ceiling``,
            ``distill_seal_floor``) set without a parent, outside [0, 1], for a model
            without the ARKit lip channels or with ``[model] closure_loss_weight`` 1.
    """
    if not tr["distill_from"]:
        if tr["distill_history"] != "student":
            raise ConfigError(f"[train] distill_history = {tr['distill_history']!r} needs a "
                             f"distillation parent: set distill_from")
        for key in ("distill_closure_guidance", *_TARGET_FLOORS):
            if tr[key]:
                raise ConfigError(f"[train] {key} = {tr[key]!r} needs a distillation parent: "
                                  f"set distill_from")
        return None
    parent = load_checkpoint(tr["distill_from"], dev)
    pc = parent.config
    if tr["distill_guidance"]:
        pc.guidance = float(tr["distill_guidance"])
    if tr["distill_guidance_channels"]:
        pc.guidance_channels = tr["distill_guidance_channels"]
    try:
        pc.validate()
    except ValueError as e:
        raise ConfigError(f"[train] distill_guidance / distill_guidance_channels: {e}") from None
    if pc.guidance == 1.0 and tr["distill_closure_guidance"] in (0.0, 1.0) \
            and not any(tr[key] for key in _TARGET_FLOORS):
        raise ConfigError(f"[train] distill_from = {tr['distill_from']}: guidance 1 (that model's "
                         f"own setting unless [train] distill_guidance says otherwise) and no "
                         f"open floor, ceiling or seal floor: nothing to distil; set "
                         f"distill_guidance, e.g. 5, or {' / '.join(_TARGET_FLOORS)}")
    if list(pc.channel_names) != list(model.config.channel_names):
        raise ConfigError(f"[train] distill_from = {tr['distill_from']}: its channels differ from "
                         f"the model being trained")
    check_parent_history(model, tr["distill_history"], "[train] distill_history")
    for key in _TARGET_FLOORS:
        if not tr[key]:
            continue
        if model.config.closure_loss_weight == 1.0:
            raise ConfigError(f"[train] {key} needs the P/B/M frames the batches mark when "
                              f"[model] closure_loss_weight != 1 (e.g. 8)")
        try:
            check_open_floor(model.channel_names, tr[key], key)
        except ValueError as e:
            raise ConfigError(f"[train] {key}: {e}") from None
    source = {"checkpoint": str(tr["distill_from"]), "guidance": pc.guidance,
              "guidance_channels": pc.guidance_channels, "history": tr["distill_history"]}
    scale = None
    if tr["distill_closure_guidance"]:
        try:
            scale = distill_scale(parent, float(tr["distill_closure_guidance"]))
        except ValueError as e:
            raise ConfigError(f"[train] distill_closure_guidance: {e}") from None
        source["closure_guidance"] = float(tr["distill_closure_guidance"])
        source["closure_channels"] = list(CLOSURE_CHANNELS)
    for key in _TARGET_FLOORS:
        if tr[key]:
            source[key.removeprefix("distill_")] = float(tr[key])
    if any(tr[key] for key in _TARGET_FLOORS):
        source["open_floor_channels"] = list(OPENING_CHANNELS)
        source["open_floor_sealing_channels"] = list(CLOSURE_CHANNELS)
    parent.net.eval().requires_grad_(False)
    model.config.guidance = 1.0
    model.config.training = {**model.config.training, "guidance_distilled_from": source}
    return Distillation(parent, tr["distill_history"], scale, float(tr["distill_open_floor"]),
                        float(tr["distill_open_ceiling"]), float(tr["distill_seal_floor"]))


def _speaker_adversary(model, tr: dict, speakers: list[str] | None, world: int,
                       dev: str) -> SpeakerAdversary | None:
    """``[train] speaker_adversary`` > 0: a :class:`~.objective.SpeakerAdversary` over the
    corpus's voices, attached to the network, its weight recorded in the checkpoint's
    training record; else None (and no such record).

    Raises:
        ConfigError: with several processes (DDP: the classifier sits outside the wrapped
            network).
    """
    record = {k: v for k, v in model.config.training.items() if k != "speaker_adversary"}
    if not tr["speaker_adversary"]:
        model.config.training = record
        return None
    if world > 1:
        raise ConfigError("[train] speaker_adversary runs in one process; train on one GPU "
                         "(no torchrun), or set it to 0")
    adversary = SpeakerAdversary(model.config.encoder_channels, len(speakers)).to(dev)
    adversary.attach(model.net)
    model.config.training = {**record, "speaker_adversary": {
        "weight": float(tr["speaker_adversary"]), "voices": len(speakers),
        "schedule": "DANN, weight * (2 / (1 + exp(-10 p)) - 1)"}}
    return adversary


def _resume_adversary(adversary, state: dict, speakers, state_path: Path) -> None:
    """Restore the speaker classifier from a step's training state, or refuse a resume
    that turns ``[train] speaker_adversary`` on or off, or whose corpus names other voices.

    Raises:
        ConfigError: as above (the message names the state file).
    """
    saved = state.get("speaker_adversary")
    if (saved is None) != (adversary is None):
        how = "without" if saved is None else "with"
        raise ConfigError(f"{state_path}: this run was started {how} [train] "
                          f"speaker_adversary; resume it as it was started, or choose a new "
                          f"[train] out")
    if saved is None:
        return
    if saved["speakers"] != speakers:
        raise ConfigError(f"{state_path}: the corpus now names other voices than the run "
                         f"started with ({len(saved['speakers'])} then, {len(speakers)} "
                         f"now); resume on the same corpus, or choose a new [train] out")
    adversary.load_state_dict(saved["weights"])


def run_training(config_path: str | os.PathLike, progress: bool = True,
                 stop_at: int | None = None) -> Path:
    """Train as the config says; returns the path of ``final.safetensors``, or with
    ``stop_at`` (here or ``[train] stop_at``; this argument wins) of ``step-N.safetensors``
    for N = stop_at: the run stops after saving that step, its learning rate having
    followed the schedule of ``steps``, and a later run (a larger stop_at, or 0 = to
    ``steps``) resumes from it. A run folder that already holds step N returns it untrained.

    Raises:
        FileExistsError: ``out`` already holds a final model, or a step past ``stop_at``.
        FileNotFoundError / ValueError: bad config or data, or stop_at outside 0..steps.
    """
    from tqdm import tqdm
    from .batches import lr_at, optimizer_step

    cfg = read_train_config(config_path)
    tr = cfg["train"]
    if stop_at is not None:
        tr["stop_at"] = _check_stop_at(stop_at, tr["steps"], f"--stop-at (for {config_path})")
    stop = tr["stop_at"] or tr["steps"]
    stopped = None   # the step checkpoint the run ends with, when it stops before `steps`
    if tr["threads"]:
        torch.set_num_threads(int(tr["threads"]))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = tr["device"]
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cuda" and world > 1:
        dev = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    if world > 1:
        torch.distributed.init_process_group("nccl" if dev.startswith("cuda") else "gloo")
    out = Path(tr["out"])
    final = out / "final.safetensors"
    if final.exists():
        raise OutputExistsError(f"{final} exists: this run is finished; choose a new [train] out")
    out.mkdir(parents=True, exist_ok=True)

    state_path = _latest_state(out) if tr["resume"] else None
    step0 = _state_step(state_path) if state_path is not None else 0
    if step0 > stop:
        raise OutputExistsError(f"{out} already holds step {step0}, past stop_at = {stop}; "
                              f"choose a new [train] out")
    if stop < tr["steps"]:
        stopped = out / f"{_step_stem(stop)}.safetensors"
        if step0 == stop:   # already there
            if world > 1:
                torch.distributed.destroy_process_group()
            return stopped
    if rank == 0:
        _set_aside_incomplete(out, step0)
    torch.manual_seed(tr["seed"] + step0)
    # a resumed run draws new examples, not the first run's again
    data_seed = int(tr["seed"]) + rank + 1_000_003 * step0
    job = (_vertex_job if cfg["data"]["vertices"] else _arkit_job)(cfg, dev, state_path, rank,
                                                                   world, data_seed)
    model, val_batches = job.model, job.val_batches
    mcfg = model.config
    distill = _distillation(model, tr, dev)
    adversary = _speaker_adversary(model, tr, job.speakers, world, dev)

    net = model.net.train()
    ddp_net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[local_rank] if dev.startswith("cuda") else None) \
        if world > 1 else net
    groups = [{"params": list(net.parameters())}]
    if adversary is not None:
        groups.append({"params": list(adversary.parameters())})
    opt = torch.optim.AdamW(groups, lr=tr["lr"], weight_decay=tr["weight_decay"])
    if state_path is not None:
        st = torch.load(state_path, map_location=dev, weights_only=False)
        _resume_adversary(adversary, st, job.speakers, state_path)
        opt.load_state_dict(st["optimizer"])
        step0 = st["step"]
    noiser = DDPMNoiser(mcfg.schedule, mcfg.train_timesteps)
    gen = torch.Generator().manual_seed(tr["seed"] * 1000 + rank + step0)
    use_amp = bool(tr["amp"]) and dev.startswith("cuda")
    csv_path = out / "losses.csv"
    new_csv = not csv_path.exists()
    log = open(csv_path, "a", newline="") if rank == 0 else None
    writer = csv.writer(log) if log else None
    logged = ["loss", "x0", "velocity", "viseme", "viseme_acc"] + \
        (["speaker", "speaker_acc"] if adversary is not None else [])
    if writer and new_csv:
        writer.writerow(["step", *logged, "lr", "val_loss", "seconds"])
    if rank == 0 and not (out / "config.toml").exists():
        (out / "config.toml").write_text(Path(config_path).read_text())
    if rank == 0:
        # what this start used (base configs merged, paths resolved); a resumed run adds one
        used = out / f"config.resolved-step-{step0:07d}.json"
        if not used.exists():
            text = json.dumps(cfg, indent=1, default=str)
            atomic_write(used, lambda tmp: Path(tmp).write_text(text))
    t_start = time.time()
    steps = tr["steps"]
    acc = {k: 0.0 for k in logged}
    n_acc = 0
    bar = tqdm(range(step0, stop), initial=step0, total=stop, desc="train", unit="step",
               disable=not progress or rank != 0)

    def save(step: int) -> None:
        if rank != 0:
            return
        name = _step_stem(step)
        model.config.training = {**model.config.training, "steps": step}
        job.save(out / f"{name}.safetensors")
        state = {"optimizer": opt.state_dict(), "step": step}
        if adversary is not None:
            state["speaker_adversary"] = {"weights": adversary.state_dict(),
                                          "speakers": job.speakers}
        atomic_write(out / f"{name}.state.pt", lambda tmp: torch.save(state, tmp))

    def validate() -> float:
        net.eval()
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            vals = [float(training_loss(model, b, noiser, g, distill=distill)["loss"])
                    for b in val_batches]
        net.train()
        return float(np.mean(vals)) if vals else float("nan")

    for step in bar:
        lr = lr_at(step, steps, tr["lr"], tr["warmup"])
        if adversary is not None:
            adversary.scale = adversary_scale(tr["speaker_adversary"], step, steps)
        losses = optimizer_step(model, job.next_batch(), opt, noiser, gen, lr, net=ddp_net,
                                amp=use_amp, distill=distill, adversary=adversary)
        for k in acc:
            acc[k] += losses.get(k, 0.0)
        n_acc += 1
        done = step + 1
        if rank == 0 and (done % tr["log_every"] == 0 or done in (stop, steps)):
            val = validate() if (done % tr["save_every"] == 0 or done in (stop, steps)) \
                and val_batches else None
            writer.writerow([done, *(f"{acc[k] / n_acc:.5f}" for k in acc), f"{lr:.6g}",
                             "" if val is None else f"{val:.5f}", f"{time.time() - t_start:.1f}"])
            log.flush()
            bar.set_postfix(loss=f"{acc['loss'] / n_acc:.4f}")
            acc = {k: 0.0 for k in acc}
            n_acc = 0
        if (done % tr["save_every"] == 0 or done == stop) and done != steps:
            save(done)
            if rank == 0:
                _plot(csv_path, out / "losses.png")
    net.eval()
    if rank == 0 and stopped is None:
        model.config.training = {
            **model.config.training, "steps": steps, "batch_size": tr["batch_size"], "lr": tr["lr"],
            "device": torch.cuda.get_device_name(0) if dev.startswith("cuda") else f"cpu ({os.cpu_count()} cores)",
            "gpus": world if dev.startswith("cuda") else 0,
            "seconds_this_run": round(time.time() - t_start, 1), "train_files": job.n_train,
            "data": job.data_record,
        }
        job.save(final)
        _plot(csv_path, out / "losses.png")
        (out / "summary.json").write_text(json.dumps(model.config.training, indent=2))
    if log:
        log.close()
    if world > 1:
        torch.distributed.destroy_process_group()
    return stopped or final
