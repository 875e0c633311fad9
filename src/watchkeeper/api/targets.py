"""The Prometheus targets API (`/api/v1/targets`, `/api/v1/scrape_pools`,
`/api/v1/targets/metadata`) and `POST /-/reload`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from watchkeeper.api.context import ApiContext
from watchkeeper.api.errors import APIError, success
from watchkeeper.api.requests import api_params, int_param, principal
from watchkeeper.config import ConfigError
from watchkeeper.ingest.scrape import ActiveTarget, PoolStatus
from watchkeeper.model import Matcher, format_duration, labels_to_dict
from watchkeeper.promql import SelectorError, parse_series_selector

NEVER = "0001-01-01T00:00:00Z"  # Go's zero time, as Prometheus shows a target not yet scraped


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter()

    @api.get("/api/v1/targets")
    async def targets(request: Request) -> dict[str, Any]:
        principal(ctx, request, "viewer")
        state = request.query_params.get("state", "").lower()
        pool_name = request.query_params.get("scrapePool", "")
        pools = ctx.scrape.status()
        shown = [p for p in pools if not pool_name or p.job == pool_name]
        active = state in ("", "any", "active")
        dropped = state in ("", "any", "dropped")
        data: dict[str, Any] = {
            "activeTargets": [_active(p, t) for p in shown for t in p.active] if active else [],
            "droppedTargets": (
                [
                    {"discoveredLabels": labels_to_dict(d.discovered), "scrapePool": p.job}
                    for p in shown
                    for d in p.dropped
                ]
                if dropped
                else []
            ),
            "droppedTargetCounts": (
                {p.job: len(p.dropped) for p in pools} if active or dropped else None
            ),
        }
        return success(data)

    @api.get("/api/v1/scrape_pools")
    async def scrape_pools(request: Request) -> dict[str, Any]:
        principal(ctx, request, "viewer")
        return success({"scrapePools": [pool.job for pool in ctx.scrape.status()]})

    @api.get("/api/v1/targets/metadata")
    async def targets_metadata(request: Request) -> dict[str, Any]:
        principal(ctx, request, "viewer")
        params = await api_params(ctx, request)
        limit = int_param(params, "limit", -1)
        metric = (params.get("metric") or [""])[0]
        selector = (params.get("match_target") or [""])[0]
        groups: list[list[Matcher]] = [[]]
        if selector:
            try:
                groups = parse_series_selector(selector)
            except SelectorError as err:
                raise APIError("bad_data", f'invalid parameter "match_target": {err}') from None
        out: list[dict[str, Any]] = []
        for loop in ctx.scrape.loops():
            labels = dict(loop.target.labels)
            if not any(all(m.matches(labels.get(m.name, "")) for m in g) for g in groups):
                continue
            for entry in loop.metadata.values():
                if metric and entry.metric != metric:
                    continue
                item: dict[str, Any] = {"target": labels}
                if not metric:
                    item["metric"] = entry.metric
                item.update(type=entry.type, help=entry.help, unit=entry.unit)
                out.append(item)
            if 0 <= limit <= len(out):
                break
        return success(out)

    async def reload(request: Request) -> Response:
        who = principal(ctx, request, "admin")
        remote = request.client.host if request.client else ""
        try:
            await ctx.reload()
        except ConfigError as err:
            ctx.audit.record(who.name, who.tenant, "config.reload", remote, "failed")
            return PlainTextResponse(f"failed to reload config: {err}\n", status_code=500)
        ctx.audit.record(who.name, who.tenant, "config.reload", remote, "ok")
        return Response(status_code=200)

    api.add_api_route("/-/reload", reload, methods=["POST", "PUT"])
    return api


def _active(pool: PoolStatus, active: ActiveTarget) -> dict[str, Any]:
    target, health = active.target, active.health
    return {
        "discoveredLabels": labels_to_dict(target.discovered),
        "labels": labels_to_dict(target.labels),
        "scrapePool": pool.job,
        "scrapeUrl": target.url,
        "globalUrl": target.url,
        "lastError": health.last_error,
        "lastScrape": _time(health.last_scrape),
        "lastScrapeDuration": health.last_duration_s,
        "health": health.health,
        "scrapeInterval": format_duration(target.interval_ms),
        "scrapeTimeout": format_duration(target.timeout_ms),
    }


def _time(when: datetime | None) -> str:
    if when is None:
        return NEVER
    # RFC 3339 with the fraction's trailing zeros left out, as Go writes times
    whole = when.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{when.microsecond:06d}".rstrip("0")
    return whole + (f".{fraction}" if fraction else "") + "Z"
