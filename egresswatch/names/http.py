"""The Host a plain-HTTP client asked for, from the first bytes it sent on a connection.

Only the first request is read: it names the server the connection went to, which is all an
egress monitor needs (later requests on a keep-alive connection go to the same server).

The host is reported the way Suricata's ``http.hostname`` reports it: lower case and without the
port (``Host: [::1]:8000`` gives ``[::1]``, as in the peer case suricata-verify/http-ipv6). Zeek
now logs the header verbatim, port included (zeek/zeek#1844; it used to cut at the first colon,
which breaks IPv6 literals). The host is compared with DNS answers, TLS SNI and policy names, all
port-less and case-insensitive, and the port is already in the flow's 5-tuple; on the Zeek peer
cases (no port in any Host) the two conventions agree.
Parsing is lenient like both peers: keywords and header names in any case (Zeek's
http-lower-case case), bare LF line ends, leading empty lines.

Reasons: ``not_http``, ``http_header_too_long``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NOT_HTTP = "not_http"
TOO_LONG = "http_header_too_long"
REASONS = (NOT_HTTP, TOO_LONG)
"""Every reason string this module returns: the names of its error counters."""

_METHODS = frozenset(
    b"GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH PROPFIND PROPPATCH MKCOL COPY MOVE "
    b"LOCK UNLOCK SEARCH REPORT MKACTIVITY CHECKOUT MERGE MKCALENDAR ACL BIND REBIND UNBIND "
    b"LINK UNLINK PURGE NOTIFY SUBSCRIBE UNSUBSCRIBE M-SEARCH VERSION-CONTROL".split()
)
_LONGEST_METHOD = max(len(m) for m in _METHODS)
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]"  # RFC 9110 tchar
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb"{1,32}) +[^ \x00-\x1f]+ +HTTP/1\.\d[ \t]*", re.I)
# An unfinished first line is still worth waiting for while it reads like a request line's start.
_REQUEST_START = re.compile(rb"(" + _TOKEN + rb"{0,32}|" + _TOKEN + rb"{1,32} +[^\x00-\x1f]*\r?)")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """The first request on a connection, as far as naming its server goes."""

    method: str
    """Request method, upper case ("GET", "POST", ...)."""
    host: str | None
    """The Host header's host: lower case, without the port, IPv6 literals in brackets, bytes
    outside printable ASCII as ``\\DDD``; None when the request has no (or an empty) Host."""


def looks_like_http(first_bytes: bytes) -> bool:
    """Cheap check: starts like an HTTP/1.x request line (known method token, case-insensitive)."""
    space = first_bytes.find(b" ", 0, _LONGEST_METHOD + 1)
    return space > 0 and bytes(first_bytes[:space]).upper() in _METHODS


def request_host(data: bytes, *, limit: int = 8192) -> HttpRequest | str | None:
    """`data` is the first bytes a client sent on a TCP connection. Returns the first request's
    method and Host once its header block is complete (or once the Host line is complete); None
    while more bytes are needed; a reason string when it is not HTTP/1.x ("not_http") or the
    header exceeds `limit`. Lower-case methods ("get / HTTP/1.1", see Zeek's http-lower-case
    case) should still be recognised as HTTP."""
    head = bytes(data[:limit])  # nothing past the limit is ever looked at
    start = len(head) - len(head.lstrip(b"\r\n"))  # RFC 9112 §2.2: skip stray empty lines
    line_end = head.find(b"\n", start)
    if line_end < 0:
        if not _REQUEST_START.fullmatch(head, start):
            return NOT_HTTP
        return TOO_LONG if len(data) >= limit else None
    request_line = _REQUEST_LINE.fullmatch(head, start, _line_end(head, line_end))
    if request_line is None:
        return NOT_HTTP
    method = request_line[1].upper().decode("ascii")
    pos = line_end + 1
    while (line_end := head.find(b"\n", pos)) >= 0:
        line = head[pos : _line_end(head, line_end)]
        if not line:
            return HttpRequest(method, None)  # end of the header block, and no Host in it
        name, colon, value = line.partition(b":")
        # A line starting with white space continues the previous header (obsolete folding).
        if colon and name.rstrip(b" \t").lower() == b"host":
            return HttpRequest(method, _host(value))
        pos = line_end + 1
    return TOO_LONG if len(data) >= limit else None


def _line_end(head: bytes, newline: int) -> int:
    """Where a line's content ends: before its CR LF, or before a bare LF."""
    return newline - 1 if newline > 0 and head[newline - 1] == 0x0D else newline


def _host(value: bytes) -> str | None:
    """A Host header value's host: stripped, lower case, port removed."""
    value = value.strip(b" \t").lower()
    if value.startswith(b"["):  # an IPv6 literal: its colons are not a port's
        close = value.find(b"]")
        if close > 0:
            value = value[: close + 1]
    else:
        name, colon, port = value.rpartition(b":")
        if colon and b":" not in name and (port.isdigit() or not port):
            value = name
    if not value:
        return None
    text = value.decode("latin-1")
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if " " <= c <= "~" else f"\\{ord(c):03d}" for c in text)
