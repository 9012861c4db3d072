"""Alerts in PostgreSQL: the rows the API lists, the audit log of every transition, and what the
alert engine needs at start (registry with calibration dates, workplace schedules and each
enterprise's norms profile, open alerts, recent statistics from readings and their minute
rollups)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, Final

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from store.notifications import plan_notifications
from store.readings import datetime_to_us, us_to_datetime
from store.rollups import BUCKET_US, pow10_sql
from vocabulary.protocol.alerts import AlertMessage


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One transition as it is written: the alert row's new state plus the audit entry."""

    alert_id: str
    transition: str
    state: str
    enterprise: str
    device: str
    sensor: str | None
    sensor_id: int | None
    workplace: str | None
    quantity: str | None
    substance: str | None
    kind: str
    severity: str
    value: float | None
    unit: str
    threshold: float | None
    threshold_unit: str
    time_left_s: float | None
    message: str
    opened_at: datetime
    at: datetime
    escalations: int
    actor: str | None
    comment: str | None
    reason: str | None
    source: str
    #: Acknowledged: the action taken; resolved: the cause found.
    action: str | None = None


_UPSERT = """
INSERT INTO alerts (id, enterprise, device, sensor, sensor_id, workplace, quantity, substance,
                    kind, severity, state, value, unit, threshold, threshold_unit, time_left_s,
                    message, opened_at, updated_at, escalations,
                    acknowledged_at, acknowledged_by, ack_comment,
                    resolved_at, resolved_by, resolution, ack_action, resolution_cause)
VALUES (%(alert_id)s, %(enterprise)s, %(device)s, %(sensor)s, %(sensor_id)s, %(workplace)s,
        %(quantity)s, %(substance)s, %(kind)s, %(severity)s, %(state)s, %(value)s, %(unit)s,
        %(threshold)s, %(threshold_unit)s, %(time_left_s)s, %(message)s, %(opened_at)s, %(at)s,
        %(escalations)s,
        CASE WHEN %(transition)s = 'acknowledged' THEN %(at)s END,
        CASE WHEN %(transition)s = 'acknowledged' THEN %(actor)s END,
        CASE WHEN %(transition)s = 'acknowledged' THEN %(comment)s END,
        CASE WHEN %(transition)s = 'resolved' THEN %(at)s END,
        CASE WHEN %(transition)s = 'resolved' THEN %(actor)s END,
        CASE WHEN %(transition)s = 'resolved' THEN %(reason)s END,
        CASE WHEN %(transition)s = 'acknowledged' THEN %(action)s END,
        CASE WHEN %(transition)s = 'resolved' THEN %(action)s END)
ON CONFLICT (id) DO UPDATE SET
    -- A resolved alert stays resolved: a late engine update never re-opens what a person closed.
    state = CASE WHEN alerts.state = 'resolved' THEN 'resolved'
                 WHEN EXCLUDED.state = 'open' AND alerts.state = 'acknowledged' THEN 'acknowledged'
                 ELSE EXCLUDED.state END,
    severity = CASE WHEN %(transition)s IN ('updated', 'escalated', 'opened')
                    THEN EXCLUDED.severity ELSE alerts.severity END,
    value = COALESCE(EXCLUDED.value, alerts.value),
    threshold = COALESCE(EXCLUDED.threshold, alerts.threshold),
    unit = CASE WHEN EXCLUDED.unit <> '' THEN EXCLUDED.unit ELSE alerts.unit END,
    threshold_unit = CASE WHEN EXCLUDED.threshold_unit <> '' THEN EXCLUDED.threshold_unit
                          ELSE alerts.threshold_unit END,
    time_left_s = CASE WHEN %(transition)s IN ('updated', 'opened')
                       THEN EXCLUDED.time_left_s ELSE alerts.time_left_s END,
    message = CASE WHEN %(transition)s IN ('updated', 'opened', 'escalated')
                   THEN EXCLUDED.message ELSE alerts.message END,
    updated_at = GREATEST(alerts.updated_at, EXCLUDED.updated_at),
    escalations = GREATEST(alerts.escalations, EXCLUDED.escalations),
    acknowledged_at = COALESCE(alerts.acknowledged_at, EXCLUDED.acknowledged_at),
    acknowledged_by = COALESCE(alerts.acknowledged_by, EXCLUDED.acknowledged_by),
    ack_comment = COALESCE(alerts.ack_comment, EXCLUDED.ack_comment),
    resolved_at = COALESCE(alerts.resolved_at, EXCLUDED.resolved_at),
    resolved_by = COALESCE(alerts.resolved_by, EXCLUDED.resolved_by),
    resolution = COALESCE(alerts.resolution, EXCLUDED.resolution),
    ack_action = COALESCE(alerts.ack_action, EXCLUDED.ack_action),
    resolution_cause = COALESCE(alerts.resolution_cause, EXCLUDED.resolution_cause)
"""

_AUDIT = """
INSERT INTO alert_events (alert_id, transition, state, severity, at, actor, comment, reason,
                          value, message, source, action)
VALUES (%(alert_id)s, %(transition)s, %(state)s, %(severity)s, %(at)s, %(actor)s, %(comment)s,
        %(reason)s, %(value)s, %(message)s, %(source)s, %(action)s)
"""


async def write_transitions(conn: AsyncConnection[Any], records: Sequence[AlertRecord]) -> None:
    """Apply transitions to the alert rows, append them to the audit log and queue the
    notifications they cause (``store.notifications``), in one transaction, in order."""
    params = [{k: getattr(r, k) for k in AlertRecord.__slots__} for r in records]
    async with conn.transaction():
        async with conn.cursor() as cur:
            await cur.executemany(_UPSERT, params)
            await cur.executemany(_AUDIT, params)
        await plan_notifications(conn, records)


_COLUMNS = sql.SQL(
    """id::text AS alert_id, enterprise, device, sensor, sensor_id, workplace, quantity,
    substance, kind, severity, state, value, unit, threshold, threshold_unit, time_left_s,
    message, opened_at, updated_at, escalations, acknowledged_at, acknowledged_by, ack_comment,
    resolved_at, resolved_by, resolution, ack_action, resolution_cause"""
)

SEVERITY_ORDER = ("info", "warning", "high", "critical")


def _where(conditions: Sequence[sql.Composable]) -> sql.Composable:
    """A WHERE clause of the ``conditions`` all true; nothing when there are none."""
    if not conditions:
        return sql.SQL("")
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions)


async def list_alerts(
    conn: AsyncConnection[Any],
    *,
    enterprises: Sequence[str] | None = None,
    states: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
    min_severity: str | None = None,
    sensor_id: int | None = None,
    since: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    where: list[sql.Composable] = []
    args: list[Any] = []
    if enterprises is not None:
        where.append(sql.SQL("enterprise = ANY(%s)"))
        args.append(list(enterprises))
    if states:
        where.append(sql.SQL("state = ANY(%s)"))
        args.append(list(states))
    if kinds:
        where.append(sql.SQL("kind = ANY(%s)"))
        args.append(list(kinds))
    if min_severity:
        where.append(sql.SQL("severity = ANY(%s)"))
        args.append(list(SEVERITY_ORDER[SEVERITY_ORDER.index(min_severity) :]))
    if sensor_id is not None:
        where.append(sql.SQL("sensor_id = %s"))
        args.append(sensor_id)
    if since is not None:
        where.append(sql.SQL("opened_at >= %s"))
        args.append(since)
    clause = _where(where)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        sql.SQL("SELECT {} FROM alerts {} ORDER BY opened_at DESC, id LIMIT %s OFFSET %s").format(
            _COLUMNS, clause
        ),
        [*args, limit, offset],
    )
    return list(await cur.fetchall())


async def get_alert(conn: AsyncConnection[Any], alert_id: str) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql.SQL("SELECT {} FROM alerts WHERE id = %s").format(_COLUMNS), [alert_id])
    return await cur.fetchone()


async def alert_history(conn: AsyncConnection[Any], alert_id: str) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT transition, state, severity, at, recorded_at, actor, comment, reason, value,
               message, source, action
        FROM alert_events WHERE alert_id = %s ORDER BY id
        """,
        [alert_id],
    )
    return list(await cur.fetchall())


async def open_alerts(
    conn: AsyncConnection[Any], enterprises: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Alerts not yet resolved (of ``enterprises`` only, when given)."""
    cur = conn.cursor(row_factory=dict_row)
    if enterprises is None:
        await cur.execute(
            sql.SQL("SELECT {} FROM alerts WHERE state <> 'resolved'").format(_COLUMNS)
        )
    else:
        await cur.execute(
            sql.SQL(
                "SELECT {} FROM alerts WHERE state <> 'resolved' AND enterprise = ANY(%s)"
            ).format(_COLUMNS),
            [list(enterprises)],
        )
    return list(await cur.fetchall())


async def lock_alert(conn: AsyncConnection[Any], alert_id: str) -> None:
    """Lock an alert's row until the transaction ends: the engine or another person may be
    changing it at the same moment."""
    await conn.execute("SELECT 1 FROM alerts WHERE id = %s FOR UPDATE", [alert_id])


async def settled_alerts(
    conn: AsyncConnection[Any], alert_ids: Sequence[str]
) -> list[tuple[str, str, str | None, str | None]]:
    """(id, state, acknowledged_by, resolved_by) of those of ``alert_ids`` that are no longer
    open: what people did to them, as the database recorded it."""
    cur = await conn.execute(
        "SELECT id::text, state, acknowledged_by, resolved_by FROM alerts "
        "WHERE id = ANY(%s::uuid[]) AND state <> 'open'",
        [list(alert_ids)],
    )
    return [(row[0], row[1], row[2], row[3]) for row in await cur.fetchall()]


# ------------------------------------------------------------------ engine start-up


@dataclass(frozen=True, slots=True)
class RegistrySensor:
    sensor_id: int
    code: str
    quantity: str
    unit: str
    substance: str | None
    workplace: str | None
    calibration_due: date | None
    #: The schedule of the sensor's workplace (local start times, seconds); None: no workplace.
    shift_starts: tuple[time, ...] | None = None
    shift_duration_s: int | None = None


@dataclass(frozen=True, slots=True)
class RegistryDevice:
    device_id: int
    code: str
    enterprise_id: int
    enterprise: str
    workplace: str | None
    sensors: tuple[RegistrySensor, ...]
    timezone: str = "UTC"  # the enterprise's IANA zone
    norms_profile: str | None = None  # the enterprise's; None: the service's default


async def load_registry(
    conn: AsyncConnection[Any],
    device_codes: Sequence[str] | None = None,
    *,
    enterprises: Sequence[str] | None = None,
) -> list[RegistryDevice]:
    """Devices with their sensors, enterprise and workplace codes, calibration dates, the
    sensors' workplace schedules and the enterprise's zone and norms profile (of
    ``device_codes`` and of ``enterprises`` only, when given)."""
    cur = conn.cursor(row_factory=dict_row)
    where: list[sql.Composable] = []
    args: list[Any] = []
    if device_codes is not None:
        where.append(sql.SQL("d.code = ANY(%s)"))
        args.append(list(device_codes))
    if enterprises is not None:
        where.append(sql.SQL("e.code = ANY(%s)"))
        args.append(list(enterprises))
    filter_ = _where(where)
    await cur.execute(
        sql.SQL("""
        SELECT d.id AS device_id, d.code AS device, d.enterprise_id, e.code AS enterprise,
               e.timezone, e.norms_profile,
               dw.code AS device_workplace, s.id AS sensor_id, s.code AS sensor, s.quantity,
               s.unit, s.substance, sw.code AS workplace, s.calibration_due,
               sw.shift_starts, sw.shift_duration_s
        FROM devices d
        JOIN enterprises e ON e.id = d.enterprise_id
        LEFT JOIN workplaces dw ON dw.id = d.workplace_id
        LEFT JOIN sensors s ON s.device_id = d.id
        LEFT JOIN workplaces sw ON sw.id = s.workplace_id
        {}
        ORDER BY d.id, s.id
        """).format(filter_),
        args,
    )
    devices: dict[int, tuple[dict[str, Any], list[RegistrySensor]]] = {}
    for row in await cur.fetchall():
        entry = devices.setdefault(row["device_id"], (row, []))
        if row["sensor_id"] is not None:
            entry[1].append(
                RegistrySensor(
                    sensor_id=row["sensor_id"],
                    code=row["sensor"],
                    quantity=row["quantity"],
                    unit=row["unit"],
                    substance=row["substance"],
                    workplace=row["workplace"],
                    calibration_due=row["calibration_due"],
                    shift_starts=(
                        tuple(row["shift_starts"]) if row["shift_starts"] is not None else None
                    ),
                    shift_duration_s=row["shift_duration_s"],
                )
            )
    return [
        RegistryDevice(
            device_id=row["device_id"],
            code=row["device"],
            enterprise_id=row["enterprise_id"],
            enterprise=row["enterprise"],
            workplace=row["device_workplace"],
            sensors=tuple(sensors),
            timezone=row["timezone"],
            norms_profile=row["norms_profile"],
        )
        for row, sensors in devices.values()
    ]


@dataclass(frozen=True, slots=True)
class BinStats:
    """Readings of one sensor aggregated into one time bin (or one shift)."""

    sensor_id: int
    start_s: float
    count: int
    span_s: float  # last − first sample time; NaN for shift sums (rollups keep no sample times)
    sum_value: float
    sum_power: float  # Σ 10^(v/10), for levels; never an arithmetic mean of decibels
    sum_square: float
    min_value: float
    max_value: float


_MINUTE_US: Final = BUCKET_US["1 min"]
# Σ10^(v/10) of raw readings by the rule of the rollups, so the raw edges of a span and its
# rollup minutes add up term for term (and no level can make power() fail).
_POW10_R: Final = pow10_sql(sql.Identifier("r", "value"))


async def latest_reading_times(
    conn: AsyncConnection[Any], since: datetime, sensor_ids: Sequence[int] | None = None
) -> dict[int, datetime]:
    """Each sensor's latest reading time after ``since`` (of ``sensor_ids`` only, when given).

    The latest minute comes from the minute rollups, and only that minute of raw readings is
    read: a shift of 1 Hz readings per sensor is far more than its minutes."""
    first_minute = us_to_datetime(datetime_to_us(since) // _MINUTE_US * _MINUTE_US)
    only = sql.SQL("AND sensor_id = ANY(%(ids)s::int[])" if sensor_ids is not None else "")
    cur = await conn.execute(
        sql.SQL("""
        WITH latest AS (
            SELECT sensor_id, max(bucket) AS bucket FROM readings_1m
            WHERE bucket >= %(first)s {}
            GROUP BY sensor_id
        )
        SELECT l.sensor_id, t.time
        FROM latest l
        CROSS JOIN LATERAL (
            SELECT max(r.time) AS time FROM readings r
            WHERE r.sensor_id = l.sensor_id AND r.time >= GREATEST(l.bucket, %(since)s)
              AND r.time < l.bucket + interval '1 minute'
        ) t
        WHERE t.time IS NOT NULL
        """).format(only),
        {"first": first_minute, "since": since, "ids": list(sensor_ids or ())},
    )
    return {int(r[0]): r[1] for r in await cur.fetchall()}


def _stats(rows: list[Any]) -> list[BinStats]:
    return [
        BinStats(int(r[0]), float(r[1]), int(r[2]), float(r[3]), *map(float, r[4:])) for r in rows
    ]


async def recent_bins(
    conn: AsyncConnection[Any], since: dict[int, datetime], bin_s: float
) -> list[BinStats]:
    """Per sensor (``since``: sensor id → from when) and ``bin_s`` bin: the sums that rebuild
    the detector windows. From raw readings: bins are shorter than a minute, and the sample
    interval is learnt from each bin's first and last sample time."""
    if not since:
        return []
    cur = await conn.execute(
        sql.SQL("""
        SELECT r.sensor_id, floor(extract(epoch FROM r.time) / %(b)s) * %(b)s,
               count(*), extract(epoch FROM max(r.time) - min(r.time)),
               sum(r.value), sum({}), sum(r.value * r.value), min(r.value), max(r.value)
        FROM unnest(%(ids)s::int[], %(since)s::timestamptz[]) AS s(sensor_id, since)
        JOIN readings r ON r.sensor_id = s.sensor_id AND r.time >= s.since
        GROUP BY 1, 2
        """).format(_POW10_R),
        {"b": bin_s, "ids": list(since), "since": list(since.values())},
    )
    return _stats(await cur.fetchall())


def split_minutes(
    start: datetime, until: datetime
) -> tuple[list[tuple[datetime, datetime]], tuple[datetime, datetime] | None]:
    """``[start, until)`` as its whole minutes (``None`` if it has none) and the parts before
    and after them (none where an end is on a minute boundary)."""
    lo, hi = datetime_to_us(start), datetime_to_us(until)
    whole_lo = -(-lo // _MINUTE_US) * _MINUTE_US
    whole_hi = hi // _MINUTE_US * _MINUTE_US
    if whole_lo >= whole_hi:
        return ([(start, until)] if lo < hi else []), None
    edges = [(a, b) for a, b in ((lo, whole_lo), (whole_hi, hi)) if a < b]
    return (
        [(us_to_datetime(a), us_to_datetime(b)) for a, b in edges],
        (us_to_datetime(whole_lo), us_to_datetime(whole_hi)),
    )


async def shift_sums(
    conn: AsyncConnection[Any], spans: dict[int, tuple[datetime, datetime]]
) -> list[BinStats]:
    """Per sensor, sums over ``[start, until)`` (``spans``: sensor id → (start, until)): the
    part of the current shift older than the detector windows. Sensors without readings in
    their span are absent.

    Whole minutes come from the minute rollups, only the partial minutes at either end from
    raw readings: a shift is hours of readings per sensor but only hundreds of minutes. The
    sums are those of the raw readings up to the order of floating-point addition; ``span_s``
    is NaN (the engine learns sample intervals from the recent bins only)."""
    edge_ids: list[int] = []
    edge_lo: list[datetime] = []
    edge_hi: list[datetime] = []
    whole_ids: list[int] = []
    whole_lo: list[datetime] = []
    whole_hi: list[datetime] = []
    for sensor_id, (start, until) in spans.items():
        edges, whole = split_minutes(start, until)
        for lo, hi in edges:
            edge_ids.append(sensor_id)
            edge_lo.append(lo)
            edge_hi.append(hi)
        if whole is not None:
            whole_ids.append(sensor_id)
            whole_lo.append(whole[0])
            whole_hi.append(whole[1])
    if not edge_ids and not whole_ids:
        return []
    # Each edge is its own index range scan; n is numeric in views that sum counts, so cast.
    cur = await conn.execute(
        sql.SQL("""
        WITH parts AS (
            SELECT r.sensor_id, count(*)::bigint AS n, sum(r.value) AS sum_value,
                   sum({}) AS sum_pow10, sum(r.value * r.value) AS sum_sq,
                   min(r.value) AS min_value, max(r.value) AS max_value
            FROM unnest(%(e_ids)s::int[], %(e_lo)s::timestamptz[], %(e_hi)s::timestamptz[])
                AS e(sensor_id, lo, hi)
            JOIN readings r ON r.sensor_id = e.sensor_id AND r.time >= e.lo AND r.time < e.hi
            GROUP BY r.sensor_id
            UNION ALL
            SELECT m.sensor_id, sum(m.n)::bigint, sum(m.sum_value), sum(m.sum_pow10),
                   sum(m.sum_sq), min(m.min_value), max(m.max_value)
            FROM unnest(%(w_ids)s::int[], %(w_lo)s::timestamptz[], %(w_hi)s::timestamptz[])
                AS w(sensor_id, lo, hi)
            JOIN readings_1m m ON m.sensor_id = w.sensor_id AND m.bucket >= w.lo
                AND m.bucket < w.hi
            GROUP BY m.sensor_id
        )
        SELECT sensor_id, sum(n)::bigint, sum(sum_value), sum(sum_pow10), sum(sum_sq),
               min(min_value), max(max_value)
        FROM parts
        GROUP BY sensor_id
        HAVING sum(n) > 0
        """).format(_POW10_R),
        {
            "e_ids": edge_ids,
            "e_lo": edge_lo,
            "e_hi": edge_hi,
            "w_ids": whole_ids,
            "w_lo": whole_lo,
            "w_hi": whole_hi,
        },
    )
    return [
        BinStats(
            sensor_id=int(r[0]),
            start_s=spans[int(r[0])][0].timestamp(),
            count=int(r[1]),
            span_s=math.nan,
            sum_value=float(r[2]),
            sum_power=float(r[3]),
            sum_square=float(r[4]),
            min_value=float(r[5]),
            max_value=float(r[6]),
        )
        for r in await cur.fetchall()
    ]


# ------------------------------------------------------------------ preferences and webhooks


@dataclass(frozen=True, slots=True)
class Preference:
    subscriber_kind: str
    subscriber: str
    min_severity: str
    kinds: tuple[str, ...] | None


async def get_preference(
    conn: AsyncConnection[Any], subscriber_kind: str, subscriber: str
) -> Preference | None:
    row = await (
        await conn.execute(
            "SELECT subscriber_kind, subscriber, min_severity, kinds FROM alert_preferences "
            "WHERE subscriber_kind = %s AND subscriber = %s",
            [subscriber_kind, subscriber],
        )
    ).fetchone()
    if row is None:
        return None
    return Preference(row[0], row[1], row[2], tuple(row[3]) if row[3] is not None else None)


async def set_preference(conn: AsyncConnection[Any], pref: Preference) -> None:
    await conn.execute(
        """
        INSERT INTO alert_preferences (subscriber_kind, subscriber, min_severity, kinds)
        VALUES (%s, %s, %s, %s)
        ON CONFLICT (subscriber_kind, subscriber) DO UPDATE
        SET min_severity = EXCLUDED.min_severity, kinds = EXCLUDED.kinds
        """,
        [
            pref.subscriber_kind,
            pref.subscriber,
            pref.min_severity,
            list(pref.kinds) if pref.kinds is not None else None,
        ],
    )


@dataclass(frozen=True, slots=True)
class Webhook:
    """A webhook with its effective filter: its own, narrowed by its owner's preferences."""

    id: int
    enterprise: str | None
    url: str
    secret: str
    min_severity: str
    kinds: tuple[str, ...] | None
    subscriber_kind: str | None = None
    subscriber: str | None = None
    # What became of its deliveries (migration 0022): current when last_error_at is later than
    # last_delivered_at.
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_delivered_at: datetime | None = None


def _narrow(
    own_min: str, own_kinds: list[str] | None, pref_min: str | None, pref_kinds: list[str] | None
) -> tuple[str, tuple[str, ...] | None]:
    floor = own_min
    if pref_min is not None and SEVERITY_ORDER.index(pref_min) > SEVERITY_ORDER.index(floor):
        floor = pref_min
    kinds: tuple[str, ...] | None = tuple(own_kinds) if own_kinds is not None else None
    if pref_kinds is not None:
        kinds = tuple(k for k in pref_kinds if kinds is None or k in kinds)
    return floor, kinds


async def list_webhooks(
    conn: AsyncConnection[Any],
    *,
    active_only: bool = True,
    enterprises: Sequence[str] | None = None,
) -> list[Webhook]:
    """Webhooks; with ``enterprises``, those that can receive alerts of one of them (their own
    enterprise's, or every enterprise's)."""
    where: list[sql.Composable] = []
    args: list[Any] = []
    if active_only:
        where.append(sql.SQL("w.active"))
    if enterprises is not None:
        where.append(sql.SQL("(w.enterprise IS NULL OR w.enterprise = ANY(%s))"))
        args.append(list(enterprises))
    cur = await conn.execute(
        sql.SQL("""
        SELECT w.id, w.enterprise, w.url, w.secret, w.min_severity, w.kinds,
               w.subscriber_kind, w.subscriber, p.min_severity, p.kinds,
               w.last_error, w.last_error_at, w.last_delivered_at
        FROM alert_webhooks w
        LEFT JOIN alert_preferences p
               ON p.subscriber_kind = w.subscriber_kind AND p.subscriber = w.subscriber
        {} ORDER BY w.id""").format(_where(where)),
        args,
    )
    hooks = []
    for r in await cur.fetchall():
        floor, kinds = _narrow(r[4], r[5], r[8], r[9])
        hooks.append(Webhook(r[0], r[1], r[2], r[3], floor, kinds, *r[6:8], *r[10:13]))
    return hooks


async def add_webhook(
    conn: AsyncConnection[Any],
    *,
    url: str,
    secret: str,
    enterprise: str | None = None,
    min_severity: str = "info",
    kinds: Sequence[str] | None = None,
    subscriber_kind: str | None = None,
    subscriber: str | None = None,
) -> int:
    row = await (
        await conn.execute(
            "INSERT INTO alert_webhooks (enterprise, url, secret, min_severity, kinds, "
            "subscriber_kind, subscriber) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            [
                enterprise,
                url,
                secret,
                min_severity,
                list(kinds) if kinds is not None else None,
                subscriber_kind,
                subscriber,
            ],
        )
    ).fetchone()
    assert row is not None
    return int(row[0])


async def record_webhook_outcome(
    conn: AsyncConnection[Any], webhook_id: int, at: datetime, error: str | None
) -> None:
    """Note a delivery of webhook ``webhook_id`` at ``at``: failed with ``error``, or (None)
    delivered. Never moves a time back: deliveries in flight end in any order."""
    if error is None:
        await conn.execute(
            "UPDATE alert_webhooks SET last_delivered_at = GREATEST(last_delivered_at, %s) "
            "WHERE id = %s",
            [at, webhook_id],
        )
        return
    await conn.execute(
        """
        UPDATE alert_webhooks SET last_error = %s, last_error_at = %s
        WHERE id = %s AND (last_error_at IS NULL OR last_error_at <= %s)
        """,
        [error, at, webhook_id, at],
    )


async def delete_webhook(conn: AsyncConnection[Any], webhook_id: int) -> bool:
    cur = await conn.execute("DELETE FROM alert_webhooks WHERE id = %s", [webhook_id])
    return cur.rowcount > 0


async def alerts_during(
    conn: AsyncConnection[Any], enterprise: str, workplace: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Alerts of one workplace that were open at some moment of ``[start, end)``: opened before
    the end and not resolved before the start (shift reports)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        sql.SQL("""SELECT {} FROM alerts
            WHERE enterprise = %s AND workplace = %s AND opened_at < %s
              AND (resolved_at IS NULL OR resolved_at >= %s)
            ORDER BY opened_at, id""").format(_COLUMNS),
        [enterprise, workplace, end, start],
    )
    return list(await cur.fetchall())


def record_of(message: AlertMessage) -> AlertRecord:
    """The stored form of an alert message."""
    return AlertRecord(
        alert_id=message.alert_id,
        transition=message.transition,
        state=message.state,
        enterprise=message.enterprise,
        device=message.device,
        sensor=message.sensor,
        sensor_id=message.sensor_id,
        workplace=message.workplace,
        quantity=message.quantity,
        substance=message.substance,
        kind=message.kind,
        severity=message.severity,
        value=message.value,
        unit=message.unit,
        threshold=message.threshold,
        threshold_unit=message.threshold_unit,
        time_left_s=message.time_left_s,
        message=message.message,
        opened_at=message.opened_at,
        at=message.at,
        escalations=message.escalations,
        actor=message.actor,
        comment=message.comment,
        reason=message.reason,
        source=message.source,
        action=message.action,
    )
