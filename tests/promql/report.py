"""Conformance summary for engine development: pass/fail per file and per category, and each
failing case with a one-line reason.

    .venv/bin/python -m tests.promql.report                  # core + duration_expr cases
    .venv/bin/python -m tests.promql.report --all            # every category
    .venv/bin/python -m tests.promql.report --file functions.test --verbose
    .venv/bin/python -m tests.promql.report --case functions.test:123   # full diff of one case

Cases in conformance_not_yet.tsv are counted apart ("not-yet"); one that passes is flagged.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict

from tests.promql import conformance
from tests.promql.promqltest import EvalCase, ScriptError
from tests.promql.runner import Outcome, run_case


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if not conformance.testdata_files():
        print(f"no testdata at {conformance.TESTDATA}", file=sys.stderr)
        return 2
    engine = conformance.engine()
    if args.case:
        return _show_case(engine, args.case)
    cases, broken = _selected_cases(args)
    started = time.perf_counter()
    outcomes = [run_case(engine, case) for case in cases]
    elapsed = time.perf_counter() - started
    _print_tables(outcomes)
    _print_failures(outcomes, args.verbose)
    _print_slowest(outcomes)
    for name, err in broken:
        print(f"\n{name}: SCRIPT ERROR (whole file fails): {err}")
    print(f"\n{len(outcomes)} cases in {elapsed:.1f}s")
    return 1 if broken or any(_unexpected(o) for o in outcomes) else 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.promql.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="run every category, not only " + " and ".join(sorted(conformance.RUN_CATEGORIES)),
    )
    parser.add_argument("--file", action="append", help="only this file (repeatable)")
    parser.add_argument("--case", help="run one case (file:line) and print its full diff")
    parser.add_argument("--verbose", "-v", action="store_true", help="full diffs of failures")
    return parser.parse_args(argv)


def _selected_cases(args: argparse.Namespace) -> tuple[list[EvalCase], list[tuple[str, str]]]:
    cases: list[EvalCase] = []
    broken: list[tuple[str, str]] = []
    for name in conformance.testdata_files():
        if args.file and name not in args.file:
            continue
        try:
            file_cases = conformance.load_file(name)
        except ScriptError as err:
            broken.append((name, str(err)))
            continue
        cases += [c for c in file_cases if args.all or _category(c) in conformance.RUN_CATEGORIES]
    return cases, broken


def _show_case(engine: object, case_id: str) -> int:
    outcome = run_case(engine, conformance.find_case(case_id))
    status = "PASS" if outcome.passed else "FAIL"
    print(f"{status} [{_category(outcome.case)}] ({outcome.seconds:.3f}s)")
    print(outcome.report() if not outcome.passed else outcome.case.command)
    return 0 if outcome.passed else 1


def _category(case: EvalCase) -> str:
    return conformance.category(case.id) or "unclassified"


def _status(outcome: Outcome) -> str:
    listed = outcome.case.id in conformance.not_yet()
    if outcome.passed:
        return "xpass" if listed else "pass"
    return "not-yet" if listed else "fail"


def _unexpected(outcome: Outcome) -> bool:
    """A failure not on the not-yet list, or a not-yet case that passes: what pytest flags."""
    return _status(outcome) in ("fail", "xpass") and _category(outcome.case) in (
        conformance.RUN_CATEGORIES | {"unclassified"}
    )


def _print_tables(outcomes: list[Outcome]) -> None:
    by_file: dict[str, Counter[str]] = defaultdict(Counter)
    by_category: dict[str, Counter[str]] = defaultdict(Counter)
    for outcome in outcomes:
        status = _status(outcome)
        by_file[outcome.case.file][status] += 1
        by_category[_category(outcome.case)][status] += 1
    _print_table("file", by_file)
    print()
    _print_table("category", by_category)


def _print_table(title: str, rows: dict[str, Counter[str]]) -> None:
    columns = ["pass", "fail", "not-yet", "xpass"]
    width = max([len(title), *map(len, rows)]) + 2
    print(f"{title:<{width}}" + "".join(f"{c:>9}" for c in columns) + f"{'total':>9}")
    total: Counter[str] = Counter()
    for name in sorted(rows):
        total.update(rows[name])
        print(
            f"{name:<{width}}"
            + "".join(f"{rows[name][c]:>9}" for c in columns)
            + f"{sum(rows[name].values()):>9}"
        )
    print(
        f"{'TOTAL':<{width}}"
        + "".join(f"{total[c]:>9}" for c in columns)
        + f"{sum(total.values()):>9}"
    )


def _print_failures(outcomes: list[Outcome], verbose: bool) -> None:
    failing = [o for o in outcomes if _status(o) in ("fail", "xpass", "not-yet")]
    if not failing:
        return
    print("\nfailing cases:")
    for outcome in failing:
        status = _status(outcome)
        tag = "" if status == "fail" else f" ({status})"
        if status == "xpass":
            line = "passes now: remove it from conformance_not_yet.tsv"
        else:
            line = outcome.summary.replace("\n", " ")
        print(f"  {outcome.case.id}{tag} [{_category(outcome.case)}] {line[:160]}")
        if verbose and not outcome.passed:
            print("    " + outcome.report().replace("\n", "\n    "))


def _print_slowest(outcomes: list[Outcome], count: int = 5) -> None:
    slowest = sorted(outcomes, key=lambda o: o.seconds, reverse=True)[:count]
    if slowest and slowest[0].seconds >= 0.5:
        print("\nslowest cases: " + ", ".join(f"{o.case.id} {o.seconds:.2f}s" for o in slowest))


if __name__ == "__main__":
    sys.exit(main())
