"""API bearer tokens: minted here, stored only as SHA-256 digests, resolved to a tenant scope.

A token is ``qg_`` + 32 random bytes (URL-safe base64). Because it carries 256 bits of entropy a
plain SHA-256 is a sufficient one-way function (there is no password to brute-force), and it
keeps the lookup a single unique-index probe per request.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from store.catalog import InvalidInputError, Scope, translate_errors

TOKEN_PREFIX = "qg_"


class Role(StrEnum):
    ADMIN = "admin"
    SAFETY_OFFICER = "safety_officer"
    INSPECTOR = "inspector"
    SCORING = "scoring"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What a token may do; never holds the token itself."""

    id: int
    name: str
    role: Role
    enterprise_id: int | None
    regions: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    # The language its holder chose (kk, ru, en); None: negotiated from Accept-Language.
    locale: str | None = None

    @property
    def scope(self) -> Scope:
        if self.role is Role.SAFETY_OFFICER:
            return Scope(enterprise_id=self.enterprise_id)
        if self.role is Role.INSPECTOR or (self.role is Role.SCORING and self.regions):
            return Scope(regions=self.regions)
        return Scope()


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _info(row: dict[str, Any]) -> TokenInfo:
    return TokenInfo(
        id=row["id"],
        name=row["name"],
        role=Role(row["role"]),
        enterprise_id=row["enterprise_id"],
        regions=tuple(row["regions"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        locale=row["locale"],
    )


_COLUMNS = sql.SQL(
    "id, name, role, enterprise_id, regions, created_at, expires_at, revoked_at, locale"
)


async def create_token(
    conn: AsyncConnection[Any],
    *,
    name: str,
    role: Role,
    enterprise_id: int | None = None,
    regions: Sequence[str] = (),
    expires_at: datetime | None = None,
) -> tuple[str, TokenInfo]:
    """Mint a token; the plain token is returned once and never stored."""
    if role is Role.SAFETY_OFFICER and enterprise_id is None:
        raise InvalidInputError("a safety_officer token needs the enterprise it belongs to")
    if role is not Role.SAFETY_OFFICER and enterprise_id is not None:
        raise InvalidInputError(f"a {role.value} token is not bound to one enterprise")
    if role is Role.INSPECTOR and not regions:
        raise InvalidInputError("an inspector token needs its jurisdiction: one or more regions")
    if role in (Role.ADMIN, Role.SAFETY_OFFICER) and regions:
        raise InvalidInputError(f"a {role.value} token takes no regions")
    token = new_token()
    cur = conn.cursor(row_factory=dict_row)
    async with translate_errors():
        await cur.execute(
            sql.SQL("""
            INSERT INTO api_tokens (token_sha256, name, role, enterprise_id, regions, expires_at)
            VALUES (%s, %s, %s, %s, %s, %s)
            RETURNING {}
            """).format(_COLUMNS),
            [token_digest(token), name, role.value, enterprise_id, list(regions), expires_at],
        )
        row = await cur.fetchone()
    assert row is not None
    return token, _info(row)


async def resolve_token(conn: AsyncConnection[Any], token: str) -> TokenInfo | None:
    """The live (not revoked, not expired) token with this value, or None."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        sql.SQL("""
        SELECT {} FROM api_tokens
        WHERE token_sha256 = %s AND revoked_at IS NULL
          AND (expires_at IS NULL OR expires_at > now())
        """).format(_COLUMNS),
        [token_digest(token)],
    )
    row = await cur.fetchone()
    return _info(row) if row else None


async def list_tokens(conn: AsyncConnection[Any]) -> list[TokenInfo]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql.SQL("SELECT {} FROM api_tokens ORDER BY id").format(_COLUMNS))
    return [_info(row) for row in await cur.fetchall()]


async def revoke_token(conn: AsyncConnection[Any], token_id: int) -> bool:
    cur = await conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL",
        [token_id],
    )
    return cur.rowcount == 1


async def set_token_locale(conn: AsyncConnection[Any], token_id: int, locale: str | None) -> None:
    """Store the language the token's holder chose (None: negotiate it per request)."""
    async with translate_errors():
        await conn.execute("UPDATE api_tokens SET locale = %s WHERE id = %s", [locale, token_id])
