"""OTLP/HTTP metrics: `POST /v1/metrics`, binary protobuf or JSON, optionally gzip.

As the OTLP specification says: the answer has the request's Content-Type; 200 with
`partialSuccess` (rejected data points and why) when only some points were refused, 400 with a
`google.rpc.Status` when the request as a whole is unusable, 413 when it is too large, 415 for
another Content-Type.
"""

from __future__ import annotations

import zlib

from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from watchkeeper.api.context import ApiContext
from watchkeeper.api.requests import BodyTooLargeError, principal, read_body, run_blocking
from watchkeeper.ingest import OtlpError, OtlpFormat, OtlpOutcome, otlp_metrics

PROTOCOL = "otlp"
_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"


class _TooLargeError(Exception):
    pass


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter()
    instruments = ctx.instruments
    limits = ctx.config.limits

    def answer(fmt: OtlpFormat, status: int, message: Message) -> Response:
        if fmt is OtlpFormat.JSON:
            body = json_format.MessageToJson(message, indent=None).encode()
            return Response(body, status_code=status, media_type=_JSON)
        return Response(message.SerializeToString(), status_code=status, media_type=_PROTOBUF)

    def refuse(fmt: OtlpFormat, status: int, reason: str, message: str) -> Response:
        instruments.requests_rejected.labels(PROTOCOL, reason).inc()
        return answer(fmt, status, status_pb2.Status(code=3, message=message))

    @api.post("/v1/metrics")
    async def metrics(request: Request) -> Response:
        who = principal(ctx, request, "editor")
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media == _JSON:
            fmt = OtlpFormat.JSON
        elif media == _PROTOBUF:
            fmt = OtlpFormat.PROTOBUF
        else:
            return refuse(
                OtlpFormat.PROTOBUF,
                415,
                "unsupported_media_type",
                f'Content-Type "{media}" is not OTLP: send application/x-protobuf or '
                "application/json",
            )
        try:
            body = await read_body(request, limits.max_request_body_bytes)
            encoding = request.headers.get("content-encoding", "").lower()
            if encoding == "gzip":
                body = _gunzip(body, limits.max_decompressed_body_bytes)
            elif encoding not in ("", "identity"):
                return refuse(
                    fmt, 415, "unsupported_encoding", f'Content-Encoding "{encoding}" is not gzip'
                )
        except (BodyTooLargeError, _TooLargeError) as err:
            return refuse(fmt, 413, "body_too_large", str(err))
        except zlib.error as err:
            return refuse(fmt, 400, "bad_gzip", f"the body is not valid gzip: {err}")
        try:
            outcome: OtlpOutcome = await run_blocking(
                otlp_metrics, ctx.otlp, ctx.store, who.tenant, body, fmt
            )
        except OtlpError as err:
            return refuse(fmt, 400, "bad_request", str(err))
        instruments.samples_ingested.labels(PROTOCOL).inc(outcome.appended)
        for reason, count in outcome.rejected.items():
            instruments.samples_rejected.labels(PROTOCOL, reason).inc(count)
        response = metrics_service_pb2.ExportMetricsServiceResponse()
        if outcome.rejected_points or outcome.message:
            response.partial_success.rejected_data_points = outcome.rejected_points
            response.partial_success.error_message = outcome.message
        return answer(fmt, 200, response)

    return api


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=31)  # gzip header and trailer
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise _TooLargeError(
            f"limit limits.max_decompressed_body_bytes ({limit}) exceeded once decompressed"
        )
    if not inflater.eof:
        raise zlib.error("the gzip stream ends early")
    return out
