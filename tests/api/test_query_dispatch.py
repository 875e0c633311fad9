"""How query requests reach the engine: the query routes are called before FastAPI's router
(api/app.py DirectRoutes), and a query that was quick the last time it was asked runs on the
event loop instead of a query thread (query.inline_below)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from watchkeeper.app import Watchkeeper
from watchkeeper.config import load_config


@pytest.fixture
def make_app(tmp_path: Path) -> Any:
    made: list[Watchkeeper] = []

    def make(**query: object) -> Watchkeeper:
        overrides = {"data_dir": str(tmp_path / str(len(made))), "otlp": {"grpc_listen": ""}}
        app = Watchkeeper(load_config(None, overrides={**overrides, "query": query}))
        app.open()
        made.append(app)
        return app

    yield make
    for app in made:
        asyncio.run(app.stop())


class Threads:
    """Records the thread each instant query is evaluated on."""

    def __init__(self, app: Watchkeeper, delay_s: float = 0.0) -> None:
        self.seen: list[int] = []
        evaluate = app.engine.instant_query

        def instant_query(*args: Any, **kwargs: Any) -> Any:
            self.seen.append(threading.get_ident())
            time.sleep(delay_s)
            return evaluate(*args, **kwargs)

        app.engine.instant_query = instant_query  # type: ignore[method-assign]


async def _client(app: Watchkeeper) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://wk") as client:
        yield client


def _run(app: Watchkeeper, body: Callable[[httpx.AsyncClient], Any]) -> Any:
    async def main() -> Any:
        async for client in _client(app):
            return await body(client)

    return asyncio.run(main())


async def _query(client: httpx.AsyncClient, query: str = "vector(1)") -> httpx.Response:
    return await client.post("/api/v1/query", data={"query": query, "time": "100"})


# "quick" for the tests: a loaded CI machine can take over 2ms for vector(1)
QUICK = {"inline_below": 1000}


def test_a_query_quick_the_last_time_runs_on_the_event_loop(make_app: Any) -> None:
    app = make_app(**QUICK)
    threads = Threads(app)

    async def body(client: httpx.AsyncClient) -> int:
        for _ in range(3):
            response = await _query(client)
            assert response.json()["data"]["result"] == [{"metric": {}, "value": [100, "1"]}]
        return threading.get_ident()

    loop_thread = _run(app, body)
    first, *later = threads.seen
    assert first != loop_thread  # nothing known of it yet: a query thread
    assert later == [loop_thread, loop_thread]


def test_slow_queries_and_queries_that_must_wait_run_on_query_threads(make_app: Any) -> None:
    app = make_app(max_concurrent=1)
    threads = Threads(app, delay_s=0.005)  # over the default query.inline_below (2ms)

    async def slow(client: httpx.AsyncClient) -> int:
        for _ in range(3):
            assert (await _query(client)).status_code == 200
        return threading.get_ident()

    loop_thread = _run(app, slow)
    assert len(threads.seen) == 3 and loop_thread not in threads.seen

    app = make_app(max_concurrent=1, **QUICK)
    threads = Threads(app)

    async def gate_taken(client: httpx.AsyncClient) -> int:
        assert (await _query(client)).status_code == 200
        assert (await _query(client)).status_code == 200  # quick: on the loop
        assert app.query_gate.try_acquire()  # the only slot
        waiting = asyncio.ensure_future(_query(client))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # waits for the slot on a query thread, the loop runs on
        app.query_gate.release()
        assert (await waiting).status_code == 200
        return threading.get_ident()

    loop_thread = _run(app, gate_taken)
    assert threads.seen[1] == loop_thread
    assert threads.seen[2] != loop_thread


def test_inline_below_zero_runs_every_query_on_a_query_thread(make_app: Any) -> None:
    app = make_app(inline_below=0)
    threads = Threads(app)

    async def body(client: httpx.AsyncClient) -> int:
        for _ in range(3):
            assert (await _query(client)).status_code == 200
        return threading.get_ident()

    loop_thread = _run(app, body)
    assert len(threads.seen) == 3 and loop_thread not in threads.seen


def test_direct_routes_answer_errors_as_the_router_does(make_app: Any) -> None:
    app = make_app()

    async def body(client: httpx.AsyncClient) -> list[httpx.Response]:
        bad = await _query(client, "sum(")
        wrong_method = await client.put("/api/v1/query", data={"query": "1"})
        bad_range = await client.get("/api/v1/query_range", params={"query": "1"})
        app.api_context.auth.authenticate = _fail  # type: ignore[method-assign]
        broken = await _query(client)
        return [bad, wrong_method, bad_range, broken]

    bad, wrong_method, bad_range, broken = _run(app, body)
    assert bad.status_code == 400
    assert bad.json()["errorType"] == "bad_data"
    assert bad.json()["error"].startswith('invalid parameter "query": ')
    assert wrong_method.status_code == 405  # left to FastAPI's router
    assert bad_range.status_code == 400
    assert bad_range.json()["error"].startswith('invalid parameter "start": ')
    assert broken.status_code == 500
    assert broken.json() == {
        "status": "error",
        "errorType": "internal",
        "error": "internal server error",
    }


def _fail(*args: object) -> None:
    raise RuntimeError("a bug")
