"""A local HTTP server that speaks Slack's incoming-webhook contract (the one boundary that
cannot exist here): it checks every post as Slack would (JSON, a non-empty ``text``, blocks of
known types within Slack's limits) and answers as scripted: 503s, a 429 with Retry-After, 200."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_BLOCK_TYPES = {"header", "section", "context", "divider"}


def slack_problems(body: Any) -> list[str]:
    """Why Slack would refuse this payload (empty: it would take it)."""
    problems = []
    if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"]:
        return ["no text"]
    blocks = body.get("blocks", [])
    if not isinstance(blocks, list) or len(blocks) > 50:
        problems.append("blocks: not a list of at most 50")
    for block in blocks:
        kind = block.get("type")
        if kind not in _BLOCK_TYPES:
            problems.append(f"block type {kind!r}")
        if kind == "header" and (
            block["text"]["type"] != "plain_text" or len(block["text"]["text"]) > 150
        ):
            problems.append("header: plain_text of at most 150")
        if kind == "section":
            fields, text = block.get("fields", []), block.get("text")
            if not fields and not text:
                problems.append("section without text or fields")
            if len(fields) > 10 or any(len(f["text"]) > 2000 for f in fields):
                problems.append("section: at most 10 fields of at most 2000")
            if text and len(text["text"]) > 3000:
                problems.append("section text over 3000")
    return problems


class Receiver:
    """Posts received (``accepted``: answered 200), and the answers still scripted."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str]]] = []
        """Answers to give, first first; when empty: 200."""
        self.accepted: list[dict[str, Any]] = []
        self.attempts = 0
        self.refused_as_invalid: list[str] = []
        self.secret: bytes | None = None
        self.lock = threading.Lock()

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", "0"))
        raw = handler.rfile.read(length)
        with self.lock:
            self.attempts += 1
            status, headers = self.script.pop(0) if self.script else (200, {})
            body = (
                json.loads(raw)
                if handler.headers.get("Content-Type") == "application/json"
                else None
            )
            problems = self._problems(handler, raw, body)
            if problems:
                status, headers = 400, {}
                self.refused_as_invalid.extend(problems)
            elif status == 200:
                self.accepted.append(body)
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"ok")

    def _problems(self, handler: BaseHTTPRequestHandler, raw: bytes, body: Any) -> list[str]:
        if body is None:
            return ["not JSON"]
        if self.secret is None:
            return slack_problems(body)
        expected = "sha256=" + hmac.new(self.secret, raw, hashlib.sha256).hexdigest()
        signed = handler.headers.get("X-Egresswatch-Signature", "")
        return [] if hmac.compare_digest(signed, expected) else ["bad signature"]


@contextmanager
def receiving(host: str = "127.0.0.1") -> Iterator[tuple[Receiver, str]]:
    """A Receiver on ``host``, which must be an address of this machine (``ip route get`` says
    ``local``, or the test fails before anything is posted); yields it and its URL."""
    route = subprocess.run(["ip", "route", "get", host], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    if not route.startswith("local "):
        raise AssertionError(f"{host} is not on this machine: {route.strip()}")
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver.answer(self)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver, f"http://{host}:{server.server_address[1]}/services/T000/B000/XXXX"
    finally:
        server.shutdown()
        server.server_close()
