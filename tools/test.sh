#!/usr/bin/env bash
# Set up everything the tests need on a Debian machine, then run them.
# Usage: bash tools/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES="gcc libc6-dev vde2 vdeplug iproute2 tshark iperf3 qemu-system-x86 ipxe-qemu radvd socat ethtool procps iputils-ping dnsmasq-base iputils-arping"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=""
  for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi
python3 -m pip install -q -e '.[test,plot]'
python3 -m ruff check .
python3 -m pytest -q "$@"
