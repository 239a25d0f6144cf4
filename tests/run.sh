#!/usr/bin/env bash
# Run every test: installs what the tests need (Debian packages, a virtualenv with egresswatch and
# its test tools), checks lint and types, then runs pytest. As root: tests start PostgreSQL and
# dockerd (when not running) and build network namespaces. Extra arguments go to pytest (e.g. tests/run.sh -k conformance).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh: run as root (the tests start PostgreSQL and create network namespaces)" >&2
    exit 2
fi

packages=(python3 python3-venv python3-dev tshark tcpdump postgresql iproute2 libcap2-bin
          docker.io busybox-static dnsmasq-base clang libbpf-dev libbpf1 bpftool systemd
          debootstrap docker-compose)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

.venv/bin/python -m egresswatch.attribution.build  # the eBPF probe, as the quickstart builds it
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; exec .venv/bin/pytest "$@"
