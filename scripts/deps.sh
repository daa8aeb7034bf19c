#!/usr/bin/env bash
# Installs the system packages Turbina needs, when they are missing. Safe to run
# again: it installs nothing already there.
#   build: a C compiler and the libraries cgo links (SQLite is built in; libopus for
#          Opus transcoding)
#   test:  build, plus the real peers the tests drive (sipp, baresip, kamailio,
#          chromium, iproute2 for the network namespaces of the link-cut drills,
#          espeak-ng and sox for speech, sqlite3, postgresql: the storage tests start
#          a throwaway PostgreSQL server)
#   bench: test, plus what the benchmark scripts use
# Usage: scripts/deps.sh [build|test|bench]
set -euo pipefail

commands=(gcc:gcc pkg-config:pkg-config)
packages=(libopus-dev)
case "${1:-test}" in
  build) ;;
  test) commands+=(ip:iproute2 sqlite3:sqlite3 sipp:sip-tester baresip:baresip kamailio:kamailio espeak-ng:espeak-ng sox:sox chromium:chromium)
    packages+=(postgresql) ;;
  bench) commands+=(ip:iproute2 sqlite3:sqlite3 sipp:sip-tester baresip:baresip kamailio:kamailio espeak-ng:espeak-ng sox:sox chromium:chromium bc:bc curl:curl)
    packages+=(postgresql) ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=()
for pair in "${commands[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
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
for pair in "${commands[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || { echo "deps: ${pair%%:*} still missing after install" >&2; exit 1; }
done
pkg-config --exists opus || { echo "deps: libopus still missing after install" >&2; exit 1; }
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || { echo "deps: $pkg still missing after install" >&2; exit 1; }
done
