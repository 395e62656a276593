"""``streamtalker train CONFIG.toml``: train or fine-tune a model, on CPU or CUDA, resumable,
multi-GPU through ``torchrun`` (DistributedDataParallel).

Config (TOML)::

    [model]                 # ModelConfig fields (ignored when fine-tuning: init_from wins)
    fps = 30.0
    [data]
    corpus = ["data/corpus-default"]   # folders from `streamtalker make-dataset`
    captures = []           # folders of (wav, ARKit CSV / npz) pairs (model_core.data.captures)
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
    threads = 0             # CPU threads for torch (0 = torch's default)
    norm_std_floor = 0.02   # output normalization: per-channel std, at least this (weights)

Each style index is one data source (a corpus folder or a capture folder), in the order
given. Checkpoints are written as ``out/step-NNNNNNN.safetensors`` (+ .json, + .state.pt with
optimizer and step) and ``out/final.safetensors``; nothing is overwritten.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint, save_checkpoint
from .config import ModelConfig
from .diffusion import DDPMNoiser
from .fileio import atomic_write, read_toml
from .model import StreamTalkerModel

TRAIN_DEFAULTS = dict(out="runs/default", steps=10000, batch_size=64, lr=1e-3, warmup=500,
                      weight_decay=0.01, seed=0, device="auto", amp=True, save_every=1000,
                      init_from="", resume=True, reservoir=128, val_batches=8, log_every=50,
                      threads=0, norm_std_floor=0.02)


def read_train_config(path: str | os.PathLike) -> dict:
    """Parse a training TOML file into {"model": {...}, "data": {...}, "train": {...}}.

    Raises:
        FileNotFoundError: no such file; ValueError: bad TOML or unknown [train] keys.
    """
    p = Path(path)
    cfg = read_toml(p, "training config")
    unknown = set(cfg) - {"model", "data", "train"}
    if unknown:
        raise ValueError(f"{p}: unknown section(s) {sorted(unknown)}; use [model], [data], [train]")
    train = {**TRAIN_DEFAULTS, **cfg.get("train", {})}
    bad = set(train) - set(TRAIN_DEFAULTS)
    if bad:
        raise ValueError(f"{p}: unknown [train] setting(s) {sorted(bad)}")
    data = {"corpus": [], "captures": [], "val_fraction": 0.02, "pad_silence": True,
            **cfg.get("data", {})}
    if isinstance(data["corpus"], str):
        data["corpus"] = [data["corpus"]]
    if isinstance(data["captures"], str):
        data["captures"] = [data["captures"]]
    base = p.parent
    data["corpus"] = [str((base / c).resolve()) if not Path(c).is_absolute() else c for c in data["corpus"]]
    data["captures"] = [str((base / c).resolve()) if not Path(c).is_absolute() else c for c in data["captures"]]
    if not Path(train["out"]).is_absolute():
        train["out"] = str((base / train["out"]).resolve())
    if train["init_from"] and not Path(train["init_from"]).is_absolute():
        train["init_from"] = str((base / train["init_from"]).resolve())
    return {"model": cfg.get("model", {}), "data": data, "train": train}


def _sources(data: dict, fps: float) -> tuple[list, list]:
    """(files [(path, style)], capture utterances) from the [data] section."""
    from .data.corpus import read_manifest
    files, captures = [], []
    style = 0
    for folder in data["corpus"]:
        recs = read_manifest(folder)
        files += [(str(Path(folder) / r["file"]), style) for r in recs]
        style += 1
    for folder in data["captures"]:
        from .data.captures import load_capture_folder
        res = load_capture_folder(folder, fps, style=style)
        utts = res[0] if isinstance(res, tuple) else res
        captures += utts
        style += 1
    if not files and not captures:
        raise ValueError("no training data: set [data] corpus (from `streamtalker make-dataset`) "
                         "and/or captures")
    return files, captures


def _latest_state(out: Path) -> Path | None:
    states = sorted(out.glob("step-*.state.pt"))
    return states[-1] if states else None


def _plot(csv_path: Path, png_path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = list(csv.DictReader(open(csv_path)))
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


def run_training(config_path: str | os.PathLike, progress: bool = True) -> Path:
    """Train as the config says; returns the path of ``final.safetensors``.

    Raises:
        FileExistsError: ``out`` already holds a final model.
        FileNotFoundError / ValueError: bad config or data.
    """
    from tqdm import tqdm
    from .data.corpus import CorpusStream
    from .training import ChunkBatcher, fit_normalization, lr_at

    cfg = read_train_config(config_path)
    tr, data = cfg["train"], cfg["data"]
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
        raise FileExistsError(f"{final} exists: this run is finished; choose a new [train] out")
    out.mkdir(parents=True, exist_ok=True)

    state_path = _latest_state(out) if tr["resume"] else None
    torch.manual_seed(tr["seed"])
    if state_path is not None:
        model = load_checkpoint(state_path.with_name(state_path.name.replace(".state.pt", ".safetensors")), dev)
    elif tr["init_from"]:
        model = load_checkpoint(tr["init_from"], dev)
        model.config.training = {**model.config.training, "fine_tuned_from": tr["init_from"]}
    else:
        model = StreamTalkerModel.from_config(ModelConfig.from_dict(cfg["model"]), dev, seed=tr["seed"])
    mcfg = model.config
    files, captures = _sources(data, mcfg.fps)
    n_sources = len(data["corpus"]) + len(data["captures"])
    if n_sources > mcfg.n_styles:
        raise ValueError(f"{n_sources} data sources but the model has n_styles={mcfg.n_styles}; "
                         f"raise [model] n_styles")
    rng = np.random.default_rng(tr["seed"])
    idx = rng.permutation(len(files))
    n_val = int(round(len(files) * data["val_fraction"]))
    val_files = [files[i] for i in idx[:n_val]]
    train_files = [files[i] for i in idx[n_val:]]
    # each rank streams a different part of the data
    train_files = train_files[rank::world]
    if state_path is None and not tr["init_from"]:
        from .data.corpus import load_utterance
        sample = [load_utterance(p, s, mcfg.fps) for p, s in train_files[:300]] + captures
        fit_normalization(model, sample, std_floor=float(tr["norm_std_floor"]))
    if train_files:
        stream = CorpusStream(model, train_files, reservoir=tr["reservoir"], seed=tr["seed"] + rank,
                              pad=bool(data["pad_silence"]))
        if captures:
            cap_batcher = ChunkBatcher(model, captures, seed=tr["seed"] + 7 + rank)
    else:
        stream, cap_batcher = None, ChunkBatcher(model, captures, seed=tr["seed"] + rank)
    val_batches = []
    if val_files:
        vs = CorpusStream(model, val_files, reservoir=len(val_files), refresh=0, seed=12345, pad=False)
        val_batches = [vs.batch(tr["batch_size"], mcfg.chunk_frames) for _ in range(tr["val_batches"])]

    net = model.net.train()
    ddp_net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[local_rank] if dev.startswith("cuda") else None) \
        if world > 1 else net
    opt = torch.optim.AdamW(net.parameters(), lr=tr["lr"], weight_decay=tr["weight_decay"])
    step0 = 0
    if state_path is not None:
        st = torch.load(state_path, map_location=dev, weights_only=False)
        opt.load_state_dict(st["optimizer"])
        step0 = st["step"]
    noiser = DDPMNoiser(mcfg.schedule, mcfg.train_timesteps)
    gen = torch.Generator().manual_seed(tr["seed"] * 1000 + rank + step0)
    use_amp = bool(tr["amp"]) and dev.startswith("cuda")
    csv_path = out / "losses.csv"
    new_csv = not csv_path.exists()
    log = open(csv_path, "a", newline="") if rank == 0 else None
    writer = csv.writer(log) if log else None
    if writer and new_csv:
        writer.writerow(["step", "loss", "x0", "velocity", "lr", "val_loss", "seconds"])
    if rank == 0 and not (out / "config.toml").exists():
        (out / "config.toml").write_text(Path(config_path).read_text())
    t_start = time.time()
    steps = tr["steps"]
    acc = {"loss": 0.0, "x0": 0.0, "velocity": 0.0}
    n_acc = 0
    bar = tqdm(range(step0, steps), initial=step0, total=steps, desc="train", unit="step",
               disable=not progress or rank != 0)

    def save(step: int) -> None:
        if rank != 0:
            return
        name = f"step-{step:07d}"
        model.config.training = {**model.config.training, "steps": step}
        save_checkpoint(model, out / f"{name}.safetensors")
        atomic_write(out / f"{name}.state.pt",
                     lambda tmp: torch.save({"optimizer": opt.state_dict(), "step": step}, tmp))

    def validate() -> float:
        net.eval()
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            vals = [float(model.training_loss(b, noiser, g)["loss"]) for b in val_batches]
        net.train()
        return float(np.mean(vals)) if vals else float("nan")

    for step in bar:
        lr = lr_at(step, steps, tr["lr"], tr["warmup"])
        for g in opt.param_groups:
            g["lr"] = lr
        if stream is not None and (not captures or rng.random() < 0.7):
            batch = stream.batch(tr["batch_size"])
        else:
            batch = cap_batcher.batch(tr["batch_size"])
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            losses = model.training_loss(batch, noiser, gen, net=ddp_net)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        for k in acc:
            acc[k] += float(losses[k].detach())
        n_acc += 1
        done = step + 1
        if rank == 0 and (done % tr["log_every"] == 0 or done == steps):
            val = validate() if (done % tr["save_every"] == 0 or done == steps) and val_batches else None
            writer.writerow([done, *(f"{acc[k] / n_acc:.5f}" for k in acc), f"{lr:.6g}",
                             "" if val is None else f"{val:.5f}", f"{time.time() - t_start:.1f}"])
            log.flush()
            bar.set_postfix(loss=f"{acc['loss'] / n_acc:.4f}")
            acc = {k: 0.0 for k in acc}
            n_acc = 0
        if done % tr["save_every"] == 0 and done != steps:
            save(done)
            if rank == 0:
                _plot(csv_path, out / "losses.png")
    net.eval()
    if rank == 0:
        hours = sum(1 for _ in train_files)
        model.config.training = {
            **model.config.training, "steps": steps, "batch_size": tr["batch_size"], "lr": tr["lr"],
            "device": torch.cuda.get_device_name(0) if dev.startswith("cuda") else f"cpu ({os.cpu_count()} cores)",
            "gpus": world if dev.startswith("cuda") else 0,
            "seconds_this_run": round(time.time() - t_start, 1), "train_files": hours,
            "data": {"corpus": data["corpus"], "captures": data["captures"]},
        }
        save_checkpoint(model, final)
        log.close()
        _plot(csv_path, out / "losses.png")
        (out / "summary.json").write_text(json.dumps(model.config.training, indent=2))
    if world > 1:
        torch.distributed.destroy_process_group()
    return final
