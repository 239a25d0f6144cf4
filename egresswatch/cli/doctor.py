"""``egresswatch doctor``: checks what the daemon needs on this box and says what to fix.

Capabilities, BTF and the eBPF probe, the Docker API, the interfaces it would capture, the GeoIP
databases, the database, the policy; the webhooks only with ``--webhooks`` (that posts a test
message to each). Exit 0 when nothing failed (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from egresswatch.config import Settings

# Capability bits (linux/capability.h) the capture daemon uses, and what is lost without each.
CAPABILITIES = {
    13: ("CAP_NET_RAW", "nothing can be captured"),
    12: ("CAP_NET_ADMIN", "no conntrack, no promiscuous bridges, no eBPF probe"),
    39: ("CAP_BPF", "no eBPF probe"),
    38: ("CAP_PERFMON", "no eBPF probe"),
    19: ("CAP_SYS_PTRACE", "no executable paths for other users' processes"),
}
Check = tuple[str, str, str]
"""(``ok``, ``warn`` or ``fail``, what was checked, what was found or what to do)."""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("doctor", parents=[common], help="check this box and say what to fix")
    parser.add_argument("--webhooks", action="store_true",
                        help="also post a test message to every configured webhook")  # fmt: skip
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, load: Callable[[], Settings]) -> int:
    settings = load()
    checks: list[Check] = [
        *capabilities(Path("/proc/self/status")),
        probe(),
        docker(settings),
        interfaces(settings),
        geoip(settings),
        database(settings),
        policy(settings),
    ]
    if args.webhooks:
        checks += webhooks(settings)
    for level, what, detail in checks:
        print(f"{ {'ok': 'ok  ', 'warn': 'WARN', 'fail': 'FAIL'}[level] } {what}: {detail}")
    failed = sum(level == "fail" for level, _, _ in checks)
    print(f"{failed} problem(s)" if failed else "no problems found")
    return 1 if failed else 0


def capabilities(status: Path) -> list[Check]:
    effective = next(
        int(line.split()[1], 16) for line in status.read_text().splitlines()
        if line.startswith("CapEff:")
    )  # fmt: skip
    found = []
    for bit, (name, lost) in CAPABILITIES.items():
        held = bool(effective >> bit & 1)
        level = "ok" if held else ("fail" if name == "CAP_NET_RAW" else "warn")
        found.append((level, name, "held" if held else f"missing: {lost} (docs/deploy.md)"))
    return found


def probe() -> Check:
    from egresswatch.attribution.kernel import OBJECT, ConnectProbe, ProbeError  # noqa: PLC0415

    if not Path("/sys/kernel/btf/vmlinux").exists():
        return "warn", "eBPF probe", "this kernel has no BTF: processes come from sock_diag"
    try:
        ConnectProbe(OBJECT).close()
    except (ProbeError, OSError, AttributeError) as exc:
        return "warn", "eBPF probe", f"{exc}: processes come from sock_diag"
    return "ok", "eBPF probe", f"{OBJECT} loads and attaches"


def docker(settings: Settings) -> Check:
    from egresswatch.dockerapi import DockerApi, DockerApiError  # noqa: PLC0415

    path = settings.capture.docker_socket
    if not path.exists():
        return "warn", "Docker", f"no socket at {path}: flows not attributed to containers"
    try:
        running = len(DockerApi(path).get("/containers/json") or [])
    except DockerApiError as exc:
        return "warn", "Docker", f"{exc} (is this user in the docker group?)"
    return "ok", "Docker", f"the API at {path} answers; {running} container(s) running"


def interfaces(settings: Settings) -> Check:
    from egresswatch.capture.interfaces import InterfaceFinder  # noqa: PLC0415

    c = settings.capture
    named = list(c.interfaces) or list(InterfaceFinder(docker_socket=c.docker_socket).find())
    if not named:
        return "fail", "interfaces", "none found: no Docker bridge, no default route (--interface)"
    missing = [n for n in named if not Path(f"/sys/class/net/{n}").exists()]
    if missing:
        return "fail", "interfaces", f"{', '.join(missing)} do not exist"
    return "ok", "interfaces", ", ".join(named)


def geoip(settings: Settings) -> Check:
    from egresswatch.geo.resolver import GeoResolver  # noqa: PLC0415

    resolver = GeoResolver(settings.geoip.paths)
    try:
        found = [db.database_type for db in resolver.databases]
    finally:
        resolver.close()
    if not found:
        return "warn", "GeoIP", "no database: no countries (docs/geoip.md)"
    return "ok", "GeoIP", ", ".join(found)


def database(settings: Settings) -> Check:
    from egresswatch.errors import StoreError  # noqa: PLC0415
    from egresswatch.store import Database  # noqa: PLC0415
    from egresswatch.store.migrate import HEAD  # noqa: PLC0415

    try:
        db = Database(settings.db)
        try:
            revision = db.revision()
        finally:
            db.close()
    except StoreError as exc:
        return "fail", "database", str(exc)
    if revision != HEAD:
        return "fail", "database", f"at {revision or 'no schema'}: run egresswatch db upgrade"
    return "ok", "database", f"{db} at the newest schema ({HEAD})"


def policy(settings: Settings) -> Check:
    from egresswatch.errors import EgressWatchError  # noqa: PLC0415
    from egresswatch.policy.load import policy_in_force  # noqa: PLC0415

    try:
        _, path = policy_in_force(settings.policy.path)
    except EgressWatchError as exc:
        return "fail", "policy", str(exc)
    return "ok", "policy", str(path)


def webhooks(settings: Settings) -> list[Check]:
    """Post a test message to each webhook (Slack: a text; JSON: a signed test object)."""
    import json  # noqa: PLC0415
    import socket  # noqa: PLC0415

    from egresswatch.notify.courier import DeliveryError, http_post, targets_from  # noqa: PLC0415
    from egresswatch.notify.message import signature  # noqa: PLC0415

    found: list[Check] = []
    text = f"egresswatch doctor on {socket.gethostname()}: a test message, no alert"
    for i, target in enumerate(targets_from(settings)):
        headers = {"Content-Type": "application/json", "User-Agent": "egresswatch"}
        if target.kind == "slack":
            body = json.dumps({"text": text}).encode()
        else:
            body = json.dumps({"test": True, "summary": text}).encode()
            if target.secret is not None:
                headers["X-Egresswatch-Signature"] = signature(
                    target.secret.get_secret_value(), body
                )
        try:
            http_post(target.url.get_secret_value(), body, headers)
        except DeliveryError as exc:
            found.append(("fail", f"webhook {i} ({target.kind})", str(exc)))
        else:
            found.append(("ok", f"webhook {i} ({target.kind})", "took the test message"))
    return found or [("warn", "webhooks", "none configured: alerts are stored only")]
