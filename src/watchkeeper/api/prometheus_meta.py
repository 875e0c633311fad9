"""The Prometheus metadata API: series, labels, label values, metadata, buildinfo, TSDB status."""

from __future__ import annotations

import platform
from typing import Any

from fastapi import APIRouter, Request

from watchkeeper.api.context import ApiContext
from watchkeeper.api.errors import APIError, success
from watchkeeper.api.requests import (
    api_params,
    int_param,
    matcher_sets,
    principal,
    run_blocking,
    time_range,
)
from watchkeeper.model import labels_to_dict

TRUNCATED = "results truncated due to limit"


def _limited(items: list[Any], limit: int) -> tuple[list[Any], list[str] | None]:
    if limit and len(items) > limit:
        return items[:limit], [TRUNCATED]
    return items, None


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter()
    store = ctx.store

    @api.api_route("/api/v1/series", methods=["GET", "POST"])
    async def series(request: Request) -> dict[str, Any]:
        who = principal(ctx, request, "viewer")
        params = await api_params(ctx, request)
        sets = matcher_sets(params)
        if not sets:
            raise APIError("bad_data", "no match[] parameter provided")
        start, end = time_range(params)
        limit = int_param(params, "limit", 0)
        found = await run_blocking(store.series, who.tenant, sets, start, end)
        data, warnings = _limited([labels_to_dict(labels) for labels in found], limit)
        return success(data, warnings)

    @api.api_route("/api/v1/labels", methods=["GET", "POST"])
    async def labels(request: Request) -> dict[str, Any]:
        who = principal(ctx, request, "viewer")
        params = await api_params(ctx, request)
        start, end = time_range(params)
        limit = int_param(params, "limit", 0)
        names = await run_blocking(
            store.label_names, who.tenant, matcher_sets(params) or None, start, end
        )
        data, warnings = _limited(names, limit)
        return success(data, warnings)

    @api.api_route("/api/v1/label/{name}/values", methods=["GET", "POST"])
    async def label_values(name: str, request: Request) -> dict[str, Any]:
        who = principal(ctx, request, "viewer")
        params = await api_params(ctx, request)
        if not name:
            raise APIError("bad_data", f"invalid label name: {name!r}")
        start, end = time_range(params)
        limit = int_param(params, "limit", 0)
        values = await run_blocking(
            store.label_values, who.tenant, name, matcher_sets(params) or None, start, end
        )
        data, warnings = _limited(values, limit)
        return success(data, warnings)

    @api.api_route("/api/v1/metadata", methods=["GET", "POST"])
    async def metadata(request: Request) -> dict[str, Any]:
        who = principal(ctx, request, "viewer")
        params = await api_params(ctx, request)
        limit = int_param(params, "limit", 0)
        metric = (params.get("metric") or [""])[0]
        entries = store.metadata(who.tenant)
        data: dict[str, list[dict[str, str]]] = {}
        for name in sorted(entries):
            if metric and name != metric:
                continue
            if limit and len(data) >= limit:
                break
            entry = entries[name]
            data[name] = [{"type": entry.type, "help": entry.help, "unit": entry.unit}]
        return success(data)

    @api.get("/api/v1/status/buildinfo")
    async def buildinfo(request: Request) -> dict[str, Any]:
        principal(ctx, request, "viewer")
        return success(
            {
                "version": ctx.version,
                "revision": "",
                "branch": "",
                "buildUser": "",
                "buildDate": "",
                "goVersion": f"python{platform.python_version()}",
                "application": "watchkeeper",
            }
        )

    @api.get("/api/v1/status/tsdb")
    async def tsdb(request: Request) -> dict[str, Any]:
        who = principal(ctx, request, "viewer")
        params = await api_params(ctx, request)
        limit = int_param(params, "limit", 10) or 10
        return success(await run_blocking(store.tsdb_status, who.tenant, limit))

    return api
