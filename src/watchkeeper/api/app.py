"""Assembles the FastAPI application from the routers, with error mapping and timing."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError

from watchkeeper.api import admin, export, health, prometheus_meta, query, write
from watchkeeper.api.context import ApiContext
from watchkeeper.api.errors import APIError, error_response
from watchkeeper.api.requests import BodyTooLargeError
from watchkeeper.store import WALFailedError

log = logging.getLogger(__name__)


def create_api(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="watchkeeper",
        version=ctx.version,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    for module in (health, write, query, prometheus_meta, export, admin):
        app.include_router(module.router(ctx))

    @app.exception_handler(APIError)
    async def api_error(request: Request, err: APIError) -> Response:
        return error_response(err.error_type, err.message, err.status)

    @app.exception_handler(BodyTooLargeError)
    async def body_too_large(request: Request, err: BodyTooLargeError) -> Response:
        return error_response("bad_data", str(err))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> Response:
        return error_response("bad_data", str(err))

    @app.exception_handler(WALFailedError)
    async def wal_failed(request: Request, err: WALFailedError) -> Response:
        return error_response("unavailable", f"storage unavailable: {err}")

    duration = ctx.instruments.http_duration

    @app.middleware("http")
    async def timing(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        handler = getattr(route, "path", "unmatched")
        duration.labels(handler, request.method, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response

    return app
