"""Docs stay true: generated sections are current, every route and setting is documented."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from typing import Any

from watchkeeper.app import Watchkeeper
from watchkeeper.config import load_config

REPO = Path(__file__).resolve().parent.parent


def _gen_docs():  # scripts/ is not a package; load the generator by path
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "scripts" / "gen_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_sections_are_current() -> None:
    for path, text in _gen_docs().render().items():
        assert path.read_text() == text, f"{path.name} is stale: run `make docs`"


def _paths(routes: list[Any]) -> list[str]:
    """Route paths, looking inside included routers (FastAPI wraps them)."""
    found = []
    for route in routes:
        if hasattr(route, "path"):
            found.append(route.path)
        inner = getattr(route, "original_router", None) or getattr(route, "router", None)
        if inner is not None and hasattr(inner, "routes"):
            found += _paths(inner.routes)
    return found


def test_every_route_is_in_the_api_docs(tmp_path: Path) -> None:
    app = Watchkeeper(load_config(environ={}, overrides={"data_dir": str(tmp_path)}))
    api_doc = (REPO / "docs" / "api.md").read_text()
    routes = set(_paths(app.api.routes))
    assert routes
    missing = [route for route in sorted(routes) if f"`{route}`" not in api_doc]
    assert not missing, f"routes missing from docs/api.md: {missing}"


def test_every_dependency_is_explained() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps_doc = (REPO / "docs" / "dependencies.md").read_text().lower()
    specs = project["dependencies"] + project["optional-dependencies"]["test"]
    names = [re.match(r"[A-Za-z0-9_.\-]+", spec).group(0) for spec in specs]  # type: ignore[union-attr]
    missing = [name for name in names if f"`{name.lower()}`" not in deps_doc]
    assert not missing, f"dependencies missing from docs/dependencies.md: {missing}"


def test_readme_starts_with_the_two_commands() -> None:
    head = "\n".join((REPO / "README.md").read_text().splitlines()[:40])
    assert "make serve" in head and "make test" in head
