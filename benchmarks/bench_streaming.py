"""Streaming speed benchmark: StreamTalker's session vs a naive regenerate-everything baseline.

Run: ``.venv/bin/python benchmarks/bench_streaming.py [--checkpoint P] [--quick]``
(``--backends-only``: just the backend table below; ``--settings-only [--assume-live 1,20]``:
per-chunk compute at the model's best-quality and low-latency settings, both backends, one
thread.)

Backends (issue 14): the torch and the onnx backend side by side, each in its own fresh
process (so peak RSS is per backend, the onnx one never importing torch), on 10 s and 60 s of
speech: whole-file real-time factor, per-chunk compute p50/p95 when streaming one chunk of
audio per push, peak RSS, and the largest difference between the two backends' frames.

Audio: the real speech clips in inputs/speech (LibriVox, ARCTIC, ...) concatenated and looped
to 10 s, 60 s and 600 s. For each length, in fresh processes (so peak RSS is per run):
- whole-file generation (``model.generate``): real-time factor (compute / audio duration);
- live streaming: audio pushed one chunk at a time; per-chunk latency (time of the push that
  returns the chunk's frames) p50/p95/p99 over the whole run, and p95 in the first and last
  minute;
- naive baseline (how a non-streaming model behaves live): at each chunk, regenerate the whole
  sequence so far with a fresh session and keep the new frames. Its cost grows with position,
  so for 60 s and 600 s it is measured at evenly spaced chunk positions (the column says how
  many); its real-time factor is the mean measured chunk cost / chunk duration.
Also printed: parameter count and FLOPs per frame (torch.utils.flop_counter, one chunk / K).

Busy machine (issue 12): whole-file generation of 10 s, quiet and then with ``--busy`` (4)
CPU-bound processes running beside it, each with the product's default thread count
(``model_core.runtime.device``, 1), one thread, and torch's own default (one per core: what the
product did before it set a count). Must hold: loaded, the default is at most 1.5x slower than
one thread, and its RTF at most 4x the quiet run's. ``--busy-only`` runs just this part.
Run it without OMP_NUM_THREADS set (the torch-default row would otherwise not be torch's).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def speech_audio(seconds: float) -> np.ndarray:
    from model_core import load_audio
    clips = sorted((ROOT / "inputs" / "speech").rglob("*.wav"))
    if not clips:
        sys.exit("no speech in inputs/speech: run .venv/bin/python tools/fetch_inputs.py")
    base = np.concatenate([load_audio(p) for p in clips])
    n = int(seconds * 16000)
    return np.resize(base, n).astype(np.float32)


def load(checkpoint):
    import model_core as mc
    from model_core.runtime.checkpoint import DEFAULT_CHECKPOINT
    if checkpoint or DEFAULT_CHECKPOINT.exists():
        return mc.load_model(checkpoint), str(checkpoint or "bundled default")
    return mc.StreamTalkerModel.from_config(mc.ModelConfig()), "untrained default architecture (speed only)"


def peak_rss_mb() -> float:
    """This process's peak resident set size, MB: VmHWM from /proc (it starts afresh at exec;
    getrusage's ru_maxrss would carry the parent's peak into a spawned worker on Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def job_generate(checkpoint, seconds, threads="default"):
    """Whole-file RTF; threads: "default" (the product's rule), an int, or "torch" (torch's
    own default: the count is never set, as before issue 12)."""
    import torch
    if threads == "torch":
        from model_core.runtime.checkpoint import load_checkpoint
        model = load_checkpoint(checkpoint)
    else:
        import model_core as mc
        model = mc.load_model(checkpoint, threads=None if threads == "default" else threads)
    audio = speech_audio(seconds)
    model.generate(audio[:16000], 16000)  # warm-up
    t, c = time.perf_counter(), time.process_time()
    model.generate(audio, 16000)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    return {"rtf": dt / seconds, "cpu_rtf": dc / seconds, "rss": peak_rss_mb(),
            "threads": torch.get_num_threads()}


def machine_load() -> str:
    """Load average and the CPU time stolen by the hypervisor so far (a VM's host is busy)."""
    try:
        la = os.getloadavg()
        steal = int(Path("/proc/stat").read_text().split("\n")[0].split()[8])
        return f"load average {la[0]:.1f}; steal {steal / os.sysconf('SC_CLK_TCK'):.0f} s since boot"
    except (OSError, IndexError, ValueError):
        return "load unknown"


def busy_rows(checkpoint, busy: int, seconds: float = 10.0) -> dict:
    """{(condition, threads): job_generate result} for condition "quiet" / "busy"."""
    out = {}
    for cond in ("quiet", "busy"):
        procs = []
        if cond == "busy":
            procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                     for _ in range(busy)]
            time.sleep(1.0)
        try:
            for threads in ("default", 1, "torch"):
                out[cond, threads] = r = in_process(job_generate, checkpoint, seconds, threads)
                print(f"  {cond}: threads {threads}: RTF {r['rtf']:.3f} (CPU time / audio "
                      f"{r['cpu_rtf']:.3f}); {machine_load()}", flush=True)
        finally:
            for p in procs:
                p.kill()
                p.wait()
    return out


def print_busy(out: dict, busy: int, seconds: float = 10.0) -> None:
    print(f"\nBusy machine: whole-file generation of {seconds:g} s, quiet vs {busy} CPU-bound "
          f"processes beside it ({os.cpu_count()} cores):\n")
    print("| threads | quiet RTF | busy RTF | busy / quiet | CPU s per audio s, quiet / busy |")
    print("|---|---|---|---|---|")
    names = {"default": "product default", 1: "one thread", "torch": "torch default (before)"}
    for t in ("default", 1, "torch"):
        q, b = out["quiet", t], out["busy", t]
        print(f"| {names[t]} ({b['threads']}) | {q['rtf']:.3f} | {b['rtf']:.3f} | "
              f"{b['rtf'] / q['rtf']:.1f}x | {q['cpu_rtf']:.3f} / {b['cpu_rtf']:.3f} |")
    d, one, q = out["busy", "default"], out["busy", 1], out["quiet", "default"]
    print(f"\nbusy: default / one thread = {d['rtf'] / one['rtf']:.2f} (must be <= 1.5); "
          f"default busy RTF / quiet RTF = {d['rtf'] / q['rtf']:.2f} (must be <= 4); torch's "
          f"default was {out['busy', 'torch']['rtf'] / one['rtf']:.1f}x slower than one thread")


def job_backend(checkpoint, seconds, backend, preset="quality", assume_live=None):
    """One backend in this (fresh) process: whole-file RTF, per-chunk streaming compute
    p50/p95 (ms), peak RSS (MB), whether torch got imported, and the whole-file frames, at
    the model's ``preset`` setting (``assume_live`` "K,L": declared in memory on a model
    that has no live setting; timing does not depend on the weights)."""
    import model_core as mc
    from model_core.runtime.settings import SamplerSettings
    model = mc.load_model(checkpoint, backend=backend)
    if assume_live:
        k, la = assume_live.split(",")
        cfg = model.config
        cfg.min_lookahead_ms, cfg.live_chunk_frames, cfg.live_lookahead_ms = 0.0, int(k), float(la)
        cfg.validate()
    st = SamplerSettings(preset=preset)
    audio = speech_audio(seconds)
    model.generate(audio[:16000], 16000, settings=st)  # warm-up
    t = time.perf_counter()
    frames = model.generate(audio, 16000, settings=st)
    rtf = (time.perf_counter() - t) / seconds
    s = model.stream(settings=st)
    step = int(round(s.chunk_frames / model.fps * 16000))
    lat = []
    for pos in range(0, len(audio), step):
        t = time.perf_counter()
        out = s.push(audio[pos:pos + step])
        if len(out):
            lat.append(time.perf_counter() - t)
    s.flush()
    lat = np.array(lat) * 1000
    return {"rtf": rtf, "p50": np.percentile(lat, 50), "p95": np.percentile(lat, 95),
            "rss": peak_rss_mb(), "torch": "torch" in sys.modules, "frames": frames,
            "chunk_ms": 1000 * s.chunk_frames / model.fps, "K": s.chunk_frames,
            "lookahead_ms": s.lookahead_ms}


def setting_table(checkpoint, seconds=60, assume_live=None) -> None:
    """Per-chunk compute at the model's best-quality and low-latency settings, each backend
    in a fresh process, one thread: the table the live setting's compute budget is read from
    (issue 22: K = 1 p95 <= 5 ms on onnx)."""
    rows = []
    for backend in ("onnx", "torch"):
        for preset in ("quality", "live"):
            r = in_process(job_backend, checkpoint, seconds, backend, preset, assume_live)
            rows.append((backend, preset, r))
            print(f"  measured {backend} {preset}", flush=True)
    print(f"\nPer-chunk compute by setting, {seconds:g} s of speech pushed one chunk at a time, "
          f"one thread ({os.cpu_count()} cores; {machine_load()}"
          f"{'; live setting assumed ' + assume_live if assume_live else ''}):\n")
    print("| backend | setting | chunk | look-ahead | chunk p50 ms | chunk p95 ms | "
          "p95 per frame ms | whole-file RTF |")
    print("|---|---|---|---|---|---|---|---|")
    for backend, preset, r in rows:
        print(f"| {backend} | {preset} | {r['K']} ({r['chunk_ms']:.0f} ms) | "
              f"{r['lookahead_ms']:g} ms | {r['p50']:.2f} | {r['p95']:.2f} | "
              f"{r['p95'] / r['K']:.2f} | {r['rtf']:.3f} |")
    by = {(b, p): r for b, p, r in rows}
    for b in ("onnx", "torch"):
        q, lv = by[b, "quality"], by[b, "live"]
        print(f"{b}: live / quality chunk p95 = {lv['p95'] / q['p95']:.2f}, whole-file RTF "
              f"{lv['rtf'] / q['rtf']:.2f}x")


def backend_table(checkpoint, lengths=(10, 60)) -> None:
    """Print the torch vs onnx table (module docstring)."""
    rows = []
    for sec in lengths:
        res = {b: in_process(job_backend, checkpoint, sec, b) for b in ("torch", "onnx")}
        rows.append((sec, res))
        print(f"  measured backends on {sec} s", flush=True)
    print(f"\nBackends ({os.cpu_count()} cores; {machine_load()}); streaming pushes one chunk "
          f"({rows[0][1]['torch']['chunk_ms']:.0f} ms) of audio at a time:\n")
    print("| audio | backend | whole-file RTF | chunk p50 ms | chunk p95 ms | peak RSS MB | "
          "torch imported |")
    print("|---|---|---|---|---|---|---|")
    for sec, res in rows:
        for b in ("torch", "onnx"):
            r = res[b]
            print(f"| {sec} s | {b} | {r['rtf']:.3f} | {r['p50']:.1f} | {r['p95']:.1f} | "
                  f"{r['rss']:.0f} | {'yes' if r['torch'] else 'no'} |")
    for sec, res in rows:
        t, o = res["torch"], res["onnx"]
        d = np.abs(t["frames"] - o["frames"])
        print(f"{sec} s: onnx whole-file {t['rtf'] / o['rtf']:.1f}x faster than torch; peak RSS "
              f"{o['rss']:.0f} vs {t['rss']:.0f} MB; frame difference max {d.max():.1e}, mean "
              f"{d.mean():.1e} (float rounding, amplified along the autoregressive history)")


def job_stream(checkpoint, seconds):
    model, _ = load(checkpoint)
    audio = speech_audio(seconds)
    s = model.stream()
    K, fps = s.chunk_frames, model.fps
    warm = model.stream()
    warm.push(audio[:16000])
    lat, when = [], []
    pos = 0
    step = int(round(K / fps * 16000))
    while pos < len(audio):
        block = audio[pos:pos + step]
        t = time.perf_counter()
        out = s.push(block)
        dt = time.perf_counter() - t
        if len(out):
            lat.append(dt)
            when.append(pos / 16000)
        pos += step
    s.flush()
    lat, when = np.array(lat) * 1000, np.array(when)
    first = lat[when < 60]
    last = lat[when >= seconds - 60]
    return {"p50": np.percentile(lat, 50), "p95": np.percentile(lat, 95), "p99": np.percentile(lat, 99),
            "p95_first": np.percentile(first, 95), "p95_last": np.percentile(last, 95),
            "chunk_ms": 1000 * K / fps, "latency_ms": s.latency_ms, "rss": peak_rss_mb(),
            "sizes": s.state_sizes()}


def job_naive(checkpoint, seconds, samples):
    model, _ = load(checkpoint)
    audio = speech_audio(seconds)
    K, fps = model.config.chunk_frames, model.fps
    n_chunks = int(seconds * fps) // K
    positions = range(1, n_chunks + 1) if samples >= n_chunks else \
        np.linspace(1, n_chunks, samples).astype(int)
    model.generate(audio[:16000], 16000)
    lat = []
    for c in positions:
        end = int(round(c * K / fps * 16000))
        t = time.perf_counter()
        model.generate(audio[:end], 16000)   # the whole sequence so far, from scratch
        lat.append(time.perf_counter() - t)
    lat = np.array(lat) * 1000
    chunk_ms = 1000 * K / fps
    return {"p50": np.percentile(lat, 50), "p95": np.percentile(lat, 95), "p99": np.percentile(lat, 99),
            "rtf": lat.mean() / chunk_ms, "n": len(lat), "last": lat[-1], "rss": peak_rss_mb()}


def in_process(fn, *args):
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)


def flops_per_frame(model) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    s = model.stream()
    s.push(np.zeros(16000, np.float32))
    s.frontend.append(np.zeros(16000, np.float32))
    s.n_buffered += 16000
    with FlopCounterMode(display=False) as fc:
        s._step()
    return fc.get_total_flops() / s.chunk_frames


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--quick", action="store_true", help="10 s and 60 s only")
    ap.add_argument("--busy", type=int, default=4, help="CPU-bound processes in the busy run (4)")
    ap.add_argument("--busy-only", action="store_true", help="only the quiet vs busy comparison")
    ap.add_argument("--backends-only", action="store_true",
                    help="only the torch vs onnx backend table")
    ap.add_argument("--settings-only", action="store_true",
                    help="only the per-chunk compute at the best-quality and the low-latency "
                         "setting")
    ap.add_argument("--assume-live", default=None, metavar="K,L",
                    help="with --settings-only: declare this live setting (chunk frames, "
                         "look-ahead ms) on a model that has none, in memory (1,20 for v3.5)")
    args = ap.parse_args()
    if args.settings_only:
        setting_table(args.checkpoint, assume_live=args.assume_live)
        return
    if args.backends_only:
        backend_table(args.checkpoint)
        return
    if "OMP_NUM_THREADS" in os.environ:
        print(f"note: OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} is set; the torch-default "
              f"row then uses it", flush=True)
    if args.busy_only:
        print_busy(busy_rows(args.checkpoint, args.busy), args.busy)
        return
    import torch
    model, what = load(args.checkpoint)
    print(f"model: {what}; {model.parameter_count() / 1e6:.2f} M parameters; "
          f"{flops_per_frame(model) / 1e6:.1f} MFLOP per frame; chunk {model.config.chunk_frames} "
          f"frames at {model.fps:g} fps = {1000 * model.config.chunk_frames / model.fps:.0f} ms, "
          f"look-ahead {model.config.lookahead_ms:g} ms, algorithmic latency {model.latency_ms():.0f} ms; "
          f"DDIM {model.config.sample_steps} steps; torch {torch.__version__}, {torch.get_num_threads()} threads")
    lengths = [10, 60] if args.quick else [10, 60, 600]
    naive_samples = {10: 10 ** 6, 60: 12, 600: 6}
    rows = []
    for sec in lengths:
        g = in_process(job_generate, args.checkpoint, sec)
        st = in_process(job_stream, args.checkpoint, sec)
        nv = in_process(job_naive, args.checkpoint, sec, naive_samples[sec])
        rows.append((sec, g, st, nv))
        print(f"  measured {sec} s", flush=True)
    print()
    hdr = ("audio", "method", "RTF", "chunk p50 ms", "p95 ms", "p99 ms", "p95 first min", "p95 last min", "peak RSS MB")
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for sec, g, st, nv in rows:
        print(f"| {sec} s | StreamTalker session | {g['rtf']:.3f} | {st['p50']:.1f} | {st['p95']:.1f} | "
              f"{st['p99']:.1f} | {st['p95_first']:.1f} | {st['p95_last']:.1f} | {max(g['rss'], st['rss']):.0f} |")
        tag = "all chunks" if nv["n"] * model.config.chunk_frames >= sec * model.fps - model.config.chunk_frames else f"{nv['n']} sampled chunks"
        print(f"| {sec} s | naive regenerate ({tag}) | {nv['rtf']:.3f} | {nv['p50']:.1f} | {nv['p95']:.1f} | "
              f"{nv['p99']:.1f} | – | {nv['last']:.1f} (last chunk) | {nv['rss']:.0f} |")
    print()
    chunk_ms = rows[0][2]["chunk_ms"]
    last = rows[-1][2]
    print(f"chunk duration {chunk_ms:.1f} ms; session p95 compute = {100 * last['p95'] / chunk_ms:.1f}% of it "
          f"(target < 25%)")
    print(f"p95 last minute / first minute at {rows[-1][0]} s: {last['p95_last'] / last['p95_first']:.3f} "
          f"(target within 10%)")
    print(f"whole-file RTF at {rows[-1][0]} s: {rows[-1][1]['rtf']:.3f} (target <= 0.1)")
    print(f"session buffers after {rows[0][0]} s: {rows[0][2]['sizes']}; after {rows[-1][0]} s: {last['sizes']}")
    backend_table(args.checkpoint)
    if args.busy > 0:
        print_busy(busy_rows(args.checkpoint, args.busy), args.busy)


if __name__ == "__main__":
    main()
