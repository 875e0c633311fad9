"""PromQL: parsing (through the promql-parser package) and evaluation.

For now it owns turning series selectors (the `match[]` parameters of the Prometheus API) into
model matchers. Must not import the HTTP layer.
"""

from watchkeeper.promql.selectors import SelectorError, parse_series_selector

__all__ = ["SelectorError", "parse_series_selector"]
