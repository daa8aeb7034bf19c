#!/usr/bin/env bash
# Installs the system packages the test suite and benchmarks drive as real peers,
# when they are missing. Safe to run again: it installs nothing already there.
# Usage: scripts/deps.sh [test|bench]
set -euo pipefail

need=(gcc:gcc sqlite3:sqlite3 sipp:sip-tester baresip:baresip espeak-ng:espeak-ng sox:sox chromium:chromium)
case "${1:-test}" in
  test) ;;
  bench) need+=(bc:bc curl:curl) ;;
  *) echo "usage: $0 [test|bench]" >&2; exit 2 ;;
esac

missing=()
for pair in "${need[@]}"; do
  cmd=${pair%%:*} pkg=${pair##*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
for pair in "${need[@]}"; do
  cmd=${pair%%:*}
  command -v "$cmd" >/dev/null 2>&1 || { echo "deps: $cmd still missing after install" >&2; exit 1; }
done
