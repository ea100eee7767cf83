#!/usr/bin/env bash
# Makes a Chromium for the viewer's browser tests available and prints its path on stdout.
#
#   CHROMIUM=$(.ci/chromium.sh)
#
# `playwright install` cannot download browsers on CI machines (only npm and Debian are reachable),
# so we take Debian's chromium and hand its path to playwright-core's `executablePath`.
# The printed path is the real binary (/usr/lib/chromium/chromium) when it exists: the
# /usr/bin/chromium wrapper script works too but prints a harmless warning on every launch.
# Idempotent: when chromium is installed it only prints the path.
set -euo pipefail

log() { printf '[chromium.sh] %s\n' "$*" >&2; }
t0=$(date +%s.%N)

if [ ! -x /usr/bin/chromium ]; then
  [ "$(id -u)" = 0 ] || { log "error: /usr/bin/chromium is missing and installing it needs root"; exit 1; }
  log "installing Debian's chromium (about 1.5 min)"
  # A fresh machine has no package lists yet: retry once after `apt-get update`.
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2; then
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2
  fi
fi

bin=/usr/bin/chromium
[ -x /usr/lib/chromium/chromium ] && bin=/usr/lib/chromium/chromium
version=$("$bin" --version 2>/dev/null | sed 's/ *$//') || version="chromium (version unknown)"
log "$version at $bin," \
  "took $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }')"
echo "$bin"
