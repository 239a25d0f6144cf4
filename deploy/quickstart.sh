#!/usr/bin/env bash
# Install egresswatch on this box with the embedded defaults and run it:
#   /opt/egresswatch (virtualenv), /etc/egresswatch/egresswatch.toml (default config, kept if present),
#   /etc/egresswatch/policy.yaml (the default policy, kept if present),
#   /var/lib/egresswatch/egresswatch.db (SQLite, migrated to the newest schema).
# Capture files given as arguments are replayed into the database and the newest flows shown;
# without any, it runs the daemon in the foreground (`egresswatch run`: live capture on the Docker
# bridges and uplinks, and the REST API on 127.0.0.1:8787; Ctrl-C writes out every flow and stops).
# Idempotent: run it again after `git pull` to upgrade.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
prefix=/opt/egresswatch

if [ "$(id -u)" -ne 0 ]; then
    echo "quickstart: run as root (it installs to $prefix and /etc/egresswatch)" >&2
    exit 2
fi
for f in "$@"; do
    [ -r "$f" ] || { echo "quickstart: cannot read capture file $f" >&2; exit 2; }
done

missing() {
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}
export DEBIAN_FRONTEND=noninteractive
need=($(missing python3 python3-venv))
# clang, libbpf-dev and bpftool build the eBPF probe that names each flow's process; libbpf1
# loads it. Without them (an older release has no libbpf1) egresswatch runs, and finds
# processes through /proc instead: not a reason to stop.
probe=($(missing clang libbpf-dev libbpf1 bpftool))
if [ "${#need[@]}" -gt 0 ] || [ "${#probe[@]}" -gt 0 ]; then
    apt-get update -qq
fi
if [ "${#need[@]}" -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ "${#probe[@]}" -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${probe[@]}" >/dev/null ||
        echo "quickstart: could not install ${probe[*]}: processes found through /proc instead" >&2
fi

(cd "$repo" && python3 -m egresswatch.attribution.build) ||
    echo "quickstart: no eBPF probe (see the line above): processes found through /proc instead" >&2
[ -x "$prefix/bin/python" ] || python3 -m venv "$prefix"
"$prefix/bin/pip" install -q --disable-pip-version-check "$repo"
ln -sf "$prefix/bin/egresswatch" /usr/local/bin/egresswatch

install -d -m 0755 /etc/egresswatch
[ -e /etc/egresswatch/egresswatch.toml ] || install -m 0644 "$repo/deploy/egresswatch.toml" /etc/egresswatch/egresswatch.toml
[ -e /etc/egresswatch/policy.yaml ] || install -m 0644 "$repo/egresswatch/policy/default.yaml" /etc/egresswatch/policy.yaml
egresswatch policy check
install -d -m 0750 /var/lib/egresswatch

egresswatch db upgrade
egresswatch geoip status
if [ "$#" -eq 0 ]; then
    echo "quickstart: capturing live; see the flows from another shell with: egresswatch flows"
    echo "quickstart: or ask the API: curl -s 127.0.0.1:8787/api/v1/destinations; curl -s 127.0.0.1:8787/readyz"
    exec egresswatch run --listen 127.0.0.1:8787
fi
for f in "$@"; do
    egresswatch replay "$f"
done
egresswatch flows --limit 20
