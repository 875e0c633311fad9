"""PromQL: parsing (through the promql-parser package) and evaluation, as Prometheus 3.x does.

It owns the engine (engine.py: a query's run, limits and result; evaluator.py: the tree over
all steps at once), the operators (aggregations.py with grouping.py and selections.py,
binops.py with histogram_operators.py; trim_operators.py for `</` and `>/`, which the parser
lacks), the functions (functions.py; range_calls.py and range_functions.py for range
vectors; native_histograms.py and histogram_windows.py for native histograms), the queue of
queries (gate.py), the queriers reading the store (querier.py), and turning series selectors
(the `match[]` parameters of the Prometheus API) into model matchers (selectors.py). Must not
import the HTTP layer.
"""

from watchkeeper.promql.ast_json import format_query, parse_query
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
    "format_query",
    "parse_query",
    "parse_series_selector",
    "query_selectors",
]
