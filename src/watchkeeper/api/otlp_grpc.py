"""OTLP/gRPC metrics: `opentelemetry.proto.collector.metrics.v1.MetricsService/Export`, on its
own port (`otlp.grpc_listen`, 4317 by default, as OTLP says).

The same tokens and tenants as HTTP: `authorization: Bearer TOKEN` and `x-scope-orgid` in the
call's metadata. The request arrives as bytes and goes through the same decoder as OTLP/HTTP;
problems map to gRPC status codes (INVALID_ARGUMENT for unusable data, RESOURCE_EXHAUSTED for
an oversized message, UNAUTHENTICATED and PERMISSION_DENIED for auth).
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from watchkeeper.api.auth import AuthError
from watchkeeper.api.context import ApiContext
from watchkeeper.ingest import OtlpError, OtlpFormat, otlp_metrics

SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
PROTOCOL = "otlp_grpc"


class OtlpGrpcServer:
    def __init__(self, ctx: ApiContext, listen: str) -> None:
        self.ctx = ctx
        self.listen = listen
        limit = ctx.config.limits.max_decompressed_body_bytes
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
                # gRPC shares a port with other processes by default: a second server would
                # then get half of the first one's calls instead of failing to start
                ("grpc.so_reuseport", 0),
            ]
        )
        handler: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(
            self._export,
            request_deserializer=None,  # the raw bytes, for our own decoder
            response_serializer=metrics_service_pb2.ExportMetricsServiceResponse.SerializeToString,
        )
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),)
        )
        self.port = self.server.add_insecure_port(listen)

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop(grace=5)

    async def _export(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        ctx = self.ctx
        metadata = {
            key: value if isinstance(value, str) else value.decode(errors="replace")
            for key, value in context.invocation_metadata() or ()
        }
        try:
            who = ctx.auth.authenticate(
                metadata.get("authorization"), metadata.get("x-scope-orgid"), "editor"
            )
        except AuthError as err:
            code = (
                grpc.StatusCode.UNAUTHENTICATED
                if err.status == 401
                else grpc.StatusCode.PERMISSION_DENIED
                if err.status == 403
                else grpc.StatusCode.INVALID_ARGUMENT
            )
            await context.abort(code, err.message)
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(
                None, otlp_metrics, ctx.otlp, ctx.store, who.tenant, request, OtlpFormat.PROTOBUF
            )
        except OtlpError as err:
            ctx.instruments.requests_rejected.labels(PROTOCOL, "bad_request").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        ctx.instruments.samples_ingested.labels(PROTOCOL).inc(outcome.appended)
        for reason, count in outcome.rejected.items():
            ctx.instruments.samples_rejected.labels(PROTOCOL, reason).inc(count)
        response = metrics_service_pb2.ExportMetricsServiceResponse()
        if outcome.rejected_points or outcome.message:
            response.partial_success.rejected_data_points = outcome.rejected_points
            response.partial_success.error_message = outcome.message
        return response
