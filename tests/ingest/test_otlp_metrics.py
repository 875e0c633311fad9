"""OTLP metrics translation, case by case against what Prometheus 3.x's OTLP receiver
(prometheus/otlptranslator) makes of the same data, plus the parts that are ours: partial
rejection, delta to cumulative, and the exponential histogram bucket scheme."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from watchkeeper.ingest.otlp_delta import DeltaStreams
from watchkeeper.ingest.otlp_metrics import (
    OtlpError,
    OtlpFormat,
    OtlpLimits,
    OtlpMetricsDecoder,
    _es_number,
)
from watchkeeper.model.gofloat import format_f
from watchkeeper.model.otel_names import MetricKind, OtelNameError, label_name, metric_name

NOW_NS = 1_700_000_000_000_000_000
NOW_MS = NOW_NS // 1_000_000


@pytest.mark.parametrize(
    ("name", "unit", "kind", "expected"),
    [
        (
            "http.server.request.duration",
            "s",
            MetricKind.HISTOGRAM,
            "http_server_request_duration_seconds",
        ),
        ("system.memory.usage", "By", MetricKind.UPDOWN, "system_memory_usage_bytes"),
        ("requests", "{request}", MetricKind.COUNTER, "requests_total"),
        ("cpu.utilization", "1", MetricKind.GAUGE, "cpu_utilization_ratio"),
        ("system.cpu.utilization", "1", MetricKind.UPDOWN, "system_cpu_utilization"),
        ("http.requests", "1", MetricKind.COUNTER, "http_requests_total"),
        (
            "otelcol_process_cpu_seconds",
            "s",
            MetricKind.COUNTER,
            "otelcol_process_cpu_seconds_total",
        ),
        ("throughput", "By/s", MetricKind.GAUGE, "throughput_bytes_per_second"),
        ("kafka.bytes.rate", "By/s", MetricKind.GAUGE, "kafka_bytes_rate_per_second"),
        (
            "throughput_bytes_per_second",
            "By/s",
            MetricKind.GAUGE,
            "throughput_bytes_per_second_per_second",
        ),
        ("requests", "1/s", MetricKind.GAUGE, "requests_per_second"),
        ("speed", "m/s", MetricKind.GAUGE, "speed_meters_per_second"),
        ("custom_metric", "By/{custom}", MetricKind.GAUGE, "custom_metric_bytes"),
        ("metric", " By / s ", MetricKind.GAUGE, "metric_bytes_per_second"),
        ("total.requests", "", MetricKind.COUNTER, "requests_total"),
        ("2xx.responses", "", MetricKind.COUNTER, "_2xx_responses_total"),
        (
            "metric__with__multiple__underscores",
            "unit__multiple__underscores",
            MetricKind.GAUGE,
            "metric_with_multiple_underscores_unit_multiple_underscores",
        ),
        ("foo:bar", "s", MetricKind.GAUGE, "foo:bar_seconds"),
        ("disk.io", "kBy", MetricKind.COUNTER, "disk_io_kBy_total"),
        ("_private.metric", "", MetricKind.GAUGE, "private_metric"),
    ],
)
def test_metric_names_as_prometheus_builds_them(
    name: str, unit: str, kind: MetricKind, expected: str
) -> None:
    assert metric_name(name, unit, kind) == expected


def test_a_name_of_only_separators_is_refused() -> None:
    with pytest.raises(OtelNameError, match='normalization for metric "@#" resulted in empty'):
        metric_name("@#", "", MetricKind.GAUGE)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("http.method", "http_method"),
        ("k8s.pod.name", "k8s_pod_name"),
        ("_private", "key_private"),
        ("123abc", "key_123abc"),
        ("metric___multi", "metric___multi"),
        ("__reserved", "__reserved"),
        ("ñ", "key_"),
    ],
)
def test_label_names(key: str, expected: str) -> None:
    assert label_name(key) == expected


@pytest.mark.parametrize(
    ("value", "plain", "es"),
    [
        (1.0, "1", "1"),
        (0.005, "0.005", "0.005"),
        (2.5, "2.5", "2.5"),
        (1e-7, "0.0000001", "1e-7"),
        (1.5e-7, "0.00000015", "1.5e-7"),
        (1e21, "1000000000000000000000", "1e+21"),
        (-0.25, "-0.25", "-0.25"),
    ],
)
def test_number_texts(value: float, plain: str, es: str) -> None:
    assert format_f(value) == plain  # Go's FormatFloat(v, 'f', -1, 64): le, quantile
    assert _es_number(value) == es  # pdata's AsString of a double attribute


def _decoder(**limits: Any) -> OtlpMetricsDecoder:
    return OtlpMetricsDecoder(
        OtlpLimits(**limits), DeltaStreams(1000, 3_600_000), clock=lambda: NOW_MS / 1000
    )


def _request(metrics: list[dict[str, Any]], resource: dict[str, Any] | None = None) -> bytes:
    attributes = [
        {"key": k, "value": v if isinstance(v, dict) else {"stringValue": v}}
        for k, v in (resource or {"service.name": "svc"}).items()
    ]
    raw = {
        "resourceMetrics": [
            {"resource": {"attributes": attributes}, "scopeMetrics": [{"metrics": metrics}]}
        ]
    }
    message = metrics_service_pb2.ExportMetricsServiceRequest()
    json_format.ParseDict(raw, message)
    return message.SerializeToString()


def _point(value: float | None = None, at: int = NOW_NS, **fields: Any) -> dict[str, Any]:
    point: dict[str, Any] = {"timeUnixNano": str(at), **fields}
    if value is not None:
        point["asDouble"] = value
    return point


def _rows(body: bytes, decoder: OtlpMetricsDecoder | None = None) -> dict[str, list[Any]]:
    decoded = (decoder or _decoder()).decode(body, OtlpFormat.PROTOBUF, "t")
    batch = decoded.batch
    out: dict[str, list[Any]] = {}
    for i, series in enumerate(batch.sample_series.tolist()):
        labels = dict(batch.labels_of(series))
        shown = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__")
        out.setdefault(f"{labels['__name__']}{{{shown}}}", []).append(
            (int(batch.timestamps[i]), float(batch.values[i]))
        )
    return out


def test_job_instance_and_attribute_collisions() -> None:
    body = _request(
        [
            _gauge(
                "g",
                [
                    _point(
                        1.0,
                        attributes=[
                            _kv("a.b", "2"),
                            _kv("a-b", "1"),
                            _kv("a_b", "3"),
                            _kv("job", "mine"),
                            _kv("empty", ""),
                        ],
                    )
                ],
            )
        ],
        {"service.name": "api", "service.namespace": "shop", "service.instance.id": "pod-1"},
    )
    assert list(_rows(body)) == ["g{a_b=1;2;3,instance=pod-1,job=shop/api}"]


def test_no_service_name_no_job_and_target_info_spans_the_points() -> None:
    body = _request(
        [_gauge("g", [_point(1.0, at=NOW_NS), _point(2.0, at=NOW_NS + 400 * 10**9)])],
        {"service.instance.id": "i", "host.name": "h1", "os.type": "linux"},
    )
    rows = _rows(body, _decoder(target_info_interval_ms=150_000))
    assert rows["g{instance=i}"] == [(NOW_MS, 1.0), (NOW_MS + 400_000, 2.0)]
    # from the first point to the last, every half lookback, and at the last
    assert [t for t, _ in rows["target_info{host_name=h1,instance=i,os_type=linux}"]] == [
        NOW_MS,
        NOW_MS + 150_000,
        NOW_MS + 300_000,
        NOW_MS + 400_000,
    ]
    # only service.* attributes: no target_info
    only_service = _request([_gauge("g", [_point(1.0)])], {"service.name": "s"})
    assert [k for k in _rows(only_service) if k.startswith("target_info")] == []


def test_histogram_buckets_sum_and_count() -> None:
    point = _point(
        bucketCounts=["1", "2", "0", "3"], explicitBounds=[0.1, 1, 5], count="7", sum=12.5
    )
    rows = _rows(_request([_histogram("latency", [point], temporality=2, unit="s")]))
    values = {k: v[0][1] for k, v in rows.items()}
    assert values == {
        "latency_seconds_bucket{job=svc,le=0.1}": 1.0,
        "latency_seconds_bucket{job=svc,le=1}": 3.0,
        "latency_seconds_bucket{job=svc,le=5}": 3.0,
        "latency_seconds_bucket{job=svc,le=+Inf}": 7.0,  # the count, as Prometheus writes it
        "latency_seconds_count{job=svc}": 7.0,
        "latency_seconds_sum{job=svc}": 12.5,
    }
    no_sum = _point(bucketCounts=["1"], explicitBounds=[], count="1")
    assert not any("_sum" in k for k in _rows(_request([_histogram("h", [no_sum], 2)])))


def test_summary_and_stale_points() -> None:
    summary = {
        "name": "rpc",
        "summary": {
            "dataPoints": [
                {
                    "timeUnixNano": str(NOW_NS),
                    "count": "4",
                    "sum": 2.0,
                    "quantileValues": [
                        {"quantile": 0.5, "value": 0.4},
                        {"quantile": 1.0, "value": 0.9},
                    ],
                }
            ]
        },
    }
    stale = _gauge("gone", [{"timeUnixNano": str(NOW_NS), "flags": 1}])
    rows = _rows(_request([summary, stale]))
    assert {k: v[0][1] for k, v in rows.items() if k.startswith("rpc")} == {
        "rpc{job=svc,quantile=0.5}": 0.4,
        "rpc{job=svc,quantile=1}": 0.9,
        "rpc_sum{job=svc}": 2.0,
        "rpc_count{job=svc}": 4.0,
    }
    (value,) = [v for _, v in rows["gone{job=svc}"]]
    assert np.float64(value).view(np.uint64) == 0x7FF0000000000002


def test_delta_sums_become_running_totals_and_late_points_are_refused() -> None:
    decoder = _decoder()

    def send(value: float, at: int) -> Any:
        metric = {
            "name": "done",
            "sum": {
                "aggregationTemporality": 1,
                "isMonotonic": True,
                "dataPoints": [_point(value, at=at)],
            },
        }
        return decoder.decode(_request([metric]), OtlpFormat.PROTOBUF, "t")

    assert send(3, NOW_NS).batch.values.tolist() == [3.0]
    assert send(4, NOW_NS + 10**9).batch.values.tolist() == [7.0]
    late = send(5, NOW_NS + 10**9)
    assert late.rejected == {"delta_out_of_order": 1}
    assert "not after the stream's previous point" in late.examples[0]
    # another tenant has its own totals
    other = decoder.decode(
        _request(
            [
                {
                    "name": "done",
                    "sum": {
                        "aggregationTemporality": 1,
                        "isMonotonic": True,
                        "dataPoints": [_point(2, at=NOW_NS)],
                    },
                }
            ]
        ),
        OtlpFormat.PROTOBUF,
        "other",
    )
    assert other.batch.values.tolist() == [2.0]


def test_delta_histograms_accumulate_buckets() -> None:
    decoder = _decoder()
    for at, counts in ((NOW_NS, ["1", "0"]), (NOW_NS + 10**9, ["0", "2"])):
        point = _point(
            at=at,
            bucketCounts=counts,
            explicitBounds=[1],
            count=str(sum(map(int, counts))),
            sum=1.0,
        )
        rows = _rows(_request([_histogram("h", [point], temporality=1)]), decoder)
    assert {k: v[0][1] for k, v in rows.items()} == {
        "h_bucket{job=svc,le=1}": 1.0,
        "h_bucket{job=svc,le=+Inf}": 3.0,
        "h_count{job=svc}": 3.0,
        "h_sum{job=svc}": 2.0,
    }


# one exponential histogram point: scale 2, a zero bucket, buckets (2,2.38], (4,4.76] and
# [-1.19, -1)
EXPONENTIAL: dict[str, Any] = {
    "scale": 2,
    "zeroCount": "1",
    "zeroThreshold": 0.001,
    "count": "7",
    "sum": 20.0,
    "positive": {"offset": 4, "bucketCounts": ["1", "0", "0", "0", "3"]},
    "negative": {"offset": 0, "bucketCounts": ["2"]},
}


def test_exponential_histograms_as_classic_buckets() -> None:
    point = _point(**EXPONENTIAL)  # scale 2 (base 2^(1/4)), downscaled to 0 (base 2)
    metric = {
        "name": "e",
        "exponentialHistogram": {"aggregationTemporality": 2, "dataPoints": [point]},
    }
    rows = _rows(_request([metric]))
    buckets = {k: v[0][1] for k, v in rows.items() if "_bucket" in k}
    assert buckets == {
        "e_bucket{job=svc,le=-1}": 2.0,  # scale 0: [-2, -1) holds the negative bucket
        "e_bucket{job=svc,le=0.001}": 3.0,  # the zero bucket
        "e_bucket{job=svc,le=4}": 4.0,  # (2, 4]
        "e_bucket{job=svc,le=8}": 7.0,  # (4, 8]
        "e_bucket{job=svc,le=+Inf}": 7.0,
    }
    finer = _rows(_request([metric]), _decoder(exponential_histogram_max_scale=2))
    les = [k.split("le=")[1].rstrip("}") for k in finer if "_bucket" in k]
    assert les[:3] == ["-1", "0.001", "2.378414230005442"]


def _native(body: bytes, decoder: OtlpMetricsDecoder) -> list[tuple[str, int, str]]:
    batch = decoder.decode(body, OtlpFormat.PROTOBUF, "t").batch
    return [
        (dict(batch.labels_of(int(i)))["__name__"], int(t), h.test_expression())
        for i, t, h in zip(
            batch.histogram_series, batch.histogram_timestamps, batch.histograms, strict=True
        )
    ]


def test_exponential_histograms_as_native_histograms() -> None:
    """Prometheus 3's form: OTLP bucket i is native bucket i + 1 at schema = scale, under the
    family's own name; scales above 8 are reduced to 8; deltas become running totals."""
    decoder = _decoder(native_exponential_histograms=True)
    point = _point(**EXPONENTIAL)

    def metric(temporality: int, *points: dict[str, Any]) -> bytes:
        histogram = {"aggregationTemporality": temporality, "dataPoints": list(points)}
        return _request([{"name": "e", "exponentialHistogram": histogram}])

    assert _native(metric(2, point), decoder) == [
        (
            "e",
            NOW_MS,
            "{{schema:2 count:7 sum:20 z_bucket:1 z_bucket_w:0.001 offset:5 "
            "buckets:[1 0 0 0 3] n_offset:1 n_buckets:[2]}}",
        )
    ]
    assert len(_rows(metric(2, point), decoder)) == 0  # no float series beside it
    fine = _point(scale=10, count="2", positive={"offset": 0, "bucketCounts": ["1", "1"]})
    # scale 10 buckets 1 and 2 (OTLP 0 and 1) both fall into schema 8's bucket 1
    assert _native(metric(2, fine), decoder)[0][2] == "{{schema:8 count:2 offset:1 buckets:[2]}}"
    delta = [
        _point(at=NOW_NS + k * 10**9, count="1", positive={"offset": 0, "bucketCounts": ["1"]})
        for k in range(3)
    ]
    totals = [h for _, _, h in _native(metric(1, *delta), decoder)]
    assert totals == [f"{{{{count:{n} offset:1 buckets:[{n}]}}}}" for n in (1, 2, 3)]
    coarse = _point(scale=-5, count="1", positive={"offset": 0, "bucketCounts": ["1"]})
    decoded = decoder.decode(metric(2, coarse), OtlpFormat.PROTOBUF, "t")
    assert decoded.rejected == {"unsupported_scale": 1}
    assert "scale -5; native histograms go down to -4" in decoded.examples[0]


def test_json_with_hex_ids_and_unknown_fields() -> None:
    raw = (
        b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":'
        b'[{"asInt":"3","timeUnixNano":"1700000000000000000","exemplars":[{"asDouble":1,'
        b'"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174"}],'
        b'"someFutureField":1}]}}]}]}]}'
    )
    decoded = _decoder().decode(raw, OtlpFormat.JSON, "t")
    assert decoded.batch.values.tolist() == [3.0]
    with pytest.raises(OtlpError, match="traceId 'xyz' is not hex"):
        _decoder().decode(
            raw.replace(b"5B8EFFF798038103D269B633813FC60C", b"xyz"), OtlpFormat.JSON, "t"
        )


def test_limits_refuse_points_with_the_limit_named() -> None:
    body = _request([_gauge("g", [_point(1.0, attributes=[_kv(f"k{i}", "v") for i in range(5)])])])
    decoded = _decoder(max_labels_per_series=4).decode(body, OtlpFormat.PROTOBUF, "t")
    assert decoded.rejected == {"too_many_labels": 1}
    assert "limits.max_labels_per_series (4)" in decoded.examples[0]
    with pytest.raises(OtlpError, match=r"limits\.max_samples_per_request"):
        _decoder(max_samples_per_request=1).decode(
            _request([_gauge("g", [_point(1.0), _point(2.0, at=NOW_NS + 1)])]),
            OtlpFormat.PROTOBUF,
            "t",
        )


def _kv(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _gauge(name: str, points: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "gauge": {"dataPoints": points}}


def _histogram(
    name: str, points: list[dict[str, Any]], temporality: int, unit: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "unit": unit,
        "histogram": {"aggregationTemporality": temporality, "dataPoints": points},
    }


def test_exemplars_of_sums_and_histogram_buckets() -> None:
    exemplar = {
        "asDouble": 0.5,
        "timeUnixNano": str(NOW_NS - 10**9),
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "filteredAttributes": [_kv("user", "u1")],
    }
    raw = (
        b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":['
        b'{"name":"done","sum":{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":'
        b'[{"asInt":"3","timeUnixNano":"%d","exemplars":[%s]}]}},'
        b'{"name":"lat","histogram":{"aggregationTemporality":2,"dataPoints":[{"timeUnixNano":'
        b'"%d","count":"2","bucketCounts":["1","1","0"],"explicitBounds":[0.1,1],'
        b'"exemplars":[%s]}]}}]}]}]}'
    ) % (NOW_NS, json_dumps(exemplar), NOW_NS, json_dumps(exemplar))
    batch = _decoder().decode(raw, OtlpFormat.JSON, "t").batch
    placed = {
        dict(batch.labels_of(i)).get("__name__") + dict(batch.labels_of(i)).get("le", ""): (
            dict(labels),
            value,
            at,
        )
        for i, labels, value, at in batch.exemplars
    }
    expected = (
        {
            "trace_id": "5b8efff798038103d269b633813fc60c",
            "span_id": "eee19b7ec3c1b174",
            "user": "u1",
        },
        0.5,
        NOW_MS - 1000,
    )
    assert placed == {"done_total": expected, "lat_bucket1": expected}


def json_dumps(value: Any) -> bytes:
    return json.dumps(value).encode()
