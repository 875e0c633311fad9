"""The PromQL engine against a real Prometheus (Debian package, 2.42): the same data is
remote-written into both, then 2000 random, seeded queries (instant and range) are asked of
both APIs and the answers must agree.

Data: about 60 series of six scrape targets over 2.5 hours: counters with restarts (resets),
gauges with negative values, a classic histogram (`_bucket` with `le`, `_sum`, `_count`), a
target that is removed (staleness markers), one that stops without markers, gaps with and without
markers, one that starts late, intervals of 10, 15, 20 and 30 s. Every sample timestamp is an odd
number of milliseconds (per-target offsets such as 1237 ms plus even jitter), every value a
dyadic ("nice") float, so that sums of raw samples are exact in any order.

Queries are built recursively, type-correct and with a depth limit, from selectors with random
matchers, windows, offsets, subqueries, aggregations, binary operators with vector matching and
functions. Query times are whole seconds plus 500 ms and steps whole seconds (see 1. below).

Answers agree when both fail with the same errorType (the texts are not compared), or when both
succeed with the same result type, the same label sets, the same timestamps and values equal
within 1e-9 relative (zeros, infinities and NaN exactly). Order is compared only for instant
queries under sort()/sort_desc(), where Prometheus' values differ. topk/bottomk only ever stand
at the top of a query, and their answers are checked against the expression they select from
(see Selection).

Differences between Prometheus 2.42 (the peer) and 3.x (what watchkeeper implements), kept out
of the generator. 1. to 3. are in https://prometheus.io/docs/prometheus/latest/migration/
("PromQL"), 4. is what 2.42 does not have, the others are changes of later releases, named by
version and commit.

1. Range selectors and the lookback delta are left-open in 3.x: a sample exactly at the start
   of a window is no longer part of it. No sample can sit on a window start here: samples are at
   odd milliseconds, query times at whole seconds + 500 ms and every range, offset and step is
   whole seconds, so window starts at the query's own level end in 500 ms. Subquery points are
   multiples of the subquery step (whole seconds), so they never fall on the subquery's window
   start (500 ms) either, and windows inside the subquery start at whole seconds, where no
   sample is. Subqueries are not nested: a nested subquery's window starts at a whole second,
   on which its own points (multiples of its step) can fall.
2. `holt_winters` is `double_exponential_smoothing` in 3.x (behind a feature flag): neither is
   generated.
3. `.` in regular expressions matches newlines in 3.x: no label value or regex has a newline.
4. Native histograms and the functions that only apply to them (`histogram_count`,
   `histogram_sum`, `histogram_fraction`, `histogram_avg`, `histogram_stddev`, ...), and 3.x's
   experimental functions and syntax (`mad_over_time`, `first_over_time`, `sort_by_label`,
   `limitk`, `limit_ratio`, `info`, duration expressions, quoted UTF-8 names, `fill` modifiers):
   not in 2.42, not generated.
5. Since 3.9 (4cad87c, "PromQL: Fix insufficient cardinality checking for filter ops") a
   comparison without `bool` checks the vector matching before filtering: several left series
   matching one right series are an error even when the filter would drop all but one; 2.42
   only counted the series that passed. Comparisons between vectors are therefore generated as
   `agg by (L) (x) > on (L) [group_right ()] y`, whose left side has one series per match group.
6. Since 2.51 (7f912db, "promql: Fix limiting of extrapolation to negative values") rate() and
   increase() limit the extrapolation towards the counter's zero point after choosing half an
   interval for a series that starts inside the window, not before. The answers differ only when
   the first sample's value is about one interval's increase, so counters start far above
   anything they gain in a window (as long-running processes' counters do), restarts never
   coincide with a series (re)appearing, and rate()/increase() are only applied to counters.
7. Rounding in the last bits: 3.0 sums with Kahan compensation (2.42 plainly); 3.5 (ce809e6,
   "promql: Re-introduce direct mean calculation") computes avg and avg_over_time as a
   compensated sum divided by the count (2.42 as an incremental mean); since 2.43 rate()
   multiplies by one factor (extrapolation / range) instead of scaling and then dividing; and
   Go's math.Pow, Atan2, Exp and Log are not correctly rounded (so they differ from the C
   library's). watchkeeper's linear regression (deriv, predict_linear) takes a window's sums
   from compensated running sums where its rounding bound shows the answer within 1e-10 of
   Prometheus', and elsewhere sums in extended precision where Prometheus uses Kahan
   compensation (nearly always the same rounded sums; promql/regression.py), and
   its stddev_over_time/stdvar_over_time take two passes where Prometheus updates a running
   mean (watchkeeper switches to Prometheus' updates only where the values dwarf their spread):
   equal to 1e-9, not guaranteed to the last bit. The 1e-9 tolerance covers such
   differences unless an operator turns them into a
   different answer: count_values (a value becomes a label), comparisons, floor/ceil/round/sgn,
   `%`, `+`/`-` (cancellation), differences between samples (irate, deriv, changes, stddev...),
   logarithms near 1, time functions. So every generated expression has a value class (NICE,
   EXACT, FUZZY) and FUZZY values never reach those operators; count_values only gets NICE ones.
   A FUZZY sum or average of values of both signs can also be 0, or nearly, where the last bits
   are all there is: such sums and averages (and every avg_over_time) get non-negative values
   (abs() unless the values are known not to be negative).
8. Since 3.0 (5a4e4f6, #14941) stddev and stdvar of a group whose first value is NaN or ±Inf are
   NaN (2.42: 0 for a single series): their arguments are filtered to finite values.
9. Time functions (hour(), month()...) convert values with Go's int64(v), whose result for NaN,
   ±Inf and values beyond int64 is implementation-defined (not a 2.x/3.x difference): their
   arguments are filtered to -1e12 < v < 1e12.
10. Since 2.47 (531567d, "Drop metric name for "atan2" binary operator") atan2 drops the metric
   name like the other arithmetic operators: its vector operands are written `(x + 0)`, which
   drops it in both.
11. Prometheus 2.42 loses the `by` labels of count_values after the first steps of a range
   evaluation (`count_values by (job) ("v", x)` answers `{job="a", v="1"}` at the first steps,
   then `{v="1"}`): count_values gets no `by` clause in range queries and subqueries.

Not differences but Prometheus' own indeterminacy, also kept out: which of equal values topk,
bottomk and sort() put first (see Selection; Prometheus' range queries collect series in Go's map
order), and stddev/stdvar of timestamps (Welford's method keeps few digits of values with a large
common offset, and in range queries the order of its updates changes from one run to the next).
"""

from __future__ import annotations

import math
import os
import random
import re
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import WRITE_HEADERS, Server, snappy_body, write_request
from tests.peer.conftest import LOGS, ReceivingPrometheus

pytestmark = pytest.mark.peer

# the generator's seed; PROMQL_PEER_SEED=<n> runs another set of queries (the data stay the same)
SEED = 20261129
QUERY_SEED = int(os.environ.get("PROMQL_PEER_SEED", SEED))
QUERIES = 2000
T0 = 1_764_374_400_000  # 2025-11-29T00:00:00Z: the data's start
MINUTE = 60_000
SPAN_MIN = 150  # minutes of data
STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
STALE_BITS = 0x7FF0000000000002
RELATIVE = 1e-9

Labels = tuple[tuple[str, str], ...]
Samples = list[tuple[int, float]]


# --- the data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A scrape target: all its series share its scrape timestamps."""

    job: str
    instance: str
    interval_s: int
    offset_ms: int  # odd, so every sample timestamp is odd
    start_min: int = 0
    end_min: int = SPAN_MIN
    stale_at_end: bool = False  # staleness markers one interval after the last scrape
    gap_min: tuple[int, int] | None = None  # no scrapes in [from, to)
    stale_gap: bool = False  # staleness markers where the gap starts
    restarts_min: tuple[int, ...] = ()  # its counters start again from zero


TARGETS = [
    Target("api", "10.0.0.1:8080", 15, 1237, restarts_min=(97,)),
    Target("api", "10.0.0.2:8080", 15, 5411, restarts_min=(50, 123)),
    Target("api", "10.0.0.3:8080", 15, 9873, end_min=75, stale_at_end=True),
    Target("web", "10.0.0.4:9090", 10, 3301, gap_min=(100, 115), restarts_min=(125,)),
    Target("web", "10.0.0.5:9090", 30, 12345, start_min=30),
    Target("db", "10.0.0.6:5432", 20, 777, end_min=140, gap_min=(60, 70), stale_gap=True),
]
BUCKETS = [
    ("0.1", 0.0625),
    ("0.25", 0.125),
    ("0.5", 0.375),
    ("1", 0.75),
    ("2.5", 2.0),
    ("+Inf", 4.0),
]
REQUESTS = {
    "api": [("GET", "200"), ("GET", "500"), ("POST", "200"), ("POST", "201")],
    "web": [("GET", "200"), ("GET", "404")],
}
HISTOGRAMS = [("10.0.0.1:8080", "GET"), ("10.0.0.2:8080", "GET"), ("10.0.0.4:9090", "GET")]
ROOMS = {  # instance: (room, lowest, highest)
    "10.0.0.1:8080": ("office", 18.0, 26.0),
    "10.0.0.4:9090": ("lab", -5.0, 5.0),
    "10.0.0.5:9090": ("roof", -20.0, 15.0),
    "10.0.0.6:5432": ("cellar", -12.0, -2.0),
}
QUEUES = {"10.0.0.6:5432": ["ingest", "export"], "10.0.0.1:8080": ["mail"]}
METRICS: dict[str, tuple[str, ...]] = {
    "http_requests_total": ("job", "instance", "method", "code"),
    "process_cpu_seconds_total": ("job", "instance"),
    "request_duration_seconds_bucket": ("job", "instance", "method", "le"),
    "request_duration_seconds_sum": ("job", "instance", "method"),
    "request_duration_seconds_count": ("job", "instance", "method"),
    "temperature_celsius": ("job", "instance", "room"),
    "queue_depth": ("job", "instance", "queue"),
    "up": ("job", "instance"),
}


@dataclass
class Scrape:
    timestamp: int
    stale: bool = False
    restart: bool = False  # counters start again from zero at this scrape
    up: float = 1.0


def _scrapes(target: Target, rng: random.Random) -> list[Scrape]:
    scrapes: list[Scrape] = []
    interval = target.interval_s * 1000
    nominal = T0 + target.start_min * MINUTE + target.offset_ms
    end = T0 + target.end_min * MINUTE
    restarts = [T0 + m * MINUTE for m in target.restarts_min]
    gap = (
        (T0 + target.gap_min[0] * MINUTE, T0 + target.gap_min[1] * MINUTE)
        if target.gap_min
        else None
    )
    in_gap = False
    while nominal < end:
        timestamp = nominal + 2 * rng.randint(-100, 100)
        if gap and gap[0] <= nominal < gap[1]:
            if not in_gap and target.stale_gap:
                scrapes.append(Scrape(timestamp, stale=True))
            in_gap = True
        else:
            scrape = Scrape(timestamp)
            for restart in restarts:
                if restart - MINUTE <= timestamp < restart:
                    scrape.up = 0.0
                if restart <= timestamp and (not scrapes or scrapes[-1].timestamp < restart):
                    scrape.restart = True
            scrapes.append(scrape)
        nominal += interval
    if target.stale_at_end:
        scrapes.append(Scrape(nominal + 2 * rng.randint(-100, 100), stale=True))
    return scrapes


def _counter(scrapes: Sequence[Scrape], start: float, increment: Callable[[], float]) -> Samples:
    value = start
    samples: Samples = []
    for scrape in scrapes:
        if scrape.stale:
            samples.append((scrape.timestamp, STALE_NAN))
            continue
        if scrape.restart:
            value = 0.0
        value += increment()
        samples.append((scrape.timestamp, value))
    return samples


def _walk(scrapes: Sequence[Scrape], start: float, step: Callable[[float], float]) -> Samples:
    value = start
    samples: Samples = []
    for scrape in scrapes:
        if scrape.stale:
            samples.append((scrape.timestamp, STALE_NAN))
            continue
        value = step(value)
        samples.append((scrape.timestamp, value))
    return samples


def build_data(rng: random.Random) -> list[tuple[dict[str, str], Samples]]:
    """The series of all targets, as (labels with __name__, samples)."""
    data: list[tuple[dict[str, str], Samples]] = []
    for target in TARGETS:
        scrapes = _scrapes(target, rng)
        base = {"job": target.job, "instance": target.instance}

        def add(name: str, samples: Samples, base: dict[str, str] = base, **labels: str) -> None:
            data.append(({"__name__": name, **base, **labels}, samples))

        add(
            "up",
            [(s.timestamp, STALE_NAN if s.stale else s.up) for s in scrapes],
        )
        add(
            "process_cpu_seconds_total",
            _counter(scrapes, rng.randint(40_000, 400_000) / 4, lambda: rng.randint(0, 6) / 4),
        )
        for method, code in REQUESTS.get(target.job, []):
            most = rng.choice([1, 3, 10, 40])
            add(
                "http_requests_total",
                _counter(
                    scrapes, rng.randint(20_000, 90_000), lambda most=most: rng.randint(0, most)
                ),
                method=method,
                code=code,
            )
        if target.instance in ROOMS:
            room, low, high = ROOMS[target.instance]

            def temperature(value: float, low: float = low, high: float = high) -> float:
                return min(high, max(low, value + rng.choice([-1, -0.5, 0, 0, 0, 0.5, 1])))

            start = rng.randint(int(low) * 2, int(high) * 2) / 2
            add("temperature_celsius", _walk(scrapes, start, temperature), room=room)
        for queue in QUEUES.get(target.instance, []):

            def depth(value: float) -> float:
                return 0.0 if rng.random() < 0.1 else max(0.0, value + rng.randint(-5, 5))

            add("queue_depth", _walk(scrapes, rng.randint(0, 20), depth), queue=queue)
        for instance, method in HISTOGRAMS:
            if instance == target.instance:
                data.extend(_histogram(scrapes, rng, {**base, "method": method}))
    return data


def _histogram(
    scrapes: Sequence[Scrape], rng: random.Random, labels: dict[str, str]
) -> list[tuple[dict[str, str], Samples]]:
    weights = [5, 4, 3, 2, 1, 0.5]
    counts = [int(w * rng.randint(1000, 3000)) for w in weights]  # a long-running process's
    total = sum(count * rep for count, (_, rep) in zip(counts, BUCKETS, strict=True))
    buckets: list[Samples] = [[] for _ in BUCKETS]
    sums: Samples = []
    for scrape in scrapes:
        if scrape.stale:
            for samples in [*buckets, sums]:
                samples.append((scrape.timestamp, STALE_NAN))
            continue
        if scrape.restart:
            counts = [0] * len(BUCKETS)
            total = 0.0
        for _ in range(rng.randint(0, 10)):
            index = rng.choices(range(len(BUCKETS)), weights)[0]
            counts[index] += 1
            total += BUCKETS[index][1]
        cumulative = 0
        for index, samples in enumerate(buckets):
            cumulative += counts[index]
            samples.append((scrape.timestamp, float(cumulative)))
        sums.append((scrape.timestamp, total))
    name = "request_duration_seconds"
    series = [
        ({"__name__": f"{name}_bucket", **labels, "le": le}, samples)
        for (le, _), samples in zip(BUCKETS, buckets, strict=True)
    ]
    series.append(({"__name__": f"{name}_sum", **labels}, sums))
    series.append(({"__name__": f"{name}_count", **labels}, list(buckets[-1])))
    return series


def _is_stale(value: float) -> bool:
    return struct.unpack("<Q", struct.pack("<d", value))[0] == STALE_BITS


# --- the queries ----------------------------------------------------------------------------


# How far two correct implementations may be apart on a value (see 7. in the module's doc).
NICE = 0  # exact dyadic values: sums, minima, counts... of the data; any summation order agrees
EXACT = 1  # the same IEEE operations in the same order in Prometheus 2.42 and 3.x: bit for bit
FUZZY = 2  # may differ in the last bits between 2.42 and 3.x, or between Go's math and libm


@dataclass(frozen=True)
class Expr:
    text: str
    labels: frozenset[str] = frozenset()  # names the series may have, besides __name__
    metric: str | None = None  # the metric it reads, when one
    atomic: bool = True  # needs no parentheses as an operand
    value: int = NICE  # NICE, EXACT or FUZZY
    nonneg: bool = False  # its values are known to be >= 0 (or NaN)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _paren(expr: Expr) -> str:
    return expr.text if expr.atomic else f"({expr.text})"


RANGES = ["30s", "1m", "90s", "2m", "5m", "10m", "15m", "30m", "1h"]
SUBQUERY_RANGES = ["5m", "10m", "15m", "30m", "1h"]
SUBQUERY_STEPS = ["", "15s", "20s", "30s", "1m", "90s", "2m"]
OFFSETS = ["30s", "1m", "2m", "5m", "10m", "1h", "-1m", "-5m"]
NUMBERS = ["0", "1", "2", "3", "0.5", "0.25", "-1", "-2.5", "10", "100", "1e3", "60"]
PHIS = ["0", "0.1", "0.25", "0.5", "0.75", "0.9", "0.99", "1"]
COUNTERS = [name for name in METRICS if name.endswith(("_total", "_bucket", "_sum", "_count"))]
NONNEGATIVE = [name for name in METRICS if name != "temperature_celsius"]
# value-preserving functions over ranges (NICE in, NICE out)
NICE_RANGE_FUNCTIONS = [
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "present_over_time",
    "changes",
    "resets",
]
# functions of differences between samples: their inputs must not be FUZZY
DIFFERENCE_RANGE_FUNCTIONS = [
    "irate",
    "delta",
    "idelta",
    "resets",
    "changes",
    "deriv",
    "stddev_over_time",
    "stdvar_over_time",
]
# computed another way than Prometheus does (see 7.): equal to 1e-9, not to the last bit
REFORMULATED = ("deriv", "predict_linear", "stddev_over_time", "stdvar_over_time")
RANGE_FUNCTIONS = [
    "rate",
    "increase",
    *DIFFERENCE_RANGE_FUNCTIONS,
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "present_over_time",
]
TIME_FUNCTIONS = [
    "minute",
    "hour",
    "day_of_week",
    "day_of_month",
    "day_of_year",
    "days_in_month",
    "month",
    "year",
]
AGGREGATIONS = ["sum", "avg", "min", "max", "count", "group", "stddev", "stdvar"]
ARITHMETIC = ["+", "-", "*", "/", "%", "^", "atan2"]
COMPARISONS = ["==", "!=", ">", "<", ">=", "<="]
SET_OPERATORS = ["and", "or", "unless"]
# operators that turn a difference in the last bit into a different answer: no FUZZY operands
AMPLIFYING = ["+", "-", "%", *COMPARISONS]


def _operator_value(op: str, left: int, right: int) -> int:
    """The value class of `left op right`."""
    if op in ("^", "atan2"):
        return FUZZY  # Go's math.Pow and math.Atan2 are not correctly rounded
    if op.endswith("bool"):
        return NICE
    if op in COMPARISONS:
        return left
    if op == "/":
        return max(left, right, EXACT)
    return max(left, right)


def _operator_nonneg(op: str, left: Expr, right: Expr) -> bool:
    """Whether `left op right` is never negative (for a filter: whether `left` is not)."""
    if op.endswith("bool"):
        return True
    if op in (*COMPARISONS, "and", "unless"):
        return left.nonneg
    if op in ("+", "*", "/", "%", "^", "or"):
        return left.nonneg and right.nonneg
    return False


class QueryGenerator:
    """Random, type-correct PromQL over the metrics above, from a seeded Random. Every method
    taking `fuzzy` builds an expression whose value is not FUZZY unless `fuzzy` is true."""

    def __init__(self, rng: random.Random, values: dict[str, dict[str, list[str]]]) -> None:
        self.rng = rng
        self.ranged = False  # generating a range query (evaluated at many steps)
        self.values = values  # metric -> label -> values; metric "" for all metrics

    def label_values(self, metric: str, label: str) -> list[str]:
        """Mostly the label's values for this metric, sometimes those of any metric."""
        if self.rng.random() < 0.85 and self.values[metric].get(label):
            return self.values[metric][label]
        return self.values[""][label]

    # selectors

    def regex(self, metric: str, label: str) -> str:
        rng = self.rng
        values = self.label_values(metric, label)
        kind = rng.randrange(8)
        if kind == 0:
            return "|".join(re.escape(v) for v in rng.sample(values, min(2, len(values))))
        if kind == 1:
            value = rng.choice(values)
            return re.escape(value[: rng.randint(1, len(value))]) + rng.choice([".*", ".+"])
        if kind == 2:
            return rng.choice([".*", ".+", "", "nothing.*"])
        if kind == 3:
            return "(?i)" + re.escape(rng.choice(values).lower())
        if kind == 4:
            return {
                "code": "[25]..",
                "instance": r"10\.0\.0\.[1-4]:.*",
                "le": r"0\..*|\+Inf",
                "method": "G.*|P.*",
                "job": "(api|db)",
            }.get(label, ".*e.*")
        return re.escape(rng.choice(values))

    def matcher(self, metric: str, label: str) -> str:
        rng = self.rng
        op = rng.choices(["=", "!=", "=~", "!~"], [40, 15, 30, 15])[0]
        if op in ("=", "!="):
            value = rng.choice(self.label_values(metric, label)) if rng.random() < 0.95 else "nope"
        else:
            value = self.regex(metric, label)
        return f"{label}{op}{_quote(value)}"

    def selector(
        self, metric: str | None = None, counter: bool = False, nonneg: bool = False
    ) -> Expr:
        """A selector of `metric` (or of a random one; of a counter if `counter`, of a metric
        that is never negative if `nonneg`)."""
        rng = self.rng
        names = COUNTERS if counter else NONNEGATIVE if nonneg else list(METRICS)
        name = metric if metric in names else rng.choice(names)
        labels = METRICS[name]
        matchers = [
            self.matcher(name, rng.choice(labels)) for _ in range(rng.choice([0, 0, 1, 1, 2, 3]))
        ]
        label_names = frozenset(labels)
        other = name
        form = rng.random()
        if form < 0.85:
            text = name + ("{" + ", ".join(matchers) + "}" if matchers else "")
        elif form < 0.93:
            text = "{" + ", ".join([f"__name__={_quote(name)}", *matchers]) + "}"
        else:
            other = rng.choice(names)
            label_names |= frozenset(METRICS[other])
            regex = _quote(f"{name}|{other}")
            text = "{" + ", ".join([f"__name__=~{regex}", *matchers]) + "}"
        positive = name in NONNEGATIVE and other in NONNEGATIVE
        return Expr(text, label_names, name, nonneg=positive)

    def offset(self, chance: float) -> str:
        return f" offset {self.rng.choice(OFFSETS)}" if self.rng.random() < chance else ""

    def instant_selector(self, metric: str | None = None) -> Expr:
        s = self.selector(metric)
        return Expr(s.text + self.offset(0.15), s.labels, s.metric, nonneg=s.nonneg)

    def range_expr(
        self,
        depth: int,
        fuzzy: bool,
        in_subquery: bool,
        metric: str | None = None,
        nonneg: bool = False,
    ) -> Expr:
        """A range vector: a matrix selector, or (outside subqueries) a subquery; of values that
        are never negative if `nonneg`."""
        rng = self.rng
        if in_subquery or depth <= 0 or rng.random() < 0.8:
            s = self.selector(metric, nonneg=nonneg)
            text = f"{s.text}[{rng.choice(RANGES)}]{self.offset(0.2)}"
            return Expr(text, s.labels, s.metric, nonneg=s.nonneg)
        inner = self.vector(depth - 1, fuzzy, True, metric)
        if nonneg and not inner.nonneg:
            inner = Expr(f"abs({inner.text})", inner.labels, inner.metric, True, inner.value, True)
        step = rng.choice(SUBQUERY_STEPS)
        text = f"{_paren(inner)}[{rng.choice(SUBQUERY_RANGES)}:{step}]{self.offset(0.2)}"
        return Expr(text, inner.labels, inner.metric, value=inner.value, nonneg=inner.nonneg)

    def counter_range(self, depth: int, in_subquery: bool, metric: str | None = None) -> Expr:
        """What rate() and increase() get: a counter's matrix selector or (outside subqueries) a
        subquery of a counter selector or a sum of counters (see 6. in the module's doc)."""
        rng = self.rng
        s = self.selector(metric, counter=True)
        if in_subquery or depth <= 0 or rng.random() < 0.8:
            text = f"{s.text}[{rng.choice(RANGES)}]{self.offset(0.2)}"
            return Expr(text, s.labels, s.metric, nonneg=True)
        grouping, labels = self.grouping(s.labels)
        if rng.random() < 0.5:
            inner = f"sum {grouping} ({s.text})".replace("  ", " ")
        else:
            inner, labels = s.text + self.offset(0.2), s.labels
        step = rng.choice(SUBQUERY_STEPS)
        text = f"({inner})[{rng.choice(SUBQUERY_RANGES)}:{step}]{self.offset(0.2)}"
        return Expr(text, labels, s.metric, nonneg=True)

    def grouping(self, labels: frozenset[str]) -> tuple[str, frozenset[str]]:
        """A `by (...)`/`without (...)` clause (or none) and the labels it leaves."""
        rng = self.rng
        kind = rng.random()
        pool = sorted(labels)
        chosen = rng.sample(pool, rng.randint(0, min(2, len(pool))))
        if rng.random() < 0.1:
            chosen.append("zone")
        if kind < 0.25:
            return "", frozenset()
        if kind < 0.7:
            return f"by ({', '.join(chosen)})", frozenset(chosen) & labels
        return f"without ({', '.join(chosen)})", labels - frozenset(chosen)

    def nice_vector(self, depth: int, metric: str | None = None) -> Expr:
        """A NICE vector: selectors, value-preserving functions and sums of them."""
        rng = self.rng
        kind = rng.randrange(6) if depth > 0 else rng.randrange(2)
        if kind == 0:
            return self.instant_selector(metric)
        if kind == 1:
            s = self.selector(metric)
            function = rng.choice(NICE_RANGE_FUNCTIONS)
            text = f"{function}({s.text}[{rng.choice(RANGES)}]{self.offset(0.2)})"
            return Expr(text, s.labels, s.metric)
        v = self.nice_vector(depth - 1, metric)
        if kind == 2:
            grouping, labels = self.grouping(v.labels)
            op = rng.choice(["sum", "min", "max", "count", "group"])
            return Expr(f"{op} {grouping} ({v.text})".replace("  ", " "), labels)
        if kind == 3:
            text = rng.choice(
                [
                    f"abs({v.text})",
                    f"ceil({v.text})",
                    f"floor({v.text})",
                    f"round({v.text})",
                    f"-{_paren(v)}",
                    f"{_paren(v)} * 2",
                    f"{_paren(v)} - 0.5",
                ]
            )
            return Expr(text, v.labels, v.metric, atomic=False)
        if kind == 4:
            return Expr(f"{rng.choice(TIME_FUNCTIONS)}({v.text})", v.labels, v.metric)
        return Expr(f"vector({rng.choice(NUMBERS)})")

    # instant vectors

    def vector(
        self, depth: int, fuzzy: bool = True, in_subquery: bool = False, metric: str | None = None
    ) -> Expr:
        rng = self.rng
        if depth <= 0:
            choice = rng.choice(["selector", "range_function"])
        else:
            choice = rng.choices(
                [
                    "selector",
                    "range_function",
                    "aggregation",
                    "vector_scalar",
                    "vector_vector",
                    "math",
                    "label",
                    "histogram",
                    "other",
                ],
                [10, 20, 18, 9, 12, 7, 4, 6, 6],
            )[0]
        expr: Expr = getattr(self, f"_{choice}")(depth, fuzzy, in_subquery, metric)
        assert fuzzy or expr.value != FUZZY, expr
        return expr

    def _selector(self, depth: int, fuzzy: bool, in_subquery: bool, metric: str | None) -> Expr:
        return self.instant_selector(metric)

    def _range_function(
        self, depth: int, fuzzy: bool, in_subquery: bool, metric: str | None
    ) -> Expr:
        rng = self.rng
        function = rng.choices(
            [*RANGE_FUNCTIONS, "predict_linear", "quantile_over_time", "absent_over_time"],
            [1] * len(RANGE_FUNCTIONS) + [2, 2, 1],
        )[0]
        if function in ("rate", "avg_over_time") and not fuzzy:
            function = "increase" if function == "rate" else "max_over_time"
        if function in REFORMULATED and not fuzzy:
            function = "delta"
        if function in ("rate", "increase"):
            r = self.counter_range(depth, in_subquery, metric)
            value = FUZZY if function == "rate" else EXACT
        elif function in (*DIFFERENCE_RANGE_FUNCTIONS, "predict_linear"):
            r = self.range_expr(depth, False, in_subquery, metric)
            value = NICE if function in ("changes", "resets") else EXACT
            if function in REFORMULATED:
                value = FUZZY
        else:
            # an average of values of both signs may be 0, where 2.42 and 3.5 differ (see 7.)
            positive = function == "avg_over_time"
            r = self.range_expr(depth, fuzzy, in_subquery, metric, nonneg=positive)
            value = {
                "avg_over_time": FUZZY,
                "count_over_time": NICE,
                "present_over_time": NICE,
                "absent_over_time": NICE,
                "quantile_over_time": max(r.value, EXACT),
            }.get(function, r.value)
        if function == "predict_linear":
            text = f"predict_linear({r.text}, {rng.choice(['60', '600', '3600', '-300', '0'])})"
        elif function == "quantile_over_time":
            text = f"quantile_over_time({rng.choice(PHIS)}, {r.text})"
        else:
            text = f"{function}({r.text})"
        if function == "absent_over_time":
            return Expr(text, nonneg=True)
        nonneg = function in (
            "rate",
            "increase",
            "count_over_time",
            "present_over_time",
            "changes",
            "resets",
            "stddev_over_time",
            "stdvar_over_time",
        ) or (r.nonneg and function not in ("delta", "idelta", "deriv", "predict_linear"))
        return Expr(text, r.labels, r.metric, value=value, nonneg=nonneg)

    def _aggregation(self, depth: int, fuzzy: bool, in_subquery: bool, metric: str | None) -> Expr:
        rng = self.rng
        kind = rng.random()
        if kind < 0.75:
            op = rng.choice(AGGREGATIONS)
            if op == "avg" and not fuzzy:
                op = "max"
            inner = self.vector(
                depth - 1, fuzzy and op not in ("stddev", "stdvar"), in_subquery, metric
            )
            if op in ("stddev", "stdvar") and re.search(r"timestamp\(|time\(\)", inner.text):
                # Welford's method loses most digits on values with a large common offset, and
                # in range queries Prometheus adds them up in no fixed order
                inner = self.instant_selector(metric)
            if op == "sum" and inner.value != NICE and not fuzzy:
                op = "min"
            param, argument = "", inner.text
            value = {"avg": FUZZY, "count": NICE, "group": NICE}.get(op, inner.value)
            nonneg = op in ("count", "group", "stddev", "stdvar") or inner.nonneg
            if op == "sum" and inner.value != NICE:
                value = FUZZY  # 3.x sums with Kahan compensation, 2.42 did not
            if value == FUZZY and not inner.nonneg:
                # a sum or average of values of both signs may be 0, or nearly, where the last
                # bits of 2.42's and 3.x's answers differ (see 7.)
                argument, nonneg = f"abs({inner.text})", True
            if op in ("stddev", "stdvar"):
                # finite values only (see 8. in the module's doc)
                argument, value = f"{_paren(inner)} > -Inf < +Inf", EXACT
        elif kind < 0.88:
            inner = self.vector(depth - 1, fuzzy, in_subquery, metric)
            op, param, argument = "quantile", rng.choice([*PHIS, "-0.5", "1.5"]) + ", ", inner.text
            value, nonneg = max(inner.value, EXACT), inner.nonneg
        else:
            inner = self.nice_vector(depth - 1, metric)
            name = rng.choice(["value", "value", "job", "instance"])
            op, param, argument, value = "count_values", _quote(name) + ", ", inner.text, NICE
            nonneg = True
        grouping, labels = self.grouping(inner.labels)
        if op == "count_values" and grouping.startswith("by") and (self.ranged or in_subquery):
            grouping, labels = "", frozenset()  # a 2.42 bug at many steps (see 11.)
        if op == "count_values":
            labels = labels | {name} if "without" not in grouping else labels - {name}
        if grouping and rng.random() < 0.5:
            text = f"{op}({param}{argument}) {grouping}"
        else:
            text = f"{op} {grouping} ({param}{argument})".replace("  ", " ")
        return Expr(text, labels, inner.metric, value=value, nonneg=nonneg)

    def _operator(self, fuzzy: bool) -> str:
        rng = self.rng
        kind = rng.random()
        if kind < 0.55:
            op = rng.choice(ARITHMETIC if fuzzy else ARITHMETIC[:5])
        elif kind < 0.8:
            op = rng.choice(COMPARISONS)
        else:
            op = rng.choice(COMPARISONS) + " bool"
        return op

    def _vector_scalar(
        self, depth: int, fuzzy: bool, in_subquery: bool, metric: str | None
    ) -> Expr:
        rng = self.rng
        op = self._operator(fuzzy)
        operands = fuzzy and op.split()[0] not in AMPLIFYING
        v = self.vector(depth - 1, operands, in_subquery, metric)
        if rng.random() < 0.1:
            return Expr(f"-{_paren(v)}", v.labels, v.metric, atomic=False, value=v.value)
        s = self.scalar(depth - 1, operands, in_subquery)
        vector_text = f"({_paren(v)} + 0)" if op == "atan2" else _paren(v)  # see 10.
        texts = (vector_text, _paren(s)) if rng.random() < 0.7 else (_paren(s), vector_text)
        value = _operator_value(op, v.value, s.value)
        nonneg = _operator_nonneg(op, v, s)
        text = f"{texts[0]} {op} {texts[1]}"
        return Expr(text, v.labels, v.metric, atomic=False, value=value, nonneg=nonneg)

    def _vector_vector(
        self, depth: int, fuzzy: bool, in_subquery: bool, metric: str | None
    ) -> Expr:
        rng = self.rng
        op = self._operator(fuzzy) if rng.random() < 0.75 else rng.choice(SET_OPERATORS)
        operands = fuzzy and op.split()[0] not in AMPLIFYING
        left = self.vector(depth - 1, operands, in_subquery, metric)
        same = left.metric if rng.random() < 0.75 else None
        right = self.vector(depth - 1, operands, in_subquery, same)
        if op in COMPARISONS:
            return self._filter(left, op, right)
        set_op = op in SET_OPERATORS
        lhs, rhs = left.labels, right.labels
        common = sorted(lhs & rhs)
        modifier = ""
        labels = lhs
        if lhs == rhs and rng.random() < 0.6:
            pass
        elif rhs < lhs or lhs < rhs:
            many_left = rhs < lhs
            fewer = rhs if many_left else lhs
            more = lhs if many_left else rhs
            if rng.random() < 0.5:
                modifier = f"on ({', '.join(sorted(fewer))})"
            else:
                modifier = f"ignoring ({', '.join(sorted(more - fewer))})"
            if not set_op:
                # always with a label list: `group_left (x)` would read `(x)` as one
                # (taken from the "one" side; not one of the `on` labels)
                extra = rng.sample([*sorted(more - fewer), "zone"], rng.choice([0, 0, 1]))
                side = "group_left" if many_left else "group_right"
                modifier += f" {side} ({', '.join(extra)})"
                labels = more
        else:
            chosen = rng.sample(common, rng.randint(0, len(common)))
            if rng.random() < 0.6:
                modifier = f"on ({', '.join(chosen)})"
                labels = frozenset(chosen) if not set_op else lhs
            else:
                modifier = f"ignoring ({', '.join(chosen)})"
                labels = lhs - frozenset(chosen)
        texts = [_paren(left), _paren(right)]
        if op == "atan2":  # see 10.
            texts = [f"({_paren(left)} + 0)", f"({_paren(right)} + 0)"]
        text = f"{texts[0]} {op} {modifier} {texts[1]}".replace("  ", " ")
        if set_op:
            value = max(left.value, right.value)
        else:
            value = _operator_value(op, left.value, right.value)
        nonneg = _operator_nonneg(op, left, right)
        return Expr(text, labels, left.metric, atomic=False, value=value, nonneg=nonneg)

    def _filter(self, left: Expr, op: str, right: Expr) -> Expr:
        """A comparison (without bool) between vectors whose left side has one series per
        match group (see 5. in the module's doc)."""
        rng = self.rng
        names = sorted(rng.sample(sorted(left.labels), min(len(left.labels), rng.randint(0, 2))))
        grouping = ", ".join(names)
        aggregation = rng.choice(
            ["sum", "max", "min", "count"] if left.value == NICE else ["max", "min", "count"]
        )
        text = f"{aggregation} by ({grouping}) ({left.text}) {op} on ({grouping})"
        value = NICE if aggregation == "count" else left.value
        nonneg = aggregation == "count" or left.nonneg
        if right.labels != frozenset(names) and rng.random() < 0.7:
            text, labels, value = text + " group_right ()", right.labels, right.value
            nonneg = right.nonneg
        else:
            labels = frozenset(names)
        text = f"{text} {_paren(right)}"
        return Expr(text, labels, left.metric, atomic=False, value=value, nonneg=nonneg)

    def _math(self, depth: int, fuzzy: bool, in_subquery: bool, metric: str | None) -> Expr:
        rng = self.rng
        kind = rng.random()
        if kind < 0.6:
            function = rng.choice(
                [
                    "abs",
                    "ceil",
                    "floor",
                    "sqrt",
                    "sgn",
                    "round",
                    *(["exp", "ln", "log2", "log10"] if fuzzy else []),
                ]
            )
            # these turn differences in the last bit into different answers
            amplifying = function in ("ceil", "floor", "sgn", "round", "ln", "log2", "log10")
            v = self.vector(depth - 1, fuzzy and not amplifying, in_subquery, metric)
            extra = ""
            if function == "round" and rng.random() < 0.6:
                extra = ", " + rng.choice(["0.5", "2", "10", "0.1", "-3"])
            text = f"{function}({v.text}{extra})"
            if function in ("exp", "ln", "log2", "log10"):
                value = FUZZY  # Go's math and the C library differ in the last bit
            elif function == "sqrt" or extra:
                value = max(v.value, EXACT)
            elif amplifying:
                value = NICE
            else:
                value = v.value
            nonneg = function in ("abs", "sqrt", "exp") or (
                v.nonneg and function in ("ceil", "floor", "sgn", "round")
            )
        elif kind < 0.8:
            v = self.vector(depth - 1, fuzzy, in_subquery, metric)
            low, high = sorted(rng.sample([-10, -1, 0, 1, 5, 20, 100, 1000], 2))
            if rng.random() < 0.1:
                low, high = high, low
            function = rng.choice(["clamp", "clamp_min", "clamp_max"])
            text = {
                "clamp": f"clamp({v.text}, {low}, {high})",
                "clamp_min": f"clamp_min({v.text}, {low})",
                "clamp_max": f"clamp_max({v.text}, {high})",
            }[function]
            value = v.value
            nonneg = v.nonneg or (function != "clamp_max" and low >= 0)
        else:
            v = self.vector(depth - 1, False, in_subquery, metric)
            # timestamps that Go can convert to int64 (see 9. in the module's doc)
            text = f"{rng.choice(TIME_FUNCTIONS)}({_paren(v)} > -1e12 < 1e12)"
            value, nonneg = NICE, True
        return Expr(text, v.labels, v.metric, value=value, nonneg=nonneg)

    def _label(self, depth: int, fuzzy: bool, in_subquery: bool, metric: str | None) -> Expr:
        rng = self.rng
        v = self.vector(depth - 1, fuzzy, in_subquery, metric)
        destination = rng.choice(["dst", "dst", "instance", "job", "host"])
        sources = sorted(v.labels) or ["job"]
        if rng.random() < 0.6:
            source = rng.choice([*sources, "__name__"])
            regex = rng.choice(
                [
                    "(.*)",
                    "(.*):(.*)",
                    "([a-z]+).*",
                    r"10\.0\.0\.(\d+):.*",
                    "(GET|POST)",
                    "",
                    "nomatch(.*)",
                    "(.)(.)?.*",
                ]
            )
            replacement = rng.choice(["$1", "$2-$1", "${1}x", "$1x", "fixed", "", "$0"])
            text = (
                f"label_replace({v.text}, {_quote(destination)}, {_quote(replacement)}, "
                f"{_quote(source)}, {_quote(regex)})"
            )
        else:
            chosen = rng.sample(sources, rng.randint(0, min(3, len(sources))))
            separator = rng.choice(["-", "", ":", "/"])
            args = "".join(f", {_quote(name)}" for name in chosen)
            text = f"label_join({v.text}, {_quote(destination)}, {_quote(separator)}{args})"
        return Expr(text, v.labels | {destination}, v.metric, value=v.value, nonneg=v.nonneg)

    def _histogram(self, depth: int, fuzzy: bool, in_subquery: bool, metric: str | None) -> Expr:
        rng = self.rng
        phi = rng.choice([*PHIS, "-0.5", "1.5"])
        r = self.counter_range(depth, in_subquery, "request_duration_seconds_bucket")
        function = rng.choice(
            ["rate", "rate", "increase", "irate"] if fuzzy else ["increase", "irate"]
        )
        if rng.random() < 0.1:
            inner = self.instant_selector("request_duration_seconds_bucket")
        else:
            inner = Expr(
                f"{function}({r.text})", r.labels, value=FUZZY if function == "rate" else EXACT
            )
        groupings = ["", "max by (le) ", "max without (method) "]
        if fuzzy:
            groupings += [
                "sum by (le) ",
                "sum by (le, job) ",
                "sum by (instance, le) ",
                "sum without (method) ",
                "sum without (le) ",
            ]
        grouping = rng.choice(groupings)
        labels = inner.labels
        if " by " in grouping:
            labels = frozenset(re.findall(r"\w+", grouping.split("(")[1]))
        elif "without" in grouping:
            labels = labels - {grouping.split("(")[1].rstrip(") ")}
        value = FUZZY if grouping.startswith("sum") else max(inner.value, EXACT)
        text = f"histogram_quantile({phi}, {grouping}({inner.text}))"
        return Expr(text, labels - {"le"}, value=value, nonneg=True)

    def _other(self, depth: int, fuzzy: bool, in_subquery: bool, metric: str | None) -> Expr:
        rng = self.rng
        kind = rng.randrange(6)
        if kind == 0:
            v = self.vector(depth - 1, True, in_subquery, metric)
            return Expr(f"timestamp({v.text})", v.labels, v.metric, value=EXACT, nonneg=True)
        if kind == 1:
            name = metric or rng.choice(list(METRICS))
            matchers = [
                self.matcher(name, rng.choice(METRICS[name])) for _ in range(rng.randint(0, 2))
            ]
            if rng.random() < 0.5:
                matchers.append(f"{rng.choice(METRICS[name])}={_quote('nope')}")
            selector = name + ("{" + ", ".join(matchers) + "}" if matchers else "")
            return Expr(f"absent({selector})", nonneg=True)
        if kind == 2:
            s = self.scalar(depth - 1, fuzzy, in_subquery)
            return Expr(f"vector({s.text})", value=s.value, nonneg=s.nonneg)
        if kind == 3:
            return Expr(f"{rng.choice(TIME_FUNCTIONS)}()", nonneg=True)
        v = self.vector(depth - 1, fuzzy, in_subquery, metric)
        text = f"({v.text})" if kind == 4 else f"{rng.choice(['sort', 'sort_desc'])}({v.text})"
        return Expr(text, v.labels, v.metric, value=v.value, nonneg=v.nonneg)

    # scalars

    def scalar(self, depth: int, fuzzy: bool = True, in_subquery: bool = False) -> Expr:
        rng = self.rng
        kind = rng.random()
        if depth <= 0 or kind < 0.55:
            number = rng.choice(NUMBERS)
            positive = not number.startswith("-")
            return Expr(number, atomic=positive, nonneg=positive)
        if kind < 0.75:
            v = self.vector(depth - 1, fuzzy, in_subquery)
            if rng.random() < 0.7:
                aggregation = rng.choice(["max", "count", *(["sum", "avg"] if fuzzy else [])])
                value = {"count": NICE, "avg": FUZZY}.get(aggregation, v.value)
                if aggregation == "sum" and v.value != NICE:
                    value = FUZZY
                argument, nonneg = v.text, v.nonneg or aggregation == "count"
                if aggregation in ("sum", "avg") and value == FUZZY and not v.nonneg:
                    argument, nonneg = f"abs({v.text})", True  # see _aggregation
                v = Expr(f"{aggregation}({argument})", value=value, nonneg=nonneg)
            return Expr(f"scalar({v.text})", value=v.value, nonneg=v.nonneg)
        if kind < 0.85:
            return Expr(rng.choice(["time()", "pi()"]), nonneg=True)
        op = rng.choice(
            [*(ARITHMETIC if fuzzy else ARITHMETIC[:5]), *(c + " bool" for c in COMPARISONS)]
        )
        operands = fuzzy and op.split()[0] not in AMPLIFYING
        left = self.scalar(depth - 1, operands, in_subquery)
        right = self.scalar(depth - 1, operands, in_subquery)
        value = _operator_value(op, left.value, right.value)
        nonneg = _operator_nonneg(op, left, right)
        text = f"{_paren(left)} {op} {_paren(right)}"
        return Expr(text, atomic=False, value=value, nonneg=nonneg)

    # whole queries

    def selection(self, depth: int) -> tuple[str, Selection]:
        """topk/bottomk over a vector, only ever at the top of a query (see Selection)."""
        rng = self.rng
        inner = self.vector(depth - 1)
        op, k = rng.choice(["topk", "bottomk"]), rng.choice([1, 2, 3, 5])
        mode = rng.choice(["", "", "by", "without"])
        names = sorted(rng.sample(sorted(inner.labels), min(len(inner.labels), rng.randint(0, 2))))
        grouping = f" {mode} ({', '.join(names)})" if mode else ""
        text = f"{op}{grouping} ({k}, {inner.text})"
        return text, Selection(op, k, mode, tuple(names), inner.text)

    def instant_query(self, depth: int) -> tuple[str, str | None, Selection | None]:
        """An instant query's text; sort or sort_desc when its answer's order is compared; what
        it selects when it is a topk/bottomk."""
        rng = self.rng
        kind = rng.random()
        if kind < 0.07:
            return self.scalar(depth).text, None, None
        if kind < 0.15:
            return self.range_expr(depth, True, False).text, None, None
        if kind < 0.16:
            return _quote(rng.choice(["hello", "a\\b"])), None, None
        if kind < 0.24:
            text, selection = self.selection(depth)
            return text, None, selection
        v = self.vector(depth)
        if rng.random() < 0.12:
            function = rng.choice(["sort", "sort_desc"])
            return f"{function}({v.text})", function, None
        return v.text, None, None

    def range_query(self, depth: int) -> tuple[str, Selection | None]:
        self.ranged = True
        try:
            return self._range_query(depth)
        finally:
            self.ranged = False

    def _range_query(self, depth: int) -> tuple[str, Selection | None]:
        rng = self.rng
        kind = rng.random()
        if kind < 0.07:
            return self.scalar(depth).text, None
        if kind < 0.15:
            return self.selection(depth)
        v = self.vector(depth)
        if rng.random() < 0.05:
            return f"{rng.choice(['sort', 'sort_desc'])}({v.text})", None
        return v.text, None


@dataclass(frozen=True)
class Selection:
    """A query `op by|without (labels) (k, inner)`. Which of several series with equal values
    topk/bottomk keep is not defined: Prometheus keeps the first ones it meets, in an order that
    depends on Go's map iteration in range queries. So an answer is checked against the inner
    expression's answer (from Prometheus) instead: at each step, in each group, it must hold
    series of the inner answer with their values, and those values must be the k largest
    (smallest) of the group, NaN counting as the smallest (largest). For the same reason
    topk/bottomk are generated nowhere else."""

    op: str
    k: int
    mode: str  # "", "by" or "without"
    labels: tuple[str, ...]
    inner: str

    def group(self, labels: Labels) -> Labels:
        if self.mode == "by":
            return tuple((n, v) for n, v in labels if n in self.labels)
        if self.mode == "without":
            return tuple((n, v) for n, v in labels if n not in self.labels and n != "__name__")
        return ()


@dataclass(frozen=True)
class Case:
    query: str
    time_ms: int | None = None  # an instant query's time
    start_ms: int = 0
    end_ms: int = 0
    step_s: int = 0
    order: str | None = None  # "sort" or "sort_desc": the answer's order is compared
    selection: Selection | None = None
    note: str = ""

    @property
    def path(self) -> str:
        return "/api/v1/query" if self.time_ms is not None else "/api/v1/query_range"

    def params(self, query: str | None = None) -> dict[str, str]:
        if self.time_ms is not None:
            return {"query": query or self.query, "time": _seconds(self.time_ms)}
        return {
            "query": query or self.query,
            "start": _seconds(self.start_ms),
            "end": _seconds(self.end_ms),
            "step": str(self.step_s),
        }

    def describe(self) -> str:
        times = ", ".join(f"{k}={v}" for k, v in self.params().items() if k != "query")
        note = f" ({self.note})" if self.note else ""
        return f"{self.path}?{times}{note}\n  query: {self.query}"


def _seconds(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}"


def label_values(
    data: Sequence[tuple[dict[str, str], Samples]],
) -> dict[str, dict[str, list[str]]]:
    """metric -> label -> its values in the data; metric "" for all metrics together."""
    found: dict[str, dict[str, set[str]]] = {}
    for labels, _ in data:
        for metric in ("", labels["__name__"]):
            for name, value in labels.items():
                found.setdefault(metric, {}).setdefault(name, set()).add(value)
    return {m: {n: sorted(v) for n, v in names.items()} for m, names in found.items()}


def generate_cases(
    rng: random.Random, values: dict[str, dict[str, list[str]]], count: int
) -> list[Case]:
    """`count` queries, about 60% of them instant, at times around the data."""
    generator = QueryGenerator(rng, values)
    cases = []
    for _ in range(count):
        depth = rng.choice([1, 2, 2, 3, 3])
        if rng.random() < 0.6:
            # whole seconds + 500 ms, from 10 minutes before the data to 10 minutes after
            at = T0 + rng.randint(-10 * 60, (SPAN_MIN + 10) * 60) * 1000 + 500
            query, order, selection = generator.instant_query(depth)
            cases.append(Case(query, time_ms=at, order=order, selection=selection))
        else:
            start = T0 + rng.randint(-10 * 60, SPAN_MIN * 60) * 1000 + 500
            step = rng.choice([15, 30, 45, 60, 90, 120, 300, 17, 23])
            end = start + rng.randint(1, 80) * step * 1000 + rng.choice([0, 0, 0, 7000])
            query, selection = generator.range_query(depth)
            cases.append(Case(query, start_ms=start, end_ms=end, step_s=step, selection=selection))
    return cases


# Minimal cases of the disagreements this test found, asked besides the random queries (each was
# a watchkeeper bug when it was added).
REGRESSIONS = [
    Case('up{job="db"}[2m]', T0 + 3_781_500, note="selected series without samples in the window"),
    Case('absent(nonexistent{job=~".+", job="a"})', T0 + 3_781_500, note="absent() labels"),
    Case('absent_over_time(nonexistent{job!="b", job="a"}[5m])', T0 + 3_781_500),
    Case('count_values("job", up) by (job)', T0 + 3_781_500, note="value label = grouping label"),
    Case('count_values without (instance) ("instance", up)', T0 + 3_781_500),
    Case('count_values("value", -vector(0))', T0 + 3_781_500, note="Go formats -0 as -0"),
    Case(
        'up{job="nope"} + ignoring (code, method) http_requests_total',
        T0 + 3_781_500,
        note="nothing to match on the left: no many-to-many error",
    ),
    Case(
        "changes(temperature_celsius[30s])",
        start_ms=T0 + 3_623_500,
        end_ms=T0 + 3_936_500,
        step_s=17,
        note="the last series has no samples at the last steps",
    ),
    Case("last_over_time((up > 5)[5m:1m])", T0 + 3_781_500, note="an empty subquery"),
    Case("hour(vector(-0.5))", T0 + 3_781_500, note="Go's int64() truncates towards zero"),
    Case(
        'deriv(request_duration_seconds_count{instance="10.0.0.1:8080"}[30m])',
        T0 + 3_738_500,
        note="linear regression (equal to 1e-9; the last bits differ, see 7.)",
    ),
    Case(
        'predict_linear(request_duration_seconds_count{instance="10.0.0.1:8080"}[30m], 3600)',
        T0 + 3_738_500,
    ),
    Case(
        'stdvar(timestamp(request_duration_seconds_sum{job="api"} offset 10m))',
        T0 + 9_096_500,
        note="Welford's updates as Prometheus does them",
    ),
    Case(
        'stdvar_over_time(timestamp(up{instance="10.0.0.1:8080"})[2m:15s])',
        T0 + 9_096_500,
        note="Welford's updates with Kahan sums as Prometheus does them",
    ),
]


# --- comparing answers ----------------------------------------------------------------------


@dataclass
class Answer:
    status: str  # "success" or "error"
    result_type: str = ""
    result: Any = None
    error: str = ""
    error_type: str = ""  # the API's errorType ("bad_data", "execution"...)


def _answer(response: httpx.Response) -> Answer:
    try:
        body = response.json()
    except ValueError:
        return Answer("error", error=f"HTTP {response.status_code}: {response.text[:300]}")
    if body.get("status") != "success":
        kind = str(body.get("errorType"))
        return Answer("error", error=f"{kind}: {body.get('error')}", error_type=kind)
    data = body["data"]
    return Answer("success", data["resultType"], data["result"])


def _labels(metric: dict[str, str]) -> Labels:
    return tuple(sorted(metric.items()))


def _show(labels: Labels) -> str:
    return "{" + ", ".join(f"{n}={v!r}" for n, v in labels) + "}"


def _ms(stamp: float) -> int:
    return round(stamp * 1000)


def same_value(expected: str, got: str) -> bool:
    a, b = float(expected), float(got)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    if a == 0 or b == 0 or math.isinf(a) or math.isinf(b):
        return False
    return abs(a - b) <= RELATIVE * max(abs(a), abs(b))


def _same_points(expected: Sequence[Any], got: Sequence[Any]) -> bool:
    return len(expected) == len(got) and all(
        _ms(e[0]) == _ms(g[0]) and same_value(e[1], g[1])
        for e, g in zip(expected, got, strict=True)
    )


def _keyed(result: list[dict[str, Any]], key: str, problems: list[str], who: str) -> dict:
    out = {_labels(s["metric"]): s.get(key, []) for s in result}
    if len(out) != len(result):
        problems.append(f"{who}: the same label set twice in the answer")
    return out


def compare(case: Case, expected: Answer, got: Answer, inner: Answer | None = None) -> list[str]:
    """What differs between Prometheus' answer and watchkeeper's (nothing when they agree);
    for a topk/bottomk, `inner` is Prometheus' answer for the expression it selects from."""
    if expected.status == "error" or got.status == "error":
        if expected.status == got.status and expected.error_type == got.error_type:
            return []
        return [
            f"Prometheus: {expected.status} {expected.error}",
            f"watchkeeper: {got.status} {got.error}",
        ]
    if expected.result_type != got.result_type:
        return [f"result type: Prometheus {expected.result_type}, watchkeeper {got.result_type}"]
    kind = expected.result_type
    if kind in ("scalar", "string"):
        e, g = expected.result, got.result
        same = _ms(e[0]) == _ms(g[0]) and (
            e[1] == g[1] if kind == "string" else same_value(e[1], g[1])
        )
        return [] if same else [f"Prometheus {e}, watchkeeper {g}"]
    problems: list[str] = []
    key = "value" if kind == "vector" else "values"
    mine = _keyed(expected.result, key, problems, "Prometheus")
    theirs = _keyed(got.result, key, problems, "watchkeeper")
    if case.selection:
        assert inner is not None
        return problems + _selection_problems(case.selection, kind, expected, got, inner)
    for labels in sorted(mine.keys() - theirs.keys()):
        problems.append(f"only in Prometheus: {_show(labels)} {_brief(mine[labels], kind)}")
    for labels in sorted(theirs.keys() - mine.keys()):
        problems.append(f"only in watchkeeper: {_show(labels)} {_brief(theirs[labels], kind)}")
    for labels in sorted(mine.keys() & theirs.keys()):
        e, g = mine[labels], theirs[labels]
        same = _same_points([e], [g]) if kind == "vector" else _same_points(e, g)
        if not same:
            problems.append(
                f"differs: {_show(labels)}\n      Prometheus  {_brief(e, kind)}"
                f"\n      watchkeeper {_brief(g, kind)}"
            )
    if not problems and case.order and kind == "vector":
        problems += _order_problems(expected.result, got.result)
    return problems


def _by_time(answer: Answer) -> dict[int, dict[Labels, str]]:
    """A vector's or matrix' samples by timestamp."""
    out: dict[int, dict[Labels, str]] = {}
    for series in answer.result:
        points = [series["value"]] if answer.result_type == "vector" else series["values"]
        for stamp, value in points:
            out.setdefault(_ms(stamp), {})[_labels(series["metric"])] = value
    return out


def _selection_problems(
    selection: Selection, kind: str, expected: Answer, got: Answer, inner: Answer
) -> list[str]:
    """Whether each answer is a valid topk/bottomk of Prometheus' `inner` answer (see
    Selection), and both hold the same values."""
    if inner.status != "success" or inner.result_type != kind:
        return [f"the inner expression: {inner.status} {inner.result_type} {inner.error}"]
    sign = -1 if selection.op == "topk" else 1

    def order(value: str) -> tuple[bool, float]:
        number = float(value)
        return (math.isnan(number), 0.0 if math.isnan(number) else sign * number)

    inner_at = _by_time(inner)
    problems = []
    for who, answer in (("Prometheus", expected), ("watchkeeper", got)):
        answer_at = _by_time(answer)
        for stamp in sorted(answer_at.keys() | inner_at.keys()):
            chosen = answer_at.get(stamp, {})
            available = inner_at.get(stamp, {})
            groups: dict[Labels, list[str]] = {}
            for labels, value in available.items():
                groups.setdefault(selection.group(labels), []).append(value)
            picked: dict[Labels, list[str]] = {}
            for labels, value in chosen.items():
                if labels not in available or not same_value(available[labels], value):
                    problems.append(
                        f"{who} @{stamp}: {_show(labels)} {value} is not in the inner answer "
                        f"({available.get(labels)})"
                    )
                picked.setdefault(selection.group(labels), []).append(value)
            for group, values in groups.items():
                best = sorted(values, key=order)[: selection.k]
                mine = sorted(picked.get(group, []), key=order)
                if len(best) != len(mine) or not all(map(same_value, best, mine)):
                    problems.append(
                        f"{who} @{stamp}: group {_show(group)} has {mine}, its best are {best}"
                    )
        if len(problems) > 20:
            break
    return problems


def _brief(points: Any, kind: str) -> str:
    if kind == "vector":
        return f"{points[1]} @{points[0]}"
    text = " ".join(f"{v}@{t}" for t, v in points[:8])
    return text + (f" ... ({len(points)} points)" if len(points) > 8 else "")


def _order_problems(expected: list[dict[str, Any]], got: list[dict[str, Any]]) -> list[str]:
    """sort()/sort_desc(): the same values in the same order, and at each position where
    Prometheus has a value no other series has, the same series."""
    values_e = [s["value"][1] for s in expected]
    values_g = [s["value"][1] for s in got]
    if not all(same_value(a, b) for a, b in zip(values_e, values_g, strict=True)):
        return [f"order of values: Prometheus {values_e}, watchkeeper {values_g}"]
    problems = []
    for i, (e, g) in enumerate(zip(expected, got, strict=True)):
        unique = sum(same_value(values_e[i], v) for v in values_e) == 1
        if unique and _labels(e["metric"]) != _labels(g["metric"]):
            problems.append(
                f"order: at {i} Prometheus has {_show(_labels(e['metric']))}, watchkeeper "
                f"{_show(_labels(g['metric']))}"
            )
    return problems


# --- the servers ----------------------------------------------------------------------------


@dataclass
class Loaded:
    prometheus: httpx.Client
    watchkeeper: httpx.Client
    data: list[tuple[dict[str, str], Samples]]
    values: dict[str, dict[str, list[str]]] = field(default_factory=dict)


def _write(client: httpx.Client, series: list[tuple[dict[str, str], Samples]]) -> None:
    response = client.post(
        "/api/v1/write", content=snappy_body(write_request(series)), headers=WRITE_HEADERS
    )
    assert response.status_code in (200, 204), f"{client.base_url}: {response.text}"


def _raw(client: httpx.Client) -> dict[Labels, list[tuple[int, float]]]:
    """Every stored sample (staleness markers aside), by series."""
    end = T0 + (SPAN_MIN + 1) * MINUTE
    params = {"query": '{__name__=~".+"}[3h]', "time": _seconds(end)}
    answer = _answer(client.get("/api/v1/query", params=params))
    assert answer.status == "success", answer.error
    return {
        _labels(s["metric"]): [(_ms(t), float(v)) for t, v in s["values"]] for s in answer.result
    }


def _expected_raw(data: list[tuple[dict[str, str], Samples]]) -> dict[Labels, Samples]:
    return {
        _labels(labels): [(t, v) for t, v in samples if not _is_stale(v)]
        for labels, samples in data
    }


@pytest.fixture(scope="module")
def loaded(
    prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory, watchkeeper: Server
) -> Iterator[Loaded]:
    """The same data remote-written, in time order, into a Prometheus and into watchkeeper."""
    data = build_data(random.Random(SEED))
    prom = ReceivingPrometheus(prometheus_binary, tmp_path_factory.mktemp("prometheus-promql"))
    LOGS["prometheus"] = prom.log_path
    try:
        prom.start()
        with (
            httpx.Client(base_url=prom.url, timeout=60) as prom_client,
            httpx.Client(base_url=watchkeeper.url, timeout=60) as wk_client,
        ):
            # 10-minute slices in time order: neither side may see a sample older than its head
            # allows (half a block behind the newest sample)
            for slice_start in range(T0, T0 + (SPAN_MIN + 10) * MINUTE, 10 * MINUTE):
                batch = [
                    (labels, part)
                    for labels, samples in data
                    if (
                        part := [
                            s for s in samples if slice_start <= s[0] < slice_start + 10 * MINUTE
                        ]
                    )
                ]
                if batch:
                    _write(prom_client, batch)
                    _write(wk_client, batch)
            # watchkeeper may still be applying the last request: give it a moment
            expected = _expected_raw(data)
            deadline = time.monotonic() + 30
            while _raw(wk_client) != expected and time.monotonic() < deadline:
                time.sleep(0.25)
            yield Loaded(prom_client, wk_client, data, label_values(data))
    finally:
        prom.stop()


# --- the tests ------------------------------------------------------------------------------


def test_both_hold_the_data(loaded: Loaded) -> None:
    """Both answer exactly the raw samples that were written."""
    expected = _expected_raw(loaded.data)
    assert len(expected) >= 50
    assert sum(map(len, expected.values())) > 25_000
    assert _raw(loaded.prometheus) == expected
    assert _raw(loaded.watchkeeper) == expected


def test_random_queries_agree_with_prometheus(loaded: Loaded) -> None:
    cases = generate_cases(random.Random(QUERY_SEED), loaded.values, QUERIES)
    assert len({c.query for c in cases}) > QUERIES * 0.9, "the generator repeats itself"
    cases += REGRESSIONS

    def ask(client: httpx.Client, case: Case, query: str | None = None) -> Answer:
        return _answer(client.get(case.path, params=case.params(query)))

    selections = [c for c in cases if c.selection]
    with ThreadPoolExecutor(max_workers=4) as pool:
        expected = list(pool.map(lambda c: ask(loaded.prometheus, c), cases))
        got = list(pool.map(lambda c: ask(loaded.watchkeeper, c), cases))
        inner = dict(
            zip(
                map(id, selections),
                pool.map(lambda c: ask(loaded.prometheus, c, c.selection.inner), selections),
                strict=True,
            )
        )

    disagreements = []
    for number, (case, e, g) in enumerate(zip(cases, expected, got, strict=True)):
        problems = compare(case, e, g, inner.get(id(case)))
        if problems:
            disagreements.append(
                f"#{number} {case.describe()}\n    "
                + "\n    ".join(problems[:20])
                + (f"\n    ... {len(problems) - 20} more" if len(problems) > 20 else "")
            )
    errors = sum(e.status == "error" for e in expected)
    empty = sum(e.status == "success" and e.result in ([], None) for e in expected)
    summary = (
        f"{len(cases)} queries: {len(disagreements)} disagreements; in Prometheus {errors} "
        f"errors, {empty} empty results"
    )
    print(summary)
    if disagreements:
        pytest.fail(f"{summary}\n\n" + "\n\n".join(disagreements), pytrace=False)
    # the generator must keep producing useful queries
    assert errors < len(cases) * 0.1, summary
    assert empty < len(cases) * 0.4, summary
