"""Prometheus-shaped error answers: `{"status":"error","errorType":...,"error":...}`."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

STATUS_BY_TYPE = {
    "bad_data": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "execution": 422,
    "canceled": 499,  # Prometheus' "client closed connection"
    "too_many_requests": 429,
    "internal": 500,
    "unavailable": 503,
    "timeout": 503,
}


class APIError(Exception):
    def __init__(self, error_type: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status or STATUS_BY_TYPE[error_type]


def error_response(error_type: str, message: str, status: int | None = None) -> JSONResponse:
    body = {"status": "error", "errorType": error_type, "error": message}
    return JSONResponse(body, status_code=status or STATUS_BY_TYPE[error_type])


def success(data: Any, warnings: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "success", "data": data}
    if warnings:
        body["warnings"] = warnings
    return body
