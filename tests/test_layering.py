"""Imports flow one way (DESIGN §2), and the web framework stays in the HTTP layer."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "watchkeeper"

# model <- store <- ingest, promql, logs, traces <- rules, analytics, security, slo <- alerting
# <- notify, incidents <- (config) <- api <- app <- cli
RANK = {
    "model": 0,
    "store": 1,
    "ingest": 2,
    "promql": 2,
    "logs": 2,
    "traces": 2,
    "rules": 3,
    "analytics": 3,
    "security": 3,
    "slo": 3,
    "alerting": 4,
    "notify": 5,
    "incidents": 5,
    "config": 6,
    "api": 7,
    "app": 8,
    "cli": 9,
    "__main__": 10,
    "__init__": 0,
}
WEB = ("fastapi", "starlette", "uvicorn")


def _area(path: Path) -> str:
    parts = path.relative_to(SRC).parts
    return parts[0] if len(parts) > 1 else path.stem


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_imports_never_go_upward() -> None:
    problems = []
    for path in SRC.rglob("*.py"):
        if path.name.endswith("_pb2.py"):
            continue
        area = _area(path)
        assert area in RANK, f"{path}: new area {area!r} needs a place in DESIGN §2 and RANK"
        for name in _imports(path):
            if not name.startswith("watchkeeper."):
                continue
            target = name.split(".")[1]
            if target == area or target == "__init__":
                continue
            if RANK[target] >= RANK[area]:
                problems.append(f"{path.relative_to(SRC)} imports {name}")
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


def test_web_framework_only_in_api_and_app() -> None:
    leaks = []
    for path in SRC.rglob("*.py"):
        if _area(path) in {"api", "app"}:
            continue
        leaks += [f"{path.relative_to(SRC)}: {n}" for n in _imports(path) if n.split(".")[0] in WEB]
    assert not leaks, leaks


def test_every_package_says_what_it_owns() -> None:
    for init in SRC.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, f"{init} needs a docstring saying what the package owns"
