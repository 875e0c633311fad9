"""Prometheus remote_write 1.0: snappy-compressed `prometheus.WriteRequest` -> SeriesBatch.

The protobuf is decoded straight into Arrow columns (ptars) and every check runs over whole
columns, so the cost per sample stays far below one Python object per sample. Problems with the
body as a whole (snappy, protobuf, request limits) reject the request; problems with one series
(label rules, label limits) reject that series, and an unusable native histogram that sample,
keeping the rest; the reasons come back in `DecodedWrite.rejected` for the 400 answer. Native
histograms are decoded one message each (ingest/native_histograms.py): they are few next to
float samples, each standing for a whole classic histogram's series.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import ptars
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.ingest import snappy
from watchkeeper.ingest.native_histograms import decode_histogram
from watchkeeper.ingest.proto import remote_decode_pb2
from watchkeeper.model import (
    METRIC_NAME,
    Labels,
    MetricMetadata,
    NameValidation,
    SeriesBatch,
    format_labels,
    labels_from_dict,
    labels_from_key,
    series_key,
)
from watchkeeper.model.labels import LABEL_SEPARATOR, PAIR_SEPARATOR, legacy_pattern_for

_METADATA_TYPES = {
    0: "unknown",
    1: "counter",
    2: "gauge",
    3: "histogram",
    4: "gaugehistogram",
    5: "summary",
    6: "info",
    7: "stateset",
}
_NAME = METRIC_NAME.encode()
_MAX_EXAMPLES = 3
MAX_EXEMPLAR_LABELS_LENGTH = 128


class RemoteWriteError(ValueError):
    """The request as a whole cannot be used; the message says why."""


@dataclass(frozen=True)
class RemoteWriteLimits:
    max_decompressed_body_bytes: int = 128 * 1024 * 1024
    max_samples_per_request: int = 1_000_000
    max_labels_per_series: int = 64
    max_label_name_length: int = 1024
    max_label_value_length: int = 4096
    name_validation: NameValidation = NameValidation.UTF8


@dataclass
class DecodedWrite:
    batch: SeriesBatch
    # reason -> number of samples rejected for it, and a few example messages
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    @property
    def rejected_samples(self) -> int:
        return sum(self.rejected.values())


class RemoteWriteDecoder:
    """Decodes remote_write bodies under fixed limits; one instance serves every request.

    Senders repeat the same series request after request, byte for byte. So the decoder first
    reads each series' labels as one raw byte span (cheap) and looks it up in a cache of spans
    already validated and canonicalised; only a request with an unknown span goes through the
    full decode and checks. The cache holds at most `series_cache_size` spans and is emptied
    when full.
    """

    def __init__(self, limits: RemoteWriteLimits, series_cache_size: int = 1_000_000) -> None:
        self.limits = limits
        pool = ptars.HandlerPool([remote_decode_pb2.DESCRIPTOR])
        self._handler = pool.get_for_message(remote_decode_pb2.WriteRequest.DESCRIPTOR)
        self._raw_handler = pool.get_for_message(remote_decode_pb2.WriteRequestRaw.DESCRIPTOR)
        self._known: dict[bytes, bytes] = {}  # raw label span -> canonical series key
        self._cache_size = series_cache_size

    def decode(self, body: bytes) -> DecodedWrite:
        """Decode a snappy-compressed WriteRequest."""
        try:
            payload = snappy.decompress(
                body,
                self.limits.max_decompressed_body_bytes,
                "limits.max_decompressed_body_bytes",
            )
        except snappy.SnappyError as err:
            raise RemoteWriteError(str(err)) from None
        return self.decode_payload(payload)

    def decode_payload(self, payload: bytes) -> DecodedWrite:
        """Decode an uncompressed WriteRequest."""
        try:
            raw = self._raw_handler.list_to_record_batch([payload])
        except ValueError as err:
            raise RemoteWriteError(f"protobuf: cannot decode WriteRequest: {err}") from None
        fast = self._decode_known(raw)
        if fast is not None:
            return fast
        record = self._handler.list_to_record_batch([payload])
        decoded = _decode_columns(record, self.limits)
        self._remember(raw, decoded)
        return decoded

    def _decode_known(self, raw: pa.RecordBatch) -> DecodedWrite | None:
        """The whole request from the cache, or None if it holds anything not seen before."""
        if len(raw.column("metadata").values):
            return None
        series = raw.column("timeseries").values
        n_series = len(series)
        if np.any(np.diff(_offsets(series.field("histograms"), n_series))):
            return None
        spans = _label_spans(series.field("labels"), n_series)
        known = self._known
        keys = [known.get(span) for span in spans]
        if None in keys:
            return None
        sample_lists = series.field("samples")
        sample_offsets = _offsets(sample_lists, n_series)
        total = int(sample_offsets[-1] - sample_offsets[0])
        _check_sample_limit(total, self.limits)
        samples = sample_lists.values.slice(sample_offsets[0], total)
        batch = SeriesBatch(
            keys=keys,  # type: ignore[arg-type]  # no None left, checked above
            labels_of=lambda i: labels_from_key(keys[i]),  # type: ignore[arg-type]
            sample_series=np.repeat(np.arange(n_series, dtype=np.int64), np.diff(sample_offsets)),
            timestamps=np.asarray(samples.field("timestamp").to_numpy(), np.int64),
            values=np.asarray(samples.field("value").to_numpy(), np.float64),
            exemplars=_exemplars(series, n_series),
        )
        return DecodedWrite(batch=batch)

    def _remember(self, raw: pa.RecordBatch, decoded: DecodedWrite) -> None:
        """Cache the spans of series that passed every check, with their canonical keys."""
        series = raw.column("timeseries").values
        spans = _label_spans(series.field("labels"), len(series))
        if self._cache_size == 0:
            return
        accepted = set(decoded.batch.sample_series.tolist())
        if len(self._known) + len(accepted) > self._cache_size:
            self._known.clear()
        keys = decoded.batch.keys
        for index in accepted:
            self._known[spans[index]] = keys[index]


def _decode_columns(record: pa.RecordBatch, limits: RemoteWriteLimits) -> DecodedWrite:
    series_list = record.column("timeseries")
    series = series_list.values
    n_series = len(series)
    label_lists = series.field("labels")
    sample_lists = series.field("samples")
    label_offsets = _offsets(label_lists, n_series)
    sample_offsets = _offsets(sample_lists, n_series)
    total_samples = int(sample_offsets[-1] - sample_offsets[0])
    histogram_counts = np.diff(_offsets(series.field("histograms"), n_series))
    _check_sample_limit(total_samples + int(histogram_counts.sum()), limits)
    pairs = label_lists.values
    names = pairs.field("name").slice(label_offsets[0], label_offsets[-1] - label_offsets[0])
    values = pairs.field("value").slice(label_offsets[0], label_offsets[-1] - label_offsets[0])
    rel_offsets = label_offsets - label_offsets[0]
    checker = _SeriesChecker(names, values, rel_offsets, limits)
    problems = checker.problems()

    sample_counts = np.diff(sample_offsets)

    samples = sample_lists.values.slice(sample_offsets[0], total_samples)
    timestamps = np.asarray(samples.field("timestamp").to_numpy(zero_copy_only=False), np.int64)
    sample_values = np.asarray(samples.field("value").to_numpy(zero_copy_only=False), np.float64)
    sample_series = np.repeat(np.arange(n_series, dtype=np.int64), sample_counts)

    result = DecodedWrite(
        batch=SeriesBatch([], lambda i: (), sample_series, timestamps, sample_values)
    )
    bad = np.zeros(n_series, dtype=bool)
    for index, message in problems.items():
        bad[index] = True
        samples = int(sample_counts[index] + histogram_counts[index])
        result.rejected[message.split(":", 1)[0]] += samples or 1
        if len(result.examples) < _MAX_EXAMPLES:
            result.examples.append(message)
    keys = checker.keys()
    if np.any(bad):
        keep = ~bad[sample_series]
        result.batch = SeriesBatch(
            keys, checker.labels_of, sample_series[keep], timestamps[keep], sample_values[keep]
        )
    else:
        result.batch = SeriesBatch(
            keys, checker.labels_of, sample_series, timestamps, sample_values
        )
    if np.any(histogram_counts[~bad]):
        _add_histograms(result, series, histogram_counts, bad, checker)
    result.batch.metadata = _metadata(record)
    result.batch.exemplars = [e for e in _exemplars(series, n_series) if not bad[e[0]]]
    return result


def _add_histograms(
    result: DecodedWrite,
    series: pa.StructArray,
    counts: npt.NDArray[np.int64],
    bad: npt.NDArray[np.bool_],
    checker: _SeriesChecker,
) -> None:
    """The native histogram samples of the series that passed the label checks; one that
    cannot be used is counted and named, the rest kept."""
    lists = series.field("histograms")
    offsets = _offsets(lists, len(series))
    raw = lists.values.slice(offsets[0], offsets[-1] - offsets[0]).to_pylist()
    owners = np.repeat(np.arange(len(series), dtype=np.int64), counts).tolist()
    kept_series, kept_times, kept = [], [], []
    for owner, body in zip(owners, raw, strict=True):
        if bad[owner]:
            continue
        try:
            at, histogram = decode_histogram(body)
        except ValueError as err:
            result.rejected["invalid native histogram"] += 1
            if len(result.examples) < _MAX_EXAMPLES:
                labels = format_labels(checker.labels_of(owner))
                result.examples.append(f"invalid native histogram: series {labels}: {err}")
            continue
        kept_series.append(owner)
        kept_times.append(at)
        kept.append(histogram)
    result.batch.histogram_series = np.array(kept_series, dtype=np.int64)
    result.batch.histogram_timestamps = np.array(kept_times, dtype=np.int64)
    result.batch.histograms = kept


def _exemplars(series: pa.StructArray, count: int) -> list[tuple[int, Labels, float, int]]:
    """The exemplars of each series (index, labels, value, timestamp). Few requests carry
    any (Prometheus sends them with `send_exemplars: true`), so they are read one by one; one
    whose labels exceed 128 characters, as Prometheus' storage refuses them, is left out."""
    lists = series.field("exemplars")
    offsets = _offsets(lists, count)
    if offsets[-1] == offsets[0]:
        return []
    owners = np.repeat(np.arange(count, dtype=np.int64), np.diff(offsets)).tolist()
    found = lists.values.slice(offsets[0], offsets[-1] - offsets[0]).to_pylist()
    out = []
    for owner, exemplar in zip(owners, found, strict=True):
        pairs = [
            (p["name"].decode(errors="replace"), p["value"].decode(errors="replace"))
            for p in exemplar["labels"]
        ]
        if sum(len(n) + len(v) for n, v in pairs) > MAX_EXEMPLAR_LABELS_LENGTH:
            continue
        labels = tuple(sorted((n, v) for n, v in pairs if v))
        out.append((owner, labels, float(exemplar["value"]), int(exemplar["timestamp"])))
    return out


def _check_sample_limit(total: int, limits: RemoteWriteLimits) -> None:
    if total > limits.max_samples_per_request:
        raise RemoteWriteError(
            f"limit limits.max_samples_per_request ({limits.max_samples_per_request}) exceeded: "
            f"request has {total} samples"
        )


def _label_spans(label_lists: pa.ListArray, count: int) -> list[bytes]:
    """Per series, the bytes of all its serialized labels: one slice of the decoded buffer."""
    raw_labels = label_lists.values
    start = raw_labels.offset
    byte_offsets = np.frombuffer(raw_labels.buffers()[1], dtype=np.int32)[
        start : start + len(raw_labels) + 1
    ]
    bounds = byte_offsets[_offsets(label_lists, count)].astype(np.int32)
    spans = pa.BinaryArray.from_buffers(
        pa.binary(), count, [None, pa.py_buffer(bounds), raw_labels.buffers()[2]]
    )
    return spans.to_pylist()  # type: ignore[no-any-return]


def _offsets(lists: pa.ListArray, count: int) -> npt.NDArray[np.int64]:
    return np.asarray(lists.offsets.to_numpy()[: count + 1], dtype=np.int64)


class _SeriesChecker:
    """Per-series label checks over flattened label columns; `problems` maps a series index
    to the first rule it breaks."""

    def __init__(
        self,
        names: pa.Array,
        values: pa.Array,
        offsets: npt.NDArray[np.int64],
        limits: RemoteWriteLimits,
    ) -> None:
        self.names = names
        self.values = values
        self.offsets = offsets
        self.limits = limits
        self.n_series = len(offsets) - 1
        self.label_counts = np.diff(offsets)
        # series whose canonical form differs from the wire form (unsorted or empty values)
        self._rewritten: dict[int, Labels] = {}

    def _per_series(self, flags: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        cumulative = np.zeros(len(flags) + 1, dtype=np.int64)
        np.cumsum(flags, dtype=np.int64, out=cumulative[1:])
        counts: npt.NDArray[np.int64] = cumulative[self.offsets[1:]] - cumulative[self.offsets[:-1]]
        return counts

    def _first_label(self, series: int, flags: npt.NDArray[np.bool_]) -> int:
        start, end = int(self.offsets[series]), int(self.offsets[series + 1])
        return start + int(np.flatnonzero(flags[start:end])[0])

    def problems(self) -> dict[int, str]:
        found: dict[int, str] = {}
        limits = self.limits

        def flag(series_flags: npt.NDArray[np.bool_], describe: Callable[[int], str]) -> None:
            for index in np.flatnonzero(series_flags).tolist():
                if index not in found:
                    found[index] = describe(index)

        flag(self.label_counts == 0, lambda i: "empty label set: a series needs labels")
        flag(
            self.label_counts > limits.max_labels_per_series,
            lambda i: (
                f"limit limits.max_labels_per_series ({limits.max_labels_per_series}) "
                f"exceeded: series has {self.label_counts[i]} labels"
            ),
        )
        name_len = _lengths(self.names)
        value_len = _lengths(self.values)
        valid_utf8 = _utf8_valid(self.names) & _utf8_valid(self.values)
        invalid_utf8 = ~valid_utf8
        flag(
            self._per_series(invalid_utf8) > 0,
            lambda i: (
                "invalid UTF-8 in label: "
                + _describe_bytes(self, self._first_label(i, invalid_utf8))
            ),
        )
        empty_name = name_len == 0
        flag(self._per_series(empty_name) > 0, lambda i: "empty label name: series " + self._raw(i))
        too_long_name = name_len > limits.max_label_name_length
        flag(
            self._per_series(too_long_name) > 0,
            lambda i: (
                f"limit limits.max_label_name_length ({limits.max_label_name_length}) "
                f"exceeded: label name of {name_len[self._first_label(i, too_long_name)]} bytes"
            ),
        )
        too_long_value = value_len > limits.max_label_value_length
        flag(
            self._per_series(too_long_value) > 0,
            lambda i: (
                f"limit limits.max_label_value_length ({limits.max_label_value_length}) "
                f"exceeded: label value of {value_len[self._first_label(i, too_long_value)]} bytes "
                f"in series {self._raw(i)}"
            ),
        )
        is_name = _bools(pc.equal(self.names, pa.scalar(_NAME, pa.binary())))
        metric_names = self._per_series(is_name & (value_len > 0))
        flag(
            metric_names == 0,
            lambda i: (
                f"missing metric name: series {self._raw(i)} has no {METRIC_NAME} label "
                "or an empty one"
            ),
        )
        if limits.name_validation is NameValidation.LEGACY:
            self._check_legacy(flag, is_name, valid_utf8)

        # Adjacent labels within a series: sorted strictly ascending means no duplicates.
        same_series = np.ones(max(len(self.names) - 1, 0), dtype=bool)
        boundaries = self.offsets[1:-1] - 1
        same_series[boundaries[(boundaries >= 0) & (boundaries < len(same_series))]] = False
        if len(self.names) > 1:
            left, right = self.names.slice(0, len(self.names) - 1), self.names.slice(1)
            ascending = _bools(pc.less(left, right))
            equal = _bools(pc.equal(left, right))
        else:
            ascending = equal = np.zeros(0, dtype=bool)
        pair_flags = np.zeros(len(self.names), dtype=bool)
        pair_flags[: len(same_series)] = same_series & ~ascending & ~equal
        unsorted = self._per_series(pair_flags) > 0
        dup_flags = np.zeros(len(self.names), dtype=bool)
        dup_flags[: len(same_series)] = same_series & equal
        duplicated = self._per_series(dup_flags) > 0
        needs_rewrite = unsorted | (self._per_series(value_len == 0) > 0)
        for index in np.flatnonzero(needs_rewrite & ~duplicated).tolist():
            if index in found:
                continue
            pairs = self._decoded_pairs(index)
            seen = [name for name, _ in pairs]
            dup = next((n for n in seen if seen.count(n) > 1), None)
            if dup is not None:
                found[index] = f'duplicate label name: "{dup}" in series {self._raw(index)}'
            else:
                self._rewritten[index] = labels_from_dict(pairs)
        flag(
            duplicated,
            lambda i: (
                f'duplicate label name: "{self._label_at(i, dup_flags)[0]}" '
                f"in series {self._raw(i)}"
            ),
        )
        return found

    def _check_legacy(
        self,
        flag: Callable[[npt.NDArray[np.bool_], Callable[[int], str]], None],
        is_name: npt.NDArray[np.bool_],
        valid_utf8: npt.NDArray[np.bool_],
    ) -> None:
        safe_names = pc.if_else(pa.array(valid_utf8), self.names, pa.scalar(b"x", pa.binary()))
        safe_values = pc.if_else(pa.array(valid_utf8), self.values, pa.scalar(b"x", pa.binary()))
        label_ok = _bools(
            pc.match_substring_regex(
                safe_names.cast(pa.string()), f"^{legacy_pattern_for('label')}$"
            )
        )
        metric_ok = _bools(
            pc.match_substring_regex(
                safe_values.cast(pa.string()), f"^{legacy_pattern_for('metric')}$"
            )
        )
        bad_label = ~label_ok & ~is_name
        bad_metric = is_name & ~metric_ok
        flag(
            self._per_series(bad_label) > 0,
            lambda i: (
                "invalid label name (legacy validation): "
                + repr(
                    self._decoded_pairs(i)[self._first_label(i, bad_label) - int(self.offsets[i])][
                        0
                    ]
                )
            ),
        )
        flag(
            self._per_series(bad_metric) > 0,
            lambda i: (
                "invalid metric name (legacy validation): "
                + repr(
                    self._decoded_pairs(i)[self._first_label(i, bad_metric) - int(self.offsets[i])][
                        1
                    ]
                )
            ),
        )

    def _label_at(self, series: int, flags: npt.NDArray[np.bool_]) -> tuple[str, str]:
        """The first flagged label of a series, decoded."""
        return self._decoded_pairs(series)[
            self._first_label(series, flags) - int(self.offsets[series])
        ]

    def _decoded_pairs(self, series: int) -> list[tuple[str, str]]:
        start, end = int(self.offsets[series]), int(self.offsets[series + 1])
        names = self.names.slice(start, end - start).to_pylist()
        values = self.values.slice(start, end - start).to_pylist()
        return [
            (n.decode(errors="replace"), v.decode(errors="replace"))
            for n, v in zip(names, values, strict=True)
        ]

    def _raw(self, series: int) -> str:
        return format_labels(tuple(self._decoded_pairs(series)))

    def labels_of(self, series: int) -> Labels:
        rewritten = self._rewritten.get(series)
        if rewritten is not None:
            return rewritten
        return tuple(self._decoded_pairs(series))

    def keys(self) -> list[bytes]:
        pairs = pc.binary_join_element_wise(self.names, self.values, PAIR_SEPARATOR)
        per_series = pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), pairs)
        keys: list[bytes] = pc.binary_join(per_series, LABEL_SEPARATOR).to_pylist()
        for index, labels in self._rewritten.items():
            keys[index] = series_key(labels)
        return keys


def _bools(array: pa.Array) -> npt.NDArray[np.bool_]:
    # to_numpy, not np.asarray: the latter makes pyarrow look for pandas on every call.
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=bool)


def _lengths(array: pa.Array) -> npt.NDArray[np.int64]:
    return np.asarray(pc.binary_length(array).to_numpy(zero_copy_only=False), dtype=np.int64)


def _utf8_valid(array: pa.Array) -> npt.NDArray[np.bool_]:
    try:
        array.cast(pa.string())
    except pa.ArrowInvalid:
        return np.array([_is_utf8(raw) for raw in array.to_pylist()], dtype=bool)
    return np.ones(len(array), dtype=bool)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _describe_bytes(checker: _SeriesChecker, label: int) -> str:
    name = checker.names[label].as_py()
    value = checker.values[label].as_py()
    which = "name" if not _is_utf8(name) else "value"
    return f"label {which} {name!r}={value!r} is not valid UTF-8"


def _metadata(record: pa.RecordBatch) -> list[MetricMetadata]:
    rows = record.column("metadata").values
    if len(rows) == 0:
        return []
    out = []
    for row in rows.to_pylist():
        name = row["metric_family_name"].decode(errors="replace")
        if not name:
            continue
        out.append(
            MetricMetadata(
                metric=name,
                type=_METADATA_TYPES.get(row["type"], "unknown"),
                help=row["help"].decode(errors="replace"),
                unit=row["unit"].decode(errors="replace"),
            )
        )
    return out
