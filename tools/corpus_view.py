"""Make a *view* of a corpus: a folder whose ``manifest.jsonl`` lists some of another corpus's
utterances (by language and engine), with ``utts`` linked to the source's, so that a
training config can list the selection a second time beside the whole corpus and hear it
more often (``[data] corpus = ["data/corpus-v4", "data/corpus-v4-en-natural"]`` with
``corpus_style = "shared"``). Nothing is copied; the source corpus is not touched.

Usage (the view the bundled model's stage 2 trains with, configs/v4/stage2-distill.toml)::

    .venv/bin/python tools/corpus_view.py data/corpus-v4 data/corpus-v4-en-natural \\
        --language en --engines piper,festival

Exit status 1 with a one-line message when the source is not a corpus, the destination
already holds something else, or nothing matches.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model_core.errors import InputNotFoundError  # noqa: E402
from model_core.training.corpus import read_manifest  # noqa: E402


def select(records: list[dict], language: str, engines: set[str]) -> list[dict]:
    """The manifest records whose ``language`` starts with ``language`` (``"en"`` takes
    en, en-us, en-gb, …; ``""`` takes all) and whose ``engine`` is in ``engines`` (empty:
    any)."""
    return [r for r in records
            if str(r.get("language", "en")).startswith(language)
            and (not engines or r.get("engine") in engines)]


def make_view(src: Path, dst: Path, language: str, engines: set[str]) -> int:
    """Write the view ``dst`` of corpus ``src`` (manifest.jsonl, corpus.json, ``utts`` link).
    Returns the number of utterances listed.

    Raises:
        SystemExit: ``src`` has no manifest; ``dst`` exists and is not a view of ``src``
            (a view of ``src`` is rewritten: it holds no data of its own); nothing matches.
    """
    try:
        records = read_manifest(src)
    except InputNotFoundError as e:     # one line, as the CLI says it
        raise SystemExit(f"corpus_view: {e}")
    chosen = select(records, language, engines)
    if not chosen:
        raise SystemExit(f"corpus_view: no utterance of {src} has language {language!r}* and "
                         f"engine in {sorted(engines) or 'any'}")
    link = dst / "utts"
    if dst.exists() and not (link.is_symlink() and
                             link.resolve() == (src / "utts").resolve()):
        raise SystemExit(f"corpus_view: {dst} exists and is not a view of {src}: choose "
                         f"another folder")
    dst.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        os.symlink(os.path.relpath((src / "utts").resolve(), dst.resolve()), link)
    (dst / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chosen))
    hours = sum(float(r.get("duration_s", 0.0)) for r in chosen) / 3600
    (dst / "corpus.json").write_text(json.dumps({
        "view_of": str(src), "language": language, "engines": sorted(engines),
        "utterances": len(chosen), "hours": round(hours, 2)}, indent=2) + "\n")
    return len(chosen)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, help="corpus folder (from streamtalker make-dataset)")
    ap.add_argument("dst", type=Path, help="the view's folder (new, or a view of SRC)")
    ap.add_argument("--language", default="", help="language code prefix, e.g. en")
    ap.add_argument("--engines", default="", help="comma-separated, e.g. piper,festival")
    a = ap.parse_args(argv)
    engines = {e.strip() for e in a.engines.split(",") if e.strip()}
    n = make_view(a.src, a.dst, a.language, engines)
    print(f"{a.dst}: {n} utterances of {a.src}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
