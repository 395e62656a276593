#!/usr/bin/env python3
"""Fetch the project's real test inputs into ``<project root>/inputs/`` (git-ignored).

Run it from the project's virtual environment::

    .venv/bin/python tools/fetch_inputs.py            # fetch what is missing, verify all
    .venv/bin/python tools/fetch_inputs.py --check    # verify only, download nothing

What it fetches (docs/architecture.md, "Real inputs"), all from PyPI source distributions through
``python -m pip download --no-deps --no-binary PKG PKG==VERSION``:

* ``pocketsphinx==5.1.1``: real 16 kHz mono speech from the package's test data —
  five LibriVox "Sense and Sensibility" clips (one female reader, public domain) with their
  transcripts and pocketsphinx's own reference phone alignments, two "forever" clips and
  five "cards" clips (transcripts derived from ``cards.transcription``);
* ``pysptk==1.0.1``: ``arctic_a0007.wav`` (CMU ARCTIC speaker awb) and its licence; the
  transcript is written by this script.

Layout::

    inputs/
      MANIFEST.json               every file: sha256, bytes, source, licence, wav facts
      speech/librivox/*.wav|.txt|.phone.json
      speech/forever/input_{2,4}_16k.wav, input_2_16k.txt
      speech/cards/00[1-5].wav|.txt, cards.transcription
      speech/arctic/arctic_a0007.wav|.txt, COPYING
      speech/LICENSE.pocketsphinx

Every file's sha256 is pinned below, and so is each sdist's, so the run is idempotent: a
file already present with the right hash is left alone, and nothing is downloaded when all
are present. The script writes only under ``inputs/`` and a temporary directory, and exits
with status 1 and a message naming what could not be fetched or verified.

Only the standard library and pip are used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import wave
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INPUTS_DIR = PROJECT_ROOT / "inputs"
MANIFEST_NAME = "MANIFEST.json"
MANIFEST_VERSION = 1

# --- licence notes -----------------------------------------------------------------------
_PS_LICENCE = (
    "Distributed in the pocketsphinx 5.1.1 sdist, whose LICENSE is BSD-2-Clause-style "
    "(Carnegie Mellon University; copy in speech/LICENSE.pocketsphinx)."
)
_LIBRIVOX_LICENCE = (
    "LibriVox recording of Jane Austen's 'Sense and Sensibility' ch. 1 (one female reader): "
    "public domain (LibriVox); text public domain. " + _PS_LICENCE
)
_PS_TESTDATA_LICENCE = "pocketsphinx test recording, no separate licence stated. " + _PS_LICENCE
_ARCTIC_LICENCE = (
    "CMU ARCTIC database (speaker awb), Copyright (c) 2003 Carnegie Mellon University: free "
    "for any use provided the notice is retained, modifications are marked and the authors' "
    "names are kept (full text in speech/arctic/COPYING). Shipped in the pysptk 1.0.1 sdist "
    "(pysptk itself: MIT)."
)
_WRITTEN = "Written by tools/fetch_inputs.py"

# --- what to fetch -------------------------------------------------------------------------
# Each sdist: the pinned sha256 of the archive and its members to copy:
#   (member path inside the archive, destination under inputs/, sha256, licence note)
_LV = "pocketsphinx-5.1.1/test/data/librivox/sense_and_sensibility_01_austen_64kb-"
_LV_FILES = {
    "0870": ("b0557cf95c974d930577e58e46b7f068c432a6e3afcc286563d88922b2a5315c",
             "e7001f6b4f6961f49df18fbdf0a0cda70c950806a2f2055eed20bb128dc3570c",
             "0e66e66c5cdeaa74a323d6762dc4472a0e5ae7c8967fe4b6952388280c412648"),
    "0880": ("fbec491ef00ee734a67f0ee318e98c51c157b479e1629ff4f4426861ecac0414",
             "e7c98df9e9929043aad0994ac095bc86a6e9db8ff51d9dd0d3c28eb5df691a0e",
             "afac1ed6b74d29c475ff5704cc71d8d518da6ea2c587f7ef4340e3329adcac1a"),
    "0890": ("5793ffbdee55fb8bfd284943a6866864c832d9d4accf2661cabd39915c84ee10",
             "942c80d221e02f9e01fbe4558a61313decf4b45a4e5e5941ae35fb0ba793ba09",
             "d72ed2daec2542a88b634aa1fd595e8169562c7d4337a86d90e42c051f58fa10"),
    "0920": ("40882414ef4cc51f3ff7a63bad0c8c87e7f595ffeb8209fbf756c8ebc5c28a59",
             "20c9afffa853ca7697939312c43a6d2fc5ea8248e5748238b7ce34f6121b7835",
             "d57e07aed4963034f138dda821b46588decd60cd6906bd2d76b11cb4968b8859"),
    "0930": ("954adbf0b56ac8a148cbe77b39ca18d76b5f2a1e1f405565bd786ce3e68a68b7",
             "b57a1fa64e7bdf66d5ca11df4a31c93492808006295fe3b3e8b2ea4deb800640",
             "8697065de0f02accde1d6628939956333af3f854b0f9bd30212b59823adafaea"),
}
_PS_MEMBERS = []
for _n, (_wav, _txt, _phone) in _LV_FILES.items():
    _stem = "sense_and_sensibility_01_austen_64kb-" + _n
    _PS_MEMBERS += [
        (_LV + _n + ".wav", f"speech/librivox/{_stem}.wav", _wav, _LIBRIVOX_LICENCE),
        (_LV + _n + ".txt", f"speech/librivox/{_stem}.txt", _txt, _LIBRIVOX_LICENCE),
        (_LV + _n + ".phone.json", f"speech/librivox/{_stem}.phone.json", _phone,
         "Reference phone alignment from pocketsphinx's regression tests. " + _PS_LICENCE),
    ]
_PS_MEMBERS += [
    ("pocketsphinx-5.1.1/test/data/forever/input_2_16k.wav", "speech/forever/input_2_16k.wav",
     "a67ddc6424abc306863a50aab4dcb37b31fa28e601dadc80e66751de39499402", _PS_TESTDATA_LICENCE),
    ("pocketsphinx-5.1.1/test/data/forever/input_4_16k.wav", "speech/forever/input_4_16k.wav",
     "16ee530ce7017b80962d9c6cad884ca4d044805a7169cc6c80f8f55c58ae093b", _PS_TESTDATA_LICENCE),
    ("pocketsphinx-5.1.1/test/data/cards/001.wav", "speech/cards/001.wav",
     "899951e768666f27c8f8b1d4090b96fe7909cae9cec01bec0a5d5d1b8a8d566e", _PS_TESTDATA_LICENCE),
    ("pocketsphinx-5.1.1/test/data/cards/002.wav", "speech/cards/002.wav",
     "a3f9eae6fdb69a1231989e39a14d62388a6f52fb59666c76d95005318fadafec", _PS_TESTDATA_LICENCE),
    ("pocketsphinx-5.1.1/test/data/cards/003.wav", "speech/cards/003.wav",
     "00d283e46bc257ae479e4aa86593cadb541656eba1d19fc8abeece37f6a5a18b", _PS_TESTDATA_LICENCE),
    ("pocketsphinx-5.1.1/test/data/cards/004.wav", "speech/cards/004.wav",
     "4c44a8177f5b128b99f078cdeb918119933155574231f1833e8840d1af09c521", _PS_TESTDATA_LICENCE),
    ("pocketsphinx-5.1.1/test/data/cards/005.wav", "speech/cards/005.wav",
     "090f18f5f76cf8b2b43cd9e6b07823f4685a4742d9a36cd98b174a6586c18cf9", _PS_TESTDATA_LICENCE),
    ("pocketsphinx-5.1.1/test/data/cards/cards.transcription", "speech/cards/cards.transcription",
     "5f11ecf64b8c45e4596d128293c66e695844854ad03cc79ffabde72dea1eba05", _PS_TESTDATA_LICENCE),
    ("pocketsphinx-5.1.1/LICENSE", "speech/LICENSE.pocketsphinx",
     "1c3b5c5529d7360c927aa034eea28010c59558c1f67fb722d8d8b5d69cb98a23", _PS_LICENCE),
]

SOURCES = [
    {
        "name": "pocketsphinx",
        "version": "5.1.1",
        "sdist": "pocketsphinx-5.1.1.tar.gz",
        "sdist_sha256": "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355",
        "members": _PS_MEMBERS,
    },
    {
        "name": "pysptk",
        "version": "1.0.1",
        "sdist": "pysptk-1.0.1.tar.gz",
        "sdist_sha256": "78b1c9338bf795a41cdc3ff03fcd4699c401c323f54630bb71a19710078d0b3f",
        "members": [
            ("pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav",
             "speech/arctic/arctic_a0007.wav",
             "1b850392f8c87ee2efe5a686523f1bab61d2a38d59bc43d1127e17e406f9e57d", _ARCTIC_LICENCE),
            ("pysptk-1.0.1/pysptk/example_audio_data/COPYING", "speech/arctic/COPYING",
             "469adc0262e10d84fb9658fa6181c883586415b5692f6bfbc2fde65dfc63f5c5", _ARCTIC_LICENCE),
        ],
    },
]

# Transcripts this script writes (destination, text, source note, licence note). The cards
# transcripts restate cards.transcription one file per clip; input_2's text is the one
# pocketsphinx's own test (cython/test/alignment_test.py) aligns it to. input_4_16k.wav has
# no transcript anywhere in the sdist, so none is written.
_CARDS = {
    "001": "ten of clubs",
    "002": "four queen of clubs",
    "003": "seven of clubs",
    "004": "five five",
    "005": "eight of spades four of clubs seven of hearts",
}
WRITTEN = [
    ("speech/arctic/arctic_a0007.txt", "and you always want to see it in the superlative degree\n",
     _WRITTEN + " (CMU ARCTIC prompt a0007).", _ARCTIC_LICENCE),
    ("speech/forever/input_2_16k.txt", "feels like these days go on forever\n",
     _WRITTEN + " (text from pocketsphinx 5.1.1 cython/test/alignment_test.py).",
     _PS_TESTDATA_LICENCE),
] + [
    (f"speech/cards/{k}.txt", v + "\n",
     _WRITTEN + " (from pocketsphinx 5.1.1 test/data/cards/cards.transcription).",
     _PS_TESTDATA_LICENCE)
    for k, v in _CARDS.items()
]


class FetchError(RuntimeError):
    """Something could not be fetched or verified; the message names it."""


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _is_verified(path: Path, sha256: str) -> bool:
    return path.is_file() and not path.is_symlink() and _sha256_file(path) == sha256


def _safe_dest(rel: str) -> Path:
    """Destination path under INPUTS_DIR; refuses anything that would escape it."""
    dest = (INPUTS_DIR / rel).resolve()
    root = INPUTS_DIR.resolve()
    if root not in dest.parents:
        raise FetchError(f"refusing to write outside {root}: {rel}")
    return dest


def _write_atomic(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, dest)


def _pip_download(name: str, version: str, dest_dir: Path) -> None:
    """``python -m pip download`` one sdist (no dependencies) into dest_dir."""
    # --no-binary NAME (not :all:) so pip may still use wheels for the build tools it needs to
    # read the sdist's metadata; with :all: pysptk's build dependencies (numpy) would have to
    # be compiled from source, which fails.
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", name,
           "--disable-pip-version-check", "-d", str(dest_dir), f"{name}=={version}"]
    print("  $ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise FetchError(
            f"pip download of {name}=={version} failed (exit {proc.returncode}); "
            f"last lines of its output:\n{tail}")


def _fetch_source(source: dict, missing: list, tmp_root: Path) -> None:
    """Download one sdist and copy its missing members into inputs/, verifying hashes."""
    name, version = source["name"], source["version"]
    dl_dir = tmp_root / name
    dl_dir.mkdir()
    _pip_download(name, version, dl_dir)
    archive = dl_dir / source["sdist"]
    if not archive.is_file():
        found = ", ".join(p.name for p in dl_dir.iterdir()) or "nothing"
        raise FetchError(f"pip download of {name}=={version} gave {found}, "
                         f"expected {source['sdist']}")
    got = _sha256_file(archive)
    if got != source["sdist_sha256"]:
        raise FetchError(f"{source['sdist']} has sha256 {got}, expected {source['sdist_sha256']}")
    print(f"  verified {source['sdist']} (sha256 {got[:12]}...)")
    with tarfile.open(archive, "r:gz") as tar:
        for member, rel, sha, _licence in missing:
            try:
                info = tar.getmember(member)
            except KeyError:
                raise FetchError(f"{member} is not in {source['sdist']}") from None
            if not info.isfile():
                raise FetchError(f"{member} in {source['sdist']} is not a regular file")
            data = tar.extractfile(info).read()
            if _sha256_bytes(data) != sha:
                raise FetchError(f"{member} in {source['sdist']} has sha256 "
                                 f"{_sha256_bytes(data)}, expected {sha}")
            _write_atomic(_safe_dest(rel), data)
            print(f"  wrote inputs/{rel} ({len(data)} bytes)")


def _wav_facts(path: Path) -> dict:
    with wave.open(str(path), "rb") as w:
        rate, frames = w.getframerate(), w.getnframes()
        return {"sample_rate": rate, "channels": w.getnchannels(),
                "sample_width_bytes": w.getsampwidth(), "frames": frames,
                "duration_s": round(frames / rate, 4)}


def _manifest() -> dict:
    files = []
    for source in SOURCES:
        for member, rel, sha, licence in source["members"]:
            files.append({"path": rel, "sha256": sha,
                          "source": f"PyPI sdist {source['name']}=={source['version']}: {member}",
                          "licence": licence})
    for rel, _text, note, licence in WRITTEN:
        files.append({"path": rel, "sha256": _sha256_file(INPUTS_DIR / rel),
                      "source": note, "licence": licence})
    for entry in files:
        path = INPUTS_DIR / entry["path"]
        entry["bytes"] = path.stat().st_size
        if path.suffix == ".wav":
            entry.update(_wav_facts(path))
    files.sort(key=lambda e: e["path"])
    return {
        "version": MANIFEST_VERSION,
        "description": "Real speech inputs for StreamTalker tests, fetched by "
                       "tools/fetch_inputs.py from PyPI sdists. Do not commit.",
        "sources": [{"package": f"{s['name']}=={s['version']}", "sdist": s["sdist"],
                     "sdist_sha256": s["sdist_sha256"]} for s in SOURCES],
        "files": files,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="only verify inputs/ against the pinned sha256s; download nothing")
    args = parser.parse_args(argv)

    print(f"inputs folder: {INPUTS_DIR}")
    problems = []

    # 1. Files copied from sdists.
    to_fetch = []
    n_ok = 0
    for source in SOURCES:
        missing = []
        for member, rel, sha, licence in source["members"]:
            if _is_verified(INPUTS_DIR / rel, sha):
                n_ok += 1
            else:
                missing.append((member, rel, sha, licence))
        if missing:
            to_fetch.append((source, missing))
    print(f"{n_ok} file(s) from sdists already present and verified")

    if to_fetch and args.check:
        for source, missing in to_fetch:
            for _m, rel, _s, _l in missing:
                problems.append(f"inputs/{rel} (from {source['name']}=={source['version']}) "
                                "is missing or has the wrong sha256")
    elif to_fetch:
        with tempfile.TemporaryDirectory(prefix="streamtalker-fetch-") as tmp:
            for source, missing in to_fetch:
                print(f"fetching {len(missing)} file(s) from PyPI sdist "
                      f"{source['name']}=={source['version']}")
                try:
                    _fetch_source(source, missing, Path(tmp))
                except (FetchError, OSError, tarfile.TarError) as exc:
                    names = ", ".join(rel for _m, rel, _s, _l in missing)
                    problems.append(f"{source['name']}=={source['version']} -> {names}: {exc}")

    # 2. Transcripts written by this script.
    for rel, text, _note, _licence in WRITTEN:
        data = text.encode("utf-8")
        dest = INPUTS_DIR / rel
        if _is_verified(dest, _sha256_bytes(data)):
            continue
        if args.check:
            problems.append(f"inputs/{rel} is missing or differs from its expected text")
            continue
        try:
            _write_atomic(_safe_dest(rel), data)
            print(f"  wrote inputs/{rel}")
        except OSError as exc:
            problems.append(f"inputs/{rel}: {exc}")

    if problems:
        print("\nERROR: could not fetch or verify these inputs:", file=sys.stderr)
        for p in problems:
            print("  - " + p, file=sys.stderr)
        if args.check:
            print("Run `.venv/bin/python tools/fetch_inputs.py` to fetch them.", file=sys.stderr)
        return 1

    # 3. Manifest (rewritten only when its content changes).
    text = json.dumps(_manifest(), indent=2, sort_keys=False) + "\n"
    manifest = INPUTS_DIR / MANIFEST_NAME
    if manifest.is_file() and manifest.read_text(encoding="utf-8") == text:
        print(f"inputs/{MANIFEST_NAME} up to date")
    elif args.check:
        print(f"ERROR: inputs/{MANIFEST_NAME} is missing or stale; run without --check",
              file=sys.stderr)
        return 1
    else:
        _write_atomic(manifest, text.encode("utf-8"))
        print(f"wrote inputs/{MANIFEST_NAME}")
    n_files = sum(len(s["members"]) for s in SOURCES) + len(WRITTEN)
    print(f"OK: {n_files} input files verified in {INPUTS_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
