"""Regenerates the generated parts of the docs from the code: the configuration reference
(from the pydantic models' descriptions) and the CLI help. `make docs` runs it; tests fail when
the docs are stale."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from watchkeeper.cli import _parser
from watchkeeper.config import Config
from watchkeeper.model import format_duration

DOCS = Path(__file__).resolve().parent.parent / "docs"
DURATION_KEYS = {
    "retention",
    "block_duration",
    "out_of_order_time_window",
    "compaction_check_interval",
    "interval",
    "timeout",
    "lookback_delta",
    "default_subquery_step",
}


def _default(model: type[BaseModel], name: str) -> str:
    field = model.model_fields[name]
    if field.is_required():
        return "(required)"
    value: Any = field.get_default(call_default_factory=True)
    if isinstance(value, bool):
        return str(value).lower()
    if name in DURATION_KEYS and isinstance(value, int):
        return format_duration(value)
    if isinstance(value, list):
        return "[]"
    if hasattr(value, "value"):
        return str(value.value)
    return str(value)


def config_rows(
    model: type[BaseModel] = Config, prefix: str = "", in_list: bool = False
) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        key = f"{prefix}{name}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += config_rows(annotation, key + ".", in_list)
            continue
        item = get_args(annotation)[0] if get_origin(annotation) is list else None
        if isinstance(item, type) and issubclass(item, BaseModel):
            env = "WATCHKEEPER_" + key.upper().replace(".", "__")
            rows.append(f"| `{key}` | `[]` | `{env}` (YAML list) | {field.description} |")
            rows += config_rows(item, key + "[].", in_list=True)
            continue
        env = "(in the list)" if in_list else "`WATCHKEEPER_" + key.upper().replace(".", "__") + "`"
        text = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{key}` | `{_default(model, name)}` | {env} | {text} |")
    return rows


def config_reference() -> str:
    header = "| key | default | environment variable | meaning |\n| --- | --- | --- | --- |\n"
    return header + "\n".join(config_rows()) + "\n"


def cli_help() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal; docs must not depend on it
    parser = _parser()
    parts = []
    commands = [[], ["serve"], ["config", "check"], ["token", "create"]]
    for words in commands:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            parser.parse_args([*words, "--help"])
        title = " ".join(["watchkeeper", *words])
        parts.append(f"### `{title}`\n\n```text\n{out.getvalue().rstrip()}\n```\n")
    return "\n".join(parts)


def replace_section(text: str, name: str, body: str) -> str:
    pattern = re.compile(
        rf"(<!-- BEGIN GENERATED {name} -->\n).*?(<!-- END GENERATED {name} -->)", re.DOTALL
    )
    if not pattern.search(text):
        raise SystemExit(f"markers for {name} not found")
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text)


def render() -> dict[Path, str]:
    config_doc = DOCS / "configuration.md"
    cli_doc = DOCS / "cli.md"
    return {
        config_doc: replace_section(config_doc.read_text(), "CONFIG", config_reference()),
        cli_doc: replace_section(cli_doc.read_text(), "CLI", cli_help()),
    }


def main() -> int:
    for path, text in render().items():
        path.write_text(text)
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
