"""OTLP metrics into the real server: the official OpenTelemetry Python SDK's exporters (HTTP
and gRPC) send counters, up-down counters, histograms and gauges, and PromQL and the metadata
API show them under the names Prometheus' OTLP translation gives; the OTLP JSON examples are
accepted and stored; partial success and errors are answered as OTLP says."""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpExporter,
)
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from tests.conftest import SHARED, Server, free_port
from watchkeeper.config import hash_token

EXAMPLES = SHARED / "conformance" / "otlp" / "examples"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    grpc_port = free_port()
    running = Server(
        tmp_path_factory.mktemp("otlp") / "data",
        # the JSON examples are from 2018
        "storage:\n  retention: 20y\n",
        env={"WATCHKEEPER_OTLP__GRPC_LISTEN": f"127.0.0.1:{grpc_port}"},
    ).start()
    running.grpc_port = grpc_port  # type: ignore[attr-defined]
    yield running
    running.stop()


def _query(server: Server, query: str, tenant: str = "", **params: Any) -> list[dict[str, Any]]:
    headers = {"X-Scope-OrgID": tenant} if tenant else {}
    answer = httpx.get(
        f"{server.url}/api/v1/query",
        params={"query": query, **params},
        headers=headers,
        timeout=10,
    ).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]  # type: ignore[no-any-return]


def _value(server: Server, query: str, **params: Any) -> float:
    (result,) = _query(server, query, **params)
    return float(result["value"][1])


def _send(exporter: MetricExporter, service: str, record: Callable[[Any], None]) -> None:
    """Record with the SDK, then export once through `exporter` and shut down."""
    resource = Resource.create(
        {
            "service.name": service,
            "service.namespace": "shop",
            "service.instance.id": "i-1",
            "deployment.environment": "test",
        }
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    record(provider.get_meter("tests.otlp", "1.0"))
    assert provider.force_flush(timeout_millis=10_000)
    provider.shutdown()


def _record(meter: Any) -> None:
    requests = meter.create_counter("shop.requests", unit="{request}", description="Requests.")
    requests.add(5, {"http.route": "/cart"})
    requests.add(2, {"http.route": "/pay"})
    queue = meter.create_up_down_counter("queue.depth", unit="{item}", description="Queued.")
    queue.add(10)
    queue.add(-3)
    latency = meter.create_histogram("http.server.duration", unit="s", description="Latency.")
    for seconds in (0.2, 3.0, 40.0):
        latency.record(seconds, {"http.route": "/cart"})
    usage = meter.create_gauge("cpu.utilization", unit="1", description="CPU in use.")
    usage.set(0.25, {"cpu": "0"})
    memory = meter.create_up_down_counter("process.memory.usage", unit="By")
    memory.add(1024)


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_the_sdk_exporters_send_every_instrument(server: Server, transport: str) -> None:
    service = f"checkout-{transport}"
    if transport == "http":
        exporter: MetricExporter = HttpExporter(endpoint=f"{server.url}/v1/metrics")
    else:
        port = server.grpc_port  # type: ignore[attr-defined]
        exporter = GrpcExporter(endpoint=f"127.0.0.1:{port}", insecure=True)
    _send(exporter, service, _record)
    job = f'job="shop/{service}",instance="i-1"'
    assert _value(server, f'shop_requests_total{{{job},http_route="/cart"}}') == 5
    assert _value(server, f'shop_requests_total{{{job},http_route="/pay"}}') == 2
    assert _value(server, f"queue_depth{{{job}}}") == 7
    assert _value(server, f"process_memory_usage_bytes{{{job}}}") == 1024
    assert _value(server, f'cpu_utilization_ratio{{{job},cpu="0"}}') == 0.25
    route = 'http_route="/cart"'
    assert _value(server, f"http_server_duration_seconds_count{{{job},{route}}}") == 3
    assert _value(server, f"http_server_duration_seconds_sum{{{job},{route}}}") == 43.2
    buckets = {
        r["metric"]["le"]: float(r["value"][1])
        for r in _query(server, f"http_server_duration_seconds_bucket{{{job}}}")
    }
    # the SDK's default boundaries, written as Prometheus' OTLP receiver writes them
    assert buckets["0"] == 0 and buckets["5"] == 2 and buckets["50"] == 3
    assert buckets["+Inf"] == 3
    median = _value(
        server, f"histogram_quantile(0.5, http_server_duration_seconds_bucket{{{job}}})"
    )
    assert 0 < median <= 5
    (info,) = _query(server, f"target_info{{{job}}}")
    assert info["metric"]["deployment_environment"] == "test"
    assert info["metric"]["telemetry_sdk_language"] == "python"
    assert "service_name" not in info["metric"]


def test_metadata_names_types_and_units(server: Server) -> None:
    _send(HttpExporter(endpoint=f"{server.url}/v1/metrics"), "metadata", _record)
    metadata = httpx.get(f"{server.url}/api/v1/metadata", timeout=10).json()["data"]
    assert metadata["shop_requests_total"] == [{"type": "counter", "help": "Requests.", "unit": ""}]
    assert metadata["queue_depth"][0]["type"] == "gauge"
    assert metadata["http_server_duration_seconds"] == [
        {"type": "histogram", "help": "Latency.", "unit": "seconds"}
    ]
    assert metadata["cpu_utilization_ratio"][0]["type"] == "gauge"
    assert metadata["process_memory_usage_bytes"][0]["unit"] == "bytes"


def test_delta_temporality_is_stored_cumulative(server: Server) -> None:
    delta = {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}
    exporter = HttpExporter(
        endpoint=f"{server.url}/v1/metrics",
        preferred_temporality=delta,  # type: ignore[arg-type]
    )
    reader = InMemoryMetricReader(preferred_temporality=delta)  # type: ignore[arg-type]
    provider = MeterProvider(
        resource=Resource.create({"service.name": "deltas"}), metric_readers=[reader]
    )
    counter = provider.get_meter("tests").create_counter("jobs.done")
    histogram = provider.get_meter("tests").create_histogram("job.seconds", unit="s")
    job = 'job="deltas"'
    for added, expected in ((3, 3), (4, 7)):
        counter.add(added)
        histogram.record(1.0)
        data = reader.get_metrics_data()
        assert data is not None
        assert exporter.export(data).name == "SUCCESS"
        assert _value(server, f"jobs_done_total{{{job}}}") == expected
    assert _value(server, f"job_seconds_count{{{job}}}") == 2
    provider.shutdown()


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="../shared/conformance/otlp is absent")
def test_the_otlp_json_example_is_accepted_and_stored(server: Server) -> None:
    body = (EXAMPLES / "metrics.json").read_bytes()
    # a tenant of its own: its 2018 samples would be out of bounds after today's
    tenant = {"X-Scope-OrgID": "examples"}
    answer = httpx.post(
        f"{server.url}/v1/metrics",
        content=body,
        headers={"Content-Type": "application/json", **tenant},
        timeout=10,
    )
    assert (answer.status_code, answer.json()) == (200, {})
    assert answer.headers["content-type"] == "application/json"
    at = {"time": "1544712660.3", "tenant": "examples"}
    job = 'job="my.service"'
    # delta sum and histogram, stored as the running totals they start
    assert _value(server, f'my_counter_total{{{job},my_counter_attr="some value"}}', **at) == 5
    assert _value(server, f"my_gauge_ratio{{{job}}}", **at) == 10
    assert _value(server, f'my_histogram_bucket{{{job},le="1"}}', **at) == 1
    assert _value(server, f'my_histogram_bucket{{{job},le="+Inf"}}', **at) == 2
    assert _value(server, f"my_histogram_sum{{{job}}}", **at) == 2
    # the exponential histogram as a native one, as Prometheus 3 stores it: the zero bucket
    # (zero_threshold 0) holds 1, the positive bucket (4, 8] holds 2
    (exponential,) = _query(server, f"my_exponential_histogram{{{job}}}", **at)
    assert exponential["histogram"][1] == {
        "count": "3",
        "sum": "10",
        "buckets": [[3, "-0", "0", "1"], [0, "4", "8", "2"]],
    }


def test_partial_success_names_what_was_refused(server: Server) -> None:
    request = {
        "resourceMetrics": [
            {
                "resource": {"attributes": [_attr("service.name", "partial")]},
                "scopeMetrics": [
                    {
                        "metrics": [
                            _gauge("good.value", 1.5),
                            {
                                "name": "bad.sum",
                                "sum": {
                                    "aggregationTemporality": 0,
                                    "isMonotonic": True,
                                    "dataPoints": [_point(1.0), _point(2.0)],
                                },
                            },
                        ]
                    }
                ],
            }
        ]
    }
    answer = httpx.post(f"{server.url}/v1/metrics", json=request, timeout=10)
    assert answer.status_code == 200
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedDataPoints"] == "2"
    assert (
        'invalid temporality and type combination for metric "bad.sum"' in (partial["errorMessage"])
    )
    assert _value(server, 'good_value{job="partial"}') == 1.5

    # the same as protobuf, answered in protobuf
    message = metrics_service_pb2.ExportMetricsServiceRequest()
    json_format.ParseDict(request, message)
    answer = httpx.post(
        f"{server.url}/v1/metrics",
        content=gzip.compress(message.SerializeToString()),
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        timeout=10,
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-protobuf"
    response = metrics_service_pb2.ExportMetricsServiceResponse.FromString(answer.content)
    assert response.partial_success.rejected_data_points == 2


def test_unusable_requests(server: Server) -> None:
    post = f"{server.url}/v1/metrics"
    answer = httpx.post(
        post,
        content=b"\xff\x00garbage",
        timeout=10,
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert answer.status_code == 400
    status = status_pb2.Status.FromString(answer.content)
    assert "not a protobuf ExportMetricsServiceRequest" in status.message
    answer = httpx.post(
        post, content=b"{oops", timeout=10, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400 and "not JSON" in answer.json()["message"]
    answer = httpx.post(post, content=b"x", timeout=10, headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415
    big = gzip.compress(b"\x00" * (200 * 1024 * 1024))
    answer = httpx.post(
        post,
        content=big,
        timeout=30,
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
    )
    assert answer.status_code == 413
    assert (
        "limits.max_decompressed_body_bytes" in status_pb2.Status.FromString(answer.content).message
    )
    # an empty request is fine
    answer = httpx.post(post, json={}, timeout=10)
    assert (answer.status_code, answer.json()) == (200, {})


def _attr(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _point(value: float) -> dict[str, Any]:
    return {"asDouble": value, "timeUnixNano": str(time.time_ns())}


def _gauge(name: str, value: float) -> dict[str, Any]:
    return {"name": name, "gauge": {"dataPoints": [_point(value)]}}


def test_tokens_and_tenants_over_both_transports(start_server: Callable[..., Server]) -> None:
    token = "wk_test_token"
    grpc_port = free_port()
    server = start_server(
        config=(
            "auth:\n  tokens:\n    - name: sdk\n      role: editor\n      tenants: ['*']\n"
            f"      sha256: {hash_token(token)}\n"
        ),
        env={"WATCHKEEPER_OTLP__GRPC_LISTEN": f"127.0.0.1:{grpc_port}"},
    )
    message = metrics_service_pb2.ExportMetricsServiceRequest()
    json_format.ParseDict(
        {
            "resourceMetrics": [
                {
                    "resource": {"attributes": [_attr("service.name", "authed")]},
                    "scopeMetrics": [{"metrics": [_gauge("secured", 2.0)]}],
                }
            ]
        },
        message,
    )
    body = message.SerializeToString()
    headers = {"Content-Type": "application/x-protobuf"}
    assert httpx.post(f"{server.url}/v1/metrics", content=body, headers=headers).status_code == 401
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            request_serializer=None,
            response_deserializer=metrics_service_pb2.ExportMetricsServiceResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as refused:
            export(body, timeout=10)
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        answer = export(
            body,
            metadata=(("authorization", f"Bearer {token}"), ("x-scope-orgid", "team-a")),
            timeout=10,
        )
        assert not answer.HasField("partial_success")
    # stored for the tenant the call named, and only there
    read = {"Authorization": f"Bearer {token}"}
    team = httpx.get(
        f"{server.url}/api/v1/query",
        params={"query": "secured"},
        headers={**read, "X-Scope-OrgID": "team-a"},
    ).json()["data"]["result"]
    assert [float(r["value"][1]) for r in team] == [2.0]
    default = httpx.get(
        f"{server.url}/api/v1/query", params={"query": "secured"}, headers=read
    ).json()["data"]["result"]
    assert default == []
