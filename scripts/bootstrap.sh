#!/bin/sh
# Gets a fresh Debian / Raspberry Pi OS machine (Node 20 present) ready to run ferry's demo or tests:
# the Debian packages the simulator and tests need, the npm packages from the lock file, and a build.
# Idempotent and quick when everything is already there. Usage: bootstrap.sh demo|test
set -eu
cd "$(dirname "$0")/.."
# command:package pairs; a command is looked for on PATH and in /usr/sbin and /sbin (outside a
# normal user's PATH on Debian: mosquitto, nft, ip).
want="socat:socat"
# tinyproxy: the real forward proxy of the long-poll proxy tests; nft and ip: the network-namespace
# firewall tests (issue 11); chromium: the status page's browser test (playwright-core drives /usr/bin/chromium).
[ "${1:-demo}" = "test" ] && want="socat:socat mosquitto:mosquitto openssl:openssl tinyproxy:tinyproxy nft:nftables ip:iproute2 chromium:chromium"
missing=""
for pair in $want; do
  cmd="${pair%%:*}"
  pkg="${pair#*:}"
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || [ -x "/sbin/$cmd" ] || missing="$missing $pkg"
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
