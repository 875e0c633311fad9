"""The same samples remote-written to a real Prometheus (Debian package, 2.42, with its
remote-write receiver) and to watchkeeper; then the query API's answers must be the same bytes:
result shapes, float and timestamp formatting, escaping, and the error texts both versions share.

Prometheus 2.42 predates parts of the 3.x API watchkeeper follows (`limit`, `lookback_delta`,
`stats` timings, `parse_query`, some error wordings); those are covered by
tests/api/test_query_api.py against Prometheus 3's source instead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import (
    WRITE_HEADERS,
    Server,
    snappy_body,
    write_request,
)
from tests.peer.conftest import LOGS, ReceivingPrometheus

pytestmark = pytest.mark.peer

T0 = (int(time.time()) - 1200) * 1000
S0 = T0 // 1000
SERIES = [
    ({"__name__": "cmp_up", "job": "a"}, [(T0, 1.0), (T0 + 15_000, 2.0), (T0 + 30_000, 3.0)]),
    ({"__name__": "cmp_up", "job": 'b<&>é"x'}, [(T0, 0.5), (T0 + 30_000, 1e-7)]),
    ({"__name__": "cmp_up", "job": "c"}, [(T0 + 30_000, 1e21), (T0 + 45_000, 123456789.125)]),
    (
        {"__name__": "cmp_odd", "job": "d"},
        [(T0, math.nan), (T0 + 15_000, math.inf), (T0 + 30_000, -0.0)],
    ),
]
CASES: list[tuple[str, dict[str, Any]]] = [
    ("/api/v1/query", {"query": "cmp_up", "time": S0 + 30}),
    ("/api/v1/query", {"query": "cmp_up", "time": S0 + 30.25}),
    ("/api/v1/query", {"query": "cmp_odd", "time": S0 + 1}),
    ("/api/v1/query", {"query": "cmp_odd", "time": S0 + 16}),
    ("/api/v1/query", {"query": "cmp_odd", "time": S0 + 31}),
    ("/api/v1/query", {"query": "cmp_up[1m]", "time": S0 + 50}),
    ("/api/v1/query", {"query": "sum by (job) (cmp_up)", "time": S0 + 30}),
    ("/api/v1/query", {"query": "sort_desc(cmp_up)", "time": S0 + 31}),
    ("/api/v1/query", {"query": "time()", "time": "1700000000.123"}),
    ("/api/v1/query", {"query": "time()", "time": "2023-11-14T22:13:20.5Z"}),
    ("/api/v1/query", {"query": "0.0000001", "time": 1}),
    ("/api/v1/query", {"query": "1e22", "time": 1}),
    ("/api/v1/query", {"query": '"a<b"', "time": 2.5}),
    ("/api/v1/query_range", {"query": "cmp_up", "start": S0, "end": S0 + 45, "step": "15s"}),
    ("/api/v1/query_range", {"query": 'cmp_up{job="a"}', "start": S0, "end": S0 + 1, "step": 0.25}),
    ("/api/v1/query_range", {"query": "1", "start": 10, "end": 20, "step": 10}),
    ("/api/v1/query_range", {"query": "cmp_up", "start": 20, "end": 10, "step": 10}),
    ("/api/v1/query_range", {"query": "cmp_up", "start": 10, "end": 20, "step": 0}),
    ("/api/v1/query_range", {"query": "cmp_up", "start": 10, "end": 20, "step": "-5s"}),
    ("/api/v1/query_range", {"query": "cmp_up", "start": 0, "end": 11001, "step": 1}),
    ("/api/v1/query_range", {"query": "cmp_up", "end": 11001, "step": 1}),
    ("/api/v1/query", {"query": "cmp_up", "timeout": "soon"}),
    ("/api/v1/format_query", {"query": 'sum(rate(x{b="1",a="2"}[5m]))by(job)'}),
]


@pytest.fixture(scope="module")
def peers(
    prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory, watchkeeper: Server
) -> Iterator[tuple[str, str]]:
    receiver = ReceivingPrometheus(prometheus_binary, tmp_path_factory.mktemp("prometheus-query"))
    LOGS["prometheus (query API)"] = receiver.log_path
    try:
        receiver.start()
        body = snappy_body(write_request(SERIES))
        for url in (receiver.url, watchkeeper.url):
            response = httpx.post(f"{url}/api/v1/write", content=body, headers=WRITE_HEADERS)
            assert response.status_code == 204, f"{url}: {response.text}"
        yield receiver.url, watchkeeper.url
    finally:
        receiver.stop()


CASE_IDS = [f"{path.rsplit('/', 1)[1]}-{i}" for i, (path, _) in enumerate(CASES)]


@pytest.mark.parametrize(("path", "params"), CASES, ids=CASE_IDS)
def test_same_bytes_as_prometheus(
    peers: tuple[str, str], path: str, params: dict[str, Any]
) -> None:
    prometheus, watchkeeper = (httpx.get(url + path, params=params, timeout=30) for url in peers)
    assert (watchkeeper.status_code, watchkeeper.text) == (
        prometheus.status_code,
        prometheus.text,
    )
