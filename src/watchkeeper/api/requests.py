"""Request plumbing shared by routers: auth, bounded bodies, Prometheus API parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from watchkeeper.api.auth import TENANT_HEADER, AuthError, Principal
from watchkeeper.api.context import ApiContext
from watchkeeper.api.errors import APIError
from watchkeeper.model import Matcher
from watchkeeper.model.durations import parse_timestamp_ms
from watchkeeper.promql import SelectorError, parse_series_selector

MIN_TIME = -(2**63)
MAX_TIME = 2**63 - 1


class BodyTooLargeError(Exception):
    pass


def principal(ctx: ApiContext, request: Request, role: str) -> Principal:
    try:
        return ctx.auth.authenticate(
            request.headers.get("authorization"), request.headers.get(TENANT_HEADER), role
        )
    except AuthError as err:
        error_type = {401: "unauthorized", 403: "forbidden"}.get(err.status, "bad_data")
        raise APIError(error_type, err.message, err.status) from None


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (before reading it all) one larger than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(
            f"limit limits.max_request_body_bytes ({limit}) exceeded: body is {declared} bytes"
        )
    parts = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(
                f"limit limits.max_request_body_bytes ({limit}) exceeded: body is over the limit"
            )
        parts.append(chunk)
    return b"".join(parts)


async def api_params(ctx: ApiContext, request: Request) -> dict[str, list[str]]:
    """Form (for POST) and query-string parameters, as Prometheus reads them: Go's
    Request.Form lists a POST body's values first, so they win over the URL's."""
    params: dict[str, list[str]] = {}
    if request.method == "POST":
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            body = await read_body(request, ctx.config.limits.max_request_body_bytes)
            for key, value in parse_qsl(body.decode(errors="replace"), keep_blank_values=True):
                params.setdefault(key, []).append(value)
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    return params


def time_param(params: dict[str, list[str]], name: str, default: int) -> int:
    values = params.get(name)
    if not values or values[0] == "":
        return default
    try:
        return parse_timestamp_ms(values[0])
    except ValueError as err:
        raise APIError("bad_data", f'invalid parameter "{name}": {err}') from None


def time_range(params: dict[str, list[str]]) -> tuple[int, int]:
    start = time_param(params, "start", MIN_TIME)
    end = time_param(params, "end", MAX_TIME)
    if end < start:
        raise APIError("bad_data", "end timestamp must not be before start time")
    return start, end


def int_param(params: dict[str, list[str]], name: str, default: int) -> int:
    values = params.get(name)
    if not values or values[0] == "":
        return default
    try:
        value = int(values[0])
    except ValueError:
        raise APIError("bad_data", f'invalid parameter "{name}": not an integer') from None
    if value < 0:
        raise APIError("bad_data", f'invalid parameter "{name}": must not be negative')
    return value


def matcher_sets(params: dict[str, list[str]]) -> list[list[Matcher]]:
    sets: list[list[Matcher]] = []
    for text in params.get("match[]", []):
        try:
            sets.extend(parse_series_selector(text))
        except SelectorError as err:
            raise APIError("bad_data", f'invalid parameter "match[]": {err}') from None
    return sets


async def run_blocking(func: Callable[..., Any], *args: Any) -> Any:
    """Run CPU or disk work off the event loop."""
    return await run_in_threadpool(func, *args)
