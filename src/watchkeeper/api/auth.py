"""API tokens, roles and tenant selection (DESIGN §7).

A token arrives as `Authorization: Bearer <token>` or as the password of HTTP basic auth (what
Prometheus' remote_write and Grafana send). Tokens are compared by SHA-256 digest only. The
tenant is the token's own, or the `X-Scope-OrgID` header where the token allows that tenant.
With no tokens configured (allowed only on loopback), every caller is an admin of any tenant.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from watchkeeper.config import TokenConfig

TENANT_HEADER = "X-Scope-OrgID"
DEFAULT_TENANT = "default"
_ROLE_RANK = {"viewer": 0, "editor": 1, "admin": 2}
# The Cortex / Mimir / Loki tenant ID rules: safe as a directory name, at most 150 characters.
_TENANT_ID = re.compile(r"[a-zA-Z0-9!\-_.*'()]{1,150}")


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    tenant: str


def validate_tenant(tenant: str) -> str:
    if not _TENANT_ID.fullmatch(tenant) or tenant in {".", ".."}:
        raise AuthError(
            400,
            f"invalid tenant ID {tenant[:160]!r} in {TENANT_HEADER}: use 1-150 characters "
            "from a-z A-Z 0-9 ! - _ . * ' ( )",
        )
    return tenant


class Authenticator:
    def __init__(self, tokens: list[TokenConfig]) -> None:
        self._tokens = tokens
        self.enabled = bool(tokens)

    def _token_from(self, authorization: str | None) -> str | None:
        if not authorization:
            return None
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return credentials.strip()
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                return None
            return decoded.partition(":")[2]
        return None

    def authenticate(self, authorization: str | None, org_id: str | None, role: str) -> Principal:
        """The caller, if it may act with `role` on the tenant it asks for."""
        if not self.enabled:
            tenant = validate_tenant(org_id) if org_id else DEFAULT_TENANT
            return Principal("anonymous", "admin", tenant)
        token = self._token_from(authorization)
        if token is None:
            raise AuthError(401, "authentication required: send Authorization: Bearer <token>")
        digest = hashlib.sha256(token.encode()).hexdigest()
        match = next((t for t in self._tokens if hmac.compare_digest(t.sha256, digest)), None)
        if match is None:
            raise AuthError(401, "invalid API token")
        if _ROLE_RANK[match.role] < _ROLE_RANK[role]:
            raise AuthError(403, f"token {match.name!r} has role {match.role}; this needs {role}")
        tenant = match.tenant
        if org_id and org_id != match.tenant:
            validate_tenant(org_id)
            if "*" not in match.tenants and org_id not in match.tenants:
                raise AuthError(403, f"token {match.name!r} may not access tenant {org_id!r}")
            tenant = org_id
        return Principal(match.name, match.role, tenant)
