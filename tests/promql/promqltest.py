"""Parser for Prometheus' promqltest script language (the `.test` conformance files).

The specification is `../shared/conformance/promql/FORMAT.md` (section numbers below refer to
it). Parsing a file gives its `EvalCase`s in file order; each case keeps a reference to the
storage as it stood when the eval ran (storage only changes at `load` and `clear`, so evals
between two such commands share one immutable snapshot).

Deliberate deviations from FORMAT.md:
* §1.6/§4.1 say an eval expression that does not parse rejects the whole file. The runner
  never parses PromQL here: our parser (the promql-parser package) lacks some Prometheus 3.14
  syntax (duration arithmetic such as `[5m+1m]`, `offset (2*2)`, `[step()]`,
  `anchored`/`smoothed`), and rejecting a whole file for that would hide every other case in
  it. The engine raises the parse error when the eval runs, and only that eval fails.
* Native histogram items (`{{...}}`, §3.3) are read by watchkeeper.promql.series_notation
  (watchkeeper.model.histogram) and loaded with the hints the store gives back (§3.3 says "as
  written", but Prometheus' TSDB, which the reference harness loads into, marks a sample after
  another `not_reset` or `reset`, and expectations rely on it; store/histograms.py);
  `load_with_nhcb` adds the NHCB series it synthesises (§3.4) to the block's series.
* Start-timestamp lines (`…@st`, §3.2) are skipped.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import re2

from watchkeeper.model import Labels, labels_from_dict
from watchkeeper.model.histogram import FloatHistogram
from watchkeeper.model.histogram_notation import parse_histogram as parse_model_histogram
from watchkeeper.promql.series_notation import (  # noqa: F401 - STALE_NAN: the tests' too
    HISTOGRAM_ITEM_RE,
    STALE_NAN,
    STALE_NAN_BITS,
    expand_float_item,
    expand_histogram_item,
    parse_number,
    split_items,
)
from watchkeeper.store.histograms import stored_hints
from watchkeeper.store.types import HistogramSamples, SeriesSamples

# Prometheus' StaleNaN: one particular NaN that marks the end of a series (§3.1).


def is_stale_nan(value: float) -> bool:
    """Whether `value` has exactly the StaleNaN bit pattern (an ordinary NaN does not)."""
    bits: int = struct.unpack("<Q", struct.pack("<d", value))[0]
    return bits == STALE_NAN_BITS


class ScriptError(Exception):
    """The script itself is malformed: per FORMAT.md the whole file fails."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


# --------------------------------------------------------------------------------------------
# Durations (§2): the Prometheus model grammar, not PromQL's.

_DURATION_UNITS_MS = (
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
)
_DURATION_RE = re.compile("".join(rf"(?:(\d+){unit})?" for unit, _ in _DURATION_UNITS_MS))


def parse_duration(text: str) -> int:
    """Milliseconds of a model duration: units in y w d h m s ms order, each at most once; a
    bare `0` is the only unitless value allowed."""
    if text == "0":
        return 0
    match = _DURATION_RE.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"not a valid duration: {text!r}")
    return sum(
        int(count) * size
        for count, (_, size) in zip(match.groups(), _DURATION_UNITS_MS, strict=True)
        if count is not None
    )


# --------------------------------------------------------------------------------------------
# Strings and numbers

_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
}


def go_unquote(literal: str) -> str:
    """The value of a Go/PromQL string literal: `"…"` or `'…'` with Go escapes, or raw `` `…` ``.

    `\\x` and octal escapes are bytes; bytes that are not valid UTF-8 survive as surrogate
    escapes so that no information is lost."""
    if len(literal) < 2 or literal[0] != literal[-1] or literal[0] not in "\"'`":
        raise ValueError(f"not a string literal: {literal}")
    quote, body = literal[0], literal[1:-1]
    if quote == "`":
        if "`" in body:
            raise ValueError(f"backquote inside a raw string: {literal}")
        return body
    out = bytearray()
    i = 0
    while i < len(body):
        char = body[i]
        if char == quote:
            raise ValueError(f"unescaped quote inside a string: {literal}")
        if char != "\\":
            out += char.encode("utf-8", "surrogateescape")
            i += 1
            continue
        i += 1
        if i >= len(body):
            raise ValueError(f"string ends with a backslash: {literal}")
        esc = body[i]
        if esc in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[esc].encode()
            i += 1
        elif esc == "x":
            out.append(_hex_escape(body, i + 1, 2, literal))
            i += 3
        elif esc in "uU":
            width = 4 if esc == "u" else 8
            code = _hex_escape(body, i + 1, width, literal)
            out += chr(code).encode("utf-8", "surrogatepass")
            i += 1 + width
        elif esc in "01234567":
            digits = body[i : i + 3]
            if not re.fullmatch(r"[0-7]{3}", digits) or int(digits, 8) > 255:
                raise ValueError(f"bad octal escape in {literal}")
            out.append(int(digits, 8))
            i += 3
        else:
            raise ValueError(f"unknown escape \\{esc} in {literal}")
    return out.decode("utf-8", "surrogateescape")


def _hex_escape(body: str, start: int, width: int, literal: str) -> int:
    digits = body[start : start + width]
    if len(digits) != width or not re.fullmatch(r"[0-9a-fA-F]+", digits):
        raise ValueError(f"bad hex escape in {literal}")
    return int(digits, 16)


_GO_OCTAL = re.compile(r"[+-]?0[0-7_]+")
_GO_INT_PREFIX = re.compile(r"[+-]?0[xXoObB]")


def parse_go_number(text: str) -> float | None:
    """A bare-number scalar expectation (§4.2): Go `ParseInt(text, 0, 64)`, else `ParseFloat`.
    None if it is neither, i.e. the line is not a scalar expectation."""
    if _GO_OCTAL.fullmatch(text):  # Go reads a leading 0 as octal; Python's int() refuses
        return float(int(text.replace("_", ""), 8))
    try:
        return float(int(text, 0))
    except ValueError:
        pass
    if "_" in text and not _GO_INT_PREFIX.match(text):
        return None  # ParseFloat accepts underscores only after a base prefix
    if _GO_INT_PREFIX.match(text):
        try:
            return float.fromhex(text.replace("_", ""))
        except ValueError:
            return None
    if text.strip() != text or not text.isascii():
        return None  # Python's float() also takes surrounding space and non-ASCII digits
    try:
        return float(text)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# Series descriptions (§3.1)


@dataclass(frozen=True)
class Histogram:
    """A native histogram item, and whether its text stated a counter-reset hint (§5.4: only
    then is the hint compared; for `{{a}}+{{b}}xN`, whether `{{b}}` stated one)."""

    histogram: FloatHistogram
    hint_stated: bool

    @property
    def text(self) -> str:
        return self.histogram.test_expression()


# One position of a series description: a float, a histogram, or None (`_`, no sample).
Value = float | Histogram | None

_METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_STRING_RE = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`""")


def expand_item(item: str) -> list[Value]:
    """The positions one value item stands for (§3.1 table): the float items as
    watchkeeper.promql.series_notation reads them, and native histogram items."""
    if item.startswith("{{"):
        return _expand_histogram_item(item)
    expanded = expand_float_item(item)
    if expanded is None:
        raise ValueError(f"invalid value item {item!r}")
    return list(expanded)


def _expand_histogram_item(item: str) -> list[Value]:
    match = HISTOGRAM_ITEM_RE.fullmatch(item)
    if match is None:
        raise ValueError(f"invalid histogram item {item!r}")
    stated = "counter_reset_hint" in (match["b"] if match["b"] is not None else match["a"])
    return [Histogram(h, stated) for h in expand_histogram_item(item) if h is not None]  # type: ignore[arg-type]


def parse_histogram(body: str) -> Histogram:
    """The inside of `{{…}}` (§3.3): whitespace-separated `key:value` pairs."""
    return Histogram(parse_model_histogram("{{" + body + "}}"), "counter_reset_hint" in body)


@dataclass(frozen=True)
class SeriesDescription:
    labels: Labels
    values: tuple[Value, ...]


def parse_series_description(text: str) -> SeriesDescription:
    """`metric{label="value", …} item item …` (§3.1); ValueError if malformed."""
    labels, rest = _parse_metric_selector(text)
    if rest[:1] not in (" ", "\t"):
        raise ValueError(f"expected whitespace and values after the series in {text!r}")
    items = split_items(rest)
    if not items:
        raise ValueError(f"no values in {text!r}")
    values: list[Value] = []
    for item in items:
        values += expand_item(item)
    return SeriesDescription(labels, tuple(values))


def _parse_metric_selector(text: str) -> tuple[Labels, str]:
    """The label set at the start of `text` and the unparsed rest."""
    pairs: dict[str, str] = {}
    pos = 0
    if match := _METRIC_NAME_RE.match(text):
        pairs["__name__"] = match.group()
        pos = match.end()
    # `{` right after the name (or at the start) opens the label list, but `{{` is a histogram
    # value, which only ever follows whitespace.
    if text.startswith("{", pos) and not text.startswith("{{", pos):
        pos = _parse_label_list(text, pos + 1, pairs)
    elif pos == 0:
        raise ValueError(f"a series must start with a metric name or {{: {text!r}")
    return labels_from_dict(pairs), text[pos:]


def _parse_label_list(text: str, pos: int, pairs: dict[str, str]) -> int:
    """Reads `label="value", …}` from `pos` into `pairs`; returns the index after `}`."""
    while True:
        pos = _skip_space(text, pos)
        if text.startswith("}", pos):
            return pos + 1
        name, pos = _read_label_name(text, pos)
        pos = _skip_space(text, pos)
        if text.startswith(("}", ","), pos) and name[1]:
            # Prometheus 3 allows a bare quoted metric name inside the braces: {"my.metric"}
            label, value = "__name__", name[0]
        else:
            if not text.startswith("=", pos) or text.startswith(("=~", "=="), pos):
                raise ValueError(f"expected = after label {name[0]!r} (matchers are invalid)")
            value, pos = _read_string(text, _skip_space(text, pos + 1))
            label = name[0]
        if label in pairs:
            raise ValueError(f"label {label!r} given twice")
        pairs[label] = value
        pos = _skip_space(text, pos)
        if text.startswith(",", pos):
            pos += 1
        elif not text.startswith("}", pos):
            raise ValueError(f"expected , or }} at column {pos + 1} of {text!r}")


def _read_label_name(text: str, pos: int) -> tuple[tuple[str, bool], int]:
    """(name, whether it was quoted) and the position after it."""
    if match := _LABEL_NAME_RE.match(text, pos):
        return (match.group(), False), match.end()
    if text[pos : pos + 1] in ('"', "'", "`"):
        value, end = _read_string(text, pos)
        return (value, True), end
    raise ValueError(f"expected a label name at column {pos + 1} of {text!r}")


def _read_string(text: str, pos: int) -> tuple[str, int]:
    match = _STRING_RE.match(text, pos)
    if match is None:
        raise ValueError(f"expected a quoted string at column {pos + 1} of {text!r}")
    return go_unquote(match.group()), match.end()


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


# --------------------------------------------------------------------------------------------
# Storage snapshots (§1.5, §3, §3.5)


@dataclass(eq=False)
class Storage:
    """The series loaded at one point of a file. Immutable; evals share it."""

    series: tuple[SeriesSamples, ...]
    histograms: tuple[HistogramSamples, ...] = ()
    _querier: object = field(default=None, repr=False)

    def querier(self) -> object:
        """A MemoryQuerier over the series, built on first use and then reused."""
        if self._querier is None:
            # Lazy, so that parsing never needs the engine package's modules.
            from watchkeeper.promql.querier import MemoryQuerier  # noqa: PLC0415

            self._querier = MemoryQuerier(list(self.series), list(self.histograms))
        return self._querier


class _StorageBuilder:
    """Follows `load` and `clear` through a file, handing out snapshots."""

    def __init__(self) -> None:
        self._data: dict[Labels, tuple[np.ndarray, np.ndarray]] = {}
        self._histograms: dict[Labels, dict[int, FloatHistogram]] = {}
        self.current = Storage(())

    def clear(self) -> None:
        self._data = {}
        self._histograms = {}
        self.current = Storage(())

    def load(self, step_ms: int, block: dict[Labels, tuple[Value, ...]]) -> None:
        for labels, values in block.items():
            new = _float_samples(step_ms, values)
            old = self._data.get(labels)
            self._data[labels] = new if old is None else _merge(old, new)
            found = self._histograms.setdefault(labels, {})
            for i, v in enumerate(values):
                if isinstance(v, Histogram):
                    found[i * step_ms] = v.histogram  # a later load wins on a tie
        self.current = Storage(
            tuple(
                SeriesSamples(labels, ts, vals)
                for labels, (ts, vals) in sorted(self._data.items())
                if len(ts)
            ),
            tuple(
                HistogramSamples(
                    labels,
                    np.array(sorted(found), dtype=np.int64),
                    stored_hints([found[t] for t in sorted(found)], {}, [0] * len(found)),
                )
                for labels, found in sorted(self._histograms.items())
                if found
            ),
        )


_NHCB_SUFFIXES = ("_bucket", "_count", "_sum")


def nhcb_series(
    step_ms: int, block: dict[Labels, tuple[Value, ...]]
) -> dict[Labels, tuple[Value, ...]]:
    """§3.4: native histograms with custom buckets built from a block's classic histogram
    series, under the base name; ValueError when a histogram cannot be converted."""
    # (base labels) -> le bound or "count"/"sum" -> values by position
    groups: dict[Labels, dict[object, tuple[Value, ...]]] = {}
    for labels, values in block.items():
        fields = dict(labels)
        name = fields.get("__name__", "")
        suffix = next((x for x in _NHCB_SUFFIXES if name.endswith(x)), None)
        if suffix is None:
            continue
        key: object = suffix[1:]
        if suffix == "_bucket":
            try:
                key = float(fields.pop("le", "").strip())
            except ValueError:
                continue
            if math.isnan(key):  # type: ignore[arg-type]
                continue
        fields["__name__"] = name[: -len(suffix)]
        base = tuple(sorted(fields.items()))
        groups.setdefault(base, {})[key] = values
    out: dict[Labels, tuple[Value, ...]] = {}
    for base, parts in groups.items():
        bounds = sorted(k for k in parts if isinstance(k, float))
        if not bounds:
            continue
        positions = max(len(v) for v in parts.values())
        series: list[Value] = []
        for i in range(positions):
            series.append(_nhcb_at(i, bounds, parts))
        out[base] = tuple(series)
    return out


def _nhcb_at(i: int, bounds: list[float], parts: dict[object, tuple[Value, ...]]) -> Value:
    def at(key: object) -> float | None:
        values = parts.get(key)
        value = values[i] if values is not None and i < len(values) else None
        return value if isinstance(value, float) and not is_stale_nan(value) else None

    cumulative = [(b, v) for b in bounds if (v := at(b)) is not None]
    count, total = at("count"), at("sum")
    if not cumulative and count is None:
        return None
    if not cumulative or cumulative[-1][0] != math.inf:
        # a +Inf bucket holding the count, or without one the highest bucket's
        cumulative.append((math.inf, count if count is not None else cumulative[-1][1]))
    counts, before = [], 0.0
    for bound, value in cumulative:
        if value < before:
            raise ValueError(f"bucket le={bound} is not cumulative")
        counts.append(value - before)
        before = value
    if count is None:
        count = cumulative[-1][1]
    elif count != cumulative[-1][1]:
        raise ValueError(f"_count {count} is not the +Inf bucket's {cumulative[-1][1]}")
    histogram = FloatHistogram(
        schema=-53,
        count=count,
        sum=total or 0.0,
        positive_spans=((0, len(counts)),),
        positive_buckets=tuple(counts),
        custom_values=tuple(b for b, _ in cumulative[:-1]),
    )
    return Histogram(histogram, False)


def _float_samples(step_ms: int, values: tuple[Value, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps and float values of a load line; gaps and histograms are left out."""
    positions = [i for i, v in enumerate(values) if isinstance(v, float)]
    ts = np.array([i * step_ms for i in positions], dtype=np.int64)
    floats = [values[i] for i in positions]
    vals = np.array(floats, dtype=np.float64)
    # Set the stale markers' bits explicitly: float conversions may not keep a NaN payload.
    stale = np.array([isinstance(v, float) and is_stale_nan(v) for v in floats], dtype=bool)
    if stale.any():
        vals.view(np.uint64)[stale] = STALE_NAN_BITS
    return ts, vals


def _merge(
    old: tuple[np.ndarray, np.ndarray], new: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """A series loaded again by a later `load`: union of samples, the newer wins on a tie."""
    ts = np.concatenate([old[0], new[0]])
    vals = np.concatenate([old[1], new[1]])
    order = np.argsort(ts, kind="stable")
    ts, vals = ts[order], vals[order]
    keep = np.append(ts[1:] != ts[:-1], True)  # last of each run of equal timestamps
    return ts[keep], vals[keep]


# --------------------------------------------------------------------------------------------
# Evals (§4)


@dataclass(frozen=True)
class AnnotationExpectation:
    """One `expect warn|info [msg:|regex:]` line (§5.2)."""

    kind: Literal["warn", "info"]
    msg: str | None = None
    regex: str | None = None

    def matches(self, text: str) -> bool:
        if self.msg is not None:
            return text == self.msg
        if self.regex is not None:
            return re2.search(self.regex, text) is not None
        return True

    def describe(self) -> str:
        if self.msg is not None:
            return f"expect {self.kind} msg: {self.msg}"
        if self.regex is not None:
            return f"expect {self.kind} regex: {self.regex}"
        return f"expect {self.kind}"


@dataclass
class ExpectedSeries:
    labels: Labels
    values: tuple[Value, ...]
    position: int  # 1-based among the block's series lines, for `expect ordered`
    line: int


@dataclass(frozen=True)
class RangeVectorExpectation:
    start_ms: int
    end_ms: int
    step_ms: int


@dataclass
class EvalCase:
    file: str  # path relative to testdata, e.g. "functions.test"
    line: int  # 1-based line of the eval command
    command: str  # the eval line as written
    kind: Literal["instant", "range"]
    expr: str
    storage: Storage
    # instant: the query time (`at`, or the `to` of `expect range vector`); range: unused
    time_ms: int = 0
    start_ms: int = 0
    end_ms: int = 0
    step_ms: int = 0
    modifier: str | None = None  # deprecated eval_<modifier>
    expect_fail: bool = False
    fail_msg: str | None = None
    fail_regex: str | None = None
    annotations: list[AnnotationExpectation] = field(default_factory=list)
    no_warn: bool = False
    no_info: bool = False
    ordered: bool = False
    range_vector: RangeVectorExpectation | None = None
    expected_string: str | None = None
    expected_scalar: float | None = None
    series: dict[Labels, ExpectedSeries] = field(default_factory=dict)
    series_lines: int = 0  # expected-series lines seen, duplicates included

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def any_warn(self) -> bool:
        """Deprecated `eval_warn`: at least one warning."""
        return self.modifier == "warn"

    @property
    def any_info(self) -> bool:
        return self.modifier == "info"

    def expectations(self, kind: str) -> list[AnnotationExpectation]:
        return [a for a in self.annotations if a.kind == kind]

    @property
    def expects_histogram(self) -> bool:
        return any(isinstance(v, Histogram) for s in self.series.values() for v in s.values)

    def asserts(self) -> set[str]:
        """The assertion tags `cases.tsv` lists, to cross-check this parser against it."""
        tags: set[str] = set()
        if self.modifier:
            tags.add(f"eval_{self.modifier}")
        if self.expect_fail and self.modifier != "fail":
            tags.add("fail:msg" if self.fail_msg else "fail:regex" if self.fail_regex else "fail")
        for a in self.annotations:
            tags.add(a.kind + (":msg" if a.msg else ":regex" if a.regex else ""))
        for flag, tag in [
            (self.no_warn, "no_warn"),
            (self.no_info, "no_info"),
            (self.ordered and self.modifier != "ordered", "ordered"),
            (self.range_vector is not None, "range_vector"),
            (self.expected_string is not None, "string"),
            (self.expected_scalar is not None, "scalar"),
        ]:
            if flag:
                tags.add(tag)
        return tags


_LOAD_RE = re.compile(r"^load(_with_nhcb)?\s+(.+?)$")
_INSTANT_RE = re.compile(r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$")
_RANGE_RE = re.compile(
    r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$"
)
_EXPECT_RE = re.compile(
    r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$"
)
_EXPECT_RANGE_RE = re.compile(r"^expect\s+range\s+vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$")
_EXPECT_STRING_RE = re.compile(r"^expect\s+string\s+(.*)$")


def parse_script(text: str, file: str) -> list[EvalCase]:
    """Every eval of a `.test` file, in order, each with its storage snapshot. Raises
    ScriptError for anything FORMAT.md says makes the whole file fail."""
    # §1.1-1.2: strip every line; a comment becomes an empty line, so it ends a block.
    lines = [line.strip(" \t\r") for line in text.split("\n")]
    lines = ["" if line.startswith("#") else line for line in lines]
    storage = _StorageBuilder()
    cases: list[EvalCase] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        word = re.split(r"[ \t]", line, maxsplit=1)[0].lower()
        if word == "clear":
            storage.clear()
            i += 1
        elif word.startswith("load"):
            i = _parse_load(lines, i, storage)
        elif word.startswith("eval"):
            case, i = _parse_eval(lines, i, file, storage.current)
            cases.append(case)
        else:
            raise ScriptError(i + 1, f"unknown command {word!r}")
    return cases


def _block_end(lines: list[str], start: int) -> int:
    """Index of the empty line (or end of file) closing the block whose command is `start`."""
    end = start + 1
    while end < len(lines) and lines[end]:
        end += 1
    return end


def _duration(text: str, line: int) -> int:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise ScriptError(line, str(err)) from None


def _parse_load(lines: list[str], start: int, storage: _StorageBuilder) -> int:
    match = _LOAD_RE.match(lines[start])
    if match is None:
        raise ScriptError(start + 1, f"invalid load command: {lines[start]}")
    step_ms = _duration(match[2], start + 1)
    end = _block_end(lines, start)
    block: dict[Labels, tuple[Value, ...]] = {}
    for index in range(start + 1, end):
        line = lines[index]
        if re.split(r"[ \t]", line, maxsplit=1)[0].endswith("@st"):
            continue  # start timestamps (§3.2) are not supported; skipping them is allowed
        try:
            desc = parse_series_description(line)
        except ValueError as err:
            raise ScriptError(index + 1, str(err)) from None
        block.pop(desc.labels, None)  # a later line for the same series replaces it entirely
        block[desc.labels] = desc.values
    if match[1]:
        try:
            block.update(nhcb_series(step_ms, block))
        except ValueError as err:
            raise ScriptError(start + 1, f"load_with_nhcb: {err}") from None
    storage.load(step_ms, block)
    return end


def _parse_eval(lines: list[str], start: int, file: str, storage: Storage) -> tuple[EvalCase, int]:
    command = lines[start]
    case = _parse_eval_command(command, start + 1, file, storage)
    index = start + 1
    while index < len(lines) and lines[index]:
        ends_block = _parse_eval_body_line(case, lines[index], index + 1)
        index += 1
        if ends_block:
            break
    _validate_eval(case, start + 1)
    return case, index


def _parse_eval_command(command: str, line: int, file: str, storage: Storage) -> EvalCase:
    if match := _INSTANT_RE.match(command):
        modifier, at, expr = match.groups()
        if at is None:
            raise ScriptError(line, "eval instant needs `at <time>`")
        case = EvalCase(file, line, command, "instant", expr, storage, modifier=modifier)
        case.time_ms = _duration(at, line)
    elif match := _RANGE_RE.match(command):
        modifier, start, end, step, expr = match.groups()
        case = EvalCase(file, line, command, "range", expr, storage, modifier=modifier)
        case.start_ms, case.end_ms = _duration(start, line), _duration(end, line)
        case.step_ms = _duration(step, line)
        if case.end_ms < case.start_ms:
            raise ScriptError(line, "range eval ends before it starts")
    else:
        raise ScriptError(line, f"invalid eval command: {command}")
    case.expect_fail = modifier == "fail"
    case.ordered = modifier == "ordered"
    return case


def _parse_eval_body_line(case: EvalCase, text: str, line: int) -> bool:
    """Applies one body line to `case`; True if the line ends the block (§4.2)."""
    word = text.split(" ", 1)[0]
    if word == "expect":
        _parse_expect(case, text, line)
        return False
    if word in ("expected_fail_message", "expected_fail_regexp") and case.modifier == "fail":
        rest = text[len(word) :].strip()
        if word == "expected_fail_message":
            case.fail_msg = rest
        else:
            case.fail_regex = _checked_regex(rest, line)
        return True
    scalar = parse_go_number(text)
    if scalar is not None:
        case.expected_scalar = scalar
        return True
    _parse_expected_series(case, text, line)
    return False


def _parse_expected_series(case: EvalCase, text: str, line: int) -> None:
    try:
        desc = parse_series_description(text)
    except ValueError as err:
        raise ScriptError(line, str(err)) from None
    if case.kind == "instant" and case.range_vector is None and len(desc.values) != 1:
        raise ScriptError(line, "an instant eval's expected series takes exactly one value")
    case.series_lines += 1
    case.series.pop(desc.labels, None)  # the later line for the same labels wins
    case.series[desc.labels] = ExpectedSeries(desc.labels, desc.values, case.series_lines, line)


def _parse_expect(case: EvalCase, text: str, line: int) -> None:
    if match := _EXPECT_RANGE_RE.match(text):
        if case.kind != "instant":
            raise ScriptError(line, "expect range vector is only for instant evals")
        start, end, step = (_duration(g, line) for g in match.groups())
        case.range_vector = RangeVectorExpectation(start, end, step)
        case.time_ms = end  # the `to` overrides `at` (§4.3 step 1)
        return
    if match := _EXPECT_STRING_RE.match(text):
        try:
            case.expected_string = go_unquote(match[1].strip())
        except ValueError as err:
            raise ScriptError(line, str(err)) from None
        return
    match = _EXPECT_RE.match(text)
    if match is None:
        raise ScriptError(line, f"invalid expect line: {text}")
    what, how, arg = match.groups()
    arg = arg.strip() if arg is not None else None
    if how is not None and what in ("ordered", "no_warn", "no_info"):
        raise ScriptError(line, f"expect {what} takes no {how}:")
    if what == "fail":
        if case.expect_fail and case.modifier != "fail":
            raise ScriptError(line, "more than one expect fail")
        case.expect_fail = True
        case.fail_msg = arg if how == "msg" else None
        case.fail_regex = _checked_regex(arg, line) if how == "regex" else None
    elif what in ("warn", "info"):
        regex = _checked_regex(arg, line) if how == "regex" else None
        msg = arg if how == "msg" else None
        case.annotations.append(AnnotationExpectation(what, msg, regex))  # type: ignore[arg-type]
    elif what == "ordered":
        case.ordered = True
    elif what == "no_warn":
        case.no_warn = True
    else:
        case.no_info = True


def _checked_regex(pattern: str | None, line: int) -> str:
    assert pattern is not None
    try:
        re2.compile(pattern)
    except Exception as err:  # re2.error has no stable public name across versions
        raise ScriptError(line, f"invalid regex {pattern!r}: {err}") from None
    return pattern


def _validate_eval(case: EvalCase, line: int) -> None:
    if case.no_warn and case.expectations("warn"):
        raise ScriptError(line, "expect warn together with expect no_warn")
    if case.no_info and case.expectations("info"):
        raise ScriptError(line, "expect info together with expect no_info")


def almost_equal(a: float, b: float, epsilon: float = 1e-6) -> bool:
    """The float comparison of §5.3: StaleNaN only equals StaleNaN, NaN equals NaN, otherwise a
    relative tolerance of `epsilon` (and exact equality when either side is 0 or subnormal)."""
    if is_stale_nan(a) or is_stale_nan(b):
        return is_stale_nan(a) and is_stale_nan(b)
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    min_normal = 2.2250738585072014e-308
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < min_normal:
        return diff < epsilon * min_normal
    return diff / min(abs_sum, 1.7976931348623157e308) < epsilon
