#!/usr/bin/env bash
# Set up everything the tests need (tools/setup.sh: environments, real inputs and the wheel
# cache the extension zips are built from), then run the test suite on every tested Blender:
#   1. .venv (Blender 5.0, bpy 5.0.1): pytest "$@" (default: all tests, the bpy-free ones and
#      tests/blender);
#   2. each .venv-blender-X that set-up made (4.5 LTS, 5.2 LTS): the Blender tests,
#      tests/blender, again (one after the other: the machine has 2 cores). An environment
#      without torch (5.2's, like an installed extension) cannot train the test checkpoints:
#      they are built once in .venv (tests/toy.py, with their ONNX exports) into a temporary
#      folder named by $STREAMTALKER_TEST_CHECKPOINTS.
# STREAMTALKER_BLENDERS="4.5" (or "") picks the extra Blenders. Exits non-zero when any run
# failed, after running them all.
# Every test runs here, the slow tier included (`pytest -m "not slow"` is the quick one for
# working); the test checkpoints come from the cache tests/toy.py keeps (keyed by sources).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh

status=0
summary=()
run() {  # run LABEL PYTHON ARGS...
  local label=$1 py=$2 t0 rc=0
  shift 2
  echo "=== $label: $("$py" -c 'import bpy; print("Blender", bpy.app.version_string)' 2>/dev/null)"
  t0=$(date +%s)
  "$py" -m pytest -q -rs "$@" || rc=$?
  summary+=("$label: exit $rc in $(( $(date +%s) - t0 )) s")
  [ "$rc" -eq 0 ] || status=1
}

prebuilt=""
trap '[ -z "$prebuilt" ] || rm -rf "$prebuilt"' EXIT
run "all tests, Blender 5.0 (.venv)" .venv/bin/python "$@"
for ver in ${STREAMTALKER_BLENDERS-4.5 5.2}; do
  py=".venv-blender-$ver/bin/python"
  if [ -z "$prebuilt" ] && ! "$py" -c 'import torch' >/dev/null 2>&1; then
    prebuilt=$(mktemp -d)
    export STREAMTALKER_TEST_CHECKPOINTS="$prebuilt/checkpoints"
    if ! .venv/bin/python tests/toy.py "$STREAMTALKER_TEST_CHECKPOINTS"; then
      summary+=("test checkpoints for environments without torch: build failed")
      status=1     # (the runs below fail, naming the command)
    fi
  fi
  run "tests/blender, Blender $ver (.venv-blender-$ver)" "$py" tests/blender
done
printf '%s\n' "${summary[@]}"
exit $status
