"""Enterprises partitioned over several alert engines.

An engine owns the enterprises of ``QORGAU_ALERTS_ENTERPRISES`` (empty: all of them). It
subscribes to their topics only (one filter per enterprise and kind of message), so the broker
sends it nothing else, and it claims them in the ``alert_engines`` table:

* at start it refuses to run while another live engine's claim overlaps (an "all enterprises"
  engine overlaps everything): an alert raised by two engines would reach everyone twice;
* its heartbeat renews the claim; a claim not renewed within the timeout, or released at a clean
  stop, no longer counts, so a crashed engine's enterprises can be taken over;
* the claim remembers the topic filters of the client id's persistent session: the broker keeps
  a session's subscriptions across reconnections, so after the set changes the engine
  unsubscribes the filters it no longer owns (it cannot ask the broker for the list);
* it warns about enterprises of the registry that no live engine owns: they get no alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from ingest.alerting.metrics import AlertMetrics
from ingest.alerting.settings import AlertsSettings
from store.alert_engines import (
    ClaimResult,
    EngineClaim,
    claim_enterprises,
    conflicts_with,
    engine_claims,
    enterprise_codes,
    overlap,
    release_claim,
    renew_claim,
)
from store.connection import ReconnectingConnection
from vocabulary.errors import ConfigurationError
from vocabulary.protocol.topics import WIRE_VERSION_SEGMENT

log = logging.getLogger(__name__)


class OwnershipConflictError(ConfigurationError):
    """Another live engine owns some of this engine's enterprises."""


@dataclass(frozen=True, slots=True)
class Subscriptions:
    """The topic filters of an engine: device readings and status (QoS 1), and the alert topics
    where the API publishes people's transitions (no-local: not the engine's own alerts)."""

    devices: tuple[str, ...]
    alerts: tuple[str, ...]

    @property
    def filters(self) -> frozenset[str]:
        return frozenset(self.devices) | frozenset(self.alerts)


def subscriptions(prefix: str, enterprises: frozenset[str] | None) -> Subscriptions:
    base = f"{prefix}/{WIRE_VERSION_SEGMENT}"
    # "+" in the enterprise segment is every enterprise: the all-enterprise filters are one
    # enterprise's filters with that segment widened.
    segments = ["+"] if enterprises is None else sorted(enterprises)
    return Subscriptions(
        devices=tuple(f"{base}/{e}/+/{kind}" for e in segments for kind in ("readings", "status")),
        alerts=tuple(f"{base}/{e}/alerts/+" for e in segments),
    )


def unowned(registry: list[str], claims: list[EngineClaim]) -> list[str]:
    """Enterprises of the registry that no live claim covers."""
    live = [c for c in claims if c.live]
    if any(c.enterprises is None for c in live):
        return []
    covered = set().union(*(c.enterprises or frozenset() for c in live))
    return [code for code in registry if code not in covered]


def conflict_message(
    client_id: str, mine: frozenset[str] | None, result: ClaimResult, timeout_s: float
) -> str:
    wanted = "all enterprises" if mine is None else ", ".join(sorted(mine))
    lines = []
    for other in result.conflicts:
        common = overlap(mine, other.enterprises)
        shared = "every enterprise" if common is None else ", ".join(sorted(common))
        beat = other.heartbeat_at.isoformat(timespec="seconds")
        lines.append(f"{other.describe()} owns {shared} (last heartbeat {beat})")
    return (
        f"alert engine {client_id!r} cannot own {wanted}: "
        + "; ".join(lines)
        + ". Each enterprise must have one engine (QORGAU_ALERTS_ENTERPRISES sets must be "
        "disjoint, and an engine with it empty owns all of them). Stop the other engine, or, "
        f"if it is gone without a clean stop, start again once its heartbeat is {timeout_s:g} s "
        "old"
    )


class Ownership:
    """This engine's claim: made at start, renewed while running, released at a clean stop."""

    def __init__(self, settings: AlertsSettings, metrics: AlertMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.client_id = settings.alerts_client_id
        self.enterprises = settings.owned_enterprises()
        self.subscriptions = subscriptions(settings.topic_prefix, self.enterprises)
        self.host = socket.gethostname()
        #: Filters the broker session may hold that this engine no longer owns.
        self.stale: tuple[str, ...] = ()
        self._claimed = False
        self._conflicting: tuple[str, ...] = ()
        self._unowned: list[str] | None = None
        self._db = ReconnectingConnection(
            settings.database_url,
            settings.database_schema,
            retry_max_s=settings.alerts_retry_max_s,
            purpose="alert engine ownership",
        )
        metrics.partition.info({"enterprises": settings.alerts_enterprises or "*"})

    @property
    def held(self) -> frozenset[str]:
        """What the session may hold: recorded with the claim, so a crash forgets nothing."""
        return self.subscriptions.filters | frozenset(self.stale)

    async def claim(self) -> None:
        """Claim the enterprises, or raise :class:`OwnershipConflictError` naming the other."""
        timeout = self.settings.alerts_heartbeat_timeout_s

        async def attempt(conn: psycopg.AsyncConnection[Any]) -> ClaimResult:
            return await claim_enterprises(
                conn,
                client_id=self.client_id,
                enterprises=self.enterprises,
                topic_filters=sorted(self.subscriptions.filters),
                host=self.host,
                timeout_s=timeout,
            )

        result = await self._db.run(attempt)
        if result.conflicts:
            await self._db.close()
            raise OwnershipConflictError(
                conflict_message(self.client_id, self.enterprises, result, timeout)
            )
        self._claimed = True
        candidates = set(result.previous.topic_filters) if result.previous else set()
        if self.enterprises is not None:
            # A session that never had a claim row (an engine of an older version, or one whose
            # row was deleted) may still hold the all-enterprise filters.
            candidates |= subscriptions(self.settings.topic_prefix, None).filters
        self.stale = tuple(sorted(candidates - self.subscriptions.filters))
        if result.previous is not None and result.previous.live:
            log.warning(
                "alert engine %r: the previous claim of this client id is still live; if "
                "another process runs under the same id, the broker will switch the "
                "subscription between the two",
                self.client_id,
            )
        try:
            await self._check(announce=True)
        except (psycopg.Error, OSError) as exc:  # only a report: the heartbeat checks again
            log.warning("could not check which enterprises are owned: %s", exc)
            self._db.discard()

    async def forget_stale(self, unsubscribe: Callable[[list[str]], Awaitable[object]]) -> None:
        """Unsubscribe the session's filters this engine no longer owns (after subscribing the
        current ones: an enterprise kept across the change never misses a message). On
        RabbitMQ ``unsubscribe`` removes the queue's bindings of those filters."""
        if not self.stale:
            return
        await unsubscribe(list(self.stale))
        log.info("alert engine unsubscribed filters it no longer owns: %s", ", ".join(self.stale))
        self.stale = ()

    async def run(self, stop: asyncio.Event) -> None:
        """Heartbeat: renew the claim and watch for overlaps and uncovered enterprises."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.alerts_heartbeat_s)
            if stop.is_set():
                return
            try:
                conn = await self._db.get()
                await renew_claim(
                    conn,
                    client_id=self.client_id,
                    enterprises=self.enterprises,
                    topic_filters=sorted(self.held),
                    host=self.host,
                )
                await self._check(announce=False)
            except (psycopg.Error, OSError) as exc:
                log.warning("could not renew the alert engine's claim: %s", exc)
                self._db.discard()

    async def _check(self, *, announce: bool) -> None:
        conn = await self._db.get()
        claims = await engine_claims(conn, self.settings.alerts_heartbeat_timeout_s)
        registry = await enterprise_codes(conn)
        # A claim can only overlap ours if it was made while ours looked dead (our heartbeat
        # could not reach the database for the whole timeout): alerts are now raised twice.
        overlapping = tuple(
            c.describe()
            for c in claims
            if c.client_id != self.client_id
            and c.live
            and conflicts_with(self.enterprises, c.enterprises)
        )
        self.metrics.ownership_conflicts.set(len(overlapping))
        if overlapping and overlapping != self._conflicting:
            log.error(
                "alert engine %r overlaps %s: their common enterprises get every alert twice; "
                "stop one of them",
                self.client_id,
                "; ".join(overlapping),
            )
        self._conflicting = overlapping
        missing = unowned(registry, claims)
        self.metrics.unowned_enterprises.set(len(missing))
        if missing != self._unowned:
            if missing:
                log.warning(
                    "no live alert engine owns %d enterprise(s): %s; they get no alerts until "
                    "an engine's QORGAU_ALERTS_ENTERPRISES includes them",
                    len(missing),
                    ", ".join(missing),
                )
            elif self._unowned:
                log.info("every enterprise of the registry is owned by a live alert engine")
        self._unowned = missing
        if announce and self.enterprises is not None:
            unknown = sorted(self.enterprises - set(registry))
            if unknown:
                log.warning(
                    "QORGAU_ALERTS_ENTERPRISES names enterprises the registry does not have "
                    "(yet): %s",
                    ", ".join(unknown),
                )
            log.info(
                "alert engine %r owns enterprises %s",
                self.client_id,
                ", ".join(sorted(self.enterprises)),
            )

    async def release(self) -> None:
        """Free the enterprises at once (a clean stop); bounded, the database may be away."""
        if not self._claimed:
            return
        try:
            conn = await asyncio.wait_for(self._db.get(), 5.0)
            await asyncio.wait_for(
                release_claim(conn, client_id=self.client_id, topic_filters=sorted(self.held)),
                5.0,
            )
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning(
                "could not release the alert engine's claim (%s); its enterprises are free "
                "once its heartbeat is %g s old",
                exc,
                self.settings.alerts_heartbeat_timeout_s,
            )
        finally:
            self._claimed = False
            await self._db.close()
