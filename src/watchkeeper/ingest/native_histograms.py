"""Native histograms as remote_write sends them (prometheus.Histogram) -> model FloatHistogram.

Integer histograms carry each side's bucket counts as deltas (each bucket minus the one before,
across the side's spans); float histograms carry absolute counts. Both become float histograms,
as Prometheus' query engine sees them. A histogram Prometheus' storage would refuse (bad schema,
spans not matching the buckets, negative counts) is refused with the reason.
"""

from __future__ import annotations

import itertools
import math

from google.protobuf.message import DecodeError

from watchkeeper.ingest.proto import remote_pb2
from watchkeeper.model.histogram import FloatHistogram


def decode_histogram(raw: bytes) -> tuple[int, FloatHistogram]:
    """One serialized prometheus.Histogram: its timestamp (ms) and the histogram; ValueError
    naming what is wrong with it."""
    try:
        message = remote_pb2.Histogram.FromString(raw)
    except DecodeError as err:
        raise ValueError(f"cannot decode native histogram: {err}") from None
    return message.timestamp, from_proto(message)


def from_proto(message: remote_pb2.Histogram) -> FloatHistogram:
    is_float = message.WhichOneof("count") == "count_float"
    if is_float:
        positive = tuple(message.positive_counts)
        negative = tuple(message.negative_counts)
        count = message.count_float
        zero = message.zero_count_float
    else:
        positive = tuple(map(float, itertools.accumulate(message.positive_deltas)))
        negative = tuple(map(float, itertools.accumulate(message.negative_deltas)))
        count = float(message.count_int)
        zero = float(message.zero_count_int)
    histogram = FloatHistogram(
        schema=message.schema,
        count=count,
        sum=message.sum,
        zero_threshold=message.zero_threshold,
        zero_count=zero,
        positive_spans=tuple((s.offset, s.length) for s in message.positive_spans),
        positive_buckets=positive,
        negative_spans=tuple((s.offset, s.length) for s in message.negative_spans),
        negative_buckets=negative,
        custom_values=tuple(message.custom_values),
        counter_reset_hint=int(message.reset_hint),
    )
    histogram.validate()
    for side, counts in (("positive", positive), ("negative", negative)):
        if counts and min(counts) < 0:
            raise ValueError(f"native histogram has a negative {side} bucket count")
    if histogram.zero_count < 0 or histogram.count < 0:
        raise ValueError("native histogram has a negative count")
    if not is_float:
        # an integer histogram counts the observations in its buckets (Prometheus 3's check;
        # with a NaN sum it may count more: NaN observations are in no bucket)
        observed = sum(positive) + sum(negative) + zero
        if observed > count or (observed != count and not math.isnan(message.sum)):
            raise ValueError(
                f"{observed:.0f} observations found in buckets, but the Count field is {count:.0f}"
            )
    return histogram
