"""GET|POST /api/v1/export: raw samples as JSON lines, in VictoriaMetrics' export format.

One line per series: `{"metric":{...},"values":[...],"timestamps":[...]}` with millisecond
timestamps. Non-finite values are written as the strings "NaN", "+Inf" and "-Inf" so every
line stays valid JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from watchkeeper.api.context import ApiContext
from watchkeeper.api.errors import APIError
from watchkeeper.api.requests import api_params, matcher_sets, principal, run_blocking, time_range
from watchkeeper.model import labels_to_dict
from watchkeeper.store import SeriesSamples


def _value(value: float) -> str:
    if math.isfinite(value):
        return repr(value)
    if math.isnan(value):
        return '"NaN"'
    return '"+Inf"' if value > 0 else '"-Inf"'


def export_lines(found: list[SeriesSamples]) -> Iterator[bytes]:
    for series in found:
        metric = json.dumps(labels_to_dict(series.labels), ensure_ascii=False)
        values = ",".join(_value(v) for v in series.values.tolist())
        stamps = ",".join(map(str, series.timestamps.tolist()))
        line = f'{{"metric":{metric},"values":[{values}],"timestamps":[{stamps}]}}\n'
        yield line.encode()


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter()

    @api.api_route("/api/v1/export", methods=["GET", "POST"])
    async def export(request: Request) -> StreamingResponse:
        who = principal(ctx, request, "viewer")
        params = await api_params(ctx, request)
        sets = matcher_sets(params)
        if not sets:
            raise APIError("bad_data", "no match[] parameter provided")
        start, end = time_range(params)
        found = await run_blocking(ctx.store.read, who.tenant, sets, start, end)
        return StreamingResponse(export_lines(found), media_type="application/stream+json")

    return api
