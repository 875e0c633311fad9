"""JSON exactly as Go's encoding/json writes it, so payloads are byte-compatible with
Alertmanager's: no spaces, map keys sorted (struct fields keep their order: pass a dict in
a Struct), `<`, `>`, `&`, U+2028 and U+2029 escaped as \\u sequences,
control characters other than \\n, \\r and \\t as \\u00XX, and a newline at the end (as
json.Encoder.Encode writes it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HTML = {"<", ">", "&", "\u2028", "\u2029"}
_ZERO_TIME = "0001-01-01T00:00:00Z"


def go_string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch < " " or ch in _HTML:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_time(ms: int) -> str:
    """A millisecond timestamp as Go marshals a UTC time.Time (RFC 3339, trailing zeros of the
    fraction dropped); 0 is Go's zero time."""
    if ms == 0:
        return _ZERO_TIME
    when = dt.datetime.fromtimestamp(ms // 1000, tz=dt.UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = ms % 1000
    if fraction:
        text += "." + f"{fraction:03d}".rstrip("0")
    return text + "Z"


class Struct(dict[str, Any]):
    """A Go struct: its fields are written in the order given (a plain mapping is a Go map,
    written with sorted keys)."""


def encode(value: Any) -> str:
    """The JSON text of plain values, Structs and Go maps."""
    if isinstance(value, str):
        return go_string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        items = value.items() if isinstance(value, Struct) else sorted(value.items())
        return "{" + ",".join(f"{go_string(str(k))}:{encode(v)}" for k, v in items) + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(encode(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__}")


def document(value: Any) -> bytes:
    """As json.Encoder.Encode writes it: the JSON and a newline."""
    return (encode(value) + "\n").encode()
