"""The Prometheus text exposition format 0.0.4 and OpenMetrics 1.0 text: a scraped body -> the
series text, value and timestamp of each sample, the families' HELP/TYPE/UNIT, and exemplars.

A scrape target sends the same series in the same words every time, so the parser is built
around the caller's memory of them: a line whose series text (`name{labels}`) the caller
already knows costs one slice, one set lookup and a float conversion; only lines with series
text not seen before are parsed in full (`new_series` hands back their labels). The full parse
is exact, so a line the fast path cannot place (tabs, exemplars, odd spacing) is still read
right, only more slowly.

Differences between the formats that matter here: OpenMetrics timestamps are seconds (text
0.0.4's are milliseconds), OpenMetrics ends with `# EOF` and carries `# UNIT` and exemplars
(`... # {trace_id="..."} 1.5 1712345678.9`), and its types include gaugehistogram, stateset and
info. Both accept Prometheus 3.x's quoted UTF-8 names (`{"my.metric", "some.label"="v"}`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Container
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NoReturn

from watchkeeper.model import METRIC_NAME, Labels, MetricMetadata
from watchkeeper.model.gofloat import format_g

TEXT_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
OPENMETRICS_TYPES = {
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "stateset",
    "info",
    "summary",
    "unknown",
}
# OpenMetrics: "The combined length of the label names and values of an Exemplar's LabelSet
# MUST NOT exceed 128 UTF-8 characters."
MAX_EXEMPLAR_LABELS_LENGTH = 128

_WS = re.compile(rb"[ \t]*")
_NAME = re.compile(rb"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(rb"[a-zA-Z_][a-zA-Z0-9_]*")
_QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(rb'\\(["\\n])')
# `{a="1",b="2"}` with legacy label names, no spaces and an optional trailing comma
_PLAIN_LABELS = re.compile(rb'\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\}')
_PLAIN_PAIR = re.compile(rb'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')
_HELP_ESCAPE = re.compile(rb"\\([\\n])")
_UNESCAPED = {b'"': b'"', b"\\": b"\\", b"n": b"\n"}
_EOF = b"# EOF"
_NOT_IN_FLOATS = frozenset(b"pP_")
# label values Prometheus 3.x rewrites into the canonical float form, by family type
_FLOAT_LABELS = {"histogram": "le", "gaugehistogram": "le", "summary": "quantile"}


class Format(StrEnum):
    TEXT = "text"  # Prometheus text format 0.0.4 (and 1.0.0, its UTF-8 names)
    OPENMETRICS = "openmetrics"  # OpenMetrics 1.0 text (0.0.1 reads the same)


class ExpositionError(ValueError):
    """The body is not valid exposition; the message names the line."""


@dataclass(frozen=True)
class Exemplar:
    sample: int  # index of the sample it belongs to
    labels: Labels
    value: float
    timestamp_ms: int | None


@dataclass
class Exposition:
    """One parsed body. Sample i is `texts[i]` (its series text as written) with `values[i]`;
    `timestamps` holds the explicit timestamps (ms) of the samples that carry one."""

    texts: list[bytes] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    timestamps: dict[int, int] = field(default_factory=dict)
    # labels (with __name__) of the series texts the caller did not know
    new_series: dict[bytes, Labels] = field(default_factory=dict)
    metadata: dict[str, MetricMetadata] = field(default_factory=dict)
    exemplars: list[Exemplar] = field(default_factory=list)


def format_of(content_type: str) -> Format | None:
    """The format a Content-Type names; None for one that is neither."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/openmetrics-text":
        return Format.OPENMETRICS
    if media == "text/plain":
        return Format.TEXT
    return None


def parse(body: bytes, fmt: Format, known: Container[bytes] = frozenset()) -> Exposition:
    """Parse a whole body. `known` holds series texts whose labels the caller already has; the
    labels of every other series text come back in `new_series`."""
    return _Parser(fmt, known).run(body)


class _Parser:
    def __init__(self, fmt: Format, known: Container[bytes]) -> None:
        self.openmetrics = fmt is Format.OPENMETRICS
        self.known = known
        self.out = Exposition()
        self.help: dict[str, str] = {}
        self.types: dict[str, str] = {}
        self.units: dict[str, str] = {}
        self.float_label = ""  # "le" or "quantile" while a histogram's or summary's lines run
        self.line = 0

    def run(self, body: bytes) -> Exposition:
        lines = body.split(b"\n")
        if self.openmetrics:
            lines = self._without_eof(lines)
        out = self.out
        texts, values, known, new = out.texts, out.values, self.known, out.new_series
        openmetrics = self.openmetrics
        number = 0
        for number, line in enumerate(lines, start=1):
            if not line:
                if openmetrics:
                    self.line = number
                    self._fail("empty line")
                continue
            if line[0] == 35:  # "#"
                self.line = number
                self._comment(line)
                continue
            # The fast path: a series text seen before, then the value and maybe a timestamp.
            brace = line.rfind(b"}")
            end = brace + 1 if brace >= 0 else line.find(b" ")
            if end > 0:
                text = line[:end]
                if text in known or text in new:
                    tokens = line[end:].split()
                    count = len(tokens)
                    if (
                        0 < count < 3
                        and line[end] in b" \t"
                        and not _NOT_IN_FLOATS.intersection(tokens[0])
                        and (count == 1 or not openmetrics)
                    ):
                        try:
                            value = float(tokens[0])
                        except ValueError:
                            pass
                        else:
                            if count == 2:
                                self.line = number
                                out.timestamps[len(texts)] = self._timestamp(tokens[1])
                            values.append(value)
                            texts.append(text)
                            continue
            self.line = number
            self._sample(line)
        self.line = number
        self._finish_metadata()
        return out

    def _without_eof(self, lines: list[bytes]) -> list[bytes]:
        # The body ends "# EOF\n" or "# EOF"; nothing may follow it.
        try:
            eof = lines.index(_EOF)
        except ValueError:
            self.line = len(lines)
            self._fail("data does not end with # EOF")
        after = lines[eof + 1 :]
        if after and after != [b""]:
            self.line = eof + 2
            self._fail("unexpected data after # EOF")
        return lines[:eof]

    def _fail(self, problem: str) -> NoReturn:
        raise ExpositionError(f"line {self.line}: {problem}")

    # --- comments: HELP, TYPE, UNIT ------------------------------------------------------

    def _comment(self, line: bytes) -> None:
        parts = line.split(None, 2)
        keyword = parts[1] if len(parts) > 1 and parts[0] == b"#" else b""
        if keyword not in (b"HELP", b"TYPE", b"UNIT") or (
            keyword == b"UNIT" and not self.openmetrics
        ):
            if self.openmetrics:
                self._fail(
                    f"unexpected comment {_shown(line)}: OpenMetrics allows only "
                    "# HELP, # TYPE, # UNIT and # EOF"
                )
            return  # text format: any other comment is ignored
        rest = line[line.index(keyword) + 4 :].lstrip(b" \t")
        name, pos = self._family_name(rest)
        tail = rest[pos:]
        if tail and tail[0] not in b" \t":
            self._fail(f"invalid metric name in # {keyword.decode()} line: {_shown(rest)}")
        value = tail[1:] if tail else b""
        if keyword == b"HELP":
            if b"\\" in value:
                value = _HELP_ESCAPE.sub(lambda m: _UNESCAPED[m.group(1)], value)
            self.help[name] = _utf8(value, self, "HELP text")
        elif keyword == b"TYPE":
            kind = value.strip().decode("ascii", "replace")
            allowed = OPENMETRICS_TYPES if self.openmetrics else TEXT_TYPES
            if kind not in allowed:
                self._fail(f'invalid metric type "{kind}"')
            self.types[name] = "unknown" if kind == "untyped" else kind
            self.float_label = _FLOAT_LABELS.get(kind, "")
        else:
            self.units[name] = _utf8(value.strip(), self, "unit")

    def _family_name(self, rest: bytes) -> tuple[str, int]:
        if rest[:1] == b'"':
            quoted = _QUOTED.match(rest)
            if quoted is None:
                self._fail(f"unterminated quoted metric name: {_shown(rest)}")
            return _unquote(quoted.group(1), self), quoted.end()
        found = _NAME.match(rest)
        if found is None:
            self._fail(f"invalid metric name in comment: {_shown(rest)}")
        return found.group().decode(), found.end()

    def _finish_metadata(self) -> None:
        metadata = self.out.metadata
        for name in {**self.types, **self.help, **self.units}:
            metadata[name] = MetricMetadata(
                metric=name,
                type=self.types.get(name, "unknown"),
                help=self.help.get(name, ""),
                unit=self.units.get(name, ""),
            )

    # --- samples, in full ----------------------------------------------------------------

    def _sample(self, line: bytes) -> None:
        pos = _WS.match(line).end()  # type: ignore[union-attr]
        start = pos
        pairs: list[tuple[str, str]] = []
        name = ""
        found = _NAME.match(line, pos)
        end = pos
        if found is not None:
            name = found.group().decode()
            end = found.end()
            pos = _WS.match(line, end).end()  # type: ignore[union-attr]
        plain = _PLAIN_LABELS.match(line, pos) if name else None
        if plain is not None:
            # the usual form, read with two regular expressions instead of a dozen a label
            for raw_label, escaped in _PLAIN_PAIR.findall(plain.group(1)):
                raw = _ESCAPE.sub(_unescape, escaped) if b"\\" in escaped else escaped
                try:
                    pairs.append((raw_label.decode(), raw.decode()))
                except UnicodeDecodeError:
                    label = raw_label.decode()
                    self._fail(f'value of label "{label}" is not valid UTF-8: {_shown(raw)}')
            end = plain.end()
        elif pos < len(line) and line[pos] == 123:  # "{"
            quoted_name, end = self._labels(line, pos + 1, pairs, metric_allowed=not name)
            if quoted_name is not None:
                name = quoted_name
        elif found is None:
            self._fail(f"expected a metric name at the start of {_shown(line)}")
        if not name:
            self._fail(f"metric name not set in {_shown(line)}")
        text = line[start:end]
        tokens, exemplar_text = self._tail(line, end)
        out = self.out
        sample = len(out.texts)
        out.values.append(self._float(tokens[0], "value"))
        out.texts.append(text)
        if len(tokens) == 2:
            out.timestamps[sample] = self._timestamp(tokens[1])
        if exemplar_text is not None:
            out.exemplars.append(self._exemplar(exemplar_text, sample))
        if text not in self.known and text not in out.new_series:
            pairs.append((METRIC_NAME, name))
            if self.float_label:
                pairs = [
                    (n, format_openmetrics_float(v) if n == self.float_label else v)
                    for n, v in pairs
                ]
            out.new_series[text] = self._label_set(pairs)

    def _labels(
        self, line: bytes, pos: int, pairs: list[tuple[str, str]], metric_allowed: bool
    ) -> tuple[str | None, int]:
        """Read `a="1", "b.c"="2"}` from `pos`; returns a quoted metric name if the braces hold
        one, and the position after the closing brace."""
        metric: str | None = None
        first = True
        while True:
            pos = _WS.match(line, pos).end()  # type: ignore[union-attr]
            if pos >= len(line):
                self._fail(f"unterminated label set in {_shown(line)}")
            if line[pos] == 125:  # "}"
                return metric, pos + 1
            quoted = _QUOTED.match(line, pos)
            if quoted is not None:
                label = _unquote(quoted.group(1), self)
                pos = quoted.end()
            else:
                bare = _LABEL_NAME.match(line, pos)
                if bare is None:
                    self._fail(f"invalid label name at column {pos + 1} of {_shown(line)}")
                label = bare.group().decode()
                pos = bare.end()
            pos = _WS.match(line, pos).end()  # type: ignore[union-attr]
            if (
                quoted is not None
                and first
                and metric_allowed
                and line[pos : pos + 1]
                in (
                    b",",
                    b"}",
                )
            ):
                metric = label  # {"my.metric", ...}: the metric name
            else:
                if line[pos : pos + 1] != b"=":
                    self._fail(f'expected "=" after label name "{label}" in {_shown(line)}')
                pos = _WS.match(line, pos + 1).end()  # type: ignore[union-attr]
                value = _QUOTED.match(line, pos)
                if value is None:
                    self._fail(f'expected a quoted value for label "{label}" in {_shown(line)}')
                raw = value.group(1)
                if b"\\" in raw:
                    raw = _ESCAPE.sub(lambda m: _UNESCAPED[m.group(1)], raw)
                pairs.append((label, _utf8(raw, self, f'value of label "{label}"')))
                pos = value.end()
            first = False
            pos = _WS.match(line, pos).end()  # type: ignore[union-attr]
            if line[pos : pos + 1] == b",":
                pos += 1
            elif line[pos : pos + 1] != b"}":
                self._fail(f'expected "," or "}}" at column {pos + 1} of {_shown(line)}')

    def _tail(self, line: bytes, pos: int) -> tuple[list[bytes], bytes | None]:
        """The value and optional timestamp after the series text, and an exemplar's text."""
        rest = line[pos:]
        exemplar = None
        if self.openmetrics:
            mark = rest.find(b" # ")
            if mark >= 0:
                rest, exemplar = rest[:mark], rest[mark + 3 :]
        if not rest[:1].isspace():
            self._fail(f"expected a space and a value after the series in {_shown(line)}")
        tokens = rest.split()
        if not tokens:
            self._fail(f"expected a value after the series in {_shown(line)}")
        if len(tokens) > 2:
            self._fail(f"unexpected {_shown(tokens[2])} after the value and timestamp")
        return tokens, exemplar

    def _float(self, token: bytes, what: str) -> float:
        # Go's ParseFloat, less what Prometheus refuses before it (hexadecimal floats with
        # their p exponent, and digit separators)
        if not _NOT_IN_FLOATS.intersection(token):
            try:
                return float(token)
            except ValueError:
                pass
        self._fail(f"invalid {what} {_shown(token)}")

    def _timestamp(self, token: bytes) -> int:
        if self.openmetrics:
            seconds = self._float(token, "timestamp")
            if not math.isfinite(seconds):
                self._fail(f"invalid timestamp {_shown(token)}")
            return int(seconds * 1000)
        if token.isdigit():  # integer milliseconds, no sign
            return int(token)
        self._fail(f"invalid timestamp {_shown(token)}")

    def _exemplar(self, text: bytes, sample: int) -> Exemplar:
        text = text.lstrip(b" \t")
        if text[:1] != b"{":
            self._fail(f"expected a label set to open the exemplar {_shown(text)}")
        pairs: list[tuple[str, str]] = []
        _, pos = self._labels(text, 1, pairs, metric_allowed=False)
        length = sum(len(n) + len(v) for n, v in pairs)
        if length > MAX_EXEMPLAR_LABELS_LENGTH:
            self._fail(
                f"exemplar labels have {length} UTF-8 characters, more than the "
                f"{MAX_EXEMPLAR_LABELS_LENGTH} allowed"
            )
        tokens = text[pos:].split()
        if not tokens or len(tokens) > 2:
            self._fail(f"expected a value and an optional timestamp in exemplar {_shown(text)}")
        timestamp = self._timestamp(tokens[1]) if len(tokens) == 2 else None
        return Exemplar(
            sample, self._label_set(pairs), self._float(tokens[0], "exemplar value"), timestamp
        )

    def _label_set(self, pairs: list[tuple[str, str]]) -> Labels:
        names = [n for n, _ in pairs]
        if len(set(names)) != len(names):
            seen: set[str] = set()
            for n in names:
                if n in seen:
                    self._fail(f'label name "{n}" is not unique: invalid sample')
                seen.add(n)
        return tuple(sorted((n, v) for n, v in pairs if v != ""))


def format_openmetrics_float(text: str) -> str:
    """A label value that reads as a float, in the form Prometheus 3.x stores `le` and
    `quantile` in: Go's shortest %g, with ".0" added to whole numbers (`1` -> `1.0`, `1e6` ->
    `1e+06`, `+inf` -> `+Inf`). Anything that is not a float stays as it is."""
    if not text or _NOT_IN_FLOATS.intersection(text.encode()):
        return text
    try:
        value = float(text)
    except ValueError:
        return text
    written = format_g(value)
    if math.isnan(value) or math.isinf(value) or "." in written or "e" in written:
        return written
    return written + ".0"


def _unquote(raw: bytes, parser: _Parser) -> str:
    if b"\\" in raw:
        raw = _ESCAPE.sub(_unescape, raw)
    return _utf8(raw, parser, "quoted name")


def _unescape(found: re.Match[bytes]) -> bytes:
    return _UNESCAPED[found.group(1)]


def _utf8(raw: bytes, parser: _Parser, what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        parser._fail(f"{what} is not valid UTF-8: {_shown(raw)}")


def _shown(raw: bytes, limit: int = 80) -> str:
    text = raw.decode("utf-8", "replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")
