#!/bin/sh
# Gets a fresh Debian / Raspberry Pi OS machine (Node 20 present) ready to run ferry's demo or tests:
# the Debian packages the simulator and tests need, the npm packages from the lock file, and a build.
# Idempotent and quick when everything is already there. Usage: bootstrap.sh demo|test
set -eu
cd "$(dirname "$0")/.."
want="socat"
[ "${1:-demo}" = "test" ] && want="socat mosquitto openssl"
missing=""
for cmd in $want; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing="$missing $cmd"
done
if [ -n "$missing" ]; then
  echo "ferry: installing Debian packages:$missing" >&2
  sudo=""
  [ "$(id -u)" = "0" ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq $missing >&2
fi
# npm ci when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund >&2
fi
npx tsc -p tsconfig.json >&2
