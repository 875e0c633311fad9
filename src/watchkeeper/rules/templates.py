"""Alert templates: the part of Go's text/template that Prometheus rule labels and annotations
use, with Prometheus' functions, so annotations written for Prometheus render the same.

    {{ $labels.instance }} of {{ $labels.job }} is at {{ $value | humanizePercentage }}
    {{ with query "up == 0" }}{{ . | first | label "instance" }}{{ end }}

Supported: text and actions with `{{-`/`-}}` trimming and comments; pipelines with `|`;
variables (`$x := ...`, `$x = ...`, `$`); fields of maps and samples (`.Labels.job`,
`$labels.job`); `if`/`else if`/`else`, `with`, `range` (with `$i, $e :=`), `break`, `continue`;
Go's builtins (and, or, not, len, index, eq, ne, lt, le, gt, ge, print, printf, println,
urlquery, html, js) and Prometheus' (query, first, label, value, strvalue, sortByLabel,
humanize, humanize1024, humanizeDuration, humanizePercentage, humanizeTimestamp, title,
toUpper, toLower, match, reReplaceAll, stripPort, stripDomain, args, safeHtml, toTime,
toDuration, now, pathPrefix, externalURL, parseDuration, urlQueryEscape). A template is
parsed once; an undefined variable is a parse error, as in Go. Errors read like Go's
(`template: __alert_X:1: undefined variable "$label"`).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.rules.template_functions import (
    FUNCTIONS,
    NO_VALUE,
    LabelMap,
    QueryFunc,
    SafeHTML,
    Sample,
    TemplateError,
    text_of,
    truth,
    type_name,
)

# Prometheus runs every rule template with these variables defined first.
PRELUDE_VARIABLES = ("$labels", "$externalLabels", "$externalURL", "$value")


# --- lexing -------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<declare>:=)
    | (?P<assign>=)
    | (?P<pipe>\|)
    | (?P<open>\()
    | (?P<close>\))
    | (?P<comma>,)
    | (?P<string>"(?:[^"\\\n]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<char>'(?:[^'\\\n]|\\.)+')
    | (?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?))
    | (?P<variable>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
    | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
    """,
    re.VERBOSE,
)
_KEYWORDS = {
    "if",
    "else",
    "end",
    "range",
    "with",
    "define",
    "template",
    "block",
    "break",
    "continue",
}


@dataclass
class _Tok:
    kind: str
    text: str


def _tokens(source: str, fail: Callable[[str], Exception]) -> list[_Tok]:
    out = []
    pos = 0
    while pos < len(source):
        found = _TOKEN.match(source, pos)
        if found is None:
            raise fail(f"unexpected {source[pos]!r} in command")
        kind = found.lastgroup or ""
        if kind != "space":
            out.append(_Tok(kind, found.group()))
        pos = found.end()
    return out


# --- the tree -----------------------------------------------------------------------------------


@dataclass
class _Operand:
    kind: str  # field, variable, literal, ident, pipe
    value: Any = None
    chain: tuple[str, ...] = ()
    pipe: _Pipe | None = None


@dataclass
class _Command:
    args: list[_Operand]


@dataclass
class _Pipe:
    commands: list[_Command]
    declare: list[str] = field(default_factory=list)
    assign: bool = False  # `$x = ...` (not `:=`)
    line: int = 1


@dataclass
class _Block:
    kind: str  # root, if, with, range, define
    pipe: _Pipe | None = None
    name: str = ""  # of a define
    body: list[Any] = field(default_factory=list)
    otherwise: list[Any] = field(default_factory=list)
    in_else: bool = False


@dataclass
class _Include:
    """{{template "name" pipeline}}: the named template run with the pipeline's value."""

    name: str
    pipe: _Pipe | None
    line: int


@dataclass
class _Jump:
    kind: str  # break, continue


class _BreakError(Exception):
    pass


class _ContinueError(Exception):
    pass


_MISSING = object()  # no value piped in yet


# --- parsing ------------------------------------------------------------------------------------

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_COMMENT = re.compile(r"/\*.*\*/", re.DOTALL)


class Template:
    """A parsed template; `render` runs it."""

    def __init__(
        self,
        name: str,
        text: str,
        variables: Sequence[str] = PRELUDE_VARIABLES,
        functions: Mapping[str, Callable[..., Any]] | None = None,
    ) -> None:
        """`functions`: more functions than Prometheus' (Alertmanager's, for notifications)."""
        self.name = name
        self.text = text
        self.functions = {**FUNCTIONS, **(functions or {})}
        self._scopes: list[set[str]] = [{"$", *variables}]
        # {{define}}d templates of this text, by name (a library of several files shares them)
        self.defines: dict[str, list[Any]] = {}
        self._root = self._parse(text)

    def _fail(self, line: int, problem: str) -> TemplateError:
        return TemplateError(f"template: {self.name}:{line}: {problem}")

    def _parse(self, text: str) -> _Block:
        root = _Block("root")
        stack = [root]
        pos = 0
        trim_next = False
        for found in _ACTION.finditer(text):
            before = text[pos : found.start()]
            if trim_next:
                before = before.lstrip()
            if found.group(1):
                before = before.rstrip()
            if before:
                self._add(stack, before)
            trim_next = bool(found.group(3))
            pos = found.end()
            line = text.count("\n", 0, found.start()) + 1
            body = found.group(2).strip()
            if _COMMENT.fullmatch(body):
                continue
            self._action(stack, body, line)
        rest = text[pos:]
        if trim_next:
            rest = rest.lstrip()
        if "{{" in rest:
            raise self._fail(text.count("\n") + 1, "unclosed action")
        if rest:
            self._add(stack, rest)
        if len(stack) > 1:
            raise self._fail(text.count("\n") + 1, f"unexpected EOF in {stack[-1].kind}")
        return root

    @staticmethod
    def _add(stack: list[_Block], node: Any) -> None:
        block = stack[-1]
        (block.otherwise if block.in_else else block.body).append(node)

    def _action(self, stack: list[_Block], body: str, line: int) -> None:
        tokens = _tokens(body, lambda problem: self._fail(line, problem))
        if not tokens:
            raise self._fail(line, "missing value for command")
        head = tokens[0]
        word = head.text if head.kind == "ident" else ""
        if word in ("if", "with", "range"):
            self._scopes.append(set())
            block = _Block(
                word, self._pipe(tokens[1:], line, allow_declare=True, loop=word == "range")
            )
            self._add(stack, block)
            stack.append(block)
        elif word == "else":
            block = stack[-1]
            if block.kind == "root" or block.in_else:
                raise self._fail(line, "unexpected {{else}}")
            block.in_else = True
            self._scopes[-1] = set()
            if len(tokens) > 1 and tokens[1].kind == "ident" and tokens[1].text in ("if", "with"):
                # {{else if x}}: an if nested in the else branch, closed by the same {{end}}
                nested = _Block(tokens[1].text, self._pipe(tokens[2:], line, allow_declare=True))
                nested.kind = tokens[1].text + "-chained"
                self._add(stack, nested)
                stack.append(nested)
        elif word == "end":
            while True:
                if len(stack) == 1:
                    raise self._fail(line, "unexpected {{end}}")
                block = stack.pop()
                self._scopes.pop()
                if block.kind == "define":
                    self.defines[block.name] = block.body
                if not block.kind.endswith("-chained"):
                    break
        elif word in ("break", "continue"):
            if not any(b.kind == "range" for b in stack):
                raise self._fail(line, f"{{{{{word}}}}} outside {{{{range}}}}")
            self._add(stack, _Jump(word))
        elif word in ("define", "template", "block"):
            if len(tokens) < 2 or tokens[1].kind not in ("string", "raw"):
                raise self._fail(line, f"{word} name must be a string")
            quoted = tokens[1].text
            name = json.loads(quoted) if tokens[1].kind == "string" else quoted[1:-1]
            pipe = self._pipe(tokens[2:], line, allow_declare=False) if len(tokens) > 2 else None
            if word in ("template", "block"):
                self._add(stack, _Include(name, pipe, line))
            if word in ("define", "block"):
                if word == "define" and pipe is not None:
                    raise self._fail(line, "unexpected arguments in define clause")
                if len(stack) > 1 and word == "define":
                    raise self._fail(line, "unexpected <define> in command")
                self._scopes.append({"$"})
                block = _Block("define", name=name)
                stack.append(block)
        else:
            self._add(stack, self._pipe(tokens, line, allow_declare=True))

    def _pipe(
        self, tokens: list[_Tok], line: int, allow_declare: bool, loop: bool = False
    ) -> _Pipe:
        declare: list[str] = []
        assign = False
        # $x :=, $x =, or (range) $i, $e :=
        if allow_declare and tokens and tokens[0].kind == "variable":
            names = [tokens[0].text]
            rest = tokens[1:]
            if loop and len(rest) > 1 and rest[0].kind == "comma" and rest[1].kind == "variable":
                names.append(rest[1].text)
                rest = rest[2:]
            if rest and rest[0].kind in ("declare", "assign"):
                assign = rest[0].kind == "assign"
                for name in names:
                    if "." in name:
                        raise self._fail(line, f"illegal variable in declaration: {name}")
                    if assign and not any(name in scope for scope in self._scopes):
                        raise self._fail(line, f'undefined variable "{name}"')
                declare, tokens = names, rest[1:]
        pipe = _Pipe(self._commands(tokens, line), declare, assign, line)
        if declare and not assign:
            self._scopes[-1].update(declare)
        return pipe

    def _commands(self, tokens: list[_Tok], line: int) -> list[_Command]:
        commands: list[_Command] = []
        args: list[_Operand] = []
        i = 0
        while i < len(tokens):
            if tokens[i].kind == "pipe":
                if not args:
                    raise self._fail(line, "missing command")
                commands.append(_Command(args))
                args = []
                i += 1
                continue
            operand, i = self._operand(tokens, i, line)
            args.append(operand)
        if not args:
            raise self._fail(line, "missing command" if commands else "missing value for command")
        commands.append(_Command(args))
        return commands

    def _operand(self, tokens: list[_Tok], i: int, line: int) -> tuple[_Operand, int]:
        tok = tokens[i]
        kind, text = tok.kind, tok.text
        if kind == "open":
            depth, j = 1, i + 1
            while j < len(tokens) and depth:
                depth += {"open": 1, "close": -1}.get(tokens[j].kind, 0)
                j += 1
            if depth:
                raise self._fail(line, "unclosed left paren")
            inner = _Pipe(self._commands(tokens[i + 1 : j - 1], line), line=line)
            chain: tuple[str, ...] = ()
            if j < len(tokens) and tokens[j].kind == "field" and tokens[j].text != ".":
                chain = tuple(tokens[j].text.split(".")[1:])
                j += 1
            return _Operand("pipe", pipe=inner, chain=chain), j
        if kind == "close":
            raise self._fail(line, "unexpected right paren")
        if kind == "variable":
            name, *rest = text.split(".")
            if not any(name in scope for scope in self._scopes):
                raise self._fail(line, f'undefined variable "{name}"')
            return _Operand("variable", name, tuple(rest)), i + 1
        if kind == "field":
            return _Operand("field", None, tuple(p for p in text.split(".") if p)), i + 1
        if kind == "string":
            return _Operand("literal", json.loads(text.replace("\\'", "'"))), i + 1
        if kind == "raw":
            return _Operand("literal", text[1:-1]), i + 1
        if kind == "char":
            return _Operand("literal", ord(json.loads('"' + text[1:-1] + '"'))), i + 1
        if kind == "number":
            number = text.replace("_", "")
            value: Any = (
                int(number, 0)
                if re.fullmatch(r"[+-]?(0[xX][0-9a-fA-F]+|\d+)", number)
                else float(number)
            )
            return _Operand("literal", value), i + 1
        if kind == "ident":
            if text in ("true", "false"):
                return _Operand("literal", text == "true"), i + 1
            if text == "nil":
                return _Operand("literal", None), i + 1
            name, *rest = text.split(".")
            if name in _KEYWORDS:
                raise self._fail(line, f"unexpected <{name}> in command")
            if name not in self.functions and name not in _CONTEXT_FUNCTIONS:
                raise self._fail(line, f'function "{name}" not defined')
            return _Operand("ident", name, tuple(rest)), i + 1
        raise self._fail(line, f"unexpected {text!r} in operand")

    # --- running ------------------------------------------------------------------------

    def render(
        self,
        data: Any,
        variables: Mapping[str, Any],
        query: QueryFunc | None = None,
        now_s: float = 0.0,
        external_url: str = "",
        library: Library | None = None,
        escape: Callable[[str], str] | None = None,
    ) -> str:
        """The text, run with `.` = data and the prelude variables given in `variables`;
        `{{template}}` finds names in this text's defines, then in `library`. With `escape`,
        every value printed (and the text of a named template written in Python) goes
        through it, as html/template escapes what a template prints between tags."""
        run = _Run(self, query, now_s, external_url, library, escape)
        scopes = [{"$": data, **variables}]
        out: list[str] = []
        run.block(self._root.body, data, scopes, out)
        return "".join(out)


class Library:
    """Named templates for `{{template "name" .}}`: the {{define}}s of template files, and
    named templates written in Python (a callable of the dot, returning the text)."""

    def __init__(
        self,
        files: Sequence[Template] = (),
        builtins: Mapping[str, Callable[[Any], str]] | None = None,
    ) -> None:
        self.defines: dict[str, list[Any]] = {}
        for template in files:
            self.defines.update(template.defines)
        self.builtins = dict(builtins or {})


@dataclass
class _Run:
    template: Template
    query: QueryFunc | None
    now_s: float
    external_url: str
    library: Library | None = None
    escape: Callable[[str], str] | None = None

    def fail(self, line: int, problem: str) -> TemplateError:
        name = self.template.name
        return TemplateError(f'template: {name}:{line}: executing "{name}": {problem}')

    def block(
        self, nodes: list[Any], dot: Any, scopes: list[dict[str, Any]], out: list[str]
    ) -> None:
        for node in nodes:
            if isinstance(node, str):
                out.append(node)
            elif isinstance(node, _Pipe):
                value = self.pipe(node, dot, scopes)
                if not node.declare:
                    text = value if isinstance(value, SafeHTML) else text_of(value)
                    out.append(self.escape(text) if self.escape else text)
            elif isinstance(node, _Jump):
                raise _BreakError() if node.kind == "break" else _ContinueError()
            elif isinstance(node, _Include):
                self.include(node, dot, scopes, out)
            else:
                self.control(node, dot, scopes, out)

    def include(
        self, node: _Include, dot: Any, scopes: list[dict[str, Any]], out: list[str]
    ) -> None:
        value = self.pipe(node.pipe, dot, scopes) if node.pipe is not None else None
        body = self.template.defines.get(node.name)
        library = self.library
        if body is None and library is not None:
            body = library.defines.get(node.name)
            if body is None and node.name in library.builtins:
                # their fixed text has nothing to escape: all of what needs it is values
                text = library.builtins[node.name](value)
                out.append(self.escape(text) if self.escape else text)
                return
        if body is None:
            raise self.fail(
                node.line,
                f'template: no template "{node.name}" associated with template '
                f'"{self.template.name}"',
            )
        self.block(body, value, [{"$": value}], out)

    def control(self, node: _Block, dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
        assert node.pipe is not None
        scopes.append({})
        try:
            kind = node.kind.removesuffix("-chained")
            if kind == "range":
                self.range(node, dot, scopes, out)
                return
            value = self.pipe(node.pipe, dot, scopes)
            if truth(value):
                self.block(node.body, value if kind == "with" else dot, scopes, out)
            else:
                self.block(node.otherwise, dot, scopes, out)
        finally:
            scopes.pop()

    def range(self, node: _Block, dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
        assert node.pipe is not None
        pipe = node.pipe
        names = pipe.declare
        value = self.pipe(_Pipe(pipe.commands, line=pipe.line), dot, scopes)
        if isinstance(value, Mapping):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None:
            items = []
        else:
            raise self.fail(pipe.line, f"range can't iterate over {text_of(value)}")
        if not items:
            self.block(node.otherwise, dot, scopes, out)
            return
        for key, element in items:
            if len(names) == 1:
                scopes[-1][names[0]] = element
            elif len(names) == 2:
                scopes[-1][names[0]], scopes[-1][names[1]] = key, element
            try:
                self.block(node.body, element, scopes, out)
            except _ContinueError:
                continue
            except _BreakError:
                break

    def pipe(self, pipe: _Pipe, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        value: Any = _MISSING
        for command in pipe.commands:
            value = self.command(command, dot, scopes, value, pipe.line)
        for name in pipe.declare:
            if pipe.assign:
                for scope in reversed(scopes):
                    if name in scope:
                        scope[name] = value
                        break
            else:
                scopes[-1][name] = value
        return value

    def command(
        self, command: _Command, dot: Any, scopes: list[dict[str, Any]], piped: Any, line: int
    ) -> Any:
        first = command.args[0]
        if first.kind == "ident":
            args = [self.operand(a, dot, scopes, line) for a in command.args[1:]]
            if piped is not _MISSING:
                args.append(piped)
            result = self.call(first.value, args, line)
            return self.chain(result, first.chain, line)
        if len(command.args) > 1 or piped is not _MISSING:
            # a method given arguments: `.CommonLabels.Remove .GroupLabels.Names`
            if first.kind in ("field", "variable") and first.chain:
                args = [self.operand(a, dot, scopes, line) for a in command.args[1:]]
                if piped is not _MISSING:
                    args.append(piped)
                owner = self.operand(
                    _Operand(first.kind, first.value, first.chain[:-1]), dot, scopes, line
                )
                method = _method(owner, first.chain[-1])
                if method is not None:
                    try:
                        return method(*args)
                    except TypeError as err:
                        problem = f"wrong arguments for {first.chain[-1]}: {err}"
                        raise self.fail(line, problem) from None
            raise self.fail(line, f"can't give argument to non-function {_shown(first)}")
        return self.operand(first, dot, scopes, line)

    def operand(self, operand: _Operand, dot: Any, scopes: list[dict[str, Any]], line: int) -> Any:
        if operand.kind == "literal":
            return operand.value
        if operand.kind == "field":
            return self.chain(dot, operand.chain, line)
        if operand.kind == "variable":
            for scope in reversed(scopes):
                if operand.value in scope:
                    return self.chain(scope[operand.value], operand.chain, line)
            raise self.fail(line, f'undefined variable "{operand.value}"')  # pragma: no cover
        if operand.kind == "pipe":
            assert operand.pipe is not None
            return self.chain(self.pipe(operand.pipe, dot, scopes), operand.chain, line)
        # a function name given as an argument: Go calls it with no arguments
        return self.call(operand.value, [], line)

    def chain(self, value: Any, names: tuple[str, ...], line: int) -> Any:
        for name in names:
            method = _method(value, name)
            if method is not None:
                value = method()  # a method without arguments, as Go calls one in a chain
            elif isinstance(value, LabelMap):
                value = value.get(name, "")
            elif isinstance(value, Mapping):
                value = value.get(name, NO_VALUE)
            elif isinstance(value, Sample) and name in ("Labels", "Value"):
                value = LabelMap(value.Labels) if name == "Labels" else value.Value
            elif value is None or value is NO_VALUE:
                raise self.fail(line, f"nil pointer evaluating .{name}")
            elif name in getattr(type(value), "template_fields", ()):
                value = getattr(value, name)  # a field of a data object
            else:
                raise self.fail(line, f"can't evaluate field {name} in type {type_name(value)}")
        return value

    def call(self, name: str, args: list[Any], line: int) -> Any:
        try:
            if name in _CONTEXT_FUNCTIONS:
                return _CONTEXT_FUNCTIONS[name](self, *args)
            return self.template.functions[name](*args)
        except TemplateError:
            raise
        except TypeError as err:
            raise self.fail(line, f"error calling {name}: wrong arguments: {err}") from None
        except (ValueError, IndexError, KeyError, ZeroDivisionError) as err:
            raise self.fail(line, f"error calling {name}: {err}") from None


def _method(value: Any, name: str) -> Callable[..., Any] | None:
    """An exported method of a data object (declared in its `template_methods`), as Go's
    templates call methods of the data."""
    names = getattr(type(value), "template_methods", ())
    return getattr(value, name) if name in names else None


def _shown(operand: _Operand) -> str:
    if operand.kind == "field":
        return "." + ".".join(operand.chain)
    if operand.kind == "variable":
        return ".".join((operand.value, *operand.chain))
    return str(operand.value)


def _query(run: _Run, expression: str) -> list[Sample]:
    if run.query is None:
        raise ValueError("query is not available here")
    return run.query(expression)


_CONTEXT_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "query": _query,
    "now": lambda run: run.now_s,
    "externalURL": lambda run: run.external_url,
    "pathPrefix": lambda run: urllib.parse.urlparse(run.external_url).path,
}
