"""How much of the voice a checkpoint's audio encoder carries: a linear probe of the
training voice on the encoder's frames (and on the log-mel it hears, for reference).

Voices and utterances come from a corpus made by `streamtalker make-dataset` (voices named
by `model_core.training.corpus.speaker_key`, WORLD-transformed utterances left out); per
voice, the first `--train` utterances fit the probe (softmax regression, Adam, full batch)
and the next `--test` are scored: the share of their speech frames (mel frames whose mean
log-mel is above the utterance's 30th percentile) the probe assigns to the right voice, and
the share of utterances whose frames' mean log-probability picks it. Chance is 1 / voices.
A probe says what a linear read-out finds, not all the encoder holds.

Usage: .venv/bin/python tools/speaker_probe.py CHECKPOINT [CHECKPOINT ...] \
           [--corpus data/corpus-v5] [--voices 40] [--train 4] [--test 2] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model_core.runtime.checkpoint import load_checkpoint  # noqa: E402
from model_core.runtime.frontend import make_frontend  # noqa: E402
from model_core.training.corpus import load_utterance, read_manifest, speaker_key  # noqa: E402


def pick(corpus: Path, n_voices: int, per_voice: int, seed: int) -> dict[str, list[Path]]:
    """``n_voices`` voices with at least ``per_voice`` untransformed utterances each ->
    their first ``per_voice`` files (a seeded draw of voices)."""
    by_voice: dict[str, list[Path]] = {}
    for r in read_manifest(corpus):
        if r.get("world") is None:
            by_voice.setdefault(speaker_key(r), []).append(corpus / r["file"])
    ok = sorted(k for k, v in by_voice.items() if len(v) >= per_voice)
    if len(ok) < n_voices:
        raise SystemExit(f"{corpus}: only {len(ok)} voices have {per_voice} utterances")
    chosen = np.random.default_rng(seed).choice(ok, n_voices, replace=False)
    return {k: by_voice[k][:per_voice] for k in sorted(chosen)}


def speech_mels(cfg, files: list[Path]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per utterance, its log-mel float32 [T, n_mels] as the front end of ``cfg`` computes
    it, and its speech frames, bool [T] (mean log-mel above the utterance's 30th
    percentile)."""
    fe = make_frontend(cfg, "cpu")
    out = []
    for f in files:
        utt = load_utterance(f, fps=cfg.fps)
        mel = fe.logmel.whole(utt.samples, int(len(utt.samples) / cfg.hop_length))
        out.append((mel.astype(np.float32), mel.mean(1) > np.percentile(mel.mean(1), 30)))
    return out


def features(model, mels: list[tuple[np.ndarray, np.ndarray]], encoder: bool) -> list[np.ndarray]:
    """The speech frames' features of each utterance: the encoder's [T, C], run over the
    whole utterance (``encoder``), or the log-mel as the encoder normalises it
    [T, n_mels]."""
    enc = model.net.encoder
    out = []
    with torch.no_grad():
        for mel, speech in mels:
            x = torch.from_numpy(mel)
            f = model.net.audio_features(x[None])[0] if encoder else (x - enc.mel_mean) / enc.mel_std
            out.append(f.numpy()[speech])
    return out


def probe(train: list[tuple[np.ndarray, int]], test: list[tuple[np.ndarray, int]],
          n: int, seed: int) -> tuple[float, float]:
    """Softmax regression on the training frames -> (frame accuracy, utterance accuracy)
    on the test utterances."""
    torch.manual_seed(seed)
    X = torch.from_numpy(np.concatenate([x for x, _ in train]))
    y = torch.from_numpy(np.concatenate([np.full(len(x), k) for x, k in train]))
    mu, sd = X.mean(0), X.std(0) + 1e-6
    lin = torch.nn.Linear(X.shape[1], n)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(400):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin((X - mu) / sd), y).backward()
        opt.step()
    right = total = utt_right = 0
    with torch.no_grad():
        for x, k in test:
            lp = torch.log_softmax(lin((torch.from_numpy(x) - mu) / sd), -1)
            right += int((lp.argmax(-1) == k).sum())
            total += len(x)
            utt_right += int(lp.mean(0).argmax() == k)
    return right / total, utt_right / len(test)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--corpus", default="data/corpus-v5")
    ap.add_argument("--voices", type=int, default=40)
    ap.add_argument("--train", type=int, default=4)
    ap.add_argument("--test", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    voices = pick(Path(a.corpus), a.voices, a.train + a.test, a.seed)
    print(f"{len(voices)} voices, {a.train} + {a.test} utterances each, chance "
          f"{1 / len(voices):.3f}")
    print("| features | frame accuracy | utterance accuracy |\n|---|---|---|")
    mels: dict[tuple, list] = {}    # per front end: per voice, per utterance (mel, speech)
    for i, ck in enumerate(a.checkpoints):
        model = load_checkpoint(ck, "cpu")
        model.net.eval()
        c = model.config
        front = (c.sample_rate, c.n_fft, c.win_length, c.hop_length, c.n_mels, c.fmin, c.fmax)
        if front not in mels:
            mels[front] = [speech_mels(c, files) for files in voices.values()]
        for encoder in ([False, True] if i == 0 else [True]):
            tr, te = [], []
            for k, voice in enumerate(mels[front]):
                feats = features(model, voice, encoder)
                tr += [(x, k) for x in feats[:a.train]]
                te += [(x, k) for x in feats[a.train:]]
            fa, ua = probe(tr, te, len(voices), a.seed)
            name = f"encoder of {ck}" if encoder else "log-mel (normalised)"
            print(f"| {name} | {fa:.3f} | {ua:.3f} |", flush=True)


if __name__ == "__main__":
    main()
