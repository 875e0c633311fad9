"""The layout fast path: a body whose lines are the previous body's but for their values is
read without parsing; anything else is left to the full parse."""

from __future__ import annotations

import math

import numpy as np

from watchkeeper.ingest.exposition import Format, parse
from watchkeeper.ingest.exposition_layout import Layout

BODY = b"""\
# HELP a_total Requests.
# TYPE a_total counter
a_total{code="200",path="/x y"} 10
a_total{code="500",path="/x y"} 2

b 0.5
c{le="+Inf"} NaN
"""


def test_same_layout_gives_the_new_values_in_line_order() -> None:
    layout = Layout.of(BODY)
    assert layout.samples == 4
    changed = BODY.replace(b"} 10", b"} 12345.5").replace(b"b 0.5", b"b -Inf")
    values = layout.values_if_unchanged(changed)
    assert values is not None
    assert values[:3].tolist() == [12345.5, 2.0, -math.inf]
    assert math.isnan(values[3])
    assert values.tolist()[:3] == parse(changed, Format.TEXT).values[:3]


def test_a_last_line_without_newline_reads_the_same() -> None:
    layout = Layout.of(BODY.rstrip(b"\n"))
    values = layout.values_if_unchanged(BODY.rstrip(b"\n").replace(b"b 0.5", b"b 7"))
    assert values is not None and values[2] == 7.0


def test_any_other_change_is_not_the_same_layout() -> None:
    layout = Layout.of(BODY)
    for changed in (
        BODY.replace(b'code="500"', b'code="501"'),  # a label value
        BODY.replace(b"Requests.", b"Requests!"),  # a comment
        BODY + b"d 1\n",  # a new series
        BODY.replace(b'a_total{code="500",path="/x y"} 2\n', b""),  # one gone
        BODY.replace(b"b 0.5", b"b 0.5 1700000000000"),  # a timestamp
        BODY.replace(b"b 0.5", b"b 0x10"),  # a value Arrow does not read
        BODY.replace(b"\n\n", b"\n \n"),  # even whitespace
    ):
        assert layout.values_if_unchanged(changed) is None, changed


def test_empty_body() -> None:
    layout = Layout.of(b"")
    assert layout.samples == 0
    values = layout.values_if_unchanged(b"")
    assert values is not None and len(values) == 0
    assert Layout.of(BODY).values_if_unchanged(b"") is None
    assert isinstance(layout.values_if_unchanged(b""), np.ndarray)
