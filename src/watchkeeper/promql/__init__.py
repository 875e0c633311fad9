"""PromQL: parsing (through the promql-parser package) and evaluation.

For now it owns turning series selectors (the `match[]` parameters of the Prometheus API) into
model matchers. Must not import the HTTP layer.
"""

from watchkeeper.promql.ast_json import format_float, format_query, parse_query
from watchkeeper.promql.engine import Engine, EngineOptions, query_selectors
from watchkeeper.promql.errors import QueryError
from watchkeeper.promql.gate import GatedRun, QueryGate
from watchkeeper.promql.querier import StoreQuerier
from watchkeeper.promql.result import QueryResult, Series
from watchkeeper.promql.selectors import SelectorError, parse_series_selector

__all__ = [
    "Engine",
    "EngineOptions",
    "GatedRun",
    "QueryError",
    "QueryGate",
    "QueryResult",
    "SelectorError",
    "Series",
    "StoreQuerier",
    "format_float",
    "format_query",
    "parse_query",
    "parse_series_selector",
    "query_selectors",
]
