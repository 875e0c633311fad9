"""A scrape body's layout: everything in it but the sample values.

Exporters write the same lines in the same order on every scrape, and only the values change.
`Layout.of(body)` splits a body into its lines' texts (the whole line, less the last
space-separated token of a sample line) and that token; `values_if_unchanged` reads a new body
and, when its texts are byte for byte the previous body's, returns the new values as one float
array, with no Python object per line: the cut is found with numpy over the body's bytes, the
texts are compared as one Arrow array and the values parsed by Arrow's float cast. Anything
else (a series came or went, a timestamp or exemplar on a line, a value Arrow does not read)
returns None and the caller parses the body in full (exposition.parse), which is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

_NEWLINE, _SPACE, _HASH = 10, 32, 35


@dataclass(frozen=True)
class Layout:
    texts: pa.BinaryArray  # each line's text; for sample lines, up to and with the last space
    samples: int  # sample lines (not comments, not empty)

    @classmethod
    def of(cls, body: bytes) -> Layout:
        return _cut(body)[0]

    def values_if_unchanged(self, body: bytes) -> npt.NDArray[np.float64] | None:
        """The sample values of `body` in line order if its layout is this one; else None."""
        layout, values = _cut(body)
        if layout.samples != self.samples or not layout.texts.equals(self.texts):
            return None
        try:
            parsed = pc.cast(values, pa.float64())
        except pa.ArrowInvalid:
            return None
        return parsed.to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


def _cut(body: bytes) -> tuple[Layout, pa.StringArray]:
    """The layout of `body`, and its sample lines' last tokens as strings."""
    raw = np.frombuffer(body, dtype=np.uint8)
    size = len(raw)
    ends = np.flatnonzero(raw == _NEWLINE)
    if size and raw[-1] != _NEWLINE:
        ends = np.append(ends, size)  # a last line without its newline
    starts = np.empty_like(ends)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    # every start lies before the body's end: a line starts only after a newline that has more
    sample = (ends > starts) & (raw[starts] != _HASH)
    spaces = np.flatnonzero(raw == _SPACE)
    cut = np.full(len(ends), -1, dtype=np.int64)
    if len(spaces):
        # just after the last space before each line's end, if that space lies within the line
        last = np.searchsorted(spaces, ends) - 1
        cut = np.where(last >= 0, spaces[np.maximum(last, 0)] + 1, -1)
    sample &= cut > starts
    # Three pieces a line: text [start, cut), value [cut, end), newline [end, next start).
    # Comment and empty lines are text only.
    cut = np.where(sample, cut, ends)
    bounds = np.empty(3 * len(ends) + 1, dtype=np.int32)
    bounds[0:-1:3] = starts
    bounds[1:-1:3] = cut
    bounds[2:-1:3] = ends
    bounds[-1] = size
    pieces = pa.Array.from_buffers(
        pa.string(), 3 * len(ends), [None, pa.py_buffer(bounds), pa.py_buffer(body)]
    )
    texts = pieces.take(pa.array(np.arange(0, 3 * len(ends), 3))).cast(pa.binary())
    values = pieces.take(pa.array(np.flatnonzero(sample) * 3 + 1))
    return Layout(texts, int(np.count_nonzero(sample))), values
