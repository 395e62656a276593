#!/usr/bin/env bash
# Add Debian's contrib and non-free sections to the apt sources (the MBROLA voices, made
# from recordings of people, are packaged there: mbrola-XX). Idempotent; touches only the
# Debian sources (deb822 *.sources files or sources.list lines of deb.debian.org).
set -euo pipefail
changed=0
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  grep -q 'debian.org/debian' "$f" || continue
  if grep -Eq '^Components:.*\bmain\b' "$f" && ! grep -Eq '^Components:.*\bnon-free\b' "$f"; then
    sed -i -E '/^Components:/{/non-free/!s/\bmain\b/main contrib non-free/}' "$f"
    changed=1
  fi
done
if [ -f /etc/apt/sources.list ] && grep -Eq '^deb .*debian.org/debian.* main' /etc/apt/sources.list \
   && ! grep -Eq '^deb .*debian.org/debian.* non-free' /etc/apt/sources.list; then
  sed -i -E '/^deb .*debian.org\/debian/{/non-free/!s/ main( |$)/ main contrib non-free\1/}' /etc/apt/sources.list
  changed=1
fi
[ "$changed" -eq 0 ] || echo "enable_nonfree: added contrib non-free to the Debian apt sources"
