"""Which samples of a batch may be appended: Prometheus' in-order, duplicate and bounds rules,
decided for the whole batch with array operations.

Per series, a sample newer than everything before it is appended. One at exactly the newest
timestamp is a retry if its value is bit-for-bit the same (dropped silently, which is what
makes a resent request harmless) and a "duplicate sample for timestamp" error otherwise. An
older one is "out of order" unless the out-of-order window admits it. Anything before the
tenant's lower bound (the newest block's end, and half a block behind the newest sample, as in
Prometheus' head) is "out of bounds".
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import numpy.typing as npt

INT64_MIN = np.iinfo(np.int64).min


class Verdict(IntEnum):
    APPEND = 0
    OUT_OF_BOUNDS = 1
    OUT_OF_ORDER = 2
    DUPLICATE_TIMESTAMP = 3
    RESENT = 4  # same series, timestamp and value as stored: dropped without error


VERDICT_REASON = {
    Verdict.OUT_OF_BOUNDS: "out of bounds",
    Verdict.OUT_OF_ORDER: "out of order sample",
    Verdict.DUPLICATE_TIMESTAMP: "duplicate sample for timestamp",
}


def judge(
    series: npt.NDArray[np.int64],
    timestamps: npt.NDArray[np.int64],
    value_bits: npt.NDArray[np.int64],
    prior_max: npt.NDArray[np.int64],
    prior_bits: npt.NDArray[np.int64],
    lower_bound: int,
    ooo_lower_bound: int | None,
) -> npt.NDArray[np.int8]:
    """A Verdict per sample, in arrival order.

    `prior_max[j]` / `prior_bits[j]` are the newest stored timestamp and its value bits of sample
    j's series (INT64_MIN when it has none). `ooo_lower_bound` is the oldest timestamp the
    out-of-order window admits, or None when out-of-order samples are rejected.
    """
    count = len(timestamps)
    verdict = np.zeros(count, dtype=np.int8)
    if count == 0:
        return verdict
    order = np.argsort(series, kind="stable")
    s, t, b = series[order], timestamps[order], value_bits[order]
    pmax, pbits = prior_max[order], prior_bits[order]
    first = np.empty(count, dtype=bool)
    first[0] = True
    np.not_equal(s[1:], s[:-1], out=first[1:])

    if np.all(first[1:] | (t[1:] > t[:-1])):
        # Common case: each series' samples in this batch are strictly increasing, so the newest
        # timestamp before sample k is the larger of the stored one and sample k-1's.
        prev_t = np.empty(count, dtype=np.int64)
        prev_t[0] = INT64_MIN
        prev_t[1:] = t[:-1]
        prev_t[first] = INT64_MIN
        newest = np.maximum(pmax, prev_t)
        newest_bits = np.where(prev_t > pmax, np.r_[np.int64(0), b[:-1]], pbits)
    else:
        newest, newest_bits = _running_newest_slow(s, t, b, pmax, pbits, first)

    v = np.zeros(count, dtype=np.int8)
    newer, same, older = t > newest, t == newest, t < newest
    v[same & (b == newest_bits)] = Verdict.RESENT
    v[same & (b != newest_bits)] = Verdict.DUPLICATE_TIMESTAMP
    if ooo_lower_bound is None:
        v[older] = Verdict.OUT_OF_ORDER
        bound = lower_bound
    else:
        v[older & (t < ooo_lower_bound)] = Verdict.OUT_OF_ORDER
        bound = min(lower_bound, ooo_lower_bound)
    v[newer & (t < bound)] = Verdict.OUT_OF_BOUNDS
    verdict[order] = v
    return verdict


def _running_newest_slow(
    s: npt.NDArray[np.int64],
    t: npt.NDArray[np.int64],
    b: npt.NDArray[np.int64],
    pmax: npt.NDArray[np.int64],
    pbits: npt.NDArray[np.int64],
    first: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Newest timestamp (and its value bits) before each sample, walking series that are not
    in order within the batch one sample at a time."""
    newest = np.empty_like(t)
    newest_bits = np.empty_like(b)
    current = current_bits = 0
    for k in range(len(t)):
        if first[k]:
            current, current_bits = int(pmax[k]), int(pbits[k])
        newest[k], newest_bits[k] = current, current_bits
        if t[k] > current:
            current, current_bits = int(t[k]), int(b[k])
    return newest, newest_bits
