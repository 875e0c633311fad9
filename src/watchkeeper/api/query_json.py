"""Query answers in the Prometheus API's JSON, written as Prometheus writes them.

Byte for byte as Prometheus 3 (web/api/v1/json_codec.go, util/jsonutil): sample timestamps are
seconds with the milliseconds kept as three digits (`1700000000.120`); sample values are strings
in Go's shortest float form, with an exponent only below 1e-6 or from 1e21 (`"1e-07"`); a
scalar's value never has one; strings escape `<`, `>` and `&` as Go does.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import orjson

from watchkeeper.model import Labels
from watchkeeper.model.gofloat import format_f
from watchkeeper.model.histogram import FloatHistogram, Spans, bucket_edges, bucket_places
from watchkeeper.promql import GatedRun, QueryResult, Series

MAX_ANNOTATIONS = 10  # per kind, as Prometheus' API answers them
_NO_VALUES = np.empty(0, dtype=np.float64)
_ESCAPE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029]')
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


@functools.lru_cache(maxsize=1 << 14)
def go_string(text: str) -> str:
    """A JSON string as Go's encoders write it (HTML-safe, other control bytes as \\u00XX).
    Remembered: label names and values repeat in nearly every series of an answer."""
    return '"' + _ESCAPE.sub(_escape, text) + '"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


def go_json(value: Any) -> str:
    """Any JSON value as Go writes a map: keys sorted, no spaces, `<`, `>` and `&` escaped (the
    escapes are safe to apply to the whole text: those characters only occur inside strings)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def sample_value(value: float) -> str:
    """jsonutil.MarshalFloat, without the quotes."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    size = abs(value)
    if size != 0 and (size < 1e-6 or size >= 1e21):
        return text  # Python's repr has Go's 'e' form here: shortest digits, e-07, e+21
    if "e" in text:
        return format_f(value)
    return text[:-2] if text.endswith(".0") else text


def sample_values(values: npt.NDArray[np.float64]) -> list[str]:
    """`sample_value` of many values at once. orjson writes the shortest digits that read back
    to the same float, as Python's repr and Go's strconv do, about twelve times faster than
    repr; an integral value's ".0" is cut, as Go writes none, and the values whose form differs
    from Go's 'f' (exponents below 1e-4 and from 1e16; NaN and infinities, which orjson writes
    as null) are redone one by one."""
    if len(values) == 0:
        return []
    values = np.ascontiguousarray(values, dtype=np.float64)
    text = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    # shortest digits never end in ".0" except for an integral value
    texts = (text[1:-1] + ",").replace(".0,", ",").split(",")[:-1]
    size = np.abs(values)
    with np.errstate(invalid="ignore"):
        odd = ~np.isfinite(values) | (size >= 1e16) | ((size < 1e-4) & (size != 0))
    for i in np.flatnonzero(odd).tolist():
        texts[i] = sample_value(float(values[i]))
    return texts


def sample_timestamp(ms: int) -> str:
    """jsonutil.MarshalTimestamp: seconds, the milliseconds as three digits when not zero."""
    sign = "-" if ms < 0 else ""
    seconds, fraction = divmod(abs(ms), 1000)
    return f"{sign}{seconds}.{fraction:03d}" if fraction else f"{sign}{seconds}"


def go_number(value: float) -> str:
    """A float64 as Go's encoding/json writes it (the timestamps of scalars and strings)."""
    text = sample_value(value)
    if "e-0" in text:  # encoding/json shortens e-07 to e-7
        text = text.replace("e-0", "e-")
    return text


@functools.lru_cache(maxsize=1 << 16)
def labels_object(labels: Labels) -> str:
    """A label set as a JSON object. Remembered: dashboards ask for the same series again and
    again."""
    return "{" + ",".join(f"{go_string(n)}:{go_string(v)}" for n, v in labels) + "}"


def histograms_json(histograms: Sequence[FloatHistogram]) -> list[str]:
    """jsonutil.MarshalHistogram of many histograms: count, sum and the buckets with a count,
    each as [boundary rule, lower, upper, count]. Their numbers are written by one
    `sample_values` call, and the rules and bounds of each layout's buckets kept as text: a
    1 h range of 1,000 histograms of 20 buckets (60 K histograms, 62 MB of answer) took 2.9 s
    one number at a time, 0.4 s so."""
    numbers: list[float] = []
    heads: list[tuple[str, ...]] = []
    for h in histograms:
        zero = bool(h.zero_count)
        layout = _layout_heads(
            h.schema, h.custom_values, h.zero_threshold, h.negative_spans, zero, h.positive_spans
        )
        counts = h.ordered_counts()
        if 0.0 in counts:  # empty buckets are not listed
            kept = [i for i, count in enumerate(counts) if count]
            layout = tuple(layout[i] for i in kept)
            counts = [counts[i] for i in kept]
        numbers += (h.count, h.sum, *counts)
        heads.append(layout)
    texts = sample_values(np.array(numbers, dtype=np.float64))
    out = []
    k = 0
    for mine in heads:
        text = f'{{"count":"{texts[k]}","sum":"{texts[k + 1]}"'
        k += 2
        if mine:
            # each head ends in an open quote: its count, and the quote and bracket closing it
            pairs = '"],'.join(map(str.__add__, mine, texts[k : k + len(mine)]))
            text += f',"buckets":[{pairs}"]]'
            k += len(mine)
        out.append(text + "}")
    return out


@functools.lru_cache(maxsize=4096)  # bounded: layouts come from clients
def _layout_heads(
    schema: int,
    custom_values: tuple[float, ...],
    zero: float,
    negative_spans: Spans,
    has_zero: bool,
    positive_spans: Spans,
) -> tuple[str, ...]:
    """Each bucket's `[rule,"lower","upper","` in the answer, in its order: the negative
    buckets from -Inf up, the zero bucket, the positive ones."""
    heads = []
    for side, index in bucket_places(negative_spans, has_zero, positive_spans):
        rule, lower, upper = bucket_edges(schema, custom_values, zero, side, index, True)
        heads.append(f'[{rule},"{sample_value(lower)}","{sample_value(upper)}","')
    return tuple(heads)


def _histogram_points(points: Sequence[tuple[int, FloatHistogram]]) -> str:
    texts = histograms_json([h for _, h in points])
    return ",".join(
        f"[{sample_timestamp(at)},{text}]" for (at, _), text in zip(points, texts, strict=True)
    )


def _vector(series: Sequence[Series]) -> Iterable[str]:
    """Each sample of an instant answer; the values written by one `sample_values` call, and
    the timestamp (the same for every sample) once."""
    floats = [s for s in series if not s.histograms]
    texts = iter(sample_values(np.array([s.values[0] for s in floats], dtype=np.float64)))
    histograms = iter(histograms_json([s.histograms[0][1] for s in series if s.histograms]))
    stamps: dict[int, str] = {}
    for s in series:
        if s.histograms:
            point = f"[{sample_timestamp(s.histograms[0][0])},{next(histograms)}]"
            yield f'{{"metric":{labels_object(s.labels)},"histogram":{point}}}'
            continue
        ms = int(s.timestamps[0])
        stamp = stamps.get(ms) or stamps.setdefault(ms, sample_timestamp(ms))
        yield f'{{"metric":{labels_object(s.labels)},"value":[{stamp},"{next(texts)}"]}}'


def _matrix(series: Sequence[Series]) -> Iterable[str]:
    """Each series of a range answer. Every value is written by one `sample_values` call, and
    a series' points are one join of its steps' openings (`[<time>,"`, kept per step: the steps
    repeat in every series) and its value texts laid alternately, with no string built per
    point: 5,004 series of 121 points took 230 ms one series at a time."""
    texts = sample_values(np.concatenate([s.values for s in series]) if series else _NO_VALUES)
    openings: dict[int, str] = {}
    at = 0
    for s in series:
        head = f'{{"metric":{labels_object(s.labels)}'
        tail = f',"histograms":[{_histogram_points(s.histograms)}]}}' if s.histograms else "}"
        count = len(s.timestamps)
        if count == 0:  # Prometheus leaves out an empty "values"
            yield head + tail
            continue
        times = s.timestamps.tolist()
        opened = list(map(openings.get, times))
        if None in opened:
            for ms in times:
                if ms not in openings:
                    openings[ms] = '"],[' + sample_timestamp(ms) + ',"'
            opened = list(map(openings.__getitem__, times))
        parts: list[str | None] = [None] * (2 * count)
        parts[0::2] = opened
        parts[1::2] = texts[at : at + count]
        at += count
        # the first opening has no point before it to close
        parts[0] = cast(str, parts[0])[3:]
        yield head + ',"values":[' + "".join(cast(list[str], parts)) + '"]]' + tail


def result_json(result: QueryResult, series: Sequence[Series]) -> str:
    """`"resultType":...,"result":...` of a query answer (the series possibly limited)."""
    kind = result.result_type
    if kind == "vector":
        body = "[" + ",".join(_vector(series)) + "]"
    elif kind == "matrix":
        body = "[" + ",".join(_matrix(series)) + "]"
    elif kind == "scalar":
        body = f'[{go_number(result.time_ms / 1000)},"{format_f(result.scalar)}"]'
    elif kind == "string":
        body = f"[{go_number(result.time_ms / 1000)},{go_string(result.string)}]"
    else:
        raise ValueError(f"unknown result type {kind!r}")
    return f'"resultType":"{kind}","result":{body}'


def stats_json(run: GatedRun[Any]) -> str:
    """The `stats` of a query answer: the timings watchkeeper measures, in seconds. (The
    engine's sample count is of samples read from storage, not Prometheus' per-step
    `totalQueryableSamples`, so `samples` is left out rather than filled with another number.)"""
    timings = {
        "evalTotalTime": run.run_seconds,
        "execQueueTime": run.queue_seconds,
        "execTotalTime": run.queue_seconds + run.run_seconds,
    }
    timing_text = ",".join(f'"{k}":{go_number(v)}' for k, v in timings.items())
    return f'{{"timings":{{{timing_text}}}}}'


def success_body(data: str, warnings: Sequence[str] = (), infos: Sequence[str] = ()) -> bytes:
    """`{"status":"success","data":...}` with `warnings`/`infos` when there are any, Prometheus
    answering at most ten of each and counting the rest."""
    parts = ['{"status":"success","data":', data]
    for key, items, kind in (("warnings", warnings, "warning"), ("infos", infos, "info")):
        if not items:
            continue
        shown = [go_string(item) for item in items[:MAX_ANNOTATIONS]]
        if len(items) > MAX_ANNOTATIONS:
            omitted = len(items) - MAX_ANNOTATIONS
            shown.append(go_string(f"{omitted} more {kind} annotations omitted"))
        parts.append(f',"{key}":[' + ",".join(shown) + "]")
    parts.append("}")
    return "".join(parts).encode("utf-8", "replace")
