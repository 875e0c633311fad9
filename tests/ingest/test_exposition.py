"""The text exposition formats: Prometheus text 0.0.4 and OpenMetrics 1.0, as Prometheus 3.x
reads them, and the fast path for series texts the caller already knows."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.ingest.exposition import (
    ExpositionError,
    Format,
    format_of,
    format_openmetrics_float,
    parse,
)
from watchkeeper.model import MetricMetadata

# The example from Prometheus' "Exposition formats" documentation.
DOCS_EXAMPLE = (
    b"""\
# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
"""
    + b'msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",'
    + b'error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9\n'
    + b"""
# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# A histogram, which has a pretty complex representation in the text format:
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="0.1"} 33444
http_request_duration_seconds_bucket{le="0.2"} 100392
http_request_duration_seconds_bucket{le="0.5"} 129389
http_request_duration_seconds_bucket{le="1"} 133988
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# Finally a summary, which has a complex representation, too:
# HELP rpc_duration_seconds A summary of the RPC duration in seconds.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.01"} 3102
rpc_duration_seconds{quantile="0.05"} 3272
rpc_duration_seconds{quantile="0.5"} 4773
rpc_duration_seconds{quantile="0.9"} 9001
rpc_duration_seconds{quantile="0.99"} 76656
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
"""
)


def _samples(body: bytes, fmt: Format = Format.TEXT) -> list[tuple[dict[str, str], float, int]]:
    parsed = parse(body, fmt)
    return [
        (dict(parsed.new_series[text]), value, parsed.timestamps.get(i, -1))
        for i, (text, value) in enumerate(zip(parsed.texts, parsed.values, strict=True))
    ]


def test_the_documentation_example() -> None:
    # Prometheus' lexer takes only digits for a timestamp (promlex.l: {D}+), so it refuses
    # the documentation's own weird metric; without its timestamp the rest reads as shown
    samples = _samples(DOCS_EXAMPLE.replace(b"+Inf -3982045", b"+Inf"))
    assert len(samples) == 20
    assert samples[0] == (
        {"__name__": "http_requests_total", "method": "post", "code": "200"},
        1027.0,
        1395066363000,
    )
    assert samples[1][1:] == (3.0, 1395066363000)  # several spaces before the value
    assert samples[2][0]["path"] == "C:\\DIR\\FILE.TXT"
    assert samples[2][0]["error"] == 'Cannot find file:\n"FILE.TXT"'
    assert samples[2][1] == 1.458255915e9
    assert samples[3] == ({"__name__": "metric_without_timestamp_and_labels"}, 12.47, -1)
    assert samples[4][1] == math.inf


def test_negative_timestamps_are_refused_as_prometheus_3_refuses_them() -> None:
    with pytest.raises(ExpositionError, match=r"line 1: invalid timestamp '-3982045'"):
        parse(b'something_weird{problem="division by zero"} +Inf -3982045\n', Format.TEXT)


def test_le_and_quantile_are_stored_in_canonical_float_form() -> None:
    """Prometheus 3.x: le="1" is stored as le="1.0" in histograms, and quantiles likewise."""
    body = DOCS_EXAMPLE.replace(b"+Inf -3982045", b"+Inf")
    les = [s[0].get("le") for s in _samples(body) if "le" in s[0]]
    assert les == ["0.05", "0.1", "0.2", "0.5", "1.0", "+Inf"]
    quantiles = [s[0]["quantile"] for s in _samples(body) if "quantile" in s[0]]
    assert quantiles == ["0.01", "0.05", "0.5", "0.9", "0.99"]
    # outside a histogram or summary, an le label is any label
    assert _samples(b'# TYPE x gauge\nx{le="1"} 1\n')[0][0]["le"] == "1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", "1.0"),
        ("0", "0.0"),
        ("0.005", "0.005"),
        ("10", "10.0"),
        ("100000", "100000.0"),
        ("1e6", "1e+06"),
        ("1234567.8", "1.2345678e+06"),
        ("0.0001", "0.0001"),
        ("0.00001", "1e-05"),
        ("+inf", "+Inf"),
        ("-Inf", "-Inf"),
        ("nan", "NaN"),
        ("-0.5", "-0.5"),
        ("1_0", "1_0"),
        ("abc", "abc"),
    ],
)
def test_canonical_float_form_is_gos_shortest_g(text: str, expected: str) -> None:
    assert format_openmetrics_float(text) == expected


def test_metadata_from_help_and_type() -> None:
    body = DOCS_EXAMPLE.replace(b"+Inf -3982045", b"+Inf")
    body += rb"# HELP esc Back\\slash and\nnewline, \" kept" + b"\n# TYPE u untyped\nu 1\n"
    metadata = parse(body, Format.TEXT).metadata
    assert metadata["http_requests_total"] == MetricMetadata(
        "http_requests_total", "counter", "The total number of HTTP requests.", ""
    )
    assert metadata["rpc_duration_seconds"].type == "summary"
    assert metadata["esc"].help == 'Back\\slash and\nnewline, \\" kept'
    assert metadata["esc"].type == "unknown"
    assert metadata["u"].type == "unknown"  # untyped is Prometheus' unknown


def test_utf8_names_quoted_in_braces() -> None:
    body = b'# TYPE "my.metric" gauge\n{"my.metric", "some.label"="v", b="2"} 3\n{"a b"} 4\n'
    samples = _samples(body)
    assert samples[0][0] == {"__name__": "my.metric", "some.label": "v", "b": "2"}
    assert samples[1][0] == {"__name__": "a b"}
    assert parse(body, Format.TEXT).metadata["my.metric"].type == "gauge"


def test_whitespace_text_format_allows() -> None:
    body = b'  go_gc { quantile = "1.0", a = "b", } 33  \t123123\nx\t1\n'
    samples = _samples(body)
    assert samples[0] == ({"__name__": "go_gc", "quantile": "1.0", "a": "b"}, 33.0, 123123)
    assert samples[1][:2] == ({"__name__": "x"}, 1.0)


def test_empty_label_values_are_no_label() -> None:
    assert _samples(b'm{a="",b="1"} 1\n')[0][0] == {"__name__": "m", "b": "1"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"a\n", "line 1: expected a space and a value"),
        (b"ok 1\na true\n", "line 2: invalid value 'true'"),
        (b"a 0x1p-2\n", "invalid value '0x1p-2'"),
        (b"a 1_000\n", "invalid value '1_000'"),
        (b"a 1 1_0\n", "invalid timestamp '1_0'"),
        (b"a 1 2 3\n", "unexpected '3'"),
        (b'{a="ok"} 1\n', "metric name not set"),
        (b'm{le="1",le="2"} 1\n', 'label name "le" is not unique: invalid sample'),
        (b'm{a="1" 1\n', 'expected "," or "}"'),
        (b"m{a=1} 1\n", 'expected a quoted value for label "a"'),
        (b'm{a="\xff"} 1\n', 'value of label "a" is not valid UTF-8'),
        (b"# TYPE m gaugehistogram\n", 'line 1: invalid metric type "gaugehistogram"'),
        (b"9m 1\n", "expected a metric name"),
    ],
)
def test_text_format_errors_name_the_line(body: bytes, message: str) -> None:
    with pytest.raises(ExpositionError, match=message.replace("(", r"\(").replace("{", r"\{")):
        parse(body, Format.TEXT)


def test_text_format_ignores_other_comments_and_blank_lines() -> None:
    body = b"#\n# just a comment\n#HELP not_help x\n\n# EOF\nm 1\n"
    assert _samples(body) == [({"__name__": "m"}, 1.0, -1)]


OPENMETRICS = b"""\
# TYPE acme_http_router_request_seconds summary
# UNIT acme_http_router_request_seconds seconds
# HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.
acme_http_router_request_seconds_sum{path="/api/v1",method="GET"} 9036.32
acme_http_router_request_seconds_count{path="/api/v1",method="GET"} 807283.0
acme_http_router_request_seconds_created{path="/api/v1",method="GET"} 1605281325.0
# TYPE foo histogram
foo_bucket{le="0.0"} 0
foo_bucket{le="1e-05"} 0
foo_bucket{le="0.1"} 8 # {trace_id="KOO5S4vxi0o"} 0.67
foo_bucket{le="1.0"} 11 # {trace_id="oHg5SJYRHA0",span_id="a"} 9.8 1520879607.789
foo_bucket{le="+Inf"} 17
foo_count 17
foo_sum 324789.3
foo_created 1520430000.123
# TYPE c counter
c_total 3 1520879607.7899
# EOF
"""


def test_openmetrics_example() -> None:
    parsed = parse(OPENMETRICS, Format.OPENMETRICS)
    assert len(parsed.texts) == 12
    meta = parsed.metadata["acme_http_router_request_seconds"]
    assert (meta.type, meta.unit) == ("summary", "seconds")
    assert meta.help == "Latency though all of ACME's HTTP request router."
    # _created is an ordinary series by default, in seconds
    assert parsed.values[2] == 1605281325.0
    # OpenMetrics timestamps are seconds; Prometheus truncates them to milliseconds
    assert parsed.timestamps == {11: 1520879607789}
    first, second = parsed.exemplars
    assert (first.sample, first.labels, first.value, first.timestamp_ms) == (
        5,
        (("trace_id", "KOO5S4vxi0o"),),
        0.67,
        None,
    )
    assert second.labels == (("span_id", "a"), ("trace_id", "oHg5SJYRHA0"))
    assert second.timestamp_ms == 1520879607789
    les = [dict(parsed.new_series[t]).get("le") for t in parsed.texts[3:8]]
    assert les == ["0.0", "1e-05", "0.1", "1.0", "+Inf"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"m 1\n", "data does not end with # EOF"),
        (b"", "data does not end with # EOF"),
        (b"m 1\n# EOF\n\n", "unexpected data after # EOF"),
        (b"m 1\n\n# EOF\n", "line 2: empty line"),
        (b"# just words\n# EOF\n", "OpenMetrics allows only"),
        (b"# TYPE m untyped\n# EOF\n", 'invalid metric type "untyped"'),
        (b"m 1 NaN\n# EOF\n", "invalid timestamp 'NaN'"),
        (b'm 1 # {a="' + b"x" * 130 + b'"} 1\n# EOF\n', "more than the 128 allowed"),
    ],
)
def test_openmetrics_errors(body: bytes, message: str) -> None:
    with pytest.raises(ExpositionError, match=message):
        parse(body, Format.OPENMETRICS)


def test_eof_without_a_final_newline_is_fine() -> None:
    assert parse(b"m 1\n# EOF", Format.OPENMETRICS).values == [1.0]


def test_content_types() -> None:
    assert format_of("text/plain; version=0.0.4; charset=utf-8") is Format.TEXT
    assert format_of("application/openmetrics-text; version=1.0.0; charset=utf-8") is (
        Format.OPENMETRICS
    )
    assert format_of("application/json") is None


def test_known_series_texts_are_not_parsed_again() -> None:
    body = DOCS_EXAMPLE.replace(b"+Inf -3982045", b"+Inf")
    first = parse(body, Format.TEXT)
    second = parse(body, Format.TEXT, known=first.new_series)
    assert second.new_series == {}
    assert second.texts == first.texts
    assert second.values == first.values
    assert second.timestamps == first.timestamps


_names = st.sampled_from(["a", "b_c", "le", "job", "x9"])
_values = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8).map(
    lambda v: v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
)
_numbers = st.one_of(
    st.floats(allow_nan=False).map(repr), st.sampled_from(["+Inf", "-Inf", "NaN", "1e3", "7"])
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["m", "n_total", "o:p"]),
            st.dictionaries(_names, _values, max_size=3),
            _numbers,
            st.one_of(st.none(), st.integers(0, 2**40)),
            st.sampled_from([" ", "  ", "\t"]),
        ),
        max_size=12,
    )
)
def test_fast_path_reads_what_the_full_parse_reads(lines: list) -> None:  # type: ignore[type-arg]
    body = b""
    for name, labels, number, ts, space in lines:
        text = name
        if labels:
            text += "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
        body += f"{text}{space}{number}{'' if ts is None else f' {ts}'}\n".encode()
    full = parse(body, Format.TEXT)
    again = parse(body, Format.TEXT, known=full.new_series)
    assert again.texts == full.texts
    assert again.timestamps == full.timestamps
    assert [repr(v) for v in again.values] == [repr(v) for v in full.values]
    assert again.new_series == {}
