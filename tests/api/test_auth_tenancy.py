"""Tokens, roles and tenants on the real server (DESIGN §7)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import WRITE_HEADERS, snappy_body, write_request
from watchkeeper.config import hash_token

NOW = int(time.time() * 1000)
TOKENS = {
    "writer-a": ("token-a-writer", "editor", "team-a", []),
    "reader-a": ("token-a-reader", "viewer", "team-a", []),
    "writer-b": ("token-b-writer", "editor", "team-b", []),
    "ops": ("token-ops", "admin", "team-a", ["*"]),
}


def _config() -> str:
    lines = ["auth:", "  tokens:"]
    for name, (token, role, tenant, tenants) in TOKENS.items():
        lines += [
            f"    - name: {name}",
            f"      sha256: {hash_token(token)}",
            f"      role: {role}",
            f"      tenant: {tenant}",
            f"      tenants: {tenants}",
        ]
    return "\n".join(lines) + "\n"


def _auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name][0]}"}


def _write(
    client: httpx.Client, who: str, metric: str, extra: dict[str, str] | None = None
) -> httpx.Response:
    body = snappy_body(write_request([({"__name__": metric}, [(NOW, 1.0)])]))
    return client.post(
        "/api/v1/write", content=body, headers={**WRITE_HEADERS, **_auth(who), **(extra or {})}
    )


def _names(client: httpx.Client, who: str, extra: dict[str, str] | None = None) -> list[str]:
    response = client.get("/api/v1/label/__name__/values", headers={**_auth(who), **(extra or {})})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_tenants_never_see_each_other(start_server) -> None:
    server = start_server(config=_config())
    with server.client() as client:
        assert _write(client, "writer-a", "secret_a").status_code == 204
        assert _write(client, "writer-b", "secret_b").status_code == 204
        assert _names(client, "reader-a") == ["secret_a"]
        everything = {"match[]": '{__name__=~".+"}'}
        series = client.get("/api/v1/series", params=everything, headers=_auth("writer-b")).json()
        assert series["data"] == [{"__name__": "secret_b"}]
        exported = client.get("/api/v1/export", params=everything, headers=_auth("reader-a")).text
        assert "secret_b" not in exported and "secret_a" in exported
        query = {"query": '{__name__=~"secret_.+"}', "time": NOW / 1000}
        found = client.get("/api/v1/query", params=query, headers=_auth("reader-a")).json()
        assert [s["metric"]["__name__"] for s in found["data"]["result"]] == ["secret_a"]
        # a token may not pick another tenant unless allowed
        response = client.get(
            "/api/v1/labels", headers={**_auth("reader-a"), "X-Scope-OrgID": "team-b"}
        )
        assert response.status_code == 403
        assert response.json()["errorType"] == "forbidden"
        assert _names(client, "ops", {"X-Scope-OrgID": "team-b"}) == ["secret_b"]


def test_missing_or_wrong_tokens_and_roles(start_server) -> None:
    server = start_server(config=_config())
    with server.client() as client:
        assert client.get("/-/healthy").status_code == 200
        assert client.get("/-/ready").status_code == 200
        response = client.get("/api/v1/labels")
        assert response.status_code == 401
        assert response.json() == {
            "status": "error",
            "errorType": "unauthorized",
            "error": "authentication required: send Authorization: Bearer <token>",
        }
        assert (
            client.get("/api/v1/labels", headers={"Authorization": "Bearer nope"}).status_code
            == 401
        )
        assert client.get("/metrics").status_code == 401
        for path in ("/api/v1/query", "/api/v1/query_range", "/api/v1/format_query"):
            assert client.get(path, params={"query": "1"}).status_code == 401
        response = _write(client, "reader-a", "x")
        assert response.status_code == 403 and "needs editor" in response.text
        flush = client.post("/api/v1/admin/tsdb/flush", headers=_auth("writer-a"))
        assert flush.status_code == 403
        # basic auth carries the token as the password, as Prometheus' remote_write can send it
        basic = httpx.BasicAuth("anyone", TOKENS["reader-a"][0])
        assert client.get("/api/v1/labels", auth=basic).status_code == 200
        assert client.post("/api/v1/admin/tsdb/flush", headers=_auth("ops")).status_code == 204
    audit = (server.data_dir / "audit.log").read_text()
    assert '"action": "tsdb.flush"' in audit and '"actor": "ops"' in audit


def test_tenant_header_without_auth_and_bad_tenant_ids(start_server) -> None:
    server = start_server()
    with server.client() as client:
        body = snappy_body(write_request([({"__name__": "in_x"}, [(NOW, 1.0)])]))
        headers = {**WRITE_HEADERS, "X-Scope-OrgID": "x"}
        assert client.post("/api/v1/write", content=body, headers=headers).status_code == 204
        names = client.get("/api/v1/label/__name__/values", headers={"X-Scope-OrgID": "x"}).json()
        assert names["data"] == ["in_x"]
        assert client.get("/api/v1/label/__name__/values").json()["data"] == []
        response = client.get("/api/v1/labels", headers={"X-Scope-OrgID": "../etc"})
        assert response.status_code == 400 and "invalid tenant ID" in response.json()["error"]


def test_no_tokens_off_loopback_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "watchkeeper",
            "serve",
            "--data-dir",
            str(tmp_path),
            "--listen",
            "0.0.0.0:9900",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "not a loopback address and auth.tokens is empty" in result.stderr
