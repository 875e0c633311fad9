"""Label sets and the naming rules of the Prometheus data model.

A series is identified by its label set, kept here as a tuple of (name, value) pairs sorted by
name with no empty values: hashable, ordered the way Prometheus orders labels, and cheap to
compare. Names follow Prometheus 3.x: any valid UTF-8 by default, the legacy character set
`[a-zA-Z_:][a-zA-Z0-9_:]*` (metric names) / `[a-zA-Z_][a-zA-Z0-9_]*` (label names) on request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum

METRIC_NAME = "__name__"

Labels = tuple[tuple[str, str], ...]

_LEGACY_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LEGACY_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class NameValidation(StrEnum):
    """Which names are valid: Prometheus 3.x `utf8` (the default) or the pre-3.0 `legacy` set."""

    UTF8 = "utf8"
    LEGACY = "legacy"


def is_valid_metric_name(name: str, scheme: NameValidation = NameValidation.UTF8) -> bool:
    if not name:
        return False
    if scheme is NameValidation.LEGACY:
        return _LEGACY_METRIC_NAME.fullmatch(name) is not None
    return True


def is_valid_label_name(name: str, scheme: NameValidation = NameValidation.UTF8) -> bool:
    if not name:
        return False
    if scheme is NameValidation.LEGACY:
        return _LEGACY_LABEL_NAME.fullmatch(name) is not None
    return True


def labels_from_dict(pairs: Mapping[str, str] | Iterable[tuple[str, str]]) -> Labels:
    """Canonical label set: sorted by name, empty values dropped (they mean "no such label")."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return tuple(sorted((name, value) for name, value in items if value != ""))


def labels_to_dict(labels: Labels) -> dict[str, str]:
    return dict(labels)


def format_labels(labels: Labels) -> str:
    """`{a="1", b="2"}`, as error messages show a series."""
    return "{" + ", ".join(f'{n}="{v}"' for n, v in labels) + "}"


def legacy_pattern_for(kind: str) -> str:
    """The regular expression (for error messages and vectorised checks) of legacy names."""
    return _LEGACY_METRIC_NAME.pattern if kind == "metric" else _LEGACY_LABEL_NAME.pattern


# The canonical series key: the sorted label pairs as UTF-8, each pair joined by 0xFF and pairs
# separated by 0xFE. Neither byte occurs in valid UTF-8, so the encoding is unambiguous; the
# remote_write decoder builds the same bytes in bulk with Arrow kernels.
PAIR_SEPARATOR = b"\xff"
LABEL_SEPARATOR = b"\xfe"


def metric_name(labels: Labels) -> str:
    """The value of `__name__`, or "" for a series without one."""
    for name, value in labels:
        if name == METRIC_NAME:
            return value
    return ""


def series_key(labels: Labels) -> bytes:
    return LABEL_SEPARATOR.join(
        name.encode() + PAIR_SEPARATOR + value.encode() for name, value in labels
    )


def labels_from_key(key: bytes) -> Labels:
    if not key:
        return ()
    pairs = []
    for pair in key.split(LABEL_SEPARATOR):
        name, _, value = pair.partition(PAIR_SEPARATOR)
        pairs.append((name.decode(), value.decode()))
    return tuple(pairs)


def yaml_label_text(value: object) -> str:
    """A label or annotation value read from YAML, as Prometheus' Go decoder gives it.

    Go decodes an unquoted scalar into a string field as its text, so `severity: true` is
    "true"; PyYAML has already made it a bool, whose str() would be "True". A missing value
    is "".
    """
    if value is None:
        return ""
    if isinstance(value, bool):  # read by a plain YAML loader: its text is lost
        return "true" if value else "false"
    return str(value)  # a goyaml.YamlBool gives its text as written


def go_quote(text: str) -> str:
    """Go's strconv.Quote, as Alertmanager writes label values in group keys and matchers."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def format_label_set(labels: Labels) -> str:
    """`{a="1", b="2"}` with Go's quoting: Prometheus' LabelSet.String, part of Alertmanager's
    group keys."""
    return "{" + ", ".join(f"{name}={go_quote(value)}" for name, value in labels) + "}"
