"""Native histograms end to end: remote_write sends them, the query API answers them in
Prometheus' JSON, they survive a restart, and what does not handle them yet says so."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import WRITE_HEADERS, Server, snappy_body
from watchkeeper.ingest.proto import remote_pb2

pytestmark = pytest.mark.system

MINUTE = 60_000
CONFIG = """\
storage:
  block_duration: 1m
  compaction_check_interval: 100ms
"""


def _request(now_ms: int) -> remote_pb2.WriteRequest:
    """rpc_seconds{job="api"}: four integer histograms a minute apart, schema 0 (bucket bounds
    at powers of two), counts growing; and a float series beside it."""
    request = remote_pb2.WriteRequest()
    ts = request.timeseries.add()
    ts.labels.add(name="__name__", value="rpc_seconds")
    ts.labels.add(name="job", value="api")
    for k in range(4):
        ts.histograms.add(
            count_int=3 + 3 * k,
            sum=1.5 * (k + 1),
            schema=0,
            zero_threshold=0.001,
            zero_count_int=1 + k,
            positive_spans=[remote_pb2.BucketSpan(offset=0, length=2)],
            positive_deltas=[1, k],  # bucket 0 (0.5, 1]: 1; bucket 1 (1, 2]: 1 + k
            negative_spans=[remote_pb2.BucketSpan(offset=1, length=1)],
            negative_deltas=[k],  # bucket -1 [-2, -1): k
            timestamp=now_ms - (3 - k) * MINUTE,
        )
    floats = request.timeseries.add()
    floats.labels.add(name="__name__", value="rpc_seconds")
    floats.labels.add(name="job", value="old")
    floats.samples.add(timestamp=now_ms, value=7.0)
    return request


def _query(client: httpx.Client, path: str, **params: str) -> httpx.Response:
    return client.post(path, data=params)


def _answers(server: Server, now_ms: int) -> tuple[str, str, str]:
    at = f"{now_ms / 1000:.3f}"
    with server.client() as client:
        instant = _query(client, "/api/v1/query", query="rpc_seconds", time=at)
        ranged = _query(
            client,
            "/api/v1/query_range",
            query='rpc_seconds{job="api"}',
            start=f"{(now_ms - 3 * MINUTE) / 1000:.3f}",
            end=at,
            step="60",
        )
        count = _query(client, "/api/v1/query", query="histogram_count(rpc_seconds)", time=at)
    for answer in (instant, ranged, count):
        assert answer.status_code == 200, answer.text
    return instant.text, ranged.text, count.text


def test_native_histograms_from_remote_write_to_the_query_api(
    start_server: Callable[..., Server],
) -> None:
    now_ms = (int(time.time() * 1000) // 1000) * 1000
    # 1 minute blocks: the older samples are cut into a block soon after they arrive
    server = start_server(config=CONFIG)
    with server.client() as client:
        sent = client.post(
            "/api/v1/write", content=snappy_body(_request(now_ms)), headers=WRITE_HEADERS
        )
    assert sent.status_code == 204, sent.text

    instant, ranged, count = _answers(server, now_ms)
    blocks = server.data_dir / "metrics" / "blocks" / "default"
    deadline = time.monotonic() + 20
    while not list(blocks.glob("*/histograms.parquet")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(blocks.glob("*/histograms.parquet")), "no block with histograms was cut"
    assert _answers(server, now_ms) == (instant, ranged, count)
    at = f"{now_ms // 1000}"
    # Prometheus' JSON: negative buckets first (boundary rule 1: closed on the left), the
    # zero bucket (3: closed), positive buckets (0: closed on the right); empty ones left out
    assert instant == (
        '{"status":"success","data":{"resultType":"vector","result":['
        '{"metric":{"__name__":"rpc_seconds","job":"api"},"histogram":[' + at + ","
        '{"count":"12","sum":"6","buckets":[[1,"-2","-1","3"],[3,"-0.001","0.001","4"],'
        '[0,"0.5","1","1"],[0,"1","2","4"]]}]},'
        '{"metric":{"__name__":"rpc_seconds","job":"old"},"value":[' + at + ',"7"]}]}}'
    )
    assert '"histograms":[[' + str(now_ms // 1000 - 180) + ',{"count":"3","sum":"1.5"' in ranged
    assert ranged.count('{"count":') == 4 and '"values"' not in ranged
    assert '{"metric":{"job":"api"},"value":[' + at + ',"12"]}' in count

    with server.client() as client:
        # the trim operator, which promql-parser cannot parse: the observations up to 1
        trimmed = _query(
            client, "/api/v1/query", query='rpc_seconds{job="api"} </ 1', time=at
        ).json()
        ((_, kept),) = [r["histogram"] for r in trimmed["data"]["result"]]
        assert kept["count"] == "8"
        assert kept["buckets"] == [
            [1, "-2", "-1", "3"],
            [3, "-0.001", "0.001", "4"],
            [0, "0.5", "1", "1"],
        ]
        chosen = _query(client, "/api/v1/query", query="limitk(1, rpc_seconds)", time=at)
        (first,) = chosen.json()["data"]["result"]
        assert first["metric"]["job"] == "api" and "histogram" in first
        mixed = _query(client, "/api/v1/query", query="sum(rpc_seconds)", time=at).json()
        assert mixed["data"]["result"] == []
        assert mixed["warnings"] == [
            "PromQL warning: encountered a mix of histograms and floats for aggregation (1:5)"
        ]
        rate = _query(client, "/api/v1/query", query='rate(rpc_seconds{job="api"}[5m])', time=at)
        (sample,) = rate.json()["data"]["result"]
        assert sample["metric"] == {"job": "api"} and "histogram" in sample

    # from the block and the WAL's checkpoint after a restart
    server.stop()
    server.start()
    assert _answers(server, now_ms) == (instant, ranged, count)


def test_a_broken_histogram_is_refused_by_name_and_the_rest_kept(
    start_server: Callable[..., Server],
) -> None:
    now_ms = int(time.time() * 1000)
    request = remote_pb2.WriteRequest()
    bad = request.timeseries.add()
    bad.labels.add(name="__name__", value="broken_seconds")
    bad.histograms.add(count_int=1, schema=9, timestamp=now_ms)
    good = request.timeseries.add()
    good.labels.add(name="__name__", value="fine")
    good.samples.add(timestamp=now_ms, value=1.0)
    server = start_server()
    with server.client() as client:
        sent = client.post("/api/v1/write", content=snappy_body(request), headers=WRITE_HEADERS)
        assert sent.status_code == 400
        assert "invalid native histogram" in sent.text and "schema 9" in sent.text
        found = _query(client, "/api/v1/query", query="fine", time=f"{now_ms / 1000:.3f}")
        assert found.json()["data"]["result"][0]["value"][1] == "1"
