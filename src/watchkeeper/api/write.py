"""POST /api/v1/write: Prometheus remote_write 1.0."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from watchkeeper.api.context import ApiContext
from watchkeeper.api.requests import BodyTooLargeError, principal, read_body, run_blocking
from watchkeeper.ingest import RemoteWriteError, WriteOutcome, remote_write

PROTOCOL = "remote_write"


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter()
    instruments = ctx.instruments

    def refuse(status: int, reason: str, message: str) -> Response:
        instruments.requests_rejected.labels(PROTOCOL, reason).inc()
        # Prometheus' own receiver answers errors as plain text; senders log the body.
        return PlainTextResponse(message + "\n", status_code=status)

    @api.post("/api/v1/write", status_code=204)
    async def write(request: Request) -> Response:
        who = principal(ctx, request, "editor")
        content_type = request.headers.get("content-type", "")
        if "io.prometheus.write.v2.Request" in content_type:
            return refuse(
                415,
                "unsupported_protocol",
                "remote_write 2.0 is not supported yet; send remote_write 1.0 "
                "(protobuf_message: prometheus.WriteRequest)",
            )
        try:
            body = await read_body(request, ctx.config.limits.max_request_body_bytes)
        except BodyTooLargeError as err:
            return refuse(400, "body_too_large", str(err))
        try:
            outcome: WriteOutcome = await run_blocking(
                remote_write, ctx.remote_write, ctx.store, who.tenant, body
            )
        except RemoteWriteError as err:
            reason = str(err).split(":", 1)[0].split(" (", 1)[0]
            return refuse(400, reason, str(err))
        instruments.samples_ingested.labels(PROTOCOL).inc(outcome.appended)
        for reason, count in outcome.rejected.items():
            instruments.samples_rejected.labels(PROTOCOL, reason).inc(count)
        if not outcome.ok:
            instruments.requests_rejected.labels(PROTOCOL, "invalid_samples").inc()
            return PlainTextResponse(outcome.message + "\n", status_code=400)
        return Response(status_code=204)

    return api
