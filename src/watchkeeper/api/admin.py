"""Administrative endpoints (admin role, audited)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from watchkeeper.api.context import ApiContext
from watchkeeper.api.requests import principal, run_blocking


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter()

    @api.post("/api/v1/admin/tsdb/flush", status_code=204)
    async def flush(request: Request) -> Response:
        """Cut everything in the in-memory head into on-disk blocks now."""
        who = principal(ctx, request, "admin")
        blocks = await run_blocking(ctx.store.compact, True)
        remote = request.client.host if request.client else ""
        ctx.audit.record(who.name, who.tenant, "tsdb.flush", remote, f"{len(blocks)} blocks")
        return Response(status_code=204)

    return api
