"""The registry refresh: every ``QORGAU_ALERTS_REGISTRY_REFRESH_S`` the engine's devices take the
registry's current facts (calibration dates, workplaces' schedules, norms profiles), and
people's transitions the alert topic did not bring are applied from the database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import psycopg

from analytics.alerts import TransitionError, acknowledge, resolve
from analytics.alerts.lifecycle import ACKNOWLEDGED
from ingest.alerting.devices import EngineDevices
from ingest.alerting.errors import DB_ERRORS
from store.alerts import load_registry, settled_alerts
from store.connection import ReconnectingConnection

log = logging.getLogger(__name__)


class RegistryRefresh:
    def __init__(
        self,
        devices: EngineDevices,
        db: ReconnectingConnection,
        *,
        every_s: float,
        enterprises: list[str] | None,
        writes_pending: Callable[[], bool],
        clock: Callable[[], float],
    ) -> None:
        self._devices = devices
        self._db = db
        self._every_s = every_s
        self._enterprises = enterprises
        self._writes_pending = writes_pending
        self._clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._every_s)
            if stop.is_set():
                return
            try:
                await self.refresh()
            except DB_ERRORS as exc:
                log.warning("registry refresh failed: %s", exc)
                self._db.discard()

    async def refresh(self) -> None:
        conn = await self._db.get()
        devices = self._devices.devices
        codes = list(devices)
        regs = await load_registry(conn, codes, enterprises=self._enterprises) if codes else []
        for reg in regs:
            device = devices.get(reg.code)
            if device is not None:
                self._devices.register(reg, device.info)
        await self._reconcile(conn)

    async def _reconcile(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Apply people's transitions the alert topic did not bring (the API stored them while
        the broker was away): the database is the record of what people did."""
        states = self._devices.states.values()
        held = {i for state in states for i in state.cells.by_id}
        if not held or self._writes_pending():
            return  # our own writes are still pending: the rows may be behind us
        settled = await settled_alerts(conn, list(held))
        now = self._clock()
        for ident, state_name, acked_by, resolved_by in settled:
            for state in states:
                where = state.cells.by_id.get(ident)
                if where is None:
                    continue
                current = int(state.cells.status[where])
                with contextlib.suppress(TransitionError):
                    if state_name == "resolved":
                        resolve(state, ident, now, actor=resolved_by, comment=None)
                    elif state_name == "acknowledged" and current != ACKNOWLEDGED:
                        acknowledge(state, ident, now, actor=acked_by, comment=None)
