"""Build model_core/training/mbrola_ipa.json: for every installed MBROLA voice, the IPA name
of each of its phone symbols, learned from eSpeak NG's own IPA phoneme events.

eSpeak NG drives an MBROLA voice by writing MBROLA phone data (symbol, duration, pitch) and
reports every phoneme it speaks as an event with an IPA name and a sample position. This
script synthesizes a few hundred words per voice (the most frequent words of its language,
PyPI wordfreq; Japanese turned into kana with pykakasi), writes the phone data of the same
synthesis, and pairs a phone with an event as model_core.training.mbrola.event_names does
(start and end within 3 ms, the offset found again where the events moved); the IPA name
seen most often for a symbol becomes its entry when it was seen at least 4 times and in at
least 75 % of the symbol's pairings. (Where the two time lines part, e.g. at a long
consonant written as two phones, nothing is paired.) Symbols left out are read as
X-SAMPA by model_core.training.mbrola; "agreement" is the share of pairings that agree with
their symbol's most frequent name (voices below 0.8 are not used for training). A text eSpeak
reads partly in another language (its "(en)" switch events: English words in a Hindi word
list, kanji spelled out in English) is left out and another drawn, so English phones do not
become a Japanese voice's entries; word lists are v5's (whole words, no Latin-letter words in
a language not written in Latin letters: model_core.training.texts.wordfreq_text). Voices the
output file lists but this machine has not installed, or that pair nothing, keep their
entries (printed).

Usage: .venv/bin/python tools/mbrola_ipa_table.py [-o model_core/training/mbrola_ipa.json]
Needs: the Debian mbrola voices (tools/setup_corpus.sh), the train extra and
`pip install wordfreq pykakasi`.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_core.training import mbrola, tts  # noqa: E402
from model_core.training.texts import wordfreq_text  # noqa: E402


def voice_rate(voice: str) -> int:
    import soundfile as sf
    with tempfile.TemporaryDirectory() as tmp:
        pho, wav = os.path.join(tmp, "a.pho"), os.path.join(tmp, "a.wav")
        Path(pho).write_text("_ 50\n_ 50\n")
        subprocess.run(["mbrola", "-e", str(mbrola._voice_file(voice)), pho, wav],
                       check=True, capture_output=True)
        return sf.info(wav).samplerate


def pairs(voice: str, lang: str, n_texts: int, rng: random.Random):
    rate = voice_rate(voice)
    out = collections.defaultdict(collections.Counter)
    with tempfile.TemporaryDirectory() as tmp:
        pho = os.path.join(tmp, "x.pho")
        done = switched = 0
        while done < n_texts and switched < 10 * n_texts:
            text = wordfreq_text(lang, rng, 12, own_script=True)   # whole words (v5's)
            job = (f"mb-{voice}", 160, 50, 50, tts._ENDPAUSE, text)
            try:
                (traced, rendered), _ = tts._espeak_call("synth", [job + (pho,), job], ipa=True)
            except (ValueError, RuntimeError) as e:
                print(f"{voice}: {e}", file=sys.stderr)
                return rate, out
            if tts._switch_names(traced[1]):
                switched += 1            # read partly in another language: draw again
                continue
            done += 1
            lines = mbrola.parse_pho(traced[2])
            names = mbrola.event_names(lines, mbrola.steady_events(job, rendered[1]), rate)
            for ln, name in zip(lines, names):
                if name is not None:
                    out[ln.symbol][name] += 1
    if done < n_texts:
        print(f"{voice}: only {done} of {n_texts} texts read in {lang} alone "
              f"({switched} drawn again)", file=sys.stderr, flush=True)
    return rate, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default="model_core/training/mbrola_ipa.json")
    ap.add_argument("--texts", type=int, default=40, help="texts of 12 words per voice")
    args = ap.parse_args()
    old = Path(args.out)
    table = {}
    if old.exists():
        installed = mbrola.mbrola_voices()
        for voice, entry in json.loads(old.read_text(encoding="utf-8")).items():
            table[voice] = entry          # replaced below when the voice pairs anything
            if voice not in installed:
                print(voice, "not installed here: its entry kept from", old, flush=True)
    for voice, lang in sorted(mbrola.mbrola_voices().items()):
        rate, counts = pairs(voice, lang, args.texts, random.Random(voice))
        if not counts:
            if voice in table:
                print(voice, "paired nothing: its entry kept from", old, flush=True)
            continue
        ipa = {}
        for sym, c in sorted(counts.items()):
            name, n = c.most_common(1)[0]
            if sym == "_" or n < 4 or n < 0.75 * sum(c.values()):
                continue     # a pause, or too few / too mixed pairings to trust
            ipa[sym] = name
        agreement = sum(c.most_common(1)[0][1] for c in counts.values()) / \
            sum(sum(c.values()) for c in counts.values())
        table[voice] = {"language": lang, "sample_rate": rate, "ipa": ipa,
                        "agreement": round(agreement, 3)}
        print(voice, lang, rate, len(ipa), "symbols, agreement", round(agreement, 3),
              flush=True)
    Path(args.out).write_text(json.dumps(table, ensure_ascii=False, indent=1, sort_keys=True)
                              + "\n", encoding="utf-8")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
