"""One hour at flat memory (issue 12): a 1 h file through ``streamtalker generate`` and 1 h of
audio through the live engine, printing RSS after 5 and 60 minutes of audio.

Run (on demand, not in CI; about 10-15 minutes on the 2-core machine):
``.venv/bin/python benchmarks/bench_hour.py [--minutes 60] [--format csv] [--keep]``

1. ``generate``: real speech from inputs/speech looped to a 1 h 16 kHz WAV (115 MB, in a
   temporary folder), then ``streamtalker generate HOUR.wav -o HOUR.csv`` -- the command's own
   code (``model_core.cli.main``) in a fresh process; the only addition is a probe around
   ``StreamingSession.push`` that reads the process's resident memory (VmRSS) each time another
   minute of audio has gone in.
2. live: a :class:`model_core.live.engine.LiveEngine` started without a device (``start_fed``): its
   ring buffer is fed 100 ms blocks as fast as its worker takes them (faster than real time,
   never dropping audio) and the consumer polls the frames (as the add-on applies them);
   RSS each minute of audio fed.

Must hold: RSS at 60 min within 5 % of RSS at 5 min, for both.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    """Current resident set size of this process, MB (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def speech(seconds: float) -> np.ndarray:
    from model_core import load_audio
    clips = sorted((ROOT / "inputs" / "speech").rglob("*.wav"))
    if not clips:
        sys.exit("no speech in inputs/speech: run .venv/bin/python tools/fetch_inputs.py")
    base = np.concatenate([load_audio(p) for p in clips])
    return np.resize(base, int(seconds * 16000)).astype(np.float32)


def write_wav(path: Path, minutes: float) -> None:
    """A looped-speech 16 kHz int16 WAV of ``minutes``, written block by block."""
    import soundfile as sf
    base = (speech(600) * 32767).astype(np.int16)
    total = int(minutes * 60 * 16000)
    with sf.SoundFile(str(path), "w", 16000, 1, "PCM_16") as f:
        done = 0
        while done < total:
            n = min(len(base), total - done)
            f.write(base[:n])
            done += n


def job_generate(wav: str, out: str, minutes: float) -> dict:
    from model_core.runtime import session as streaming
    from model_core.cli import main
    marks = {}
    push = streaming.StreamingSession.push

    def probed(self, samples):
        frames = push(self, samples)
        m = int(self.n_samples // (60 * 16000))
        if m >= 1 and m not in marks:
            marks[m] = rss_mb()
        return frames
    streaming.StreamingSession.push = probed
    marks[0] = rss_mb()
    t = time.perf_counter()
    rc = main(["generate", wav, "-o", out, "--force"])
    return {"rc": rc, "marks": marks, "wall": time.perf_counter() - t,
            "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def job_live(minutes: float) -> dict:
    import model_core as mc
    from model_core.live.engine import LiveEngine
    model = mc.load_model()
    base = speech(600)
    eng = LiveEngine(model).start_fed(16000)
    block = 1600
    total = int(minutes * 60 * 16000)
    fed = frames = 0
    marks = {0: rss_mb()}
    t = time.perf_counter()
    try:
        while fed < total:
            if eng._ring.available < 3 * block:        # keep the backlog small: no drops
                i = fed % len(base)
                x = base[i:i + block]
                if len(x) < block:
                    x = np.concatenate([x, base[:block - len(x)]])
                eng.feed(x)
                fed += block
                m = fed // (60 * 16000)
                if fed % (60 * 16000) < block and m not in marks:
                    marks[m] = rss_mb()
            else:
                time.sleep(0.001)
            evs = eng.poll()
            if evs:
                eng.applied(evs)
                frames += sum(len(e.frames) for e in evs)
            if not eng.running:
                raise RuntimeError(f"live engine stopped: {eng.error}")
        time.sleep(0.5)
        evs = eng.poll()
        frames += sum(len(e.frames) for e in evs)
    finally:
        eng.stop()
    return {"marks": marks, "wall": time.perf_counter() - t, "frames": frames,
            "dropped": eng.stats.dropped_samples, "dropped_events": eng.stats.dropped_events,
            "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def in_process(fn, *args):
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def report(name: str, r: dict, minutes: float) -> bool:
    marks = r["marks"]
    last = int(minutes)
    shown = [m for m in sorted(marks) if m in (0, 1, 5) or m % 10 == 0 or m == last]
    print(f"{name}: RSS by minutes of audio: "
          + ", ".join(f"{m} min {marks[m]:.0f} MB" for m in shown))
    if 5 in marks and last in marks:
        growth = (marks[last] - marks[5]) / marks[5]
        ok = abs(growth) <= 0.05
        print(f"  RSS at {last} min / at 5 min: {marks[last]:.1f} / {marks[5]:.1f} MB = "
              f"{100 * growth:+.2f} % ({'ok' if ok else 'FAILS'}: must be within 5 %); "
              f"peak {r['peak']:.0f} MB; {r['wall']:.0f} s wall (RTF {r['wall'] / (60 * minutes):.3f})")
        return ok
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--format", default="csv", choices=["csv", "npz", "json"])
    ap.add_argument("--keep", action="store_true", help="keep the temporary WAV and output")
    ap.add_argument("--only", choices=["generate", "live"], default=None)
    args = ap.parse_args()
    ok = True
    tmp = Path(tempfile.mkdtemp(prefix="streamtalker-hour-"))
    try:
        if args.only in (None, "generate"):
            wav, out = tmp / "hour.wav", tmp / f"hour.{args.format}"
            write_wav(wav, args.minutes)
            print(f"streamtalker generate {wav.name} ({wav.stat().st_size / 1e6:.0f} MB, "
                  f"{args.minutes:g} min) -o {out.name}", flush=True)
            r = in_process(job_generate, str(wav), str(out), args.minutes)
            print(f"  exit {r['rc']}; output {out.stat().st_size / 1e6:.0f} MB")
            ok &= r["rc"] == 0 and report("generate", r, args.minutes)
        if args.only in (None, "live"):
            print(f"live engine fed {args.minutes:g} min of speech directly", flush=True)
            r = in_process(job_live, args.minutes)
            print(f"  {r['frames']} frames, dropped audio {r['dropped']} samples, dropped events "
                  f"{r['dropped_events']}")
            ok &= report("live", r, args.minutes)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            for p in tmp.iterdir():
                p.unlink()
            tmp.rmdir()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
