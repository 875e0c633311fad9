"""Where in the query text a node starts, for annotations (`PromQL warning: ... (1:25)`).

promql-parser does not report positions, so this scans the text the way PromQL's lexer splits it
(strings, comments, brackets) to find a function call's arguments. Calls are numbered in the
order their names appear, which is the order the evaluator reaches them.
"""

from __future__ import annotations

import functools

from watchkeeper.model import go_quote

_OPEN = "([{"
_CLOSE = ")]}"
_QUOTES = "\"'`"


def skip_string(text: str, i: int) -> int:
    """Where the string literal starting at `i` (", ' or `) ends, past its closing quote."""
    quote = text[i]
    i += 1
    while i < len(text) and text[i] != quote:
        i += 2 if text[i] == "\\" and quote != "`" else 1
    return i + 1


def _line_col(text: str, index: int) -> str:
    before = text[:index]
    line = before.count("\n") + 1
    start = before.rfind("\n") + 1
    return f"{line}:{len(text[start:index].encode()) + 1}"


def call_start(text: str, function: str, occurrence: int) -> str:
    """`line:column` of the `occurrence`-th (0-based) call of `function`."""
    found = _find_call(text, function, occurrence)
    return "1:1" if found is None else _line_col(text, found[0])


def call_argument(text: str, function: str, occurrence: int, argument: int) -> str:
    """`line:column` of argument `argument` (0-based) of the `occurrence`-th (0-based) call of
    `function`; "1:1" when it cannot be found."""
    found = _find_call(text, function, occurrence)
    return "1:1" if found is None else _argument_start(text, found[1], argument)


def _find_call(text: str, function: str, occurrence: int) -> tuple[int, int] | None:
    """Where the call's name starts and where its arguments start."""
    seen = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in _QUOTES:
            i = skip_string(text, i)
            continue
        if ch == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        if ch.isalpha() or ch == "_":
            j = i
            while j < len(text) and (text[j].isalnum() or text[j] in "_:"):
                j += 1
            word = text[i:j]
            k = _skip_space(text, j)
            if word == function:
                k = _past_grouping(text, k)
            if word == function and k < len(text) and text[k] == "(":
                if seen == occurrence:
                    return i, k + 1
                seen += 1
            i = j
            continue
        i += 1
    return None


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _past_grouping(text: str, i: int) -> int:
    """Past an aggregation's `by (...)` or `without (...)` written before its arguments, as
    in `count_values by (job) ("value", x)`; `i` itself where there is none."""
    for keyword in ("by", "without"):
        end = i + len(keyword)
        if text[i:end].lower() == keyword and not (text[end : end + 1].isalnum()):
            k = _skip_space(text, end)
            if text[k : k + 1] != "(":
                return i
            depth = 0
            while k < len(text):
                if text[k] in _QUOTES:
                    k = skip_string(text, k)
                    continue
                depth += (text[k] in _OPEN) - (text[k] in _CLOSE)
                k += 1
                if depth == 0:
                    return _skip_space(text, k)
            return i
    return i


@functools.lru_cache(maxsize=4096)  # rules ask it of the same query text every evaluation
def call_argument_text(text: str, function: str, occurrence: int, argument: int) -> str:
    """The raw text from where the argument starts (empty when it cannot be found)."""
    found = _find_call(text, function, occurrence)
    if found is None:
        return ""
    where = _argument_start(text, found[1], argument)
    line, column = (int(part) for part in where.split(":"))
    lines = text.split("\n")
    if line > len(lines):
        return ""
    return lines[line - 1].encode()[column - 1 :].decode(errors="replace")


def go_string_is_utf8(raw: str) -> bool:
    """Whether the Go string literal at the start of `raw` holds valid UTF-8: `"\\xff"` is
    one byte 0xFF in Go, which no label name may contain, while Python reads it as `ÿ`."""
    try:
        go_string_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def go_string_bytes(raw: str) -> bytes:
    """The bytes of the Go string literal at the start of `raw`, its escapes read as Go reads
    them; `raw` encoded when it starts no quoted literal."""
    if not raw or raw[0] not in "\"'":
        return raw.encode()
    quote = raw[0]
    out = bytearray()
    i = 1
    while i < len(raw) and raw[i] != quote:
        ch = raw[i]
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        nxt = raw[i + 1 : i + 2]
        if nxt == "x":
            out.append(int(raw[i + 2 : i + 4], 16))
            i += 4
        elif nxt.isdigit():
            out.append(int(raw[i + 1 : i + 4], 8) & 0xFF)
            i += 4
        elif nxt in ("u", "U"):
            width = 4 if nxt == "u" else 8
            out += chr(int(raw[i + 2 : i + 2 + width], 16)).encode()
            i += 2 + width
        else:
            out += _SIMPLE_ESCAPES.get(nxt, b"?")
            i += 2
    return bytes(out)


def go_quote_bytes(data: bytes) -> str:
    """Go's strconv.Quote of bytes that may not be UTF-8: a byte that is not part of a
    character as `\\xNN`."""
    out = []
    while data:
        try:
            out.append(go_quote(data.decode("utf-8"))[1:-1])
            break
        except UnicodeDecodeError as err:
            out.append(go_quote(data[: err.start].decode("utf-8"))[1:-1])
            out.append(f"\\x{data[err.start]:02x}")
            data = data[err.start + 1 :]
    return '"' + "".join(out) + '"'


_SIMPLE_ESCAPES = {
    "a": b"\a",
    "b": b"\b",
    "f": b"\f",
    "n": b"\n",
    "r": b"\r",
    "t": b"\t",
    "v": b"\v",
    "\\": b"\\",
    "'": b"'",
    '"': b'"',
}


def _argument_start(text: str, i: int, argument: int) -> str:
    depth = 0
    index = 0
    while i < len(text):
        ch = text[i]
        if index == argument and depth == 0 and not ch.isspace():
            return _line_col(text, i)
        if ch in _QUOTES:
            i = skip_string(text, i)
            continue
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            if depth == 0:
                break
            depth -= 1
        elif ch == "," and depth == 0:
            index += 1
        i += 1
    return "1:1"
