"""OTLP metrics (`ExportMetricsServiceRequest`, protobuf or OTLP/JSON) -> SeriesBatch.

Translation follows Prometheus 3.x's OTLP receiver (model.otel_names for names): `job` and
`instance` from `service.namespace`/`service.name` and `service.instance.id`; the other
resource attributes on a `target_info` series; data-point attributes as labels (values of keys
that clash once translated joined with `;`, in key order). Gauges and sums become one series
each (`_total` for monotonic sums), explicit-bucket histograms classic `_bucket`/`_sum`/
`_count` series, summaries `quantile` series with `_sum` and `_count`, and exponential
histograms native histograms (`otlp.exponential_histograms: native`, as Prometheus 3) or
classic buckets (`classic`; the scheme is `_exponential_buckets`). Delta sums and histograms
become cumulative per stream (otlp_delta). A point with no recorded value is a staleness marker.

Where Prometheus refuses a whole request for one bad metric, this decoder keeps the good points
and reports the rest, so the answer can be OTLP's partial success naming the reason.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import accumulate
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

from watchkeeper.ingest.otlp_delta import DeltaStreams
from watchkeeper.model import (
    METRIC_NAME,
    Labels,
    MetricMetadata,
    SeriesBatch,
    labels_from_key,
    series_key,
)
from watchkeeper.model.gofloat import format_f
from watchkeeper.model.histogram import MAX_SCHEMA, MIN_SCHEMA, FloatHistogram
from watchkeeper.model.otel_names import (
    MetricKind,
    OtelNameError,
    label_name,
    metric_name,
    unit_name,
)

DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
NO_RECORDED_VALUE = metrics_pb2.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
STALE_NAN = float(np.array([0x7FF0000000000002], dtype=np.uint64).view(np.float64)[0])
IDENTIFYING = ("service.name", "service.namespace", "service.instance.id")
_ID_FIELDS = ("traceId", "spanId")
_PLAIN = (("", "", ""),)
_Attributes = tuple[tuple[str, str], ...]
_Variants = tuple[tuple[str, str, str], ...]
_MAX_EXAMPLES = 3


class OtlpFormat(StrEnum):
    PROTOBUF = "protobuf"
    JSON = "json"


class OtlpError(ValueError):
    """The request as a whole cannot be used; the message says why."""


@dataclass(frozen=True)
class OtlpLimits:
    max_samples_per_request: int = 1_000_000
    max_labels_per_series: int = 64
    max_label_name_length: int = 1024
    max_label_value_length: int = 4096
    exponential_histogram_max_scale: int = 0
    # exponential histograms as native histograms (Prometheus 3); else classic buckets
    native_exponential_histograms: bool = False
    # streams whose series keys are remembered (ingest.series_cache_size); 0: none
    series_cache_size: int = 1_000_000
    # target_info is written from a resource's first to its last point at this spacing (half
    # the lookback delta, as Prometheus does), so it is found at any instant between them
    target_info_interval_ms: int = 150_000


@dataclass
class DecodedOtlp:
    batch: SeriesBatch
    points: int  # OTLP data points in the request
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> data points
    examples: list[str] = field(default_factory=list)


class _Rows:
    """The samples being built: sample i is series `keys[i]` (a series may come more than
    once; the store resolves each key once). Labels are read back from a key only for a
    series the store has not seen."""

    def __init__(self) -> None:
        self.keys: list[bytes] = []
        self.times: list[int] = []
        self.values: list[float] = []
        self.exemplars: list[tuple[int, Labels, float, int]] = []
        # native histogram samples: (position of their key in `keys`, time, histogram); their
        # keys carry a NaN float slot that `batch` leaves out
        self.histograms: list[tuple[int, int, FloatHistogram]] = []

    def add_histogram(self, key: bytes, at_ms: int, histogram: FloatHistogram) -> None:
        self.histograms.append((len(self.keys), at_ms, histogram))
        self.add(key, at_ms, math.nan)

    def add(self, key: bytes, at_ms: int, value: float) -> None:
        self.keys.append(key)
        self.times.append(at_ms)
        self.values.append(value)

    def extend(self, keys: Sequence[bytes], at_ms: int, values: Sequence[float]) -> None:
        self.keys.extend(keys)
        self.times.extend([at_ms] * len(keys))
        self.values.extend(values)

    def batch(self, metadata: list[MetricMetadata]) -> SeriesBatch:
        keys = self.keys
        floats = np.ones(len(keys), dtype=bool)
        floats[[position for position, _, _ in self.histograms]] = False
        return SeriesBatch(
            keys=keys,
            labels_of=lambda i: labels_from_key(keys[i]),
            sample_series=np.flatnonzero(floats).astype(np.int64),
            timestamps=np.asarray(self.times, dtype=np.int64)[floats],
            values=np.asarray(self.values, dtype=np.float64)[floats],
            metadata=metadata,
            exemplars=self.exemplars,
            histogram_series=np.array([p for p, _, _ in self.histograms], dtype=np.int64),
            histogram_timestamps=np.array([t for _, t, _ in self.histograms], dtype=np.int64),
            histograms=[h for _, _, h in self.histograms],
        )

    def exemplar(self, sample: int, exemplar: Any, at_ms: int) -> None:
        """An OTLP exemplar on the series of sample `sample`, as Prometheus labels it."""
        labels: dict[str, str] = {}
        if exemplar.trace_id:
            labels["trace_id"] = exemplar.trace_id.hex()
        if exemplar.span_id:
            labels["span_id"] = exemplar.span_id.hex()
        extra = _attributes(exemplar.filtered_attributes)
        if sum(len(k) + len(v) for k, v in (*labels.items(), *extra.items())) <= 128:
            labels = {**extra, **labels}
        value = float(
            exemplar.as_double if exemplar.WhichOneof("value") == "as_double" else exemplar.as_int
        )
        at = exemplar.time_unix_nano // 1_000_000 or at_ms
        self.exemplars.append((sample, tuple(sorted(labels.items())), value, at))


class _PointRejectedError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class OtlpMetricsDecoder:
    """Decodes OTLP metrics requests under fixed limits; one instance serves every request
    and holds the delta streams' running totals."""

    def __init__(
        self,
        limits: OtlpLimits,
        deltas: DeltaStreams,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self.deltas = deltas
        self._clock = clock
        self._label_names: dict[str, str] = {}
        # (family, resource, attributes, variants) -> the series keys they make: a stream
        # seen before skips translating and checking its labels
        self._series: dict[tuple[Any, ...], tuple[bytes, ...]] = {}
        self._bucket_variants: dict[tuple[tuple[float, ...], bool], _Variants] = {}

    def parse(
        self, body: bytes, fmt: OtlpFormat
    ) -> metrics_service_pb2.ExportMetricsServiceRequest:
        request = metrics_service_pb2.ExportMetricsServiceRequest()
        if fmt is OtlpFormat.JSON:
            try:
                raw = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise OtlpError(f"the body is not JSON: {err}") from None
            if not isinstance(raw, dict):
                raise OtlpError("the body is not an ExportMetricsServiceRequest JSON object")
            try:
                _hex_ids_to_base64(raw)
                json_format.ParseDict(raw, request, ignore_unknown_fields=True)
            except (json_format.ParseError, ValueError) as err:
                raise OtlpError(f"not an OTLP/JSON ExportMetricsServiceRequest: {err}") from None
            return request
        try:
            request.ParseFromString(body)
        except DecodeError as err:
            raise OtlpError(f"not a protobuf ExportMetricsServiceRequest: {err}") from None
        return request

    def decode(self, body: bytes, fmt: OtlpFormat, tenant: str) -> DecodedOtlp:
        return self.translate(self.parse(body, fmt), tenant)

    def translate(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, tenant: str
    ) -> DecodedOtlp:
        rows = _Rows()
        metadata: dict[str, MetricMetadata] = {}
        rejected: Counter[str] = Counter()
        examples: list[str] = []
        points = 0
        now_ms = self._clock() * 1000
        for resource_metrics in request.resource_metrics:
            attributes = _attributes(resource_metrics.resource.attributes)
            resource = _resource_labels(attributes)
            first_ms, last_ms = math.inf, -math.inf
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    translated = _Metric(self, metric, resource, tenant, now_ms)
                    for point, write in translated.points():
                        points += 1
                        at = point.time_unix_nano // 1_000_000
                        first_ms, last_ms = min(first_ms, at), max(last_ms, at)
                        try:
                            write(rows)
                        except _PointRejectedError as err:
                            rejected[err.reason] += 1
                            if len(examples) < _MAX_EXAMPLES:
                                examples.append(f"{err.reason}: {err}")
                    if translated.family:
                        metadata[translated.family] = translated.metadata()
            if last_ms >= first_ms:
                self._target_info(rows, attributes, resource, int(first_ms), int(last_ms))
            if len(rows.values) > self.limits.max_samples_per_request:
                raise OtlpError(
                    f"limit limits.max_samples_per_request ({self.limits.max_samples_per_request})"
                    f" exceeded: the request makes more samples than that"
                )
        batch = rows.batch(list(metadata.values()))
        return DecodedOtlp(batch, points, rejected, examples)

    # --- labels -------------------------------------------------------------------------

    def label(self, key: str) -> str:
        name = self._label_names.get(key)
        if name is None:
            name = self._label_names[key] = label_name(key)
            if len(self._label_names) > 100_000:  # a bound on what churning keys may cost
                self._label_names.clear()
        return name

    def series_keys(
        self, family: str, resource: dict[str, str], attributes: _Attributes, variants: _Variants
    ) -> tuple[bytes, ...]:
        """The keys of the series a data point writes: one per variant (name suffix and an
        extra label, such as ("_bucket", "le", "0.5"))."""
        cache_key = (family, tuple(resource.items()), attributes, variants)
        keys = self._series.get(cache_key)
        if keys is None:
            pairs = self.point_labels(attributes)
            pairs.update(resource)
            made = []
            for suffix, extra, value in variants:
                labelled = dict(pairs)
                labelled[METRIC_NAME] = family + suffix
                if extra:
                    labelled[extra] = value
                made.append(series_key(self.finish(labelled)))
            keys = tuple(made)
            if len(self._series) >= self.limits.series_cache_size:
                self._series.clear()  # emptied when full, as the remote_write cache is
            if self.limits.series_cache_size:
                self._series[cache_key] = keys
        return keys

    def bucket_variants(self, bounds: tuple[float, ...], has_sum: bool) -> _Variants:
        """The series of a classic histogram: _count, _sum, then each bucket and +Inf."""
        variants = self._bucket_variants.get((bounds, has_sum))
        if variants is None:
            made = [("_count", "", "")] + ([("_sum", "", "")] if has_sum else [])
            made.extend(("_bucket", "le", format_f(bound)) for bound in bounds)
            made.append(("_bucket", "le", "+Inf"))
            variants = tuple(made)
            if len(self._bucket_variants) > 10_000:
                self._bucket_variants.clear()
            self._bucket_variants[(bounds, has_sum)] = variants
        return variants

    def point_labels(self, attributes: _Attributes) -> dict[str, str]:
        """Data-point attributes as labels: keys in order, values of clashing keys joined."""
        pairs: dict[str, str] = {}
        for key, value in sorted(dict(attributes).items()):
            if key == METRIC_NAME or not value:
                continue
            try:
                name = self.label(key)
            except OtelNameError as err:
                raise _PointRejectedError("invalid_label_name", str(err)) from None
            pairs[name] = f"{pairs[name]};{value}" if pairs.get(name) else value
        return pairs

    def finish(self, pairs: dict[str, str]) -> Labels:
        limits = self.limits
        if len(pairs) > limits.max_labels_per_series:
            raise _PointRejectedError(
                "too_many_labels",
                f"limit limits.max_labels_per_series ({limits.max_labels_per_series}) exceeded "
                f"by {pairs.get(METRIC_NAME, '')}: {len(pairs)} labels",
            )
        for name, value in pairs.items():
            if len(name) > limits.max_label_name_length:
                raise _PointRejectedError(
                    "label_name_too_long",
                    f"limit limits.max_label_name_length ({limits.max_label_name_length}) "
                    f"exceeded by label {name[:64]}...",
                )
            if len(value.encode()) > limits.max_label_value_length:
                raise _PointRejectedError(
                    "label_value_too_long",
                    f"limit limits.max_label_value_length ({limits.max_label_value_length}) "
                    f"exceeded by the value of label {name}",
                )
        return tuple(sorted(pairs.items()))

    def _target_info(
        self,
        rows: _Rows,
        attributes: dict[str, str],
        resource: dict[str, str],
        first_ms: int,
        last_ms: int,
    ) -> None:
        others = {k: v for k, v in attributes.items() if k not in IDENTIFYING}
        if not others or not resource:
            return
        pairs: dict[str, str] = {}
        for key, value in sorted(others.items()):
            if not value:
                continue
            try:
                name = self.label(key)
            except OtelNameError:
                continue
            pairs[name] = f"{pairs[name]};{value}" if pairs.get(name) else value
        pairs.update(resource)
        pairs[METRIC_NAME] = "target_info"
        try:
            info = series_key(self.finish(pairs))
        except _PointRejectedError:
            return
        step = max(self.limits.target_info_interval_ms, 1)
        at = first_ms
        while at < last_ms:
            rows.add(info, at, 1.0)
            at += step
        rows.add(info, last_ms, 1.0)


class _Metric:
    """One OTLP metric: its family name and type, and a writer for each of its points."""

    def __init__(
        self,
        decoder: OtlpMetricsDecoder,
        metric: metrics_pb2.Metric,
        resource: dict[str, str],
        tenant: str,
        now_ms: float,
    ) -> None:
        self.decoder = decoder
        self.metric = metric
        self.resource = resource
        self.tenant = tenant
        self.now_ms = now_ms
        self.data = metric.WhichOneof("data")
        self.kind = _kind(metric)
        self.family = ""
        self.error: _PointRejectedError | None = None
        temporality = self._temporality()
        if temporality is not None and temporality not in (DELTA, CUMULATIVE):
            self.error = _PointRejectedError(
                "invalid_temporality",
                f'invalid temporality and type combination for metric "{metric.name}"',
            )
        elif self.kind is not None:
            try:
                self.family = metric_name(metric.name, metric.unit, self.kind)
            except OtelNameError as err:
                self.error = _PointRejectedError("invalid_metric_name", str(err))
        self.delta = temporality == DELTA

    def _temporality(self) -> int | None:
        if self.data in ("sum", "histogram", "exponential_histogram"):
            return int(getattr(self.metric, self.data).aggregation_temporality)
        return None

    def metadata(self) -> MetricMetadata:
        types = {
            MetricKind.GAUGE: "gauge",
            MetricKind.UPDOWN: "gauge",
            MetricKind.COUNTER: "counter",
            MetricKind.HISTOGRAM: "histogram",
            MetricKind.SUMMARY: "summary",
        }
        assert self.kind is not None
        return MetricMetadata(
            metric=self.family,
            type=types[self.kind],
            help=self.metric.description,
            unit=unit_name(self.metric.unit),
        )

    def points(self) -> Iterable[tuple[Any, Callable[[_Rows], None]]]:
        if self.data is None:
            return
        for point in getattr(self.metric, self.data).data_points:
            yield point, self._writer(point)

    def _writer(self, point: Any) -> Callable[[_Rows], None]:
        def write(rows: _Rows) -> None:
            if self.error is not None:
                raise self.error
            attributes = tuple([(kv.key, _text(kv.value)) for kv in point.attributes])
            at = point.time_unix_nano // 1_000_000
            stale = bool(point.flags & NO_RECORDED_VALUE)
            if self.data in ("gauge", "sum"):
                self._number(rows, attributes, point, at, stale)
            elif self.data == "histogram":
                self._histogram(rows, attributes, point, at, stale)
            elif self.data == "exponential_histogram":
                self._exponential(rows, attributes, point, at, stale)
            else:
                self._summary(rows, attributes, point, at, stale)

        return write

    def _keys(self, attributes: _Attributes, variants: _Variants) -> tuple[bytes, ...]:
        return self.decoder.series_keys(self.family, self.resource, attributes, variants)

    def _running(
        self, stream: bytes, point: Any, values: npt.NDArray[np.float64], shape: tuple[float, ...]
    ) -> npt.NDArray[np.float64]:
        """Delta points as running totals; cumulative ones as they are."""
        if not self.delta:
            return values
        totals = self.decoder.deltas.accumulate(
            self.tenant, stream, point.time_unix_nano, values, self.now_ms, shape
        )
        if totals is None:
            raise _PointRejectedError(
                "delta_out_of_order",
                f"delta point of {self.family} at {point.time_unix_nano} ns is not after the "
                "stream's previous point",
            )
        return totals

    def _number(
        self, rows: _Rows, attributes: _Attributes, point: Any, at: int, stale: bool
    ) -> None:
        which = point.WhichOneof("value")
        if which is None and not stale:
            raise _PointRejectedError(
                "no_value", f"a data point of {self.metric.name} has neither asDouble nor asInt"
            )
        (key,) = self._keys(attributes, _PLAIN)
        if stale:
            rows.add(key, at, STALE_NAN)
            return
        value = float(point.as_double if which == "as_double" else point.as_int)
        if self.data == "sum" and self.delta:
            value = float(self._running(key, point, np.array([value]), ())[0])
        rows.add(key, at, value)
        if self.data == "sum":  # Prometheus keeps the exemplars of sums, not of gauges
            for exemplar in point.exemplars:
                rows.exemplar(len(rows.keys) - 1, exemplar, at)

    def _histogram(
        self, rows: _Rows, attributes: _Attributes, point: Any, at: int, stale: bool
    ) -> None:
        bounds = tuple(point.explicit_bounds)
        counts = list(point.bucket_counts)[: len(bounds) + 1]
        width = min(len(bounds), len(counts))
        has_sum = point.HasField("sum")
        keys = self._keys(attributes, self.decoder.bucket_variants(bounds[:width], has_sum))
        if stale:
            rows.extend(keys, at, [STALE_NAN] * len(keys))
            return
        count, total = float(point.count), point.sum if has_sum else 0.0
        buckets: Sequence[float] = counts[:width]
        if self.delta:
            running = self._running(
                keys[0], point, np.array([*buckets, count, total], dtype=np.float64), bounds[:width]
            ).tolist()
            buckets, count, total = running[:width], running[width], running[width + 1]
        values = [count, total] if has_sum else [count]
        values.extend(accumulate(buckets))
        values.append(count)  # +Inf is the count, as Prometheus writes it
        first = len(rows.keys)
        rows.extend(keys, at, values)
        buckets_at = first + (2 if has_sum else 1)
        for exemplar in point.exemplars:
            # on the first bucket holding its value, as Prometheus places them
            value = (
                exemplar.as_double
                if exemplar.WhichOneof("value") == "as_double"
                else (exemplar.as_int)
            )
            bucket = next((i for i, b in enumerate(bounds[:width]) if value <= b), width)
            rows.exemplar(buckets_at + bucket, exemplar, at)

    def _exponential(
        self, rows: _Rows, attributes: _Attributes, point: Any, at: int, stale: bool
    ) -> None:
        if self.decoder.limits.native_exponential_histograms:
            self._native(rows, attributes, point, at, stale)
            return
        scale = min(int(point.scale), self.decoder.limits.exponential_histogram_max_scale)
        dense, low = _dense_exponential(point, scale)
        has_sum = point.HasField("sum")
        (stream,) = self._keys(attributes, (("_count", "", ""),))
        if not stale:
            dense = self._running(stream, point, dense, (float(scale), float(low)))
        les = _exponential_buckets(dense, scale, low, float(point.zero_threshold))
        variants: list[tuple[str, str, str]] = [("_count", "", "")]
        values = [dense[-2]]
        if has_sum:
            variants.append(("_sum", "", ""))
            values.append(dense[-1])
        for le, cumulative in les:
            variants.append(("_bucket", "le", le))
            values.append(cumulative)
        keys = self._keys(attributes, tuple(variants))
        rows.extend(keys, at, [STALE_NAN] * len(keys) if stale else [float(v) for v in values])

    def _native(
        self, rows: _Rows, attributes: _Attributes, point: Any, at: int, stale: bool
    ) -> None:
        """An exponential histogram as a native histogram under the family's own name, as
        Prometheus 3 stores it: OTLP bucket i, (base^i, base^(i+1)], is Prometheus' bucket
        i + 1; scales above 8 are reduced to 8; delta points become running totals (a new
        total where the layout changes)."""
        (key,) = self._keys(attributes, _PLAIN)
        if stale:
            rows.add(key, at, STALE_NAN)
            return
        scale = int(point.scale)
        if scale < MIN_SCHEMA:
            raise _PointRejectedError(
                "unsupported_scale",
                f"exponential histogram {self.family} has scale {scale}; native histograms "
                f"go down to {MIN_SCHEMA}",
            )
        sides = [
            (int(side.offset) + 1, [float(c) for c in side.bucket_counts])
            for side in (point.positive, point.negative)
        ]
        (pos_at, pos), (neg_at, neg) = sides
        total = point.sum if point.HasField("sum") else 0.0
        values = np.array([*pos, *neg, point.zero_count, point.count, total], dtype=np.float64)
        layout = (float(scale), float(pos_at), float(len(pos)), float(neg_at), float(len(neg)))
        values = self._running(key, point, values, layout)
        pos, neg = values[: len(pos)].tolist(), values[len(pos) : len(pos) + len(neg)].tolist()
        histogram = FloatHistogram(
            schema=scale,
            count=float(values[-2]),
            sum=float(values[-1]),
            zero_threshold=float(point.zero_threshold),
            zero_count=float(values[-3]),
            positive_spans=((pos_at, len(pos)),) if pos else (),
            positive_buckets=tuple(pos),
            negative_spans=((neg_at, len(neg)),) if neg else (),
            negative_buckets=tuple(neg),
        ).reduced(MAX_SCHEMA)
        try:
            histogram.validate()
        except ValueError as err:
            raise _PointRejectedError("invalid_histogram", f"{self.family}: {err}") from None
        position = len(rows.keys)
        rows.add_histogram(key, at, histogram)
        for exemplar in point.exemplars:
            rows.exemplar(position, exemplar, at)

    def _summary(
        self, rows: _Rows, attributes: _Attributes, point: Any, at: int, stale: bool
    ) -> None:
        variants = [("_count", "", ""), ("_sum", "", "")]
        values = [float(point.count), point.sum]
        for quantile in point.quantile_values:
            variants.append(("", "quantile", format_f(quantile.quantile)))
            values.append(quantile.value)
        keys = self._keys(attributes, tuple(variants))
        rows.extend(keys, at, [STALE_NAN] * len(keys) if stale else values)


def _kind(metric: metrics_pb2.Metric) -> MetricKind | None:
    data = metric.WhichOneof("data")
    if data == "gauge":
        return MetricKind.GAUGE
    if data == "sum":
        return MetricKind.COUNTER if metric.sum.is_monotonic else MetricKind.UPDOWN
    if data in ("histogram", "exponential_histogram"):
        return MetricKind.HISTOGRAM
    if data == "summary":
        return MetricKind.SUMMARY
    return None


# --- exponential histograms ------------------------------------------------------------------

# Buckets kept per side, at scale 0: values from 2^-64 to 2^64 in magnitude (a value beyond
# goes to the outermost bucket). Each step of scale doubles them.
_EXPONENTIAL_RANGE = 64


def _window(scale: int) -> int:
    return max(_EXPONENTIAL_RANGE << scale if scale >= 0 else _EXPONENTIAL_RANGE >> -scale, 1)


def _dense_exponential(point: Any, scale: int) -> tuple[npt.NDArray[np.float64], int]:
    """The point's buckets at `scale` (at most its own) as one array: negative buckets (index
    -low..), positive buckets, then zero count, count and sum. Index i stands for the bucket
    (base^i, base^(i+1)], base = 2^(2^-scale), as OTLP numbers them."""
    shift = int(point.scale) - scale
    half = _window(scale)
    low = -half
    dense = np.zeros(4 * half + 3, dtype=np.float64)
    for side, buckets in ((0, point.negative), (2 * half, point.positive)):
        offset = int(buckets.offset)
        for i, count in enumerate(buckets.bucket_counts):
            if count:
                index = (offset + i) >> shift
                position = min(max(index - low, 0), 2 * half - 1)
                dense[side + position] += count
    dense[-3] = float(point.zero_count)
    dense[-2] = float(point.count)
    dense[-1] = point.sum if point.HasField("sum") else 0.0
    return dense, low


def _exponential_buckets(
    dense: npt.NDArray[np.float64], scale: int, low: int, zero_threshold: float
) -> list[tuple[str, float]]:
    """Classic cumulative buckets of an exponential histogram: each populated bucket's upper
    bound as `le`, from the most negative through zero to the largest, then `+Inf`.

    A negative bucket i holds [-base^(i+1), -base^i), so its `le` is -base^i; the zero bucket
    holds [-zero_threshold, zero_threshold], `le` = zero_threshold; a positive bucket i holds
    (base^i, base^(i+1)], `le` = base^(i+1). Buckets run from the lowest populated one to the
    highest on each side (empty ones between are written too, so `le` series do not come and
    go within that span)."""
    half = (len(dense) - 3) // 4
    negative, positive = dense[: 2 * half], dense[2 * half : 4 * half]
    zero, count = dense[-3], dense[-2]
    out: list[tuple[str, float]] = []
    running = 0.0
    populated = np.flatnonzero(negative)
    if len(populated):
        for position in range(int(populated.max()), int(populated.min()) - 1, -1):
            running += negative[position]
            out.append((format_f(-_power(low + position, scale)), running))
    running += zero
    out.append((format_f(zero_threshold), running))
    populated = np.flatnonzero(positive)
    if len(populated):
        for position in range(int(populated.min()), int(populated.max()) + 1):
            running += positive[position]
            out.append((format_f(_power(low + position + 1, scale)), running))
    out.append(("+Inf", float(count)))
    return out


def _power(index: int, scale: int) -> float:
    return float(2.0 ** (index / (1 << scale))) if scale >= 0 else float(2.0 ** (index << -scale))


# --- values ------------------------------------------------------------------------------------


def _attributes(attributes: Iterable[common_pb2.KeyValue]) -> dict[str, str]:
    return {kv.key: _text(kv.value) for kv in attributes}


def _text(value: common_pb2.AnyValue) -> str:
    """An attribute value as text, as OpenTelemetry's pdata AsString writes it."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return _es_number(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind in ("array_value", "kvlist_value"):
        return json.dumps(_plain(value), separators=(",", ":"), ensure_ascii=False)
    return ""


def _plain(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_plain(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _plain(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind is None:
        return None
    return getattr(value, kind)


def _es_number(value: float) -> str:
    """A double as JSON writes numbers (ECMAScript's rules): positional from 1e-6 up to 1e21,
    exponent outside (`1e-7`, `1e+21`)."""
    if math.isnan(value) or math.isinf(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    magnitude = abs(value)
    if 1e-6 <= magnitude < 1e21:
        return format_f(value)
    text = repr(value)
    mantissa, _, exponent = text.partition("e")
    power = int(exponent)
    return f"{mantissa.removesuffix('.0')}e{'+' if power >= 0 else '-'}{abs(power)}"


def _resource_labels(attributes: dict[str, str]) -> dict[str, str]:
    labels = {}
    name = attributes.get("service.name")
    if name is not None:
        namespace = attributes.get("service.namespace")
        labels["job"] = f"{namespace}/{name}" if namespace is not None else name
    instance = attributes.get("service.instance.id")
    if instance:
        labels["instance"] = instance
    return {k: v for k, v in labels.items() if v}


def _hex_ids_to_base64(node: Any) -> None:
    """OTLP/JSON writes trace and span ids in hex; protobuf's JSON reader wants base64."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise OtlpError(f"{key} {value!r} is not hex") from None
            else:
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)
