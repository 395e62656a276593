#!/usr/bin/env bash
# Set up (tools/setup.sh), then animate a real LibriVox clip with the bundled default model:
# writes out/demo.csv (Live Link Face layout) and out/demo.npz, and prints the timing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
mkdir -p out
clip=inputs/speech/librivox/sense_and_sensibility_01_austen_64kb-0870.wav
stamp=$(date +%Y%m%d-%H%M%S)
.venv/bin/streamtalker generate "$clip" -o "out/demo-$stamp.csv"
.venv/bin/streamtalker generate "$clip" -o "out/demo-$stamp.npz"
.venv/bin/python - "$clip" "out/demo-$stamp.npz" <<'PY'
import sys
import numpy as np
from model_core.arkit import ARKIT_52
z = np.load(sys.argv[2])
w = z["weights"]
jaw = w[:, ARKIT_52.index("jawOpen")]
blink = w[:, [ARKIT_52.index("eyeBlinkLeft"), ARKIT_52.index("eyeBlinkRight")]].mean(1)
print(f"demo: {sys.argv[1]} -> {sys.argv[2]}: {len(w)} frames at {float(z['fps']):g} fps; "
      f"jawOpen mean {jaw.mean():.2f}, max {jaw.max():.2f}; frames with eyes closed > 0.5: {(blink > 0.5).sum()}")
PY
