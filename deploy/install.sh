#!/usr/bin/env bash
# Install egresswatch as a systemd service (docs/deploy.md), or remove it. As root:
#   bash deploy/install.sh                 install or upgrade; enable and start both units
#   bash deploy/install.sh --no-start      lay everything down, start nothing
#   bash deploy/install.sh --uninstall     stop and remove the units and the program; the
#                                          config (/etc/egresswatch) and data (/var/lib/egresswatch) stay
#   bash deploy/install.sh --uninstall --purge   ... and remove those and the user too
# Lays down: /opt/egresswatch (virtualenv, eBPF probe included; docs in share/egresswatch/docs),
# /usr/local/bin/egresswatch, /etc/egresswatch/{egresswatch.toml,policy.yaml} (kept if present),
# the system user egresswatch (in the docker group when there is one), /var/lib/egresswatch
# (the user's, 0750) with the database migrated, and /etc/systemd/system/egresswatch.service and
# egresswatch-api.service. Idempotent: run it again after `git pull` to upgrade.
# (deploy/quickstart.sh runs the same steps with --files-only, then the daemon in the foreground.)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
prefix=/opt/egresswatch
units=/etc/systemd/system
user=egresswatch
state=/var/lib/egresswatch

mode=install start=1 purge=0
for arg in "$@"; do
    case "$arg" in
        --no-start) start=0 ;;
        --files-only) mode=files ;;
        --uninstall) mode=uninstall ;;
        --purge) purge=1 ;;
        *) echo "install.sh: unknown option $arg (see the comment at the top)" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (it installs to $prefix, /etc and $units)" >&2
    exit 2
fi
systemd_runs() { [ -d /run/systemd/system ]; }
say() { echo "install.sh: $*"; }

missing() {
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

install_files() {
    export DEBIAN_FRONTEND=noninteractive
    local need probe
    need=($(missing python3 python3-venv))
    # clang, libbpf-dev and bpftool build the eBPF probe that names each flow's process; libbpf1
    # loads it. Without them (an older release has no libbpf1) egresswatch runs, and finds
    # processes through sock_diag instead: not a reason to stop.
    probe=($(missing clang libbpf-dev libbpf1 bpftool))
    if [ "${#need[@]}" -gt 0 ] || [ "${#probe[@]}" -gt 0 ]; then
        apt-get update -qq
    fi
    if [ "${#need[@]}" -gt 0 ]; then
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    if [ "${#probe[@]}" -gt 0 ]; then
        apt-get install -y -qq --no-install-recommends "${probe[@]}" >/dev/null ||
            say "could not install ${probe[*]}: processes found through sock_diag instead" >&2
    fi
    (cd "$repo" && python3 -m egresswatch.attribution.build) ||
        say "no eBPF probe (see the line above): processes found through sock_diag instead" >&2
    [ -x "$prefix/bin/python" ] || python3 -m venv "$prefix"
    "$prefix/bin/pip" install -q --disable-pip-version-check "$repo"
    ln -sf "$prefix/bin/egresswatch" /usr/local/bin/egresswatch
    install -d -m 0755 "$prefix/share/egresswatch/docs"
    install -m 0644 "$repo"/docs/*.md "$prefix/share/egresswatch/docs/"

    install -d -m 0755 /etc/egresswatch
    # 0640: the config may hold webhook URLs and API token hashes (the service's group reads it).
    [ -e /etc/egresswatch/egresswatch.toml ] ||
        install -m 0640 "$repo/deploy/egresswatch.toml" /etc/egresswatch/egresswatch.toml
    [ -e /etc/egresswatch/policy.yaml ] ||
        install -m 0644 "$repo/egresswatch/policy/default.yaml" /etc/egresswatch/policy.yaml
    egresswatch policy check
}

install_service() {
    if ! id "$user" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir "$state" --shell /usr/sbin/nologin "$user"
        say "created the system user $user"
    fi
    # Docker's API socket is root:docker 0660. Its group is root-equivalent (the API can start
    # privileged containers); egresswatch only reads from it (docs/deploy.md).
    if getent group docker >/dev/null; then
        usermod -a -G docker "$user"
    else
        say "no docker group (Docker not installed yet?): run this again after installing Docker"
    fi
    chgrp "$user" /etc/egresswatch/egresswatch.toml
    chmod g+r,o-rwx /etc/egresswatch/egresswatch.toml
    install -d -m 0750 -o "$user" -g "$user" "$state"
    chown -R "$user:$user" "$state"  # a database the quickstart made as root, too
    runuser -u "$user" -- "$prefix/bin/egresswatch" db upgrade --config /etc/egresswatch/egresswatch.toml
    install -m 0644 "$repo/deploy/systemd/egresswatch.service" "$units/egresswatch.service"
    install -m 0644 "$repo/deploy/systemd/egresswatch-api.service" "$units/egresswatch-api.service"
    if ! systemd_runs; then
        say "systemd is not running here: the units start at the next boot once enabled"
        say "  (systemctl enable egresswatch.service egresswatch-api.service)"
    elif [ "$start" -eq 1 ]; then
        systemctl daemon-reload
        systemctl enable egresswatch.service egresswatch-api.service
        systemctl restart egresswatch.service egresswatch-api.service
        say "running: systemctl status egresswatch; journalctl -u egresswatch -f"
    else
        systemctl daemon-reload
        say "installed, not started: systemctl enable --now egresswatch egresswatch-api"
    fi
}

uninstall() {
    if systemd_runs; then
        systemctl disable --now egresswatch.service egresswatch-api.service 2>/dev/null || true
    fi
    rm -f "$units/egresswatch.service" "$units/egresswatch-api.service"
    if systemd_runs; then
        systemctl daemon-reload
    fi
    if [ "$(readlink /usr/local/bin/egresswatch || true)" = "$prefix/bin/egresswatch" ]; then
        rm -f /usr/local/bin/egresswatch
    fi
    rm -rf "$prefix"
    if [ "$purge" -eq 1 ]; then
        rm -rf /etc/egresswatch "$state"
        if id "$user" >/dev/null 2>&1; then
            userdel "$user"
        fi
        say "removed egresswatch, its configuration, its data and its user"
    else
        say "removed egresswatch; kept /etc/egresswatch and $state (--purge removes them)"
    fi
}

case "$mode" in
    uninstall) uninstall ;;
    files) install_files ;;
    install) install_files; install_service ;;
esac
