"""The remote_write decoder: what it stores, and every way it refuses input."""

from __future__ import annotations

import contextlib
import math

import cramjam
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchkeeper.ingest import RemoteWriteDecoder, RemoteWriteError, RemoteWriteLimits
from watchkeeper.ingest.proto import remote_decode_pb2, remote_pb2
from watchkeeper.model import NameValidation, labels_from_dict, series_key

T0 = 1_700_000_000_000


def _decoder(**limits: object) -> RemoteWriteDecoder:
    return RemoteWriteDecoder(RemoteWriteLimits(**limits))  # type: ignore[arg-type]


def _raw_request(series: list[tuple[list[tuple[bytes, bytes]], list[tuple[int, float]]]]) -> bytes:
    """Encode with the bytes-typed view so tests can send what real senders must not."""
    request = remote_decode_pb2.WriteRequest()
    for labels, samples in series:
        ts = request.timeseries.add()
        for name, value in labels:
            ts.labels.add(name=name, value=value)
        for timestamp, value in samples:
            ts.samples.add(timestamp=timestamp, value=value)
    return request.SerializeToString()


def _decode(payload: bytes, **limits: object):
    return _decoder(**limits).decode(bytes(cramjam.snappy.compress_raw(payload)))


def _good(
    name: str = "up", **labels: str
) -> tuple[list[tuple[bytes, bytes]], list[tuple[int, float]]]:
    pairs = sorted({"__name__": name, **labels}.items())
    return [(k.encode(), v.encode()) for k, v in pairs], [(T0, 1.0)]


def test_decodes_series_and_samples() -> None:
    request = remote_pb2.WriteRequest()
    for i in range(3):
        ts = request.timeseries.add()
        ts.labels.add(name="__name__", value="http_requests_total")
        ts.labels.add(name="code", value=str(200 + i))
        ts.samples.add(timestamp=T0, value=float(i))
        ts.samples.add(timestamp=T0 + 15_000, value=float(i) + 0.5)
    request.metadata.add(type=1, metric_family_name="http_requests_total", help="Requests.")
    decoded = _decode(request.SerializeToString())
    assert not decoded.rejected
    batch = decoded.batch
    assert batch.timestamps.tolist() == [T0, T0 + 15_000] * 3
    assert batch.values.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert batch.sample_series.tolist() == [0, 0, 1, 1, 2, 2]
    labels = labels_from_dict({"__name__": "http_requests_total", "code": "201"})
    assert batch.labels_of(1) == labels
    assert batch.keys[1] == series_key(labels)
    (meta,) = batch.metadata
    assert (meta.metric, meta.type, meta.help) == ("http_requests_total", "counter", "Requests.")


def _rejected(payload: bytes, **limits: object) -> tuple[dict[str, int], str, int]:
    decoded = _decode(payload, **limits)
    return dict(decoded.rejected), " | ".join(decoded.examples), len(decoded.batch)


@pytest.mark.parametrize(
    ("labels", "reason", "detail"),
    [
        ([(b"", b"x"), (b"__name__", b"up")], "empty label name", "empty label name"),
        ([(b"__name__", b"up"), (b"a", b"1"), (b"a", b"2")], "duplicate label name", '"a"'),
        (
            [(b"__name__", b"up"), (b"b", b"1"), (b"a", b"2"), (b"b", b"3")],
            "duplicate label name",
            '"b"',
        ),
        ([(b"\xff\xfe", b"x"), (b"__name__", b"up")], "invalid UTF-8 in label", "label name"),
        ([(b"__name__", b"up"), (b"job", b"caf\xe9")], "invalid UTF-8 in label", "label value"),
        ([(b"job", b"x")], "missing metric name", "has no __name__"),
        ([(b"__name__", b""), (b"job", b"x")], "missing metric name", "empty one"),
        ([], "empty label set", "needs labels"),
    ],
)
def test_bad_series_are_rejected_and_the_rest_kept(
    labels: list[tuple[bytes, bytes]], reason: str, detail: str
) -> None:
    payload = _raw_request(
        [_good("ok_before"), (labels, [(T0, 1.0), (T0 + 1, 2.0)]), _good("ok_after")]
    )
    rejected, examples, kept = _rejected(payload)
    assert rejected == {reason: 2}
    assert detail in examples
    assert kept == 2


def test_unsorted_labels_and_empty_values_are_canonicalised() -> None:
    payload = _raw_request([([(b"job", b"a"), (b"__name__", b"up"), (b"zone", b"")], [(T0, 1.0)])])
    decoded = _decode(payload)
    assert not decoded.rejected
    canonical = labels_from_dict({"__name__": "up", "job": "a"})
    assert decoded.batch.labels_of(0) == canonical
    assert decoded.batch.keys[0] == series_key(canonical)


def test_legacy_name_validation_is_optional() -> None:
    payload = _raw_request([_good("http.requests", **{"dotted.label": "x"})])
    assert not _decode(payload).rejected  # Prometheus 3.x default: any UTF-8
    rejected, examples, _ = _rejected(payload, name_validation=NameValidation.LEGACY)
    assert set(rejected) == {"invalid label name (legacy validation)"}
    metric_only = _raw_request([_good("http.requests")])
    rejected, examples, _ = _rejected(metric_only, name_validation=NameValidation.LEGACY)
    assert rejected == {"invalid metric name (legacy validation)": 1}
    assert "'http.requests'" in examples


@pytest.mark.parametrize(
    ("limits", "series", "message"),
    [
        (
            {"max_labels_per_series": 2},
            _good("up", a="1", b="2"),
            "limit limits.max_labels_per_series (2)",
        ),
        (
            {"max_label_name_length": 8},
            _good("up", longname1="1"),
            "limit limits.max_label_name_length (8)",
        ),
        (
            {"max_label_value_length": 4},
            _good("up", a="fives"),
            "limit limits.max_label_value_length (4)",
        ),
    ],
)
def test_series_limits(limits: dict[str, int], series, message: str) -> None:
    rejected, examples, kept = _rejected(_raw_request([series, _good("fine")]), **limits)
    assert message in examples
    assert sum(rejected.values()) == 1 and kept == 1


def test_request_limits_reject_the_whole_request() -> None:
    payload = _raw_request([([(b"__name__", b"up")], [(T0 + i, 1.0) for i in range(11)])])
    with pytest.raises(
        RemoteWriteError, match=r"limit limits.max_samples_per_request \(10\) exceeded"
    ):
        _decode(payload, max_samples_per_request=10)
    with pytest.raises(RemoteWriteError, match=r"limit limits.max_decompressed_body_bytes \(16\)"):
        _decode(payload, max_decompressed_body_bytes=16)


def _histogram_request() -> remote_pb2.WriteRequest:
    """One integer histogram (deltas), one float histogram, one that cannot be used, and a
    float series."""
    request = remote_pb2.WriteRequest()
    ints = request.timeseries.add()
    ints.labels.add(name="__name__", value="h_int")
    ints.histograms.add(
        count_int=9,
        sum=12.5,
        schema=1,
        zero_threshold=0.001,
        zero_count_int=1,
        positive_spans=[
            remote_pb2.BucketSpan(offset=-1, length=2),
            remote_pb2.BucketSpan(offset=1, length=1),
        ],
        positive_deltas=[2, 1, -2],  # counts 2, 3, 1
        negative_spans=[remote_pb2.BucketSpan(offset=0, length=1)],
        negative_deltas=[2],
        timestamp=T0,
    )
    floats = request.timeseries.add()
    floats.labels.add(name="__name__", value="h_float")
    floats.histograms.add(
        count_float=2.5,
        sum=-1.0,
        schema=-53,
        custom_values=[0.1, 1.0],
        positive_spans=[remote_pb2.BucketSpan(offset=0, length=3)],
        positive_counts=[0.5, 0.0, 2.0],
        reset_hint=remote_pb2.Histogram.GAUGE,
        timestamp=T0 + 1,
    )
    broken = request.timeseries.add()
    broken.labels.add(name="__name__", value="h_broken")
    broken.histograms.add(  # spans cover 2 buckets, 1 given
        count_int=1,
        positive_spans=[remote_pb2.BucketSpan(offset=0, length=2)],
        positive_deltas=[1],
        timestamp=T0,
    )
    ok = request.timeseries.add()
    ok.labels.add(name="__name__", value="f")
    ok.samples.add(timestamp=T0, value=1.0)
    return request


def test_native_histograms_are_decoded_and_a_broken_one_refused() -> None:
    decoded = _decode(_histogram_request().SerializeToString())
    batch = decoded.batch
    assert decoded.rejected == {"invalid native histogram": 1}
    assert decoded.examples == [
        'invalid native histogram: series {__name__="h_broken"}: histogram positive spans '
        "cover 2 buckets, but 1 are given"
    ]
    assert len(batch) == 1  # the float sample
    names = [dict(batch.labels_of(int(i)))["__name__"] for i in batch.histogram_series]
    assert names == ["h_int", "h_float"]
    assert batch.histogram_timestamps.tolist() == [T0, T0 + 1]
    ints, floats = batch.histograms
    assert ints.test_expression() == (
        "{{schema:1 count:9 sum:12.5 z_bucket:1 z_bucket_w:0.001 offset:-1 buckets:[2 3 0 1] "
        "n_buckets:[2]}}"
    )
    assert floats.test_expression() == (
        "{{schema:-53 count:2.5 sum:-1 custom_values:[0.1 1] counter_reset_hint:gauge "
        "buckets:[0.5 0 2]}}"
    )


def test_an_integer_histogram_must_count_its_buckets() -> None:
    request = remote_pb2.WriteRequest()
    ts = request.timeseries.add()
    ts.labels.add(name="__name__", value="h")
    ts.histograms.add(
        count_int=5,
        sum=1.0,
        positive_spans=[remote_pb2.BucketSpan(offset=0, length=1)],
        positive_deltas=[3],
        timestamp=T0,
    )
    decoded = _decode(request.SerializeToString())
    assert decoded.rejected == {"invalid native histogram": 1}
    assert "3 observations found in buckets, but the Count field is 5" in decoded.examples[0]


def test_histograms_count_toward_the_sample_limit() -> None:
    with pytest.raises(RemoteWriteError, match="request has 4 samples"):
        _decode(_histogram_request().SerializeToString(), max_samples_per_request=3)


def test_exemplars_come_with_their_series() -> None:
    request = remote_pb2.WriteRequest()
    for name in ("a", "e"):
        ts = request.timeseries.add()
        ts.labels.add(name="__name__", value=name)
        ts.samples.add(timestamp=T0, value=1.0)
    ex = request.timeseries[1].exemplars.add(value=0.5, timestamp=T0 - 1)
    ex.labels.add(name="trace_id", value="abc")
    ex.labels.add(name="span_id", value="def")
    too_long = request.timeseries[1].exemplars.add(value=1.0, timestamp=T0)
    too_long.labels.add(name="trace_id", value="x" * 130)
    decoder = RemoteWriteDecoder(RemoteWriteLimits())
    body = request.SerializeToString()
    for decoded in (decoder.decode_payload(body), decoder.decode_payload(body)):  # cold, cached
        assert not decoded.rejected and len(decoded.batch) == 2
        assert decoded.batch.exemplars == [
            (1, (("span_id", "def"), ("trace_id", "abc")), 0.5, T0 - 1)
        ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "snappy: corrupt input: empty body"),
        (b"\xff\xff\xff\xff\xff\xff", "snappy: corrupt input: bad length preamble"),
        (b"\x10garbage", "snappy"),
        (
            bytes(cramjam.snappy.compress_raw(b"\x0a\x05\x0a\x03")),
            "protobuf: cannot decode WriteRequest",
        ),
        (bytes(cramjam.snappy.compress_raw(b"\x0f\x01")), "protobuf"),
    ],
)
def test_unusable_bodies(body: bytes, message: str) -> None:
    with pytest.raises(RemoteWriteError, match=message):
        _decoder().decode(body)


label_text = st.text(st.characters(codec="utf-8"), max_size=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.lists(st.tuples(label_text, label_text), max_size=6),
            st.lists(
                st.tuples(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True)), max_size=4
            ),
        ),
        max_size=8,
    )
)
def test_fuzz_odd_requests_never_crash_and_keys_are_canonical(series) -> None:
    payload = _raw_request(
        [([(n.encode(), v.encode()) for n, v in labels], samples) for labels, samples in series]
    )
    decoded = _decode(payload)
    batch = decoded.batch
    for index in set(batch.sample_series.tolist()):
        labels = batch.labels_of(index)
        assert labels == labels_from_dict(labels)  # sorted, no empty values
        assert batch.keys[index] == series_key(labels)
        assert dict(labels).get("__name__")
    kept_values = batch.values
    assert len(kept_values) + decoded.rejected_samples >= len(batch)
    assert all(isinstance(v, float) or math.isnan(v) for v in kept_values.tolist())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_raise_only_remote_write_errors(data: bytes) -> None:
    decoder = _decoder()
    for body in (data, bytes(cramjam.snappy.compress_raw(data))):
        with contextlib.suppress(RemoteWriteError):
            decoder.decode(body)


def test_decoded_arrays_have_fixed_dtypes() -> None:
    batch = _decode(_raw_request([_good()])).batch
    assert batch.timestamps.dtype == np.int64 and batch.values.dtype == np.float64
    assert batch.sample_series.dtype == np.int64


def test_cached_series_decode_like_new_ones() -> None:
    decoder = _decoder()
    payload = _raw_request(
        [
            ([(b"job", b"a"), (b"__name__", b"up")], [(T0, 1.0)]),
            _good("two", x="1"),
            ([(b"job", b"x")], [(T0, 1.0)]),
        ]
    )
    body = bytes(cramjam.snappy.compress_raw(payload))
    first = decoder.decode(body)
    second = decoder.decode(body)  # the bad series keeps the request on the full path
    assert second.rejected == first.rejected == {"missing metric name": 1}
    good_only = bytes(cramjam.snappy.compress_raw(_raw_request([_good("two", x="1")])))
    decoder.decode(good_only)
    cached = decoder.decode(good_only)
    assert cached.batch.keys == [series_key(labels_from_dict({"__name__": "two", "x": "1"}))]
    assert cached.batch.labels_of(0) == labels_from_dict({"__name__": "two", "x": "1"})
    reordered = _decode(_raw_request([([(b"job", b"a"), (b"__name__", b"up")], [(T0, 1.0)])]))
    assert reordered.batch.keys == first.batch.keys[:1]
