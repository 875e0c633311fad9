"""The newest float samples of each series, kept apart in a small ring per series, so that a
range selector over the last minutes or hour (what dashboards refresh and rules evaluate again
and again) reads a few array slices instead of the head's chunks.

A read of `rate(x[5m])` at the newest time otherwise decodes the head's compressed segments,
filters its raw segments, sorts what it found by series and time and lays it out in label
order: about 0.25 ms for 59 series of the benchmark workload, most of a small query. From the
rings the same read is two gathers and a mask (about 0.03 ms).

A ring holds a series' newest `depth` samples, in time order, written as samples become visible
(with the head). It answers a window only when it holds every sample of the series in it: the
window starts at or after the ring's oldest sample, or the ring holds the series' first sample
ever. A sample that arrives out of order (the out-of-order window) empties the series' ring, which
fills again from the next samples in order: the ring never has to insert. Rings have a memory
budget (`storage.recent_samples_bytes`); series beyond it, and reads it cannot answer, go to the
head and blocks as before, so the rings are only ever a shortcut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from watchkeeper.store.ordering import INT64_MIN

_FIRST_IDS = 1024
# Slots gathered per series on a first try: a 5m or 10m window at a 30s interval is 10 or 20
# samples, so most reads need one gather of this many; longer windows take the whole ring.
_FIRST_TAKE = 24
# Slots gathered at a time (rings x slots) to find a window's samples: 256 KiB temporaries
GATHER_SLOTS = 1 << 15
# Most slots a read gathered whole gathers: it runs under the store's state lock, which
# appends wait for (about 10 ns a slot with the rest of the read: 512 Ki slots hold it about
# 5 ms); past that the head and blocks answer
MAX_SLOTS = 1 << 19
# A read in parts holds the lock for one part: about this many samples, or gathered from
# this many slots (about 1 ms), whichever comes first. A reader working part by part (a range
# function) holds one part's samples, windows and results at a time, but each part costs it
# a round of work: 16 Ki samples (256 KiB) took the 1 h sum of rate() over 1,666 series from
# a 6.1 to a 3.9 MiB peak in the same time; 4 Ki took longer.
PART_SAMPLES = 1 << 14
PART_SLOTS = 1 << 17


# samples read from rings: timestamps and values ring after ring, and each ring's count
Gathered = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]


def _joined(parts: list[Gathered]) -> Gathered:
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int64)
    times, values, counts = zip(*parts, strict=True)
    return np.concatenate(times), np.concatenate(values), np.concatenate(counts)


@dataclass
class RingRead:
    """A read of some rings as they stood when it began (`RecentSamples.begin`), gathered
    part by part (`RecentSamples.read_part`), each part under the state lock on its own."""

    rows: npt.NDArray[np.int64]  # the rings, in the order their samples are given
    written: npt.NDArray[np.int64]  # each ring's samples written when the read began
    emptied: npt.NDArray[np.int64]  # and the times it had been emptied
    start: int
    end: int
    take: int  # slots gathered a ring: its newest
    changes: int  # the rings' changes when it began (RecentSamples.changes)
    done: int = 0  # rings gathered so far

    @property
    def finished(self) -> bool:
        return self.done >= len(self.rows)


class RecentSamples:
    """Rings of the newest `depth` float samples, by series id, within `budget_bytes` (16
    bytes a sample). Not thread safe: the store writes and reads them under its state lock."""

    def __init__(self, depth: int, budget_bytes: int) -> None:
        self.depth = max(0, depth)
        self.max_rows = budget_bytes // (16 * self.depth) if self.depth else 0
        self._row_of = np.full(_FIRST_IDS, -1, dtype=np.int64)  # by series id
        # The whole budget at once, as zeros: the pages of rings not handed out yet are never
        # touched, so they take no memory, and the rings never move (no copy as they grow).
        rows = self.max_rows
        self._times = np.zeros((rows, self.depth), dtype=np.int64)
        self._values = np.zeros((rows, self.depth), dtype=np.float64)
        # samples written since the ring was handed out or emptied: the next goes to slot
        # written % depth, and the ring holds min(written, depth)
        self._written = np.zeros(rows, dtype=np.int64)
        # the newest timestamp written (or refused, after which the ring was emptied)
        self._newest = np.full(rows, INT64_MIN, dtype=np.int64)
        # times each ring was emptied or given back: a read in parts notices it happened
        self._emptied = np.zeros(rows, dtype=np.int64)
        self.changes = 0  # writes and releases so far: a read with none since has no checks
        self._used = 0  # rows handed out so far, freed ones included
        self._free: list[int] = []

    @property
    def nbytes(self) -> int:
        """Memory the rings handed out so far take (the rest of the budget is never touched)."""
        return self._used * self.depth * 16

    @property
    def series(self) -> int:
        """Series holding a ring."""
        return self._used - len(self._free)

    # --- writing -------------------------------------------------------------------------

    def write(
        self,
        sids: npt.NDArray[np.int64],
        timestamps: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
    ) -> None:
        """Add samples that became visible. Per series they go in in time order; a series
        given one at or before its newest (or two at one time) has its ring emptied."""
        if self.max_rows == 0 or len(sids) == 0:
            return
        self.changes += 1
        rows = self._rows(sids)
        held = rows >= 0
        if not held.all():
            rows, timestamps, values = rows[held], timestamps[held], values[held]
            if len(rows) == 0:
                return
        # by ring and time: rings written in order touch memory in order, and a series'
        # samples given out of time order in one write still go in in time order
        order = np.lexsort((timestamps, rows))
        rows, timestamps, values = rows[order], timestamps[order], values[order]
        first = np.empty(len(rows), dtype=bool)
        first[0] = True
        np.not_equal(rows[1:], rows[:-1], out=first[1:])
        if first.all():  # one sample a series, as a scrape or most remote_write requests
            self._write_one_each(rows, timestamps, values)
            return
        before = np.empty(len(rows), dtype=np.int64)
        before[1:] = timestamps[:-1]
        before[first] = self._newest[rows[first]]
        out_of_order = timestamps <= before
        if out_of_order.any():
            keep = self._empty(rows, timestamps, out_of_order)
            rows, timestamps, values = rows[keep], timestamps[keep], values[keep]
            if len(rows) == 0:
                return
            first = first[keep]
        starts = np.flatnonzero(first)
        sizes = np.diff(np.r_[starts, len(rows)])
        rank = np.arange(len(rows), dtype=np.int64) - np.repeat(starts, sizes)
        owners = rows[starts]
        slots = (np.repeat(self._written[owners], sizes) + rank) % self.depth
        # a series given more than depth samples keeps its newest depth
        keep = rank >= np.repeat(sizes, sizes) - self.depth
        self._times[rows[keep], slots[keep]] = timestamps[keep]
        self._values[rows[keep], slots[keep]] = values[keep]
        self._written[owners] += sizes
        self._newest[owners] = timestamps[starts + sizes - 1]

    def _write_one_each(
        self,
        rows: npt.NDArray[np.int64],
        timestamps: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
    ) -> None:
        """`write` of one sample per ring: no grouping needed."""
        out_of_order = timestamps <= self._newest[rows]
        if out_of_order.any():
            keep = self._empty(rows, timestamps, out_of_order)
            rows, timestamps, values = rows[keep], timestamps[keep], values[keep]
        written = self._written[rows]
        slots = written % self.depth
        self._times[rows, slots] = timestamps
        self._values[rows, slots] = values
        self._written[rows] = written + 1
        self._newest[rows] = timestamps

    def _empty(
        self,
        rows: npt.NDArray[np.int64],
        timestamps: npt.NDArray[np.int64],
        out_of_order: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.bool_]:
        """Empty the rings given a sample out of order; returns which samples of the write to
        keep (none of those rings': they fill again from the next write in order)."""
        emptied = np.unique(rows[out_of_order])
        self._written[emptied] = 0
        self._emptied[emptied] += 1
        hit = np.isin(rows, emptied)
        np.maximum.at(self._newest, rows[hit], timestamps[hit])  # still the newest seen
        keep: npt.NDArray[np.bool_] = ~hit
        return keep

    def release(self, sids: list[int]) -> None:
        """Give back the rings of series the store forgot."""
        if self.max_rows == 0 or not sids:
            return
        self.changes += 1
        ids = np.array([s for s in sids if s < len(self._row_of)], dtype=np.int64)
        rows = self._row_of[ids]
        rows = rows[rows >= 0]
        self._row_of[ids] = -1
        self._written[rows] = 0
        self._emptied[rows] += 1
        self._newest[rows] = INT64_MIN
        self._free.extend(rows.tolist())

    def _rows(self, sids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The ring of each sample's series, given to series without one while the budget
        lasts (-1: none)."""
        top = int(sids.max())
        if top >= len(self._row_of):
            grown = np.full(max(top + 1, 2 * len(self._row_of)), -1, dtype=np.int64)
            grown[: len(self._row_of)] = self._row_of
            self._row_of = grown
        rows = self._row_of[sids]
        missing = rows < 0
        if not missing.any():
            return rows
        new = np.unique(sids[missing])
        room = len(self._free) + self.max_rows - self._used
        new = new[:room]
        if len(new) == 0:
            return rows
        reused = min(len(new), len(self._free))
        given = [self._free.pop() for _ in range(reused)]
        fresh = len(new) - reused
        if fresh:
            given += range(self._used, self._used + fresh)
            self._used += fresh
        self._row_of[new] = np.array(given, dtype=np.int64)
        result: npt.NDArray[np.int64] = self._row_of[sids]
        return result

    # --- reading -------------------------------------------------------------------------

    def holding(
        self, sids: npt.NDArray[np.int64], start: int, first_times: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64] | None:
        """The rings of `sids` (in any order) when every one of them holds all of its series'
        samples from `start` on, else None. `first_times` is each series' oldest sample
        anywhere: a ring holding that one holds all there are. It looks at each ring's oldest
        sample alone, so a read the rings cannot answer costs next to nothing."""
        if self.max_rows == 0 or len(sids) == 0 or int(sids.max()) >= len(self._row_of):
            return None
        rows = self._row_of[sids]
        if bool((rows < 0).any()):
            return None
        written = self._written[rows]
        counts = np.minimum(written, self.depth)
        if not bool(counts.all()):
            return None
        oldest = self._times[rows, (written - counts) % self.depth]
        if not bool(((oldest <= start) | (oldest == first_times)).all()):
            return None
        return rows

    def slots_to_take(
        self, rows: npt.NDArray[np.int64], start: int, *, whole: bool = False
    ) -> int | None:
        """How many of each ring's newest slots a read from `start` on gathers: its newest
        _FIRST_TAKE when those reach back before `start`, else whole rings. For a read
        gathered `whole` (in one hold of the state lock), None when that is more than
        MAX_SLOTS in all; a read in parts holds the lock for one part at a time."""
        written = self._written[rows]
        counts = np.minimum(written, self.depth)
        take = min(_FIRST_TAKE, self.depth)
        oldest_taken = self._times[rows, (written - take) % self.depth]
        if not bool(((counts <= take) | (oldest_taken < start)).all()):
            take = self.depth
        if whole and len(rows) * take > MAX_SLOTS:
            return None
        return take

    def begin(self, rows: npt.NDArray[np.int64], start: int, end: int, take: int) -> RingRead:
        """A read of the samples in [start, end] of the rings `rows` that `holding` gave,
        from the newest `take` slots of each (`slots_to_take`), as the rings stand now."""
        return RingRead(
            rows, self._written[rows], self._emptied[rows], start, end, take, self.changes
        )

    def read_part(
        self, read: RingRead, part_samples: int = 0, part_slots: int = 0
    ) -> Gathered | None:
        """The next part of `read`: timestamps and values ring after ring, and each ring's
        count, for consecutive rings in the order given, holding about `part_samples`
        samples or gathered from about `part_slots` slots (whichever comes first; 0: no
        limit, the rest of the read). What was written since the read began is left out, so
        its parts show one moment. None, gathering nothing, when a ring of the part was
        emptied, or overwrote a slot of the window, since the read began: the caller reads
        the rest (rings from `read.done` on) from the head."""
        rows, done = read.rows, read.done
        parts: list[Gathered] = []
        held = slots = 0
        # a few rings at a time: the slots gathered to be searched are temporaries of rings x
        # slots, several times the answer for a long window; and no more slots than the part's
        # samples, so a part passes its size by at most that many
        per = max(1, min(GATHER_SLOTS, part_samples or GATHER_SLOTS) // read.take)
        changed = self.changes != read.changes
        while done < len(rows):
            chunk = slice(done, done + per)
            if changed and not bool((self._emptied[rows[chunk]] == read.emptied[chunk]).all()):
                return None
            gathered = self._take(rows[chunk], read.written[chunk], read, changed)
            if gathered is None:
                return None
            parts.append(gathered)
            held += len(gathered[0])
            slots += len(gathered[2]) * read.take
            done += len(gathered[2])
            if (part_samples and held >= part_samples) or (part_slots and slots >= part_slots):
                break
        read.done = done
        return _joined(parts)

    def _take(
        self,
        rows: npt.NDArray[np.int64],
        written: npt.NDArray[np.int64],
        read: RingRead,
        changed: bool,
    ) -> Gathered | None:
        """The window's samples from the newest `read.take` slots each ring had when the read
        began (`written`); None if a sample of the window was overwritten since (only
        possible if the rings `changed`)."""
        depth, take = self.depth, read.take
        counts = np.minimum(written, depth)
        back = np.arange(-take, 0, dtype=np.int64)
        # the newest `take` slots of each ring, oldest first
        flat = rows[:, None] * depth + (written[:, None] + back) % depth
        times = self._times.reshape(-1).take(flat)
        wanted = (back >= -counts[:, None]) & (times >= read.start) & (times <= read.end)
        if changed and not self._window_kept(rows, written, counts, times, wanted, read):
            return None
        return (
            times[wanted],
            self._values.reshape(-1).take(flat[wanted]),
            np.count_nonzero(wanted, axis=1).astype(np.int64),
        )

    def _window_kept(
        self,
        rows: npt.NDArray[np.int64],
        written: npt.NDArray[np.int64],
        counts: npt.NDArray[np.int64],
        times: npt.NDArray[np.int64],
        wanted: npt.NDArray[np.bool_],
        read: RingRead,
    ) -> bool:
        """Whether writes since `read` began left the window's samples among the slots
        gathered (`times`, `wanted`: their times and which are in the window); the slots
        they overwrote are taken out of `wanted`. Each ring's oldest `lost` slots of those
        gathered were overwritten (the times gathered there are new ones). Of the samples
        they held, none was in the window if the oldest one left is not after the window's
        start: a ring's times only go up."""
        take = read.take
        lost = self._written[rows] - self.depth - (written - take)
        hit = lost > take - np.minimum(counts, take)  # a slot that held a sample
        if not bool(hit.any()):
            return True
        left = np.minimum(lost[hit], take - 1)
        before = times[np.flatnonzero(hit), left] <= read.start
        if not bool(((lost[hit] < take) & before).all()):
            return False
        wanted &= np.arange(-take, 0, dtype=np.int64) >= (lost - take)[:, None]
        return True
