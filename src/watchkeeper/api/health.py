"""Liveness, readiness (no auth, as in Prometheus) and the server's own /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from watchkeeper.api.context import ApiContext
from watchkeeper.api.requests import principal


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter()

    @api.get("/-/healthy")
    async def healthy() -> PlainTextResponse:
        return PlainTextResponse("watchkeeper is Healthy.\n")

    @api.get("/-/ready")
    async def ready() -> PlainTextResponse:
        if ctx.store.wal.failed is not None:
            return PlainTextResponse("watchkeeper is not ready: WAL failed.\n", status_code=503)
        return PlainTextResponse("watchkeeper is Ready.\n")

    @api.get("/metrics")
    async def metrics(request: Request) -> Response:
        principal(ctx, request, "viewer")
        ctx.instruments.active_series.set(ctx.store.series_count())
        return Response(generate_latest(ctx.instruments.registry), media_type=CONTENT_TYPE_LATEST)

    return api
