"""BackgroundWriter: a failing database delays writes, in order, without losing them; a full
queue drops and counts instead of blocking the caller."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from egresswatch.errors import StoreError
from egresswatch.flows.record import FlowRecord
from egresswatch.names.passive_dns import DnsAnswer
from egresswatch.store.background import BackgroundWriter


class FlakyStore:
    """A sink that refuses the first ``failures`` writes (as a database that is down), or blocks
    until ``released`` is set."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.written: list[object] = []
        self.released = threading.Event()
        self.released.set()

    def write_flows(self, records: Sequence[FlowRecord]) -> None:
        self.released.wait()
        if self.failures:
            self.failures -= 1
            raise StoreError("database is down")
        self.written.extend(records)

    def write_dns(self, answers: Sequence[DnsAnswer]) -> None:
        self.written.extend(answers)


def test_an_outage_delays_writes_and_loses_none() -> None:
    store = FlakyStore(failures=3)
    writer = BackgroundWriter(store, retry_after=0.01)
    batches = [[f"r{b}-{i}" for i in range(5)] for b in range(4)]
    for batch in batches:
        writer.write_flows(batch)  # type: ignore[arg-type]
    assert writer.close(timeout=10)
    assert store.written == [r for batch in batches for r in batch]  # all, in order
    assert not writer.dropped and not writer.failing


def test_a_full_queue_drops_and_counts_without_blocking() -> None:
    store = FlakyStore()
    store.released.clear()  # the database hangs
    writer = BackgroundWriter(store, max_batches=2)
    started = time.monotonic()
    for _ in range(10):
        writer.write_flows(["a", "b", "c"])  # type: ignore[list-item]
    assert time.monotonic() - started < 1.0
    # One batch in the writer's hands, two queued, seven refused.
    time.sleep(0.1)
    assert writer.dropped["flows"] >= 7 * 3 - 3
    store.released.set()
    assert writer.close(timeout=10)
    assert len(store.written) + writer.dropped["flows"] == 30
