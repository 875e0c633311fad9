"""What a query hands back: a vector, matrix, scalar or string, and its annotations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from watchkeeper.model import Labels
from watchkeeper.model.histogram import FloatHistogram


class Series(NamedTuple):
    """One series of a result: float points, and native histogram points (time,
    histogram). In a vector it has exactly one point (the evaluation time) of either kind.
    A tuple, not a frozen dataclass: an answer of many series builds one each, and a frozen
    dataclass takes twice as long to make."""

    labels: Labels
    timestamps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    histograms: tuple[tuple[int, FloatHistogram], ...] = ()


@dataclass
class Annotations:
    """Prometheus' warnings and infos, as the API returns them: `PromQL warning: ... (1:25)`."""

    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def info(self, text: str) -> None:
        if text not in self.infos:
            self.infos.append(text)


@dataclass
class QueryResult:
    """`result_type` is `vector`, `matrix`, `scalar` or `string`. Vectors and matrices are in
    `series` (a vector keeps the order the query produced, so `sort` and `topk` show; a matrix is
    sorted by labels); a scalar's value is `scalar`, a string's is `string`, both at `time_ms`."""

    result_type: str
    series: list[Series] = field(default_factory=list)
    scalar: float = 0.0
    string: str = ""
    time_ms: int = 0
    annotations: Annotations = field(default_factory=Annotations)
    # samples the query loaded and touched, for the API's stats and the max-samples limit
    samples_loaded: int = 0
