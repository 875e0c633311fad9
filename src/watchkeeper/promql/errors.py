"""Errors a query can end with, carrying the Prometheus API error type they map to."""

from __future__ import annotations


class QueryError(Exception):
    """A query that cannot be answered. `kind` is the Prometheus API `errorType`:
    `bad_data` (the query is wrong), `execution` (it failed while running, including a limit
    such as query.max_samples), `timeout` or `canceled`."""

    kind = "execution"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class QueryParseError(QueryError):
    kind = "bad_data"


class QueryTimeoutError(QueryError):
    kind = "timeout"


class QueryCanceledError(QueryError):
    kind = "canceled"


def refuse_histograms(where: str) -> QueryError:
    """The error of a query that reaches native histogram samples where they are not handled
    yet: never a histogram read as a number."""
    return QueryError(
        f"native histograms are not supported in {where} yet (the native histograms section "
        "of docs/promql.md lists what handles them)"
    )
