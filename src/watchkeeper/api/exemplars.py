"""`/api/v1/query_exemplars`: the exemplars of the series a query's selectors select."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from watchkeeper.api.context import ApiContext
from watchkeeper.api.errors import APIError, success
from watchkeeper.api.requests import api_params, principal, run_blocking, time_range
from watchkeeper.model import labels_to_dict
from watchkeeper.model.gofloat import format_f
from watchkeeper.promql import QueryError, query_selectors


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter()

    @api.api_route("/api/v1/query_exemplars", methods=["GET", "POST"])
    async def query_exemplars(request: Request) -> dict[str, Any]:
        who = principal(ctx, request, "viewer")
        params = await api_params(ctx, request)
        query = (params.get("query") or [""])[0]
        if not query:
            raise APIError("bad_data", 'invalid parameter "query": query is empty')
        start, end = time_range(params)
        try:
            matcher_sets = query_selectors(query)
        except QueryError as err:
            raise APIError("bad_data", f'invalid parameter "query": {err}') from None
        found = await run_blocking(ctx.store.exemplars, who.tenant, matcher_sets, start, end)
        return success(
            [
                {
                    "seriesLabels": labels_to_dict(series),
                    "exemplars": [
                        {
                            "labels": labels_to_dict(e.labels),
                            "value": format_f(e.value),
                            "timestamp": e.timestamp_ms / 1000,
                        }
                        for e in exemplars
                    ],
                }
                for series, exemplars in found
            ]
        )

    return api
