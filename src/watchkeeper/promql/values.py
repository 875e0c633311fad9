"""The engine's intermediate values, each evaluated at every step of a query at once.

An instant vector is a (series x steps) matrix of values with a mask of which series have a
sample at which step; a range vector keeps every series' samples in one flat array and, per
series and step, the bounds of that step's window into it. Every operator and function works on
whole arrays, so the cost of a range query grows with its series, not with its steps times its
series in Python.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from watchkeeper.model import Labels
from watchkeeper.model.histogram import FloatHistogram

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

# Prometheus' staleness marker: one particular NaN, told apart from other NaNs by its bits.
STALE_NAN_BITS = 0x7FF0000000000002


def is_stale(values: Floats) -> Bools:
    stale: Bools = values.view(np.uint64) == np.uint64(STALE_NAN_BITS)
    return stale


@dataclass
class InstantSteps:
    """An instant vector at each step: `values[i, j]` is series i at step j when
    `present[i, j]`. `sample_ts` is set only for a plain selector's result: the timestamps of the
    samples it picked, which `timestamp()` reports."""

    labels: list[Labels]
    values: Floats
    present: Bools
    sample_ts: Ints | None = None

    @staticmethod
    def empty(steps: int) -> InstantSteps:
        return InstantSteps([], np.zeros((0, steps)), np.zeros((0, steps), dtype=bool))

    @staticmethod
    def concat_in_label_order(parts: list[InstantSteps], steps: int) -> InstantSteps:
        """One vector of the parts' series (distinct label sets, each part in label order), in
        label order. The list is emptied: each part is placed straight at its rows and let go,
        so the parts and the result are held about once together, not three times (parts,
        joined, reordered)."""
        if len(parts) <= 1:
            return parts.pop() if parts else InstantSteps.empty(steps)
        parts[:] = [part for part in parts if part.labels] or parts[:1]
        if all(a.labels[-1] < b.labels[0] for a, b in itertools.pairwise(parts)):
            # one after the other already (the rings answer in label order): joined as they are
            joined = InstantSteps(
                [ls for part in parts for ls in part.labels],
                np.concatenate([part.values for part in parts]),
                np.concatenate([part.present for part in parts]),
                None
                if any(part.sample_ts is None for part in parts)
                else np.concatenate(
                    [part.sample_ts for part in parts if part.sample_ts is not None]
                ),
            )
            parts.clear()
            return joined
        labels = [ls for part in parts for ls in part.labels]
        order = sorted(range(len(labels)), key=labels.__getitem__)
        row_of = np.empty(len(labels), dtype=np.int64)  # concatenated position -> result row
        row_of[order] = np.arange(len(labels), dtype=np.int64)
        values = np.empty((len(labels), steps))
        present = np.empty((len(labels), steps), dtype=bool)
        with_ts = all(part.sample_ts is not None for part in parts)
        sample_ts = np.empty((len(labels), steps), dtype=np.int64) if with_ts else None
        offset = 0
        while parts:
            part = parts.pop(0)
            rows = row_of[offset : offset + len(part.labels)]
            offset += len(part.labels)
            values[rows] = part.values
            present[rows] = part.present
            if sample_ts is not None and part.sample_ts is not None:
                sample_ts[rows] = part.sample_ts
            del part
        return InstantSteps([labels[i] for i in order], values, present, sample_ts)


@dataclass
class HistogramSteps:
    """An instant vector some of whose samples are native histograms: `floats` holds the float
    samples (its `present` is false where a histogram is), `histograms[i]` maps step j to series
    i's histogram there, for the same series as `floats.labels`. Only what handles histograms
    takes one; everything else refuses it by name (evaluator.refuse_histograms), never reading
    a histogram as a number."""

    floats: InstantSteps
    histograms: list[dict[int, FloatHistogram]]

    @property
    def labels(self) -> list[Labels]:
        return self.floats.labels

    def present_anyhow(self) -> InstantSteps:
        """The floats with the histogram samples counted as present (values NaN), for what
        only asks whether and when samples are there (absent(), timestamp())."""
        present = self.floats.present.copy()
        for i, found in enumerate(self.histograms):
            present[i, list(found)] = True
        floats = self.floats
        return InstantSteps(floats.labels, floats.values, present, floats.sample_ts)


@dataclass
class HistogramRange:
    """A range vector some of whose samples are native histograms: `floats` holds every series
    with its float samples (windows as RangeSteps), and series i's histogram samples are at
    `times[i]` (ascending) with `histograms[i]`. Refused like HistogramSteps by whatever does
    not handle it."""

    floats: RangeSteps
    times: list[Ints]
    histograms: list[list[FloatHistogram]]

    @property
    def labels(self) -> list[Labels]:
        return self.floats.labels

    def window(self, i: int, j: int) -> tuple[int, int]:
        """Series i's histograms in step j's window: indexes [first, last)."""
        end = int(self.floats.ends[j])
        times = self.times[i]
        first = int(np.searchsorted(times, end - self.floats.range_ms, side="right"))
        return first, int(np.searchsorted(times, end, side="right"))


@dataclass
class ScalarSteps:
    values: Floats


@dataclass
class StringValue:
    value: str


@dataclass
class RangeSteps:
    """A range vector at each step. Series i's samples are `t[bounds[i]:bounds[i+1]]` (stale
    markers removed); its window at step j is `t[lo[i, j]:hi[i, j]]`, the samples in
    (ends[j] - range_ms, ends[j]]. `t` and `v` hold at least one sample (an unused one when there
    are none), so that even an empty window's bounds index a sample."""

    labels: list[Labels]
    t: Ints
    v: Floats
    bounds: Ints
    lo: Ints
    hi: Ints
    range_ms: int
    ends: Ints

    @property
    def counts(self) -> Ints:
        counts: Ints = self.hi - self.lo
        return counts

    def rows(self, first: int, last: int) -> RangeSteps:
        """Series `first` to `last - 1` alone, with only their samples."""
        start, stop = int(self.bounds[first]), int(self.bounds[last])
        if stop > start:
            t, v = self.t[start:stop], self.v[start:stop]
        else:  # no samples: one unused one, as for an empty range vector
            t, v = np.zeros(1, dtype=np.int64), np.full(1, np.nan)
        return RangeSteps(
            self.labels[first:last],
            t,
            v,
            self.bounds[first : last + 1] - start,
            self.lo[first:last] - start,
            self.hi[first:last] - start,
            self.range_ms,
            self.ends,
        )

    @property
    def overlap(self) -> float:
        """How many windows hold a sample, on average: at most 1 for an instant query, about
        range / step for a range query's (a 1 h window at a 30 s step: 120)."""
        return float(self.counts.sum()) / max(int(self.bounds[-1] - self.bounds[0]), 1)


Value = InstantSteps | HistogramSteps | ScalarSteps | StringValue | RangeSteps | HistogramRange


def type_name(value: Value) -> str:
    """The PromQL type name, as error messages show it."""
    if isinstance(value, (InstantSteps, HistogramSteps)):
        return "instant vector"
    if isinstance(value, (RangeSteps, HistogramRange)):
        return "range vector"
    if isinstance(value, ScalarSteps):
        return "scalar"
    return "string"
