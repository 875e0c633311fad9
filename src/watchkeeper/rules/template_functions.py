"""The values and functions of rule templates (templates.py): Go's builtins and Prometheus'
template functions, with Go's way of printing values and formatting numbers."""

from __future__ import annotations

import html
import json
import math
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import re2

from watchkeeper.model import parse_duration
from watchkeeper.model.gofloat import format_g
from watchkeeper.model.matchers import expand_template


class TemplateError(ValueError):
    """A template that does not parse, or fails while running; the message is Go's style."""


@dataclass
class Sample:
    """One element of a query's result, as templates see it: `.Labels` and `.Value`."""

    Labels: dict[str, str]
    Value: float


QueryFunc = Callable[[str], list[Sample]]


class SafeHTML(str):
    """Text that `safeHtml` marked as HTML: an HTML-escaping run prints it as it is."""


# Go's html/template escaper for text between tags (htmlReplacementTable)
_HTML_TEXT = str.maketrans(
    {
        "\0": "\ufffd",
        '"': "&#34;",
        "&": "&amp;",
        "'": "&#39;",
        "+": "&#43;",
        "<": "&lt;",
        ">": "&gt;",
    }
)


def escape_html_text(text: str) -> str:
    """What Go's html/template prints for a value between tags (SafeHTML as it is)."""
    return text if isinstance(text, SafeHTML) else text.translate(_HTML_TEXT)


class LabelMap(dict[str, str]):
    """A label map (`$labels`, `.Labels`): a missing label reads as "", as a Go
    map[string]string gives it."""


NO_VALUE = type("NoValue", (), {"__repr__": lambda self: "<no value>"})()


def type_name(value: Any) -> str:
    return {str: "string", float: "float64", int: "int", bool: "bool"}.get(
        type(value), type(value).__name__
    )


def truth(value: Any) -> bool:
    if value is None or value is NO_VALUE:
        return False
    if isinstance(value, float) and math.isnan(value):
        return True
    return bool(value)


def text_of(value: Any) -> str:
    """A value as Go's fmt prints it with %v."""
    if value is None:
        return "<nil>"
    if value is NO_VALUE:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_g(value)
    if isinstance(value, Sample):
        return "{" + text_of(LabelMap(value.Labels)) + " " + text_of(value.Value) + "}"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{text_of(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(text_of(v) for v in value) + "]"
    return str(value)


# --- functions ----------------------------------------------------------------------------------


def _float(value: Any) -> float:
    """Prometheus' ConvertToFloat: numbers, and strings that parse as floats."""
    if isinstance(value, bool):
        raise ValueError(f"can't convert {value} to float")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f'strconv.ParseFloat: parsing "{value}": invalid syntax') from None
    raise ValueError(f"can't convert {text_of(value)} to float")


def _go_printf(fmt: str, *args: Any) -> str:
    """Go's fmt.Sprintf for the verbs templates use: %s %v %d %f %e %g %q %x %t %%."""
    out: list[str] = []
    arg = iter(args)
    pattern = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*))?([a-zA-Z%])")
    pos = 0
    for found in pattern.finditer(fmt):
        out.append(fmt[pos : found.start()])
        pos = found.end()
        flags, width, precision, verb = found.groups()
        if verb == "%":
            out.append("%")
            continue
        try:
            value = next(arg)
        except StopIteration:
            out.append(f"%!{verb}(MISSING)")
            continue
        spec = "%" + (flags or "") + (width or "") + (f".{precision}" if precision else "")
        if verb in ("s", "v"):
            out.append((spec + "s") % text_of(value))
        elif verb == "q":
            out.append((spec + "s") % json.dumps(text_of(value)))
        elif verb == "d":
            out.append(
                (spec + "d") % int(value)
                if not isinstance(value, float)
                else f"%!d(float64={text_of(value)})"
            )
        elif verb in ("f", "F", "e", "E", "g", "G"):
            number = _float(value)
            if math.isinf(number) or math.isnan(number):
                out.append((spec.split(".")[0] + "s") % format_g(number))
            else:
                out.append((spec + verb) % number)
        elif verb in ("x", "X"):
            if isinstance(value, str):
                text = value.encode().hex()
                out.append(text.upper() if verb == "X" else text)
            else:
                out.append((spec + verb) % int(value))
        elif verb == "t":
            out.append(text_of(bool(value)))
        else:
            out.append(f"%!{verb}({type_name(value)}={text_of(value)})")
    out.append(fmt[pos:])
    extra = list(arg)
    if extra:
        out.append("%!(EXTRA " + ", ".join(f"{type_name(v)}={text_of(v)}" for v in extra) + ")")
    return "".join(out)


def _humanize(value: Any) -> str:
    v = _float(value)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return _go_printf("%.4g", v)
    prefix = ""
    if abs(v) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
    else:
        for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
            if abs(v) >= 1:
                break
            prefix, v = p, v * 1000
    return _go_printf("%.4g", v) + prefix


def _humanize1024(value: Any) -> str:
    v = _float(value)
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return _go_printf("%.4g", v)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix, v = p, v / 1024
    return _go_printf("%.4g", v) + prefix


def _humanize_duration(value: Any) -> str:
    """Prometheus' (prometheus/common) HumanizeDuration: `1d 2h 3m 4s`, `1.5s`, `250ms`."""
    v = _float(value)
    if math.isnan(v) or math.isinf(v):
        return _go_printf("%.4g", v)
    if v == 0:
        return "0s"
    if abs(v) < 1:
        prefix = ""
        for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
            if abs(v) >= 1:
                break
            prefix, v = p, v * 1000
        return _go_printf("%.4g", v) + prefix + "s"
    sign = "-" if v < 0 else ""
    v = abs(v)
    seconds = int(v) % 60
    minutes = int(v) // 60 % 60
    hours = int(v) // 3600 % 24
    days = int(v) // 86400
    if days:
        return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
    if hours:
        return f"{sign}{hours}h {minutes}m {seconds}s"
    if minutes:
        return f"{sign}{minutes}m {seconds}s"
    return sign + _go_printf("%.4g", v) + "s"


def _humanize_timestamp(value: Any) -> str:
    v = _float(value)
    if math.isnan(v) or math.isinf(v):
        return _go_printf("%.4g", v)
    moment = datetime.fromtimestamp(v, tz=UTC)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if moment.microsecond:
        text += ("." + f"{moment.microsecond:06d}").rstrip("0")
    return text + " +0000 UTC"


def _title(text: str) -> str:
    return re.sub(r"(^|[^\w'])(\w)", lambda m: m.group(1) + m.group(2).upper(), text)


def _re_replace_all(pattern: str, replacement: str, text: str) -> str:
    compiled = re2.compile(pattern)
    return str(compiled.sub(lambda m: expand_template(replacement, m), text))


def _match(pattern: str, text: str) -> bool:
    return re2.search(pattern, text) is not None


def _strip_port(host_port: str) -> str:
    host, sep, port = host_port.rpartition(":")
    if not sep or not port.isdigit() or (host.count(":") and not host.startswith("[")):
        return host_port
    return host.strip("[]")


def _strip_domain(host_port: str) -> str:
    host, sep, port = host_port.rpartition(":")
    if not sep or not port.isdigit():
        host, port = host_port, ""
    bare = host.strip("[]")
    if re.fullmatch(r"[\d.]+|[0-9a-fA-F:]*:[0-9a-fA-F:.]*", bare):
        return host_port
    short = bare.split(".")[0]
    return f"{short}:{port}" if port else short


def _index(container: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(container, Mapping):
            container = container.get(key, "" if isinstance(container, LabelMap) else NO_VALUE)
        elif isinstance(container, (list, tuple, str)):
            if not isinstance(key, int) or not 0 <= key < len(container):
                raise IndexError(f"index out of range: {key}")
            container = container[key]
        else:
            raise ValueError(f"can't index item of type {type_name(container)}")
    return container


def _compare(op: str) -> Callable[..., bool]:
    def compare(a: Any, *others: Any) -> bool:
        if not others:
            raise ValueError("missing argument for comparison")
        for b in others:
            if isinstance(a, (int, float)) and isinstance(b, (int, float)):
                left, right = float(a), float(b)
            elif type(a) is not type(b):
                raise ValueError("incompatible types for comparison")
            else:
                left, right = a, b
            result = {
                "eq": left == right,
                "ne": left != right,
                "lt": left < right,
                "le": left <= right,
                "gt": left > right,
                "ge": left >= right,
            }[op]
            if op == "eq" and result:
                return True
            if op != "eq" and not result:
                return False
        return op != "eq"

    return compare


def _and(*values: Any) -> Any:
    for value in values:
        if not truth(value):
            return value
    return values[-1]


def _or(*values: Any) -> Any:
    for value in values:
        if truth(value):
            return value
    return values[-1]


def _first(samples: Sequence[Sample]) -> Sample:
    if not samples:
        raise ValueError("first() called on vector with no elements")
    return samples[0]


def _sort_by_label(label: str, samples: Sequence[Sample]) -> list[Sample]:
    return sorted(samples, key=lambda s: s.Labels.get(label, ""))


def _parse_duration(text: str) -> float:
    negative = text.startswith("-")
    seconds = parse_duration(text.lstrip("-")) / 1000
    return -seconds if negative else seconds


FUNCTIONS: dict[str, Callable[..., Any]] = {
    # Go's builtins
    "and": _and,
    "or": _or,
    "not": lambda value: not truth(value),
    "len": len,
    "index": _index,
    "print": lambda *values: "".join(text_of(v) for v in values),
    "println": lambda *values: " ".join(text_of(v) for v in values) + "\n",
    "printf": _go_printf,
    "urlquery": lambda *values: urllib.parse.quote_plus("".join(text_of(v) for v in values)),
    "html": lambda *values: html.escape("".join(text_of(v) for v in values)),
    "js": lambda *values: json.dumps("".join(text_of(v) for v in values))[1:-1],
    **{op: _compare(op) for op in ("eq", "ne", "lt", "le", "gt", "ge")},
    # Prometheus'
    "first": _first,
    "label": lambda label, sample: sample.Labels.get(label, ""),
    "value": lambda sample: sample.Value,
    "strvalue": lambda sample: sample.Labels.get("__value__", ""),
    "sortByLabel": _sort_by_label,
    "args": lambda *values: {f"arg{i}": v for i, v in enumerate(values)},
    "reReplaceAll": _re_replace_all,
    "safeHtml": SafeHTML,
    "match": _match,
    "title": _title,
    "toUpper": lambda text: text.upper(),
    "toLower": lambda text: text.lower(),
    "stripPort": _strip_port,
    "stripDomain": _strip_domain,
    "humanize": _humanize,
    "humanize1024": _humanize1024,
    "humanizeDuration": _humanize_duration,
    "humanizePercentage": lambda value: _go_printf("%.4g%%", _float(value) * 100),
    "humanizeTimestamp": _humanize_timestamp,
    "toTime": lambda value: datetime.fromtimestamp(_float(value), tz=UTC),
    "toDuration": _float,
    "parseDuration": _parse_duration,
    "urlQueryEscape": urllib.parse.quote_plus,
}
