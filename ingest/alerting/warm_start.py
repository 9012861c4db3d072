"""Warm start: what the engine knows before its first message.

The registry (with the workplaces' schedules and the enterprises' norms profiles) becomes the
detector subjects, the open alerts are restored into their cells (so a restart neither raises
them again nor forgets they are open), and, with ``QORGAU_ALERTS_WARM_START``, windows and shift
sums are rebuilt from stored readings.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import psycopg

from analytics.alerts import AlertKind, Severity, restore
from application.detector_warmup import warm_detectors
from ingest.alerting.devices import EngineDevices
from ingest.alerting.settings import AlertsSettings
from store.alerts import RegistryDevice, load_registry, open_alerts
from store.connection import ReconnectingConnection
from store.registry import DeviceInfo, find_device

log = logging.getLogger(__name__)


async def _find_device(conn: psycopg.AsyncConnection[Any], *, code: str) -> DeviceInfo | None:
    return await find_device(conn, code)


async def warm_start(
    devices: EngineDevices,
    db: ReconnectingConnection,
    settings: AlertsSettings,
    clock: Callable[[], float],
) -> int:
    """Load the owned registry and open alerts into ``devices``, warm the detectors when the
    settings ask for it; the number of open alerts restored."""
    enterprises = settings.owned_enterprises()
    codes = sorted(enterprises) if enterprises is not None else None

    async def fetch(
        conn: psycopg.AsyncConnection[Any],
    ) -> tuple[list[RegistryDevice], list[dict[str, Any]]]:
        return (
            await load_registry(conn, enterprises=codes),
            await open_alerts(conn, codes),
        )

    registry, stored = await db.run(fetch)
    for reg in registry:
        info: DeviceInfo | None = await db.run(functools.partial(_find_device, code=reg.code))
        if info is not None:
            devices.register(reg, info)
    now = clock()
    restored = _restore_open_alerts(devices, stored, now)
    if settings.alerts_warm_start:
        await _warm(devices, db, now, only_these=enterprises is not None)
    log.info(
        "alert engine loaded %d devices in %d norms profiles; %d open alerts restored",
        len(devices.devices),
        len(devices.states),
        restored,
    )
    return restored


def _restore_open_alerts(devices: EngineDevices, stored: list[dict[str, Any]], now: float) -> int:
    restored = 0
    for row in stored:
        device = devices.devices.get(row["device"])
        if device is None:
            continue
        state = devices.states[device.profile]
        key = f"{row['device']}/{row['sensor']}" if row["sensor"] else row["device"]
        slot = state.index.get(key)
        if slot is None:
            continue
        try:
            kind = AlertKind(row["kind"])
        except ValueError:
            continue
        restore(
            state.cells,
            slot,
            kind,
            row["alert_id"],
            row["state"],
            opened_at_s=row["opened_at"].timestamp(),
            severity=Severity.parse(row["severity"]),
            escalations=int(row["escalations"]),
            notified_now=max(row["updated_at"].timestamp(), now - 1.0),
            threshold=row["threshold"],
        )
        restored += 1
    return restored


async def _warm(
    devices: EngineDevices, db: ReconnectingConnection, now: float, *, only_these: bool
) -> None:
    """Rebuild windows and shift sums from stored readings (``application.detector_warmup``,
    the same rebuild the dashboard's running figures use). The shift is the one of the
    sensor's workplace schedule that holds its latest reading, found in the same calendars
    the detectors use."""
    slots = {
        sensor_id: (devices.states[device.profile], slot)
        for device in devices.devices.values()
        for sensor_id, slot in device.sensor_slots.items()
    }
    bins, shifts = await db.run(
        functools.partial(
            warm_detectors,
            slots=slots,
            now=now,
            longest_shift_s=devices.shifts.longest_shift_s,
            # An engine owning some enterprises reads only their sensors' readings.
            only_these=only_these,
        )
    )
    log.info("warmed detector state from %d bins and %d shift sums", bins, shifts)
