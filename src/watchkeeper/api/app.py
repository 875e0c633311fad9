"""Assembles the FastAPI application from the routers, with error mapping and timing."""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from watchkeeper.api import (
    admin,
    alertmanager,
    exemplars,
    export,
    health,
    otlp,
    prometheus_meta,
    query,
    rules,
    targets,
    write,
)
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
    modules = (
        health,
        write,
        otlp,
        query,
        exemplars,
        prometheus_meta,
        targets,
        rules,
        alertmanager,
        export,
        admin,
    )
    for module in modules:
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

    app.add_middleware(RequestTiming, duration=ctx.instruments.http_duration)
    return app


class RequestTiming:
    """Observes each HTTP request's duration by route, method and status code. Plain ASGI:
    Starlette's BaseHTTPMiddleware (`@app.middleware`) runs every request through a task group
    and a memory stream, about 0.3 ms each, a quarter of a small query's time."""

    def __init__(self, app: ASGIApp, duration: Histogram) -> None:
        self.app = app
        self.duration = duration

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped every handler

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            # the router puts the matched route into this same scope
            handler = getattr(scope.get("route"), "path", "unmatched")
            self.duration.labels(handler, scope["method"], str(status)).observe(
                time.perf_counter() - started
            )
