"""Plain data types shared by every layer: label sets, matchers, durations and timestamps,
and Go's texts of values (floats, times, YAML booleans) where Prometheus' and Alertmanager's
output is matched byte for byte.

Owns the Prometheus data model's rules (what a valid metric or label name is, how matchers
match). Must not import anything from other watchkeeper packages, nor do any I/O.
"""

from watchkeeper.model.batches import MetricMetadata, SeriesBatch
from watchkeeper.model.durations import format_duration, parse_duration
from watchkeeper.model.labels import (
    METRIC_NAME,
    Labels,
    NameValidation,
    format_label_set,
    format_labels,
    go_quote,
    is_valid_label_name,
    is_valid_metric_name,
    labels_from_dict,
    labels_from_key,
    labels_to_dict,
    metric_name,
    series_key,
    yaml_label_text,
)
from watchkeeper.model.matchers import Matcher, MatchOp

__all__ = [
    "METRIC_NAME",
    "Labels",
    "MatchOp",
    "Matcher",
    "MetricMetadata",
    "NameValidation",
    "SeriesBatch",
    "format_duration",
    "format_label_set",
    "format_labels",
    "go_quote",
    "is_valid_label_name",
    "is_valid_metric_name",
    "labels_from_dict",
    "labels_from_key",
    "labels_to_dict",
    "metric_name",
    "parse_duration",
    "series_key",
    "yaml_label_text",
]
