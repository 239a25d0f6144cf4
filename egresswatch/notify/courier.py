"""Delivering the outbox: every alert to every webhook it is routed to, exactly once.

The outbox is in the database, written in the same transaction as the alert, so an alert is
never stored without its deliveries, and a restart (even after SIGKILL) resumes them. Each
delivery is marked done only after the webhook answered 2xx: at worst a post whose answer was
lost in a crash is sent again (Slack then shows it twice; it is never lost). Failures back off
exponentially with jitter up to ``max_backoff``; a 429's Retry-After is honoured. More than
``digest_after`` alerts waiting for one webhook go as one digest message.
"""

from __future__ import annotations

import email.utils
import fnmatch
import hashlib
import http.client
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
from egresswatch.policy.model import SEVERITIES
from egresswatch.store import Database
from egresswatch.store.outbox import PARKED

_log = logging.getLogger(__name__)
_SEVERITY: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}
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

    @property
    def key(self) -> int:
        """Stable across restarts and config edits (the outbox names its webhook by it): from
        the URL, never the URL itself."""
        digest = hashlib.sha256(self.url.get_secret_value().encode()).digest()
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF

    def wants(self, severity: str, rule: str) -> bool:
        if _SEVERITY.get(severity, 0) < _SEVERITY[self.min_severity]:
            return False
        return not self.rules or any(fnmatch.fnmatchcase(rule, r) for r in self.rules)


class DeliveryError(NotifyError):
    """A webhook did not take a post: why, and how long it asked us to wait (429)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would be re-sent as a GET and its 2xx taken for a delivery."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def http_post(url: str, body: bytes, headers: dict[str, str]) -> None:
    """POST; raises DeliveryError (never with the URL: it is a secret) unless the answer is
    2xx."""
    try:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with _OPENER.open(request, timeout=_TIMEOUT) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        retry_after = exc.headers.get("Retry-After") if exc.headers else None
        raise DeliveryError(f"HTTP {exc.code}", _retry_after(retry_after, time.time())) from None
    except urllib.error.URLError as exc:
        raise DeliveryError(f"not reachable: {type(exc.reason).__name__}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        # (a malformed URL's message would quote it: only the kind of error is told)
        raise DeliveryError(f"failed: {type(exc).__name__}") from None


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: seconds, or an HTTP date (RFC 9110)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now) if when.tzinfo else None


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
        """The webhooks (their keys) this alert goes to."""
        return [t.key for t in self.targets if t.wants(alert.severity, alert.rule)]

    def start(self) -> None:
        try:  # posts parked while their webhook was out of the config are due again
            self._db.outbox_rearm([t.key for t in self.targets], time.time())
        except StoreError as exc:
            _log.error("outbox: %s", exc)
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
            except Exception as exc:  # the thread must live on; the text may hold a URL
                _log.error("outbox: delivery round failed: %s", type(exc).__name__)

    def deliver(self, now: float) -> None:
        """One round: every delivery that is due, grouped by webhook."""
        by_target: dict[int, list[dict[str, Any]]] = {}
        for item in self._db.outbox_due(now):
            by_target.setdefault(item["webhook"], []).append(item)
        configured = {t.key: t for t in self.targets}
        for key, items in by_target.items():
            target = configured.get(key)
            if target is None:  # a webhook since removed from the config
                ids = [i["outbox_id"] for i in items]
                self._db.outbox_retry(ids, 0, PARKED, "webhook no longer configured")
                continue
            if len(items) > self._digest_after and target.kind == "slack":
                self._send(target, items, slack_digest(items))
                continue
            for n, item in enumerate(items):
                slack = slack_message(item) if target.kind == "slack" else None
                if not self._send(target, [item], slack):
                    # This webhook is failing: the rest of its queue waits with the failed one
                    # rather than each taking its own timeout (and holding up the others).
                    rest = [i["outbox_id"] for i in items[n + 1 :]]
                    if rest:
                        self._db.outbox_retry(rest, item["attempts"], time.time() + 1, "waiting")
                    break

    def _send(
        self, target: Target, items: list[dict[str, Any]], slack: dict[str, Any] | None
    ) -> bool:
        index = self.targets.index(target)
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
            return False
        self._db.outbox_delivered(ids, time.time())
        self.delivered += len(ids)
        return True


def _public(item: dict[str, Any]) -> dict[str, Any]:
    """An outbox row's alert as the JSON webhook sends it."""
    internal = ("outbox_id", "webhook", "attempts", "id", "id_1")
    return {k: v for k, v in item.items() if k not in internal}


def targets_from(settings: Any) -> list[Target]:
    """The configured webhooks: ``slack_webhook_url`` first, then ``[[notify.webhooks]]``."""
    out = []
    if settings.slack_webhook_url is not None:
        out.append(Target(settings.slack_webhook_url))
    for w in settings.notify.webhooks:
        out.append(Target(w.url, w.kind, w.secret, w.min_severity, tuple(w.rules)))
    return out
