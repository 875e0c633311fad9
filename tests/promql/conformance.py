"""Where the conformance files live and which cases we run: shared by the pytest module and
the report script.

* `../shared/conformance/promql/testdata/*.test`: the upstream scripts (FORMAT.md).
* `../shared/conformance/promql/cases.tsv`: one row per eval with its category; we run the
  `core`, `duration_expr` and `native_histograms` categories and skip the rest (those needing
  an experimental feature flag), with the category as the reason.
* `tests/promql/conformance_not_yet.tsv`: the reviewed list of cases the engine does not pass
  yet, each with its reason; all are native-histogram cases (110 use the histogram trim
  operators `</` and `>/`, which promql-parser cannot parse). They are expected to fail
  (strictly: one that passes must be removed from the list).
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.promql.promqltest import EvalCase, parse_script

REPO = Path(__file__).resolve().parents[2]
CONFORMANCE_DIR = REPO.parent / "shared" / "conformance" / "promql"
TESTDATA = CONFORMANCE_DIR / "testdata"
CASES_TSV = CONFORMANCE_DIR / "cases.tsv"
NOT_YET_TSV = Path(__file__).with_name("conformance_not_yet.tsv")
RUN_CATEGORIES = frozenset({"core", "duration_expr", "native_histograms"})


@dataclass(frozen=True)
class CaseInfo:
    """One row of cases.tsv."""

    id: str
    kind: str
    category: str
    flags: str
    asserts: frozenset[str]
    expr: str


def testdata_files() -> list[str]:
    """The `.test` files as paths relative to testdata, sorted; empty if testdata is absent."""
    if not TESTDATA.is_dir():
        return []
    return sorted(p.relative_to(TESTDATA).as_posix() for p in TESTDATA.rglob("*.test"))


@functools.cache
def load_file(name: str) -> list[EvalCase]:
    """The evals of one file (parsed once per process). Raises ScriptError if malformed."""
    return parse_script((TESTDATA / name).read_text(encoding="utf-8"), name)


def find_case(case_id: str) -> EvalCase:
    name, _, line = case_id.rpartition(":")
    for case in load_file(name):  # a malformed file raises its ScriptError here
        if str(case.line) == line:
            return case
    raise LookupError(f"no eval at {case_id}")


@functools.cache
def classification() -> dict[str, CaseInfo]:
    """cases.tsv by case id; empty if the file is absent."""
    if not CASES_TSV.is_file():
        return {}
    rows: dict[str, CaseInfo] = {}
    with CASES_TSV.open(encoding="utf-8", newline="") as handle:
        # No quoting: fields never contain tabs, but expressions do contain quote characters.
        for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            case_id = f"{row['file']}:{row['line']}"
            asserts = frozenset() if row["asserts"] == "-" else frozenset(row["asserts"].split(","))
            rows[case_id] = CaseInfo(
                case_id, row["kind"], row["category"], row["flags"], asserts, row["expr"]
            )
    return rows


@functools.cache
def not_yet() -> dict[str, str]:
    """conformance_not_yet.tsv: case id -> reason."""
    entries: dict[str, str] = {}
    with NOT_YET_TSV.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), 1):
            if number == 1 or not row or row[0].startswith("#"):
                continue  # header, blank line or comment
            if len(row) != 2 or not row[1].strip():
                raise ValueError(f"{NOT_YET_TSV.name}:{number}: want `case<TAB>reason`: {row}")
            if row[0] in entries:
                raise ValueError(f"{NOT_YET_TSV.name}:{number}: {row[0]} listed twice")
            entries[row[0]] = row[1].strip()
    return entries


def category(case_id: str) -> str | None:
    info = classification().get(case_id)
    return info.category if info else None


@functools.cache
def engine() -> Any:
    """One engine for the whole run (it holds no per-query state); imported lazily."""
    from tests.promql.runner import make_engine  # noqa: PLC0415 (keeps imports light)

    return make_engine()
