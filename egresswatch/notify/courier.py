"""Delivering the outbox: every alert to every webhook it is routed to, exactly once.

The outbox is in the database, written in the same transaction as the alert, so an alert is
never stored without its deliveries, and a restart (even after SIGKILL) resumes them. Each
delivery is marked done only after the webhook answered 2xx: at worst a post whose answer was
lost in a crash is sent again (Slack then shows it twice; it is never lost). Failures back off
exponentially with jitter up to ``max_backoff``; a 429's Retry-After is honoured. More than
``digest_after`` alerts waiting for one webhook go as one digest message.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from egresswatch.errors import NotifyError, StoreError
from egresswatch.notify.message import json_body, signature, slack_digest, slack_message
from egresswatch.policy.alert import Alert
from egresswatch.store import Database

_log = logging.getLogger(__name__)
_SEVERITY = {"low": 0, "medium": 1, "high": 2, "critical": 3}
_FIRST_BACKOFF = 2.0
_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Target:
    """One webhook, as configured."""

    url: SecretStr
    kind: str = "slack"
    secret: SecretStr | None = None
    min_severity: str = "low"
    rules: tuple[str, ...] = ()

    def wants(self, severity: str, rule: str) -> bool:
        if _SEVERITY.get(severity, 0) < _SEVERITY[self.min_severity]:
            return False
        return not self.rules or any(fnmatch.fnmatchcase(rule, r) for r in self.rules)


class DeliveryError(NotifyError):
    """A webhook did not take a post: why, and how long it asked us to wait (429)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def http_post(url: str, body: bytes, headers: dict[str, str]) -> None:
    """POST; raises DeliveryError (without the URL, a secret) unless the answer is 2xx."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        retry_after = exc.headers.get("Retry-After") if exc.headers else None
        seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
        raise DeliveryError(f"HTTP {exc.code}", seconds) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"not reachable: {reason}") from None


class Courier:
    """Posts what the outbox holds, in a thread of its own."""

    def __init__(
        self,
        database: Database,
        targets: list[Target],
        *,
        max_backoff: float = 900.0,
        digest_after: int = 10,
        post: Callable[[str, bytes, dict[str, str]], None] = http_post,
        interval: float = 1.0,
    ) -> None:
        self._db = database
        self.targets = targets
        self._max_backoff = max_backoff
        self._digest_after = digest_after
        self._post = post
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self.delivered = 0
        self.failures = 0

    def routes(self, alert: Alert) -> list[int]:
        """The webhooks (indexes in ``targets``) this alert goes to."""
        return [i for i, t in enumerate(self.targets) if t.wants(alert.severity, alert.rule)]

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=_TIMEOUT + 5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.deliver(time.time())
            except StoreError as exc:
                _log.error("outbox: %s", exc)

    def deliver(self, now: float) -> None:
        """One round: every delivery that is due, grouped by webhook."""
        by_target: dict[int, list[dict[str, Any]]] = {}
        for item in self._db.outbox_due(now):
            by_target.setdefault(item["webhook"], []).append(item)
        for index, items in by_target.items():
            if index >= len(self.targets):
                continue  # a webhook since removed from the config: kept, not sent
            if len(items) > self._digest_after and self.targets[index].kind == "slack":
                self._send(index, items, slack_digest(items))
            elif self.targets[index].kind == "slack":
                for item in items:
                    self._send(index, [item], slack_message(item))
            else:
                for item in items:
                    self._send(index, [item], None)

    def _send(self, index: int, items: list[dict[str, Any]], slack: dict[str, Any] | None) -> None:
        target = self.targets[index]
        ids = [item["outbox_id"] for item in items]
        headers = {"Content-Type": "application/json", "User-Agent": "egresswatch"}
        if slack is not None:
            body = json.dumps(slack).encode()
        else:
            body = json_body([_public(item) for item in items])
            if target.secret is not None:
                headers["X-Egresswatch-Signature"] = signature(
                    target.secret.get_secret_value(), body
                )
        try:
            self._post(target.url.get_secret_value(), body, headers)
        except DeliveryError as exc:
            self.failures += 1
            attempts = max(item["attempts"] for item in items) + 1
            wait = exc.retry_after
            if wait is None:
                wait = min(_FIRST_BACKOFF * 2 ** (attempts - 1), self._max_backoff)
                wait *= random.uniform(0.5, 1.0)  # jitter
            self._db.outbox_retry(ids, attempts, time.time() + wait, str(exc))
            if attempts == 1 or attempts % 10 == 0:
                _log.warning("webhook %d: %s; %d alerts wait (retry in %.0f s)", index, exc,
                             len(ids), wait)  # fmt: skip
            return
        self._db.outbox_delivered(ids, time.time())
        self.delivered += len(ids)


def _public(item: dict[str, Any]) -> dict[str, Any]:
    """An outbox row's alert as the JSON webhook sends it."""
    return {k: v for k, v in item.items() if k not in ("outbox_id", "webhook", "attempts")}


def targets_from(settings: Any) -> list[Target]:
    """The configured webhooks: ``slack_webhook_url`` first, then ``[[notify.webhooks]]``."""
    out = []
    if settings.slack_webhook_url is not None:
        out.append(Target(settings.slack_webhook_url))
    for w in settings.notify.webhooks:
        out.append(Target(w.url, w.kind, w.secret, w.min_severity, tuple(w.rules)))
    return out
