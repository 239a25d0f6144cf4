"""TCP connection state, history and conn_state, following Zeek's TCP analyzer.

Each endpoint moves through Zeek's endpoint states on SYN/FIN/RST and plain segments; the
connection's ``conn_state`` (S0, S1, SF, REJ, RSTO, ...) is derived from the two endpoint states,
as Zeek's ``conn_state()`` does, so records compare 1:1 with a conn.log. Deliberate simplification:
S/H/F/R history letters are recorded once per side (Zeek repeats them for new sequence numbers).
"""

from __future__ import annotations

import math
import re

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10

# Zeek's endpoint states.
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
_HANDSHAKE = (INACTIVE, SYN_SENT, SYN_ACK_SENT)
_RSTOS0 = re.compile(r"\^?S[^HAFGIQ]*R.*")
PLAIN_ORIG_ACK, PLAIN_ORIG_DATA, PLAIN_RESP_ACK, PLAIN_RESP_DATA = 1, 2, 4, 8


def plain_bit(is_orig: bool, has_data: bool) -> int:
    """The ``plain_done`` bit for a plain segment from this side, with or without payload."""
    return (1 << has_data) << (0 if is_orig else 2)


ATTEMPT_DELAY = 5.0
"""Seconds an unanswered SYN keeps its connection (Zeek: tcp_attempt_delay); later SYNs start a
new one."""


class TcpState:
    """Both endpoints of one TCP connection, plus its history string."""

    __slots__ = (
        "deadline",
        "history",
        "orig",
        "orig_closed",
        "orig_data",
        "orig_prev",
        "orig_start",
        "plain_done",
        "resp",
        "resp_closed",
        "resp_data",
        "resp_prev",
        "resp_start",
        "seen",
    )

    def __init__(self, *, flipped: bool = False) -> None:
        self.orig = self.resp = self.orig_prev = self.resp_prev = INACTIVE
        self.orig_closed = self.resp_closed = False
        """Zeek's did_close: the side has sent a FIN or RST that closed it."""
        self.orig_data = self.resp_data = False
        self.orig_start: int | None = None
        self.resp_start: int | None = None
        self.history = "^" if flipped else ""
        self.seen: set[str] = set()
        self.plain_done = 0
        """Which plain segments (no SYN/FIN/RST) can no longer change anything but the counters:
        bits PLAIN_ORIG_ACK, PLAIN_ORIG_DATA, PLAIN_RESP_ACK, PLAIN_RESP_DATA. Such segments skip
        ``update``: the flow table only counts them."""
        self.deadline = math.inf
        """Packet time at which the connection ends without further packets (attempt or close)."""

    @property
    def handshaking(self) -> bool:
        """No side has got past the handshake: Zeek keeps the short (UDP) idle timeout then."""
        return self.orig in _HANDSHAKE and self.resp in _HANDSHAKE

    def is_reuse(self, flags: int, seq: int) -> bool:
        """Whether this SYN opens a new connection on the same 5-tuple (Zeek's IsReuse)."""
        if not flags & SYN:
            return False
        start = self.orig_start
        if flags & ACK:
            if self.orig != INACTIVE:
                return False
            start = self.resp_start
        if not (self.orig_closed or self.resp_closed):
            return seq != start
        return True

    def update(
        self, is_orig: bool, flags: int, payload_len: int, seq: int, ts: float, close_grace: float
    ) -> None:
        """Apply one segment sent by the originator (``is_orig``) or the responder."""
        self._record_history(is_orig, flags, payload_len)
        if is_orig:
            if self.orig_start is None:
                self.orig_start = seq if flags & SYN else seq - 1
            self.orig_data = self.orig_data or payload_len > 0
            ep, peer = self.orig, self.resp
        else:
            if self.resp_start is None:
                self.resp_start = seq if flags & SYN else seq - 1
            self.resp_data = self.resp_data or payload_len > 0
            ep, peer = self.resp, self.orig
        new_ep, new_peer, do_close = _transition(
            ep, peer, self._peer_prev(is_orig), is_orig, flags, payload_len
        )
        self._set(is_orig, new_ep)
        self._set(not is_orig, new_peer)
        if is_orig and ep == INACTIVE and new_ep in (SYN_SENT, SYN_ACK_SENT):
            self.deadline = ts + ATTEMPT_DELAY
        elif (
            self.deadline != math.inf
            and self.resp != INACTIVE
            and not do_close
            and not (self.orig_closed or self.resp_closed)
        ):
            self.deadline = math.inf  # answered: the attempt timer no longer applies
        if do_close:
            self._closed(is_orig, ts, close_grace)
        self.plain_done = self._plain_done()

    def _plain_done(self) -> int:
        # A plain segment changes state only while its sender is INACTIVE, and history only the
        # first time its letter (A/D, a/d) appears.
        done = 0
        seen = self.seen
        if self.orig != INACTIVE:
            done |= (PLAIN_ORIG_ACK if "A" in seen else 0) | (PLAIN_ORIG_DATA if "D" in seen else 0)
        if self.resp != INACTIVE:
            done |= (PLAIN_RESP_ACK if "a" in seen else 0) | (PLAIN_RESP_DATA if "d" in seen else 0)
        return done

    def _peer_prev(self, is_orig: bool) -> int:
        return self.resp_prev if is_orig else self.orig_prev

    def _set(self, orig: bool, state: int) -> None:
        if orig:
            if state != self.orig:
                self.orig_prev, self.orig = self.orig, state
        elif state != self.resp:
            self.resp_prev, self.resp = self.resp, state

    def _closed(self, is_orig: bool, ts: float, close_grace: float) -> None:
        # Zeek's ConnectionClosed: the connection is removed tcp_close_delay after the close is
        # complete (a RST, or both sides closed, or the peer never spoke).
        ep_state, peer_state = (self.orig, self.resp) if is_orig else (self.resp, self.orig)
        ep_closed, peer_closed = (
            (self.orig_closed, self.resp_closed)
            if is_orig
            else (self.resp_closed, self.orig_closed)
        )
        if ep_closed:
            return
        if is_orig:
            self.orig_closed = True
        else:
            self.resp_closed = True
        if ep_state == RESET or peer_closed or peer_state == INACTIVE:
            self.deadline = ts + close_grace

    def _record_history(self, is_orig: bool, flags: int, payload_len: int) -> None:
        control = flags & (SYN | FIN | RST)
        if control and control not in (SYN, FIN, RST):
            letter = "I" if control & FIN and control & RST else "Q"
        elif control == SYN:
            letter = "H" if flags & ACK else "S"
        elif control == FIN:
            letter = "F"
        elif control == RST:
            letter = "R"
        elif payload_len > 0:
            letter = "D"
        elif flags & ACK:
            letter = "A"
        else:
            return
        if not is_orig:
            letter = letter.lower()
        if letter not in self.seen:
            self.seen.add(letter)
            self.history += letter

    def conn_state(self) -> str:
        """Zeek's conn_state for TCP."""
        os_, rs = self.orig, self.resp
        o_inactive = os_ in (INACTIVE, PARTIAL)
        r_inactive = rs in (INACTIVE, PARTIAL)
        if rs == RESET:
            if os_ in (SYN_SENT, SYN_ACK_SENT) or (
                os_ == RESET and not self.orig_data and not self.resp_data
            ):
                return "REJ"
            return "RSTRH" if o_inactive else "RSTR"
        if os_ == RESET:
            if r_inactive:
                return "RSTOS0" if _RSTOS0.fullmatch(self.history) else "OTH"
            return "RSTO"
        if rs == CLOSED and os_ == CLOSED:
            return "SF"
        if os_ == CLOSED:
            return "SH" if r_inactive else "S2"
        if rs == CLOSED:
            return "SHR" if o_inactive else "S3"
        if os_ == SYN_SENT and rs == INACTIVE:
            return "S0"
        if os_ == ESTABLISHED and rs == ESTABLISHED:
            return "S1"
        return "OTH"


def _transition(
    ep: int, peer: int, peer_prev: int, is_orig: bool, flags: int, payload_len: int
) -> tuple[int, int, bool]:
    """Zeek's UpdateStateMachine for one segment: new (endpoint, peer) states and do_close."""
    syn, fin, rst = flags & SYN, flags & FIN, flags & RST
    do_close = False
    if ep == INACTIVE:
        if syn:
            if is_orig:
                ep = SYN_ACK_SENT if flags & ACK else SYN_SENT
            else:
                if peer == SYN_SENT:
                    peer = ESTABLISHED  # the SYN-ACK completes the originator's handshake
                ep = ESTABLISHED
        if fin:
            ep, do_close = CLOSED, True
        if rst:
            ep, do_close = RESET, True
        if ep == INACTIVE:  # a plain segment
            if not is_orig and payload_len == 0 and peer == SYN_SENT:
                pass  # an early bare ACK to a SYN
            elif flags & ACK and peer == ESTABLISHED:
                ep = ESTABLISHED  # missed this side's SYN, saw the SYN-ACK and this ACK
            else:
                ep = PARTIAL  # mid-stream: no handshake seen for this side
    elif ep in (SYN_SENT, SYN_ACK_SENT):
        if fin:
            ep, do_close = CLOSED, True
        if rst:
            ep, do_close = RESET, True
    elif ep in (ESTABLISHED, PARTIAL):
        if syn and ep == PARTIAL and peer == INACTIVE and not flags & ACK:
            ep = SYN_SENT
        if fin and not rst:
            ep, do_close = CLOSED, True
            if peer == RESET and peer_prev == CLOSED:
                peer = CLOSED  # FIN then RST from the peer was a normal close after all
        if rst:
            ep, do_close = RESET, True
    elif ep == CLOSED and rst and peer != CLOSED:
        ep, do_close = RESET, True
    return ep, peer, do_close
