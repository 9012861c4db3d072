"""Alert notifications in PostgreSQL: recipients, routes, escalation policies, the stored outbox
(one row per notification, every delivery attempt beside it) and the escalation deadlines.

Planning is SQL run in the transaction that writes the alert transitions
(``store.alerts.write_transitions``): an alert row and the notifications it causes are stored
together or not at all, and the outbox's unique ``(alert_id, dedupe_key)`` makes planning the
same event again queue nothing new. Routing (scope, severity, kind, on-call hours in the
enterprise's local time) is one statement, so the engine and the API plan alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import TYPE_CHECKING, Any, Final

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

if TYPE_CHECKING:
    from store.alerts import AlertRecord

CHANNELS: Final = ("email", "telegram", "sms", "webhook")
LANGUAGES: Final = ("kk", "ru", "en")
_SEVERITIES: Final = sql.SQL("ARRAY['info', 'warning', 'high', 'critical']")

# The notifications of one event to the recipients of the alert's routes at the levels asked.
# The alert must still be open (an engine update after an acknowledgement tells nobody); the
# recipient must be on call now in the enterprise's local time.
_ROUTE = sql.SQL("""
INSERT INTO alert_notifications (alert_id, enterprise, event, dedupe_key, recipient_id,
                                 recipient, channel, address, language, level, due_at)
SELECT DISTINCT ON (r.id, c.channel, c.address)
       a.id, a.enterprise,
       -- At an escalation the new level is escalated to; the levels below are reminded.
       CASE WHEN %(event)s = 'escalation' AND rt.level < %(hi)s THEN 'reminder'
            ELSE %(event)s END,
       %(key)s || ':' || r.id || ':' || c.channel || ':' || c.address,
       r.id, r.name, c.channel, c.address, r.language, rt.level, %(due)s
FROM alerts a
JOIN alert_routes rt ON rt.enterprise = a.enterprise
JOIN alert_recipients r ON r.id = rt.recipient_id AND r.active
JOIN alert_recipient_channels c ON c.recipient_id = r.id
LEFT JOIN enterprises e ON e.code = a.enterprise
LEFT JOIN workplaces w ON w.enterprise_id = e.id AND w.code = a.workplace
LEFT JOIN sites s ON s.id = w.site_id
CROSS JOIN LATERAL (
    SELECT (now() AT TIME ZONE coalesce(e.timezone, 'UTC'))::time AS t
) local_now
WHERE a.id = %(alert_id)s AND a.state = 'open'
  AND rt.level BETWEEN %(lo)s AND %(hi)s
  AND (rt.workplace IS NULL OR rt.workplace = a.workplace)
  AND (rt.site IS NULL OR rt.site = s.code)
  AND array_position({}, a.severity) >= array_position({}, rt.min_severity)
  AND (rt.kinds IS NULL OR a.kind = ANY(rt.kinds))
  AND (r.on_call_start IS NULL
       OR (r.on_call_start <= r.on_call_end
           AND local_now.t >= r.on_call_start AND local_now.t < r.on_call_end)
       OR (r.on_call_start > r.on_call_end
           AND (local_now.t >= r.on_call_start OR local_now.t < r.on_call_end)))
ORDER BY r.id, c.channel, c.address, rt.level DESC
ON CONFLICT (alert_id, dedupe_key) DO NOTHING
""").format(_SEVERITIES, _SEVERITIES)

# The first escalation deadline of a newly raised alert, when its enterprise has a policy.
_START_ESCALATION = """
INSERT INTO alert_escalations (alert_id, enterprise, step, due_at)
SELECT %(alert_id)s, p.enterprise, 1, %(at)s + make_interval(secs => p.escalate_after_s)
FROM alert_escalation_policies p
WHERE p.enterprise = %(enterprise)s
ON CONFLICT (alert_id) DO NOTHING
"""

_STOP_ESCALATION = "UPDATE alert_escalations SET done = true WHERE alert_id = %s AND NOT done"

# Everyone told of the alert, told again that it is resolved (when the policy asks).
_RESOLVED = """
INSERT INTO alert_notifications (alert_id, enterprise, event, dedupe_key, recipient_id,
                                 recipient, channel, address, language, level, due_at)
SELECT DISTINCT ON (n.recipient, n.channel, n.address)
       n.alert_id, n.enterprise, 'resolved',
       'resolved:' || coalesce(n.recipient_id::text, '-') || ':' || n.channel || ':' || n.address,
       n.recipient_id, n.recipient, n.channel, n.address, n.language, n.level, %(at)s
FROM alert_notifications n
JOIN alert_escalation_policies p ON p.enterprise = n.enterprise AND p.notify_on_resolve
WHERE n.alert_id = %(alert_id)s AND n.event <> 'resolved'
ORDER BY n.recipient, n.channel, n.address
ON CONFLICT (alert_id, dedupe_key) DO NOTHING
"""


async def plan_notifications(conn: AsyncConnection[Any], records: Sequence[AlertRecord]) -> None:
    """Queue what ``records`` (transitions just written to ``alerts``) cause: the level-0
    recipients of a raised alert (again when its severity rises, to those it now reaches), its
    first escalation deadline, the end of escalation when someone acknowledges or resolves it,
    and the resolved notice when the policy asks. Run inside the transaction that wrote them."""
    async with conn.cursor() as cur:
        for r in records:
            if r.transition in ("opened", "updated", "escalated"):
                await cur.execute(
                    _ROUTE,
                    {
                        "event": "raised",
                        "key": "raised",
                        "due": r.at,
                        "alert_id": r.alert_id,
                        "lo": 0,
                        "hi": 0,
                    },
                )
                if r.transition == "opened":
                    await cur.execute(
                        _START_ESCALATION,
                        {"alert_id": r.alert_id, "at": r.at, "enterprise": r.enterprise},
                    )
            elif r.transition in ("acknowledged", "resolved"):
                await cur.execute(_STOP_ESCALATION, [r.alert_id])
                if r.transition == "resolved":
                    await cur.execute(_RESOLVED, {"alert_id": r.alert_id, "at": r.at})


# ------------------------------------------------------------------ escalation deadlines


def _owned(enterprises: Sequence[str] | None, *column: str) -> tuple[sql.Composable, list[Any]]:
    """The condition that keeps rows whose ``column`` (qualified by its table alias when given
    as two names) is one of ``enterprises``, and its parameters; all rows when ``None``."""
    if enterprises is None:
        return sql.SQL("TRUE"), []
    return sql.SQL("{} = ANY(%s)").format(sql.Identifier(*column)), [list(enterprises)]


async def run_due_escalations(
    conn: AsyncConnection[Any], enterprises: Sequence[str] | None, *, limit: int = 200
) -> int:
    """Act on every escalation deadline that has passed (of ``enterprises`` only, when given):
    at step n, while n ≤ the highest route level, tell the routes of levels ≤ n (level n
    escalated to, the lower levels reminded); past it, remind every level, ``max_reminders``
    times every ``reminder_every_s``. An alert no longer open ends its escalation. Returns the
    notifications queued. Rows are locked (SKIP LOCKED): a deadline is acted on once."""
    cond, args = _owned(enterprises, "x", "enterprise")
    queued = 0
    async with conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            sql.SQL("""
            SELECT x.alert_id::text AS alert_id, x.step, x.due_at, a.state,
                   p.escalate_after_s, p.reminder_every_s, p.max_reminders,
                   (SELECT max(level) FROM alert_routes rt WHERE rt.enterprise = x.enterprise)
                       AS top_level
            FROM alert_escalations x
            JOIN alerts a ON a.id = x.alert_id
            LEFT JOIN alert_escalation_policies p ON p.enterprise = x.enterprise
            WHERE NOT x.done AND x.due_at <= now() AND {}
            ORDER BY x.due_at
            LIMIT %s
            FOR UPDATE OF x SKIP LOCKED
            """).format(cond),
            [*args, limit],
        )
        for row in await cur.fetchall():
            top = int(row["top_level"] or 0)
            step = int(row["step"])
            reminders = int(row["max_reminders"] or 0) if row["reminder_every_s"] else 0
            if row["state"] != "open" or row["escalate_after_s"] is None:
                await cur.execute(_STOP_ESCALATION, [row["alert_id"]])
                continue
            if step <= top + reminders:
                escalating = step <= top
                await cur.execute(
                    _ROUTE,
                    {
                        "event": "escalation" if escalating else "reminder",
                        "key": f"step{step}",
                        "due": row["due_at"],
                        "alert_id": row["alert_id"],
                        "lo": 0,
                        "hi": min(step, top),
                    },
                )
                queued += cur.rowcount
            following = step + 1
            if following > top + reminders:
                await cur.execute(_STOP_ESCALATION, [row["alert_id"]])
                continue
            wait_s = row["escalate_after_s"] if following <= top else row["reminder_every_s"]
            await cur.execute(
                "UPDATE alert_escalations SET step = %s, "
                "due_at = due_at + make_interval(secs => %s) WHERE alert_id = %s",
                [following, wait_s, row["alert_id"]],
            )
    return queued


async def next_escalation_at(
    conn: AsyncConnection[Any], enterprises: Sequence[str] | None
) -> datetime | None:
    """The earliest pending escalation deadline (of ``enterprises``), for the sender's sleep."""
    cond, args = _owned(enterprises, "enterprise")
    cur = await conn.execute(
        sql.SQL("SELECT min(due_at) FROM alert_escalations WHERE NOT done AND {}").format(cond),
        args,
    )
    row = await cur.fetchone()
    return row[0] if row else None


# ------------------------------------------------------------------ the outbox


@dataclass(frozen=True, slots=True)
class PendingNotification:
    """A notification taken for sending, with what its text needs."""

    id: int
    alert_id: str
    event: str
    recipient: str
    channel: str
    address: str
    language: str
    level: int
    due_at: datetime
    attempts: int
    alert: dict[str, Any]  # the alert row, with display names (see ``take_due``)


async def take_due(
    conn: AsyncConnection[Any],
    enterprises: Sequence[str] | None,
    *,
    channels: Sequence[str],
    limit: int = 50,
    lease_s: float = 60.0,
) -> list[PendingNotification]:
    """Take up to ``limit`` pending notifications of ``channels`` whose time has come (of
    ``enterprises``): each is leased for ``lease_s`` (its next attempt moved that far, so a
    sender that dies mid-way leaves it to be retried, and no other sender takes it meanwhile)
    and its attempt counted."""
    if not channels or limit < 1:
        return []
    cond, args = _owned(enterprises, "enterprise")
    cond += sql.SQL(" AND channel = ANY(%s)")
    args.append(list(channels))
    cur = conn.cursor(row_factory=dict_row)
    async with conn.transaction():
        await cur.execute(
            sql.SQL("""
            WITH due AS (
                SELECT id FROM alert_notifications
                WHERE state = 'pending' AND next_attempt_at <= now() AND {}
                ORDER BY next_attempt_at, id
                LIMIT %s
                FOR UPDATE SKIP LOCKED
            )
            UPDATE alert_notifications n
            SET next_attempt_at = now() + make_interval(secs => %s), attempts = n.attempts + 1
            FROM due WHERE n.id = due.id
            RETURNING n.id, n.alert_id::text AS alert_id, n.event, n.recipient, n.channel,
                      n.address, n.language, n.level, n.due_at, n.attempts
            """).format(cond),
            [*args, limit, lease_s],
        )
        taken = await cur.fetchall()
    if not taken:
        return []
    alerts = await alert_context(conn, sorted({t["alert_id"] for t in taken}))
    return [
        PendingNotification(**t, alert=alerts[t["alert_id"]])
        for t in taken
        if t["alert_id"] in alerts
    ]


async def alert_context(conn: AsyncConnection[Any], alert_ids: Sequence[str]) -> dict[str, Any]:
    """The alerts with the names people know them by: enterprise, site and workplace names,
    the device's name, the enterprise's time zone and norms profile."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT a.id::text AS alert_id, a.enterprise, a.device, a.sensor, a.workplace,
               a.quantity, a.substance, a.kind, a.severity, a.state, a.value, a.unit,
               a.threshold, a.threshold_unit, a.time_left_s, a.message, a.opened_at,
               a.updated_at, a.acknowledged_by, a.resolved_by, a.ack_comment,
               a.resolution_cause,
               e.name AS enterprise_name, coalesce(e.timezone, 'UTC') AS timezone,
               e.norms_profile, w.name AS workplace_name, s.name AS site_name,
               d.name AS device_name
        FROM alerts a
        LEFT JOIN enterprises e ON e.code = a.enterprise
        LEFT JOIN workplaces w ON w.enterprise_id = e.id AND w.code = a.workplace
        LEFT JOIN sites s ON s.id = w.site_id
        LEFT JOIN devices d ON d.code = a.device
        WHERE a.id = ANY(%s::uuid[])
        """,
        [list(alert_ids)],
    )
    return {row["alert_id"]: row for row in await cur.fetchall()}


async def record_attempt(
    conn: AsyncConnection[Any],
    notification_id: int,
    *,
    at: datetime,
    result: str,
    error: str | None,
    duration_ms: float,
    retry_at: datetime | None = None,
) -> None:
    """Record one delivery attempt (``result``: sent, retry or failed) and its consequence for
    the notification: sent, another attempt at ``retry_at``, or given up."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO alert_notification_attempts (notification_id, at, result, error, "
            "duration_ms) VALUES (%s, %s, %s, %s, %s)",
            [notification_id, at, result, error, duration_ms],
        )
        if result == "sent":
            await conn.execute(
                "UPDATE alert_notifications SET state = 'sent', sent_at = %s, last_error = NULL "
                "WHERE id = %s",
                [at, notification_id],
            )
        elif result == "retry":
            await conn.execute(
                "UPDATE alert_notifications SET next_attempt_at = %s, last_error = %s "
                "WHERE id = %s",
                [retry_at, error, notification_id],
            )
        else:
            await conn.execute(
                "UPDATE alert_notifications SET state = 'failed', last_error = %s WHERE id = %s",
                [error, notification_id],
            )


async def notification_log(conn: AsyncConnection[Any], alert_id: str) -> list[dict[str, Any]]:
    """Every notification of an alert with its attempts (the timeline's "notified whom")."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT n.id, n.event, n.recipient, n.channel, n.address, n.level, n.due_at, n.state,
               n.sent_at, n.created_at, n.last_error,
               coalesce(json_agg(json_build_object(
                   'at', t.at, 'result', t.result, 'error', t.error, 'duration_ms', t.duration_ms)
                   ORDER BY t.id) FILTER (WHERE t.id IS NOT NULL), '[]') AS attempts
        FROM alert_notifications n
        LEFT JOIN alert_notification_attempts t ON t.notification_id = n.id
        WHERE n.alert_id = %s
        GROUP BY n.id
        ORDER BY n.created_at, n.id
        """,
        [alert_id],
    )
    return list(await cur.fetchall())


async def notification_figures(conn: AsyncConnection[Any], since: datetime) -> list[dict[str, Any]]:
    """Notifications created since ``since``: event, state, due and sent times (benchmarks)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT event, channel, state, due_at, sent_at, attempts FROM alert_notifications "
        "WHERE created_at >= %s",
        [since],
    )
    return list(await cur.fetchall())


# ------------------------------------------------------------------ recipients and routes


@dataclass(frozen=True, slots=True)
class Recipient:
    id: int
    enterprise: str
    name: str
    language: str
    channels: tuple[tuple[str, str], ...]  # (channel, address)
    on_call_start: time | None = None
    on_call_end: time | None = None
    active: bool = True


async def list_recipients(
    conn: AsyncConnection[Any], enterprises: Sequence[str] | None = None
) -> list[Recipient]:
    cond, args = _owned(enterprises, "r", "enterprise")
    cur = await conn.execute(
        sql.SQL("""
        SELECT r.id, r.enterprise, r.name, r.language, r.on_call_start, r.on_call_end, r.active,
               coalesce(array_agg(c.channel ORDER BY c.id) FILTER (WHERE c.id IS NOT NULL), '{{}}'),
               coalesce(array_agg(c.address ORDER BY c.id) FILTER (WHERE c.id IS NOT NULL), '{{}}')
        FROM alert_recipients r
        LEFT JOIN alert_recipient_channels c ON c.recipient_id = r.id
        WHERE {}
        GROUP BY r.id ORDER BY r.id
        """).format(cond),
        args,
    )
    return [
        Recipient(
            id=row[0],
            enterprise=row[1],
            name=row[2],
            language=row[3],
            on_call_start=row[4],
            on_call_end=row[5],
            active=row[6],
            channels=tuple(zip(row[7], row[8], strict=True)),
        )
        for row in await cur.fetchall()
    ]


async def save_recipient(conn: AsyncConnection[Any], recipient: Recipient) -> int:
    """Create (``id`` 0) or replace a recipient with its channels; returns its id."""
    async with conn.transaction():
        values = [
            recipient.enterprise,
            recipient.name,
            recipient.language,
            recipient.on_call_start,
            recipient.on_call_end,
            recipient.active,
        ]
        if recipient.id == 0:
            cur = await conn.execute(
                "INSERT INTO alert_recipients (enterprise, name, language, on_call_start, "
                "on_call_end, active) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                values,
            )
        else:
            cur = await conn.execute(
                "UPDATE alert_recipients SET enterprise = %s, name = %s, language = %s, "
                "on_call_start = %s, on_call_end = %s, active = %s WHERE id = %s RETURNING id",
                [*values, recipient.id],
            )
        row = await cur.fetchone()
        if row is None:
            raise LookupError(f"no recipient {recipient.id}")
        ident = int(row[0])
        await conn.execute("DELETE FROM alert_recipient_channels WHERE recipient_id = %s", [ident])
        async with conn.cursor() as c:
            await c.executemany(
                "INSERT INTO alert_recipient_channels (recipient_id, channel, address) "
                "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                [(ident, channel, address) for channel, address in recipient.channels],
            )
    return ident


async def delete_recipient(conn: AsyncConnection[Any], recipient_id: int) -> bool:
    cur = await conn.execute("DELETE FROM alert_recipients WHERE id = %s", [recipient_id])
    return cur.rowcount > 0


async def recipient_enterprise(conn: AsyncConnection[Any], recipient_id: int) -> str | None:
    cur = await conn.execute(
        "SELECT enterprise FROM alert_recipients WHERE id = %s", [recipient_id]
    )
    row = await cur.fetchone()
    return str(row[0]) if row else None


@dataclass(frozen=True, slots=True)
class Route:
    id: int
    enterprise: str
    recipient_id: int
    level: int = 0
    min_severity: str = "warning"
    kinds: tuple[str, ...] | None = None
    site: str | None = None
    workplace: str | None = None


async def list_routes(
    conn: AsyncConnection[Any], enterprises: Sequence[str] | None = None
) -> list[Route]:
    cond, args = _owned(enterprises, "enterprise")
    cur = await conn.execute(
        sql.SQL(
            "SELECT id, enterprise, recipient_id, level, min_severity, kinds, site, workplace "
            "FROM alert_routes WHERE {} ORDER BY enterprise, level, id"
        ).format(cond),
        args,
    )
    return [
        Route(r[0], r[1], r[2], r[3], r[4], tuple(r[5]) if r[5] is not None else None, r[6], r[7])
        for r in await cur.fetchall()
    ]


async def add_route(conn: AsyncConnection[Any], route: Route) -> int:
    cur = await conn.execute(
        "INSERT INTO alert_routes (enterprise, recipient_id, level, min_severity, kinds, site, "
        "workplace) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        [
            route.enterprise,
            route.recipient_id,
            route.level,
            route.min_severity,
            list(route.kinds) if route.kinds is not None else None,
            route.site,
            route.workplace,
        ],
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def route_enterprise(conn: AsyncConnection[Any], route_id: int) -> str | None:
    cur = await conn.execute("SELECT enterprise FROM alert_routes WHERE id = %s", [route_id])
    row = await cur.fetchone()
    return str(row[0]) if row else None


async def delete_route(conn: AsyncConnection[Any], route_id: int) -> bool:
    cur = await conn.execute("DELETE FROM alert_routes WHERE id = %s", [route_id])
    return cur.rowcount > 0


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    enterprise: str
    escalate_after_s: int = 600
    reminder_every_s: int | None = None
    max_reminders: int = 3
    notify_on_resolve: bool = False


_POLICIES = sql.SQL(
    "SELECT enterprise, escalate_after_s, reminder_every_s, max_reminders, notify_on_resolve "
    "FROM alert_escalation_policies"
)


async def get_policy(conn: AsyncConnection[Any], enterprise: str) -> EscalationPolicy | None:
    found = await list_policies(conn, [enterprise])
    return found[0] if found else None


async def list_policies(
    conn: AsyncConnection[Any], enterprises: Sequence[str] | None = None
) -> list[EscalationPolicy]:
    cond, args = _owned(enterprises, "enterprise")
    cur = await conn.execute(
        sql.SQL("{} WHERE {} ORDER BY enterprise").format(_POLICIES, cond), args
    )
    return [EscalationPolicy(*row) for row in await cur.fetchall()]


async def set_policy(conn: AsyncConnection[Any], policy: EscalationPolicy) -> None:
    await conn.execute(
        """
        INSERT INTO alert_escalation_policies (enterprise, escalate_after_s, reminder_every_s,
                                               max_reminders, notify_on_resolve)
        VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (enterprise) DO UPDATE SET escalate_after_s = EXCLUDED.escalate_after_s,
            reminder_every_s = EXCLUDED.reminder_every_s,
            max_reminders = EXCLUDED.max_reminders,
            notify_on_resolve = EXCLUDED.notify_on_resolve
        """,
        [
            policy.enterprise,
            policy.escalate_after_s,
            policy.reminder_every_s,
            policy.max_reminders,
            policy.notify_on_resolve,
        ],
    )


async def delete_policy(conn: AsyncConnection[Any], enterprise: str) -> bool:
    cur = await conn.execute(
        "DELETE FROM alert_escalation_policies WHERE enterprise = %s", [enterprise]
    )
    return cur.rowcount > 0
