"""The query gate: at most `query.max_concurrent` queries evaluate at once; the rest wait.

As in Prometheus (--query.max-concurrency), a query's timeout clock starts before it waits, so
time spent queued counts toward its timeout, and a query whose deadline passes while queued ends
with a timeout naming the limit. Waiting queries are admitted in arrival order.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from watchkeeper.promql.errors import QueryCanceledError, QueryTimeoutError

T = TypeVar("T")


@dataclass(frozen=True)
class GatedRun(Generic[T]):
    """What a gated query returned, and how long it waited for a slot and then ran (seconds)."""

    value: T
    queue_seconds: float
    run_seconds: float


class QueryGate:
    """A counting gate for query evaluation, safe to use from many threads."""

    clock = staticmethod(time.monotonic)  # what deadlines and `started` are readings of

    def __init__(self, max_concurrent: int) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.max_concurrent = max_concurrent
        self._cond = threading.Condition()
        self._running = 0
        self._waiting: deque[object] = deque()
        self._closed = False

    @property
    def running(self) -> int:
        """Queries holding a slot now."""
        return self._running

    @property
    def queued(self) -> int:
        """Queries waiting for a slot now."""
        return len(self._waiting)

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody waits, without waiting."""
        with self._cond:
            self._refuse_if_closed()
            if self._waiting or self._running >= self.max_concurrent:
                return False
            self._running += 1
            return True

    def acquire(self, deadline: float) -> None:
        """Take a slot, waiting until `deadline` (a `clock()` reading) at most; a query that
        cannot get one by then raises QueryTimeoutError. Waiters are served first come, first
        served."""
        with self._cond:
            self._refuse_if_closed()
            if not self._waiting and self._running < self.max_concurrent:
                self._running += 1
                return
            ticket = object()
            self._waiting.append(ticket)
            try:
                while not (self._waiting[0] is ticket and self._running < self.max_concurrent):
                    self._refuse_if_closed()
                    remaining = deadline - self.clock()
                    if remaining <= 0:
                        raise QueryTimeoutError(
                            "query timed out in query queue: all query.max_concurrent "
                            f"({self.max_concurrent}) slots stayed busy"
                        )
                    self._cond.wait(remaining)
                self._running += 1
            finally:
                self._waiting.remove(ticket)
                # the next in line may now be first (or a slot may be free for it)
                self._cond.notify_all()

    def close(self) -> None:
        """Refuse queries from now on, including those waiting (the server is stopping)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise QueryCanceledError("query canceled: the server is shutting down")

    def release(self) -> None:
        with self._cond:
            if self._running <= 0:
                raise RuntimeError("QueryGate.release without acquire")
            self._running -= 1
            self._cond.notify_all()

    def run(
        self, work: Callable[[float], T], timeout_s: float, started: float | None = None
    ) -> GatedRun[T]:
        """Run `work(remaining_seconds)` in a slot. The query's `timeout_s` counts from
        `started` (a `clock()` reading taken when the query arrived; default now), so queueing
        uses it up and `work` gets what is left."""
        began = self.clock() if started is None else started
        self.acquire(began + timeout_s)
        return self._run_admitted(work, timeout_s, began)

    def run_now(
        self, work: Callable[[float], T], timeout_s: float, started: float | None = None
    ) -> GatedRun[T] | None:
        """`run`, if a slot is free now; None (and nothing run) if it would have to wait."""
        began = self.clock() if started is None else started
        if not self.try_acquire():
            return None
        return self._run_admitted(work, timeout_s, began)

    def _run_admitted(
        self, work: Callable[[float], T], timeout_s: float, began: float
    ) -> GatedRun[T]:
        """Run `work` in the slot taken, and give the slot back."""
        deadline = began + timeout_s
        admitted = self.clock()
        try:
            remaining = deadline - admitted
            if remaining <= 0:
                raise QueryTimeoutError("query timed out in query queue")
            value = work(remaining)
        finally:
            self.release()
        return GatedRun(value, admitted - began, self.clock() - admitted)
