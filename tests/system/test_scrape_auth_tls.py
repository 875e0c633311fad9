"""Scraping targets behind TLS and authentication, as scrape_configs describe them: tls_config
(ca_file, insecure_skip_verify), basic_auth (with a password file) and authorization (bearer),
and the request headers Prometheus sends."""

from __future__ import annotations

import base64
import http.server
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trustme

from tests.conftest import Server, free_port
from tests.system.test_scrape import wait_for

pytestmark = pytest.mark.timeout(120)
USER, PASSWORD, TOKEN = "scraper", "s3cret", "tok-123"


class SecureTarget(http.server.ThreadingHTTPServer):
    """An HTTPS target: /open for anyone, /basic and /bearer for the right credentials."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.port = free_port()
        self.seen: list[dict[str, str]] = []
        super().__init__(("127.0.0.1", self.port), _Handler)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: SecureTarget

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append(dict(self.headers.items()))
        given = self.headers.get("Authorization", "")
        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        allowed = {
            "/open": True,
            "/basic": given == basic,
            "/bearer": given == f"Bearer {TOKEN}",
        }.get(self.path, False)
        body = b"# TYPE secured gauge\nsecured 1\n" if allowed else b"no\n"
        self.send_response(200 if allowed else 401)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def scraping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, SecureTarget]]:
    root = tmp_path_factory.mktemp("tls")
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    target = SecureTarget(context)
    ca_file = root / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    password_file = root / "password"
    password_file.write_text(PASSWORD + "\n")
    address = f"127.0.0.1:{target.port}"

    def job(name: str, path: str, **extra: str) -> str:
        fields = "".join(f"\n    {key}: {value}" for key, value in extra.items())
        return (
            f"\n  - job_name: {name}\n    scheme: https\n    metrics_path: {path}{fields}"
            f"\n    static_configs: [{{targets: ['{address}']}}]"
        )

    trusted = f"{{ca_file: {ca_file}}}"
    config = "scrape:\n  interval: 1s\nscrape_configs:" + "".join(
        [
            job("tls_trusted", "/open", tls_config=trusted),
            job("tls_unknown_ca", "/open"),
            job("tls_insecure", "/open", tls_config="{insecure_skip_verify: true}"),
            job(
                "basic",
                "/basic",
                tls_config=trusted,
                basic_auth=f"{{username: {USER}, password_file: {password_file.name}}}",
            ),
            job(
                "basic_wrong",
                "/basic",
                tls_config=trusted,
                basic_auth=f"{{username: {USER}, password: nope}}",
            ),
            job(
                "bearer",
                "/bearer",
                tls_config=trusted,
                authorization=f"{{type: Bearer, credentials: {TOKEN}}}",
            ),
        ]
    )
    # the config file is written beside the password file (root/data-config.yml): the relative
    # password_file is taken from there
    server = Server(root / "data", config).start()
    yield server, target
    server.stop()
    target.shutdown()


def _health(server: Server) -> dict[str, tuple[str, str]]:
    targets = httpx.get(f"{server.url}/api/v1/targets", timeout=10).json()["data"]
    return {t["scrapePool"]: (t["health"], t["lastError"]) for t in targets["activeTargets"]}


def test_tls_and_credentials(scraping: tuple[Server, SecureTarget]) -> None:
    server, _ = scraping
    health = wait_for(
        lambda: (h := _health(server)) and all(v[0] != "unknown" for v in h.values()) and h
    )
    assert health["tls_trusted"] == ("up", "")
    assert health["tls_insecure"] == ("up", "")
    assert health["basic"] == ("up", "")
    assert health["bearer"] == ("up", "")
    assert health["tls_unknown_ca"][0] == "down"
    assert "CERTIFICATE_VERIFY_FAILED" in health["tls_unknown_ca"][1]
    assert health["basic_wrong"] == ("down", "server returned HTTP status 401 Unauthorized")


def test_the_request_prometheus_sends(scraping: tuple[Server, SecureTarget]) -> None:
    _, target = scraping
    wait_for(lambda: target.seen)
    headers = target.seen[-1]
    assert headers["Accept"] == (
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
        "application/openmetrics-text;version=0.0.1;q=0.5,"
        "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
        "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
    )
    assert headers["X-Prometheus-Scrape-Timeout-Seconds"] == "1"
    assert headers["User-Agent"].startswith("watchkeeper/")
    assert headers["Accept-Encoding"] == "gzip"
