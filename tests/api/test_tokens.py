"""Tokens: only hashes are stored; revoked and expired tokens stop working; the CLI mints them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from qorgau.cli import main
from store.auth import Role, create_token, resolve_token, revoke_token, token_digest
from store.catalog import InvalidInputError
from store.connection import connect_async
from tests.api.conftest import Api, make_tenant
from tests.support import rows

pytestmark = [pytest.mark.anyio, pytest.mark.services]


async def test_only_the_hash_is_stored(pg_url: str, schema: str) -> None:
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        token, info = await create_token(conn, name="t", role=Role.ADMIN)
        assert token.startswith("qg_")
        assert len(token) > 40
        stored = rows(pg_url, schema, "SELECT token_sha256 FROM api_tokens")
        assert [bytes(r[0]) for r in stored] == [token_digest(token)]
        dump = str(rows(pg_url, schema, "SELECT * FROM api_tokens"))
        assert token not in dump
        assert (await resolve_token(conn, token)) == info
        assert await revoke_token(conn, info.id)
        assert await resolve_token(conn, token) is None


async def test_expired_token_is_refused(pg_url: str, schema: str) -> None:
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        token, _ = await create_token(
            conn, name="t", role=Role.SCORING, expires_at=datetime.now(UTC) - timedelta(seconds=1)
        )
        assert await resolve_token(conn, token) is None


async def test_role_needs_its_tenant(pg_url: str, schema: str) -> None:
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        with pytest.raises(InvalidInputError, match="enterprise"):
            await create_token(conn, name="t", role=Role.SAFETY_OFFICER)
        with pytest.raises(InvalidInputError, match="region"):
            await create_token(conn, name="t", role=Role.INSPECTOR)


async def test_cli_creates_a_working_token(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant = await make_tenant(api, "ent-a", "Almaty")
    monkeypatch.setenv("QORGAU_DATABASE_URL", api.pg_url)
    monkeypatch.setenv("QORGAU_DATABASE_SCHEMA", api.schema)
    import asyncio

    code = await asyncio.to_thread(
        main, ["tokens", "create", "--role", "safety_officer", "--enterprise", "ent-a"]
    )
    assert code == 0
    token = capsys.readouterr().out.strip()
    me = await api.ok("GET", "/api/v1/me", token)
    assert me["enterprise_id"] == tenant.enterprise["id"]
    bad = await asyncio.to_thread(
        main, ["tokens", "create", "--role", "safety_officer", "--enterprise", "nope"]
    )
    assert bad == 1
    assert "no enterprise" in capsys.readouterr().err
