"""The numbers behind `/api/v1/status/tsdb`, computed from one tenant's head and index."""

from __future__ import annotations

from watchkeeper.store.ordering import INT64_MIN
from watchkeeper.store.tenant import INT64_MAX, TenantState


def _top(counts: dict[str, int], top: int) -> list[dict[str, object]]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    return [{"name": name, "value": value} for name, value in ranked]


def tsdb_status(state: TenantState | None, top: int) -> dict[str, object]:
    """Prometheus' TSDB status shape: head stats and the top-N cardinality tables."""
    if state is None:
        head = {"numSeries": 0, "numLabelPairs": 0, "chunkCount": 0, "minTime": 0, "maxTime": 0}
        return {
            "headStats": head,
            "seriesCountByMetricName": [],
            "labelValueCountByLabelName": [],
            "memoryInBytesByLabelName": [],
            "seriesCountByLabelValuePair": [],
        }
    postings = state.postings
    names = postings.names()
    by_metric = {value: len(ids) for value, ids in postings.values("__name__").items()}
    value_counts = {name: len(postings.values(name)) for name in names}
    memory = {
        name: sum(len(value.encode()) * len(ids) for value, ids in postings.values(name).items())
        for name in names
    }
    pairs = {
        f"{name}={value}": len(ids)
        for name in names
        for value, ids in postings.values(name).items()
    }
    head = {
        "numSeries": len(state.labels),
        "numLabelPairs": len(pairs),
        "chunkCount": len(state.chunks),
        "minTime": state.head_min_time if state.head_min_time != INT64_MAX else 0,
        "maxTime": state.head_max_time if state.head_max_time != INT64_MIN else 0,
    }
    return {
        "headStats": head,
        "seriesCountByMetricName": _top(by_metric, top),
        "labelValueCountByLabelName": _top(value_counts, top),
        "memoryInBytesByLabelName": _top(memory, top),
        "seriesCountByLabelValuePair": _top(pairs, top),
    }
