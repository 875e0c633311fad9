"""Native histograms remote-written to a real Prometheus (Debian's 2.42, with
`--enable-feature=native-histograms`) and to watchkeeper: the query API must answer with the
same bytes for every exponential schema, but for one documented difference.

The difference: bucket bounds of schemas 1 to 8 between powers of two. Prometheus takes them
from a table of constants (model/histogram/generic.go, exponentialBounds) two thirds of which
are one to four units in the last place below the correctly rounded 2^(j/2^schema) (measured
over the whole table); watchkeeper computes them correctly rounded (model/histogram.py). So
bounds are compared to 14 significant digits, and everything else byte for byte.

Prometheus 2.42 knows no custom-bucket histograms (schema -53, NHCB) and no histogram_avg(),
so those are covered against Prometheus 3's formats by tests/system/test_native_histograms.py
and tests/model/test_histogram.py instead. Range vectors and operators on histograms are not
supported by watchkeeper yet (they are refused with an error), so they are not compared here.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import WRITE_HEADERS, Server, snappy_body
from tests.peer.conftest import LOGS, ReceivingPrometheus
from watchkeeper.ingest.proto import remote_pb2

pytestmark = pytest.mark.peer

T0 = (int(time.time()) - 1200) * 1000
S0 = T0 // 1000
STEP = 15_000


def _request() -> remote_pb2.WriteRequest:
    """One series per schema from -4 to 8: integer histograms every 15 s with positive and
    negative buckets in two spans and a zero bucket, counts growing; a float histogram series;
    a gauge histogram series that goes down; and one counter that resets."""
    request = remote_pb2.WriteRequest()
    for schema in range(-4, 9):
        series = request.timeseries.add()
        series.labels.add(name="__name__", value="peer_hist")
        series.labels.add(name="schema", value=str(schema))
        for k in range(6):
            series.histograms.add(
                count_int=11 + 4 * k,  # zero 1 + k, positive 10 + k, negative 2k
                sum=3.25 * (k + 1),
                schema=schema,
                zero_threshold=2.0**-20,
                zero_count_int=1 + k,
                positive_spans=[
                    remote_pb2.BucketSpan(offset=-3, length=2),
                    remote_pb2.BucketSpan(offset=4, length=3),
                ],
                positive_deltas=[1, k, -k, 2, 1],  # 1, 1+k, 1, 3, 4
                negative_spans=[remote_pb2.BucketSpan(offset=2, length=2)],
                negative_deltas=[k, 0],  # k, k
                timestamp=T0 + k * STEP,
            )
    floats = request.timeseries.add()
    floats.labels.add(name="__name__", value="peer_float_hist")
    for k in range(4):
        floats.histograms.add(
            count_float=2.5 + k,
            sum=-1.75 * k,
            schema=2,
            positive_spans=[remote_pb2.BucketSpan(offset=5, length=3)],
            positive_counts=[0.5, 1.0 + k, 1.0],
            timestamp=T0 + k * STEP,
        )
    gauge = request.timeseries.add()
    gauge.labels.add(name="__name__", value="peer_gauge_hist")
    for k, count in enumerate([5, 2, 7]):
        gauge.histograms.add(
            count_int=count,
            sum=float(count),
            schema=0,
            positive_spans=[remote_pb2.BucketSpan(offset=0, length=1)],
            positive_deltas=[count],
            reset_hint=remote_pb2.Histogram.GAUGE,
            timestamp=T0 + k * STEP,
        )
    return request


CASES: list[tuple[str, dict[str, Any]]] = [
    ("/api/v1/query", {"query": "peer_hist", "time": S0 + 75}),
    ("/api/v1/query", {"query": "peer_hist", "time": S0 + 30.5}),
    ("/api/v1/query", {"query": "peer_hist", "time": S0 + 76 + 300}),  # beyond the lookback
    ("/api/v1/query", {"query": "peer_float_hist", "time": S0 + 50}),
    ("/api/v1/query", {"query": "peer_gauge_hist", "time": S0 + 30}),
    ("/api/v1/query", {"query": "histogram_count(peer_hist)", "time": S0 + 60}),
    ("/api/v1/query", {"query": "histogram_sum(peer_float_hist)", "time": S0 + 60}),
    ("/api/v1/query_range", {"query": "peer_hist", "start": S0, "end": S0 + 90, "step": 15}),
    (
        "/api/v1/query_range",
        {"query": "peer_float_hist", "start": S0 - 10, "end": S0 + 40, "step": 7},
    ),
    ("/api/v1/query_range", {"query": "peer_gauge_hist", "start": S0, "end": S0 + 30, "step": 3}),
]


@pytest.fixture(scope="module")
def peers(
    prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory, watchkeeper: Server
) -> Iterator[tuple[str, str]]:
    receiver = ReceivingPrometheus(
        prometheus_binary,
        tmp_path_factory.mktemp("prometheus-histograms"),
        ["--enable-feature=native-histograms"],
    )
    LOGS["prometheus (native histograms)"] = receiver.log_path
    try:
        receiver.start()
        body = snappy_body(_request())
        for url in (receiver.url, watchkeeper.url):
            response = httpx.post(f"{url}/api/v1/write", content=body, headers=WRITE_HEADERS)
            assert response.status_code == 204, f"{url}: {response.text}"
        yield receiver.url, watchkeeper.url
    finally:
        receiver.stop()


@pytest.mark.parametrize(("path", "params"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_same_bytes_as_prometheus(
    peers: tuple[str, str], path: str, params: dict[str, Any]
) -> None:
    prometheus, watchkeeper = (httpx.get(url + path, params=params, timeout=30) for url in peers)
    assert prometheus.status_code == 200, prometheus.text
    assert (watchkeeper.status_code, _bounds_rounded(watchkeeper.text)) == (
        prometheus.status_code,
        _bounds_rounded(prometheus.text),
    )


_BUCKET = re.compile(r'\[([0-3]),"([^"]+)","([^"]+)","([^"]+)"\]')


def _bounds_rounded(text: str) -> str:
    """The answer with every bucket's bounds at 14 significant digits (module doc)."""

    def rounded(match: re.Match[str]) -> str:
        rule, lower, upper, count = match.groups()
        return f'[{rule},"{float(lower):.14g}","{float(upper):.14g}","{count}"]'

    return _BUCKET.sub(rounded, text)


def test_bounds_differ_from_prometheus_by_the_last_place_at_most(peers: tuple[str, str]) -> None:
    """The rounding above hides no more than the documented difference: each bound is the
    same float or at most four floats further from zero than Prometheus' one."""
    params = {"query": "peer_hist", "time": S0 + 75}
    answers = [httpx.get(url + "/api/v1/query", params=params).text for url in peers]
    theirs, ours = (_BUCKET.findall(text) for text in answers)
    assert len(theirs) == len(ours) > 100
    differing = 0
    for a, b in zip(theirs, ours, strict=True):
        for x, y in ((abs(float(a[1])), abs(float(b[1]))), (abs(float(a[2])), abs(float(b[2])))):
            above = x
            for _ in range(4):
                if above >= y:
                    break
                above = math.nextafter(above, math.inf)
            assert above == y, (a, b)
            differing += x != y
    assert differing > 0  # the test would be moot if the tables agreed
