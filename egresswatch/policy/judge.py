"""Judging flows against the policy: pure (records in, alerts out), no clock, no I/O.

Each flow is judged once against the lists, at its first record (an interim one, for a long
flow: a forbidden connection is reported while it runs); the upload threshold is checked on
every record until it is crossed.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

from egresswatch.attribution.containers import Container
from egresswatch.flows.record import Direction, FlowRecord
from egresswatch.names.passive_dns import DnsAnswer
from egresswatch.policy.alert import Alert, alert_uid
from egresswatch.policy.beacons import BeaconWatch
from egresswatch.policy.model import Destination, Match, Policy, Scope
from egresswatch.policy.tunnels import TunnelWatch, base_domain

Labels = Callable[[str], dict[str, str]]
"""container id -> its labels (from Docker; {} when unknown)."""
_REMEMBERED = 262_144  # flows judged (as many as the flow table holds): not judged again


class PolicyJudge:
    """``known``: the (source, destination) pairs reached before (from the database), and
    ``learning_since`` the oldest of them (None: learning starts with the first flow)."""

    def __init__(
        self,
        policy: Policy,
        labels: Labels = lambda _: {},
        *,
        known: set[tuple[str, str]] | None = None,
        learning_since: float | None = None,
    ) -> None:
        self.policy = policy
        self._labels = labels
        self._judged: OrderedDict[str, bool] = OrderedDict()
        """flow uid -> whether its upload alert was raised already."""
        self._known = known if known is not None else set()
        self._learning_since = learning_since
        self._discovered: list[tuple[str, str, float]] = []
        self._beacons = BeaconWatch()
        self._sent: dict[str, int] = {}
        """flow uid -> bytes out already counted for its source (interim records repeat)."""
        self._by_source: dict[str, tuple[deque[tuple[float, int]], list[int]]] = {}
        """source -> (its recent (time, bytes) and their running total)."""
        self._source_alerted: dict[str, float] = {}
        self._tunnels = TunnelWatch()

    def take_discovered(self) -> list[tuple[str, str, float]]:
        """(source, destination, first seen) pairs first reached since the last call: for the
        database, so a restart remembers them."""
        out, self._discovered = self._discovered, []
        return out

    def judge(self, records: Iterable[FlowRecord]) -> list[Alert]:
        alerts: list[Alert] = []
        for r in records:
            if r.direction is not Direction.EGRESS:
                continue
            seen = self._judged.get(r.uid)
            if seen is None:
                alerts += self._lists(r)
                alerts += self._dns(r)
                alerts += self._raw_ip(r)
                alerts += self._first_seen(r)
                alerts += self._beaconing(r)
                seen = False
            if not seen:
                upload = self._upload(r)
                if upload is not None:
                    alerts.append(upload)
                    seen = True
            alerts += self._source_upload(r)
            self._remember(r, seen)
        return alerts

    def judge_dns(self, answers: Iterable[DnsAnswer]) -> list[Alert]:
        """DNS responses, for tunnelling (they are judged apart from flows)."""
        d = self.policy.detections.dns_tunnel
        if d is None:
            return []
        alerts = []
        for a in answers:
            sign = self._tunnels.question(a.client, a.query, a.qtype, a.time, d)
            if sign is None:
                continue
            domain = base_domain(a.query)
            rule = "dns tunnel"
            key = f"{rule}|{a.client}|{domain}"
            summary = (
                f"{a.client} -> DNS under {domain}: {rule}; {sign.unique} unique names, longest "
                f"labels {sign.mean_label:.0f} characters, {sign.mean_entropy:.1f} bits/character, "
                f"{sign.data_share:.0%} TXT/NULL questions"
            )
            alerts.append(Alert(uid=alert_uid(key, a.uid), time=a.time, rule=rule,
                                severity=d.severity, summary=summary, dedup_key=key, flow=None,
                                source=a.client, destination=domain))  # fmt: skip
        return alerts

    def image_changed(self, container: Container, before: str, at: float) -> list[Alert]:
        """A container recreated under its name from another image."""
        d = self.policy.detections.image_change
        if d is None:
            return []
        rule = "image changed"
        key = f"{rule}|{container.name}|{container.image_id}"
        summary = (f"container {container.name} ({container.image}) now runs image "
                   f"{container.image_id[:19]}, not {before[:19]}: {rule}")  # fmt: skip
        return [Alert(uid=alert_uid(key, container.id), time=at, rule=rule, severity=d.severity,
                      summary=summary, dedup_key=key, flow=None, source=container.name,
                      destination=container.image, container=container.name)]  # fmt: skip

    def _remember(self, r: FlowRecord, upload_raised: bool) -> None:
        if r.closed:
            self._judged.pop(r.uid, None)
            return
        self._judged[r.uid] = upload_raised
        self._judged.move_to_end(r.uid)
        if len(self._judged) > _REMEMBERED:
            self._judged.popitem(last=False)

    def _lists(self, r: FlowRecord) -> list[Alert]:
        scope = next((s for s in self.policy.scopes if self._covers(s.match, r)), None)
        if scope is None:
            return []
        denied = next((d for d in scope.deny if _reaches(d, r)), None)
        if denied is not None:
            return [self._alert(r, scope, f"{scope.name}: denied destination", scope.severity)]
        if any(_reaches(a, r) for a in scope.allow) or scope.default == "allow":
            return []
        return [self._alert(r, scope, f"{scope.name}: not allowed", scope.severity)]

    def _upload(self, r: FlowRecord) -> Alert | None:
        upload = self.policy.detections.upload
        if upload is None or r.bytes_out <= upload.max_bytes_per_flow:
            return None
        return self._alert(r, None, "upload", upload.severity,
                           f"sent {r.bytes_out / 1e6:,.1f} MB, over the policy's "
                           f"{upload.max_bytes_per_flow / 1e6:,.1f} MB per flow")  # fmt: skip

    def _first_seen(self, r: FlowRecord) -> list[Alert]:
        pair = (_source(r)[:255], (r.server_name or r.dst_ip)[:255])  # the columns' width
        if pair in self._known:
            return []
        self._known.add(pair)
        self._discovered.append((*pair, r.first_seen))
        if self._learning_since is None:
            self._learning_since = r.first_seen
        d = self.policy.detections.first_seen
        if d is None or r.first_seen < self._learning_since + d.learning_hours * 3600:
            return []
        return [self._alert(r, None, "first-seen destination", d.severity,
                            f"{pair[0]} never reached {pair[1]} before")]  # fmt: skip

    def _beaconing(self, r: FlowRecord) -> list[Alert]:
        d = self.policy.detections.beaconing
        if d is None or r.dst_port in d.ignore_ports:
            return []
        pair = (_source(r), r.server_name or r.dst_ip)
        beacon = self._beacons.connection(pair, r.first_seen, r.bytes_out, d)
        if beacon is None:
            return []
        timing, sizes, count = beacon
        why = (f"{count} connections at regular intervals (regularity {timing:.2f}) "
               f"with regular sizes ({sizes:.2f})")  # fmt: skip
        return [self._alert(r, None, "beaconing", d.severity, why)]

    def _dns(self, r: FlowRecord) -> list[Alert]:
        d = self.policy.detections.dns
        if d is None:
            return []
        if r.dst_port == 53 and d.resolvers:
            address = ipaddress.ip_address(r.dst_ip)
            if not any(address in ipaddress.ip_network(n, strict=False) for n in d.resolvers):
                return [self._alert(r, None, "dns: resolver not allowed", d.severity,
                                    "DNS to a resolver the policy does not list")]  # fmt: skip
        if d.encrypted and r.protocol == "tcp" and r.dst_port == 853:
            return [self._alert(r, None, "dns: DNS over TLS", d.severity,
                                "lookups hidden from the box's resolver")]  # fmt: skip
        if d.encrypted and r.protocol == "udp" and r.dst_port == 853:  # RFC 9250
            return [self._alert(r, None, "dns: DNS over QUIC", d.severity,
                                "lookups hidden from the box's resolver")]  # fmt: skip
        if d.encrypted and r.dst_port == 443 and _any_glob(d.doh_names, r.server_name):
            return [self._alert(r, None, "dns: DNS over HTTPS", d.severity,
                                "lookups hidden from the box's resolver")]  # fmt: skip
        return []

    def _raw_ip(self, r: FlowRecord) -> list[Alert]:
        d = self.policy.detections.raw_ip
        if d is None or r.protocol not in d.protocols or r.dst_port in d.ignore_ports:
            return []
        if r.server_name or r.dns_name:
            return []
        return [self._alert(r, None, "raw-ip", d.severity,
                            "no DNS answer, SNI or Host named this destination")]  # fmt: skip

    def _source_upload(self, r: FlowRecord) -> list[Alert]:
        d = self.policy.detections.upload
        if d is None or d.max_bytes_per_source is None:
            return []
        delta = r.bytes_out - self._sent.get(r.uid, 0)
        if r.closed:
            self._sent.pop(r.uid, None)
        else:
            self._sent[r.uid] = r.bytes_out
        source, now, window = _source(r), r.last_seen, d.window_minutes * 60
        sent = self._by_source.get(source)
        if sent is None:
            sent = self._by_source[source] = (deque(), [0])
        recent, total_box = sent
        recent.append((now, delta))
        total_box[0] += delta
        while recent and recent[0][0] < now - window:  # a running total: no re-summing
            total_box[0] -= recent.popleft()[1]
        total = total_box[0]
        if (
            total <= d.max_bytes_per_source
            or now - self._source_alerted.get(source, -1e18) < window
        ):
            return []
        self._source_alerted[source] = now
        why = (f"{source} sent {total / 1e6:,.1f} MB in {d.window_minutes:g} min, over the "
               f"policy's {d.max_bytes_per_source / 1e6:,.1f} MB")  # fmt: skip
        return [self._alert(r, None, "upload (source)", d.severity, why)]

    def _covers(self, m: Match, r: FlowRecord) -> bool:
        if m.host is not None and m.host != (r.container_id is None):
            return False
        if m.container_names and not _any_glob(m.container_names, r.container_name):
            return False
        if m.images and not _any_glob(m.images, r.image):
            return False
        if m.processes and not (_any_glob(m.processes, r.process) or _any_glob(m.processes, r.exe)):
            return False
        if m.container_labels:
            labels = self._labels(r.container_id) if r.container_id else {}
            for key, pattern in m.container_labels.items():
                if key not in labels or not fnmatch.fnmatchcase(labels[key], pattern):
                    return False
        return True

    def _alert(self, r: FlowRecord, scope: Scope | None, rule: str, severity: str,
               why: str = "") -> Alert:  # fmt: skip
        source = _source(r)
        destination = r.server_name or r.dst_ip
        key = f"{rule}|{source}|{destination}|{r.dst_port}"
        who = f"container {r.container_name or r.container_id[:12]}" if r.container_id else "host"
        if r.process:
            who += f" ({r.process}, pid {r.pid})"
        where = f"{r.dst_ip}:{r.dst_port}" + (f" ({r.server_name})" if r.server_name else "")
        place = " ".join(p for p in (r.country or "", f"AS{r.asn}" if r.asn else "") if p)
        summary = f"{who} -> {where}{' ' + place if place else ''}: {rule}"
        if why:
            summary += f"; {why}"
        return Alert(uid=alert_uid(key, r.uid), time=r.first_seen, rule=rule, severity=severity,
                     summary=summary, dedup_key=key, flow=r)  # fmt: skip


def _source(r: FlowRecord) -> str:
    """Who, for first-seen destinations: the container's name, else the process's, else the
    initiator's address."""
    return r.container_name or r.container_id or r.process or r.src_ip


def _any_glob(patterns: list[str], value: str | None) -> bool:
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)


def _reaches(d: Destination, r: FlowRecord) -> bool:
    """Whether the flow's remote end matches every key the rule gives (a rule that gives
    none, like the default policy's empty country list, matches nothing)."""
    if not (d.domains or d.cidrs or d.countries or d.asns or d.ports or d.protocols):
        return False
    if d.domains and not (_any_glob(d.domains, r.server_name) or _any_glob(d.domains, r.dns_name)):
        return False
    if d.cidrs:
        address = ipaddress.ip_address(r.dst_ip)
        if not any(address in ipaddress.ip_network(c, strict=False) for c in d.cidrs):
            return False
    if d.countries and r.country not in d.countries:
        return False
    if d.asns and r.asn not in d.asns:
        return False
    if d.ports and r.dst_port not in d.ports:
        return False
    return not (d.protocols and r.protocol not in d.protocols)
