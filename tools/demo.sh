#!/usr/bin/env bash
# Set up (tools/setup.sh), then the demo on real input with the bundled default model:
#  1. the command line: a real LibriVox clip -> out/demo-<time>.csv (Live Link Face layout);
#  2. Blender (headless, the bpy module): the Face Cap head + the clip as a sound strip, the
#     add-on's Generate Lip Sync -> out/demo.blend, out/demo-contact.png (rendered frames),
#     out/demo-curves.png, out/demo.mp4 (with ffmpeg), and a printed timing summary;
#  3. a second clip in French (the MBROLA voice fr3, never trained on): out/demo-fr-*.
# Existing files are never overwritten (the next run writes demo-2.*, ...).
# Extra arguments go to tools/demo.py (e.g. --engine CYCLES, --no-video, --clip X.wav,
# --rig oculus|vrm|mmd: the head turned into a viseme or vowel rig, tools/rig_heads.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
mkdir -p out
clip=inputs/speech/librivox/sense_and_sensibility_01_austen_64kb-0870.wav
stamp=$(date +%Y%m%d-%H%M%S)
rig=arkit   # --rig oculus|vrm|mmd: a viseme or vowel head (columns named as the rig names them)
prev=""
for a in "$@"; do
  [ "$prev" = "--rig" ] && rig=$a
  case $a in --rig=*) rig=${a#--rig=} ;; esac
  prev=$a
done
if [ "$rig" = arkit ]; then
  echo "demo: streamtalker generate $clip -o out/demo-$stamp.csv"
  .venv/bin/streamtalker generate "$clip" -o "out/demo-$stamp.csv"
else
  echo "demo: streamtalker generate $clip --rig $rig -o out/demo-$rig-$stamp.json"
  .venv/bin/streamtalker generate "$clip" --rig "$rig" -o "out/demo-$rig-$stamp.json"
fi
echo "demo: Blender (headless): Face Cap head + sound strip -> Generate Lip Sync -> render"
# (Blender's per-frame render chatter is filtered out; errors are not)
set +e
.venv/bin/python tools/demo.py --clip "$clip" --out out "$@" 2>&1 \
  | grep --line-buffered -v -E '^(Fra:|Saved: |Time: |EGL Error|[0-9:]+ \| INFO: |Info: Saved|[0-9:.]+ +render +\| )'
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || exit "$rc"
# A second clip in another language: French spoken by the MBROLA voice fr3 (recorded from a
# person; a voice the model never trained on), with exact IPA phone timing
echo "demo: a second clip in French (MBROLA voice fr3) -> out/demo-fr*"
.venv/bin/python tools/demo.py --out out --name demo-fr --no-video --voice fr3 \
  --say "Une tortue têtue mange du beurre, puis elle boit un peu de bon vin au bord du mur." \
  2>&1 | grep --line-buffered -v -E '^(Fra:|Saved: |Time: |EGL Error|[0-9:]+ \| INFO: |Info: Saved|[0-9:.]+ +render +\| )'
exit "${PIPESTATUS[0]}"
