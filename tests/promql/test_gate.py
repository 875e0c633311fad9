"""The query gate: query.max_concurrent slots, a first-come queue, and waiting that uses up the
query's timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from watchkeeper.promql.errors import QueryCanceledError, QueryTimeoutError
from watchkeeper.promql.gate import QueryGate


def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.002)


class Holder:
    """A query that keeps its slot until released."""

    def __init__(self, gate: QueryGate) -> None:
        self.entered = threading.Event()
        self.leave = threading.Event()
        self.thread = threading.Thread(target=gate.run, args=(self._work, 30.0))
        self.thread.start()
        assert self.entered.wait(5)

    def _work(self, remaining: float) -> None:
        self.entered.set()
        assert self.leave.wait(5)

    def release(self) -> None:
        self.leave.set()
        self.thread.join(5)


class Waiter:
    """A query run on its own thread; records what it got."""

    def __init__(self, gate: QueryGate, timeout_s: float, log: list[str], name: str) -> None:
        self.outcome: Any = None
        self.remaining: float | None = None

        def work(remaining: float) -> str:
            self.remaining = remaining
            log.append(name)
            return name

        def run() -> None:
            try:
                self.outcome = gate.run(work, timeout_s)
            except Exception as err:
                self.outcome = err

        self.thread = threading.Thread(target=run)
        self.thread.start()

    def join(self) -> Any:
        self.thread.join(5)
        assert not self.thread.is_alive()
        return self.outcome


def test_at_most_max_concurrent_run_and_the_rest_queue_in_order() -> None:
    gate = QueryGate(2)
    first, second = Holder(gate), Holder(gate)
    assert (gate.running, gate.queued) == (2, 0)
    order: list[str] = []
    a = Waiter(gate, 30, order, "a")
    _until(lambda: gate.queued == 1)
    b = Waiter(gate, 30, order, "b")
    _until(lambda: gate.queued == 2)
    assert order == [] and gate.running == 2
    first.release()
    assert a.join().value == "a"
    second.release()
    assert b.join().value == "b"
    assert order == ["a", "b"]
    assert (gate.running, gate.queued) == (0, 0)


def test_deadline_passing_in_the_queue_is_a_timeout_naming_the_limit() -> None:
    gate = QueryGate(1)
    holder = Holder(gate)
    started = time.monotonic()
    waiter = Waiter(gate, 0.1, [], "late")
    outcome = waiter.join()
    assert isinstance(outcome, QueryTimeoutError)
    assert outcome.kind == "timeout"
    assert "query timed out in query queue" in outcome.message
    assert "query.max_concurrent (1)" in outcome.message
    assert time.monotonic() - started >= 0.1
    assert (gate.running, gate.queued) == (1, 0)
    holder.release()
    assert gate.running == 0


def test_time_spent_queued_counts_toward_the_timeout() -> None:
    gate = QueryGate(1)
    holder = Holder(gate)
    waiter = Waiter(gate, 5.0, [], "w")
    _until(lambda: gate.queued == 1)
    time.sleep(0.15)
    holder.release()
    run = waiter.join()
    assert run.queue_seconds >= 0.15
    assert waiter.remaining is not None
    assert waiter.remaining <= 5.0 - run.queue_seconds + 0.001


def test_a_query_whose_clock_ran_out_before_it_arrived_times_out_without_running() -> None:
    gate = QueryGate(1)
    ran: list[float] = []
    with pytest.raises(QueryTimeoutError, match="query timed out in query queue"):
        gate.run(ran.append, 1.0, started=gate.clock() - 2.0)
    assert ran == [] and gate.running == 0


def test_a_waiter_that_times_out_lets_the_next_one_in() -> None:
    gate = QueryGate(1)
    holder = Holder(gate)
    order: list[str] = []
    short = Waiter(gate, 0.05, order, "short")
    _until(lambda: gate.queued == 1)
    patient = Waiter(gate, 30, order, "patient")
    assert isinstance(short.join(), QueryTimeoutError)
    holder.release()
    assert patient.join().value == "patient"
    assert order == ["patient"]


def test_work_failing_frees_the_slot() -> None:
    gate = QueryGate(1)

    def boom(remaining: float) -> None:
        raise RuntimeError("engine bug")

    with pytest.raises(RuntimeError):
        gate.run(boom, 1.0)
    assert gate.run(lambda remaining: 7, 1.0).value == 7


def test_closing_refuses_waiting_and_new_queries() -> None:
    gate = QueryGate(1)
    holder = Holder(gate)
    waiter = Waiter(gate, 30, [], "w")
    _until(lambda: gate.queued == 1)
    gate.close()
    assert isinstance(waiter.join(), QueryCanceledError)
    holder.release()
    with pytest.raises(QueryCanceledError, match="shutting down"):
        gate.run(lambda remaining: None, 1.0)


def test_run_now_runs_only_with_a_free_slot_and_nobody_waiting() -> None:
    gate = QueryGate(1)
    assert gate.run_now(lambda remaining: 3, 1.0).value == 3  # type: ignore[union-attr]
    holder = Holder(gate)
    ran: list[int] = []
    assert gate.run_now(lambda remaining: ran.append(1), 1.0) is None  # would wait
    waiter = Waiter(gate, 30, [], "w")
    _until(lambda: gate.queued == 1)
    holder.release()
    assert waiter.join().value == "w"
    assert ran == []
    assert gate.running == 0
    assert gate.run_now(lambda remaining: 4, 1.0).value == 4  # type: ignore[union-attr]
    gate.close()
    with pytest.raises(QueryCanceledError):
        gate.run_now(lambda remaining: None, 1.0)
