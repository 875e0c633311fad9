"""PromQL conformance: every eval of the upstream promqltest files, one test per `file:line`.

Cases in `core`, `duration_expr` and `native_histograms` (cases.tsv) must pass, except those
listed in `conformance_not_yet.tsv`, which must fail (xfail strict). Other categories are
skipped with the category as the reason. For a per-file summary while developing the engine, run
`.venv/bin/python -m tests.promql.report`.
"""

from __future__ import annotations

import pytest

from tests.promql import conformance
from tests.promql.promqltest import ScriptError


def _marks(case_id: str) -> list[pytest.MarkDecorator]:
    category = conformance.category(case_id)
    if category is not None and category not in conformance.RUN_CATEGORIES:
        return [pytest.mark.skip(reason=category)]
    reason = conformance.not_yet().get(case_id)
    if reason is not None:
        return [
            pytest.mark.xfail(
                strict=True,
                reason=f"not yet: {reason} (if it passes, remove it from conformance_not_yet.tsv)",
            )
        ]
    return []


def _params() -> list[object]:
    """One parameter per eval; a file that does not parse gives one failing `file:script`."""
    names = conformance.testdata_files()
    if not names:
        return [pytest.param(None, id="testdata-missing")]
    params: list[object] = []
    for name in names:
        try:
            cases = conformance.load_file(name)
        except ScriptError:
            params.append(pytest.param(f"{name}:script", id=f"{name}:script"))
            continue
        params += [pytest.param(c.id, id=c.id, marks=_marks(c.id)) for c in cases]
    return params


@pytest.fixture(autouse=True)
def _a_few_cells_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server works on big inputs a piece at a time: aggregations a few steps at a time
    (AGGREGATION_CELLS, 128 Ki cells) and, past FOLD_CELLS (64 Ki), batch by batch; selectors
    search their samples and range functions compute a few series at a time (SEARCH_CELLS,
    64 Ki cells; FUNCTION_CELLS, 8 Ki); window reductions gather a few samples at a time
    (GATHER_CHUNK, 64 Ki). With 3, every range case aggregates in several column chunks and
    batch by batch, and every selector and range function with more than one series works in
    several row chunks."""
    from watchkeeper.promql import aggregations, evaluator, range_functions  # noqa: PLC0415

    monkeypatch.setattr(aggregations, "AGGREGATION_CELLS", 3)
    monkeypatch.setattr(aggregations, "FOLD_CELLS", 3)
    monkeypatch.setattr(evaluator, "SEARCH_CELLS", 3)
    monkeypatch.setattr(range_functions, "FUNCTION_CELLS", 3)
    monkeypatch.setattr(range_functions, "GATHER_CHUNK", 3)


@pytest.mark.parametrize("case_id", _params())
def test_conformance(case_id: str | None) -> None:
    if case_id is None:
        pytest.skip(f"conformance testdata not found at {conformance.TESTDATA}")
    if case_id.endswith(":script"):
        name = case_id.rpartition(":")[0]
        try:
            conformance.load_file(name)
        except ScriptError as err:
            pytest.fail(f"{name} does not parse as a promqltest script: {err}", pytrace=False)
    if conformance.classification() and conformance.category(case_id) is None:
        pytest.fail(f"{case_id} is not in cases.tsv: testdata and cases.tsv are out of sync")

    # Lazy: collection (and the parser tests) must not depend on the engine package.
    from tests.promql.runner import run_case  # noqa: PLC0415

    outcome = run_case(conformance.engine(), conformance.find_case(case_id))
    if not outcome.passed:
        pytest.fail(outcome.report(), pytrace=False)


def test_not_yet_list_is_valid() -> None:
    """Every not-yet entry names a real case of a category we run, so none is silently moot."""
    entries = conformance.not_yet()
    if not conformance.classification():
        pytest.skip(f"cases.tsv not found at {conformance.CASES_TSV}")
    problems = []
    for case_id in entries:
        category = conformance.category(case_id)
        if category is None:
            problems.append(f"{case_id}: no such case in cases.tsv")
        elif category not in conformance.RUN_CATEGORIES:
            problems.append(f"{case_id}: category {category} is skipped anyway; drop the entry")
    assert not problems, "conformance_not_yet.tsv:\n" + "\n".join(problems)
