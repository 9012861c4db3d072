"""The assessment service against a real PostgreSQL: statuses follow the clock, a changed
schedule moves the stored shifts, a second service waits as a standby, a rebuild replaces what is
stored, and nothing is lost when a pass fails."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from analytics import load_norms
from application.assessment_service import (
    AssessmentService,
    PassResult,
    rebuild,
    rebuild_in_processes,
)
from application.settings import AssessmentSettings
from store.connection import connect_async
from store.readings import ReadingBlock, ensure_partitions
from store.shift_assessments import try_leader_lock
from tests.api.conftest import Api, make_tenant
from tests.support import rows, scalar, write_as_ingest

pytestmark = [pytest.mark.anyio, pytest.mark.services]

START = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)  # 08:00 in Asia/Almaty, the default shift


async def write(api: Api, sensor_id: int, start: datetime, hours: float, level: float) -> None:
    data = [(start + timedelta(seconds=10 * i), sensor_id, level) for i in range(int(hours * 360))]
    async with await connect_async(api.pg_url, api.schema, autocommit=True) as conn:
        await ensure_partitions(conn, data[0][0], data[-1][0])
        async with conn.transaction():
            await write_as_ingest(conn, ReadingBlock.from_rows(data))


def service(api: Api, now: datetime) -> AssessmentService:
    settings = AssessmentSettings(database_url=api.pg_url, database_schema=api.schema)
    return AssessmentService(settings, load_norms("default"), clock=lambda: now)


async def one_pass(api: Api, svc: AssessmentService) -> Any:
    async with await connect_async(api.pg_url, api.schema, autocommit=True) as conn:
        return await svc.pass_once(conn)


def stored(api: Api) -> list[tuple[Any, ...]]:
    return rows(
        api.pg_url, api.schema, "SELECT shift_start, status, b FROM shift_assessments ORDER BY 1"
    )


async def test_status_follows_the_clock_and_unchanged_shifts_are_not_rewritten(api: Api) -> None:
    tenant = await make_tenant(api, "ent-a", "Almaty")
    await write(api, tenant.sensor["id"], START, 4, 90.0)
    during = await one_pass(api, service(api, START + timedelta(hours=4)))
    assert (during.changes, during.shifts_written) == (1, 1)
    assert stored(api) == [(START, "running", 3)]
    # Nothing new: the ended shift only changes status, and is not assessed again.
    after = await one_pass(api, service(api, START + timedelta(hours=9)))
    assert (after.changes, after.shifts_written, after.settled) == (0, 0, 1)
    assert stored(api)[0][1] == "provisional"
    late = await one_pass(api, service(api, START + timedelta(days=29)))
    assert late.settled == 1
    assert stored(api)[0][1] == "final"
    assert scalar(api.pg_url, api.schema, "SELECT count(*) FROM assessment_changes") == 0


async def test_a_changed_schedule_moves_the_stored_shifts(api: Api) -> None:
    tenant = await make_tenant(api, "ent-a", "Almaty")
    now = datetime.now(UTC).replace(microsecond=0)
    await write(api, tenant.sensor["id"], now - timedelta(hours=30), 24, 88.0)
    await api.assess()
    before = {r[0] for r in stored(api)}
    assert before
    response = await api.call(
        "PATCH",
        f"/api/v1/workplaces/{tenant.workplace['id']}",
        tenant.officer,
        json={"shift_starts": ["06:30", "18:30"], "shift_duration_s": 43200},
    )
    assert response.status_code == 200, response.text
    assert stored(api) == [], "the shifts of the old schedule are dropped"
    await api.assess()
    after = {r[0] for r in stored(api)}
    assert after
    assert not after & before
    # 06:30 and 18:30 in Almaty (UTC+5) are 01:30 and 13:30 UTC.
    assert {(s.hour, s.minute) for s in after} <= {(1, 30), (13, 30)}


async def test_a_second_service_is_a_standby(api: Api) -> None:
    settings = AssessmentSettings(database_url=api.pg_url, database_schema=api.schema)
    async with (
        await connect_async(api.pg_url, api.schema, autocommit=True) as first,
        await connect_async(api.pg_url, api.schema, autocommit=True) as second,
    ):
        assert await try_leader_lock(first)
        assert not await try_leader_lock(second)
    # The first session has ended: its lock with it.
    async with await connect_async(settings.database_url, api.schema, autocommit=True) as third:
        assert await try_leader_lock(third)


async def test_a_failed_pass_loses_no_change(api: Api) -> None:
    tenant = await make_tenant(api, "ent-a", "Almaty")
    await write(api, tenant.sensor["id"], START, 8, 90.0)
    svc = service(api, START + timedelta(days=1))
    svc.profiles.default = None  # type: ignore[assignment]  # assessing will now fail
    with pytest.raises(AttributeError):
        await one_pass(api, svc)
    assert scalar(api.pg_url, api.schema, "SELECT count(*) FROM assessment_changes") == 1
    assert stored(api) == []
    assert (await one_pass(api, service(api, START + timedelta(days=1)))).shifts_written == 1


async def test_a_rebuild_in_processes_stores_what_the_service_stored(api: Api) -> None:
    settings = AssessmentSettings(database_url=api.pg_url, database_schema=api.schema)

    def in_processes() -> tuple[int, int]:
        return rebuild_in_processes(settings, since=None, jobs=2)

    assert await anyio.to_thread.run_sync(in_processes) == (0, 0)  # no rollups yet
    tenant = await make_tenant(api, "ent-a", "Almaty")
    for day in range(3):
        await write(api, tenant.sensor["id"], START + timedelta(days=day), 8, 85.0 + 5 * day)
    await api.assess()
    first = stored(api)
    assert [r[2] for r in first] == [2, 3, 3]
    async with await connect_async(api.pg_url, api.schema, autocommit=True) as conn:
        await conn.execute("UPDATE shift_assessments SET b = 5")  # as a stale norms version
    assert await anyio.to_thread.run_sync(in_processes) == (1, 3)
    assert [(r[0], r[2]) for r in stored(api)] == [(r[0], r[2]) for r in first]


async def test_rebuild_replaces_every_stored_shift(api: Api) -> None:
    tenant = await make_tenant(api, "ent-a", "Almaty")
    for day in range(3):
        await write(api, tenant.sensor["id"], START + timedelta(days=day), 8, 85.0 + 5 * day)
    await api.assess()
    first = stored(api)
    assert [r[2] for r in first] == [2, 3, 3]
    progress: list[int] = []
    async with await connect_async(api.pg_url, api.schema, autocommit=True) as conn:
        await conn.execute("UPDATE shift_assessments SET b = 5")  # as a stale norms version
        workplaces, shifts = await rebuild(
            conn,
            load_norms("default"),
            since=START.date(),
            late_s=28 * 86_400.0,
            progress=progress.append,
        )
    assert workplaces == 1
    assert shifts == 3
    assert sum(progress) >= 3
    assert [r[2] for r in stored(api)] == [2, 3, 3]


@pytest.mark.parametrize(
    ("result", "level"),
    [
        (PassResult(changes=5, workplaces=1, shifts_assessed=1, shifts_written=1), "DEBUG"),
        (PassResult(changes=5, workplaces=1, shifts_assessed=2, settled=1), "INFO"),
        (PassResult(changes=50_000, workplaces=900, shifts_assessed=900), "INFO"),
    ],
)
def test_a_routine_pass_logs_at_debug_and_news_at_info(
    result: PassResult, level: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The shift in progress changes with every pass of a live plant: a line every few seconds
    at INFO would bury what matters (settled shifts, a backlog being worked off)."""
    svc = AssessmentService(
        AssessmentSettings(database_url="postgresql://nowhere/none", assess_batch_changes=5000),
        load_norms(),
    )
    with caplog.at_level(logging.DEBUG, logger="application.assessment_service"):
        svc._record(result)
    (record,) = caplog.records
    assert record.levelname == level
    assert f"{result.changes} change(s)" in record.getMessage()
