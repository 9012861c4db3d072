"""The engine's devices as detector subjects: each registered device (and each of its sensors)
gets a slot in the detector state of its enterprise's norms profile.

Looked up on first message (then cached), refreshed when ingest auto-registers a sensor the
engine has not seen, and re-registered with fresh registry facts by ``registry_refresh``.
Devices of enterprises this engine does not own never become subjects: their clock checks would
alert twice.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as dtime
from typing import Any

import psycopg

from analytics import NormsError, load_norms
from analytics.alerts import DetectorState, SubjectSpec, add_subject, load_alert_norms, new_state
from ingest.alerting.errors import DB_ERRORS
from ingest.alerting.settings import AlertsSettings
from ingest.alerting.shifts import ShiftCalendars, schedule_of, time_text
from store.alerts import RegistryDevice, load_registry
from store.connection import ReconnectingConnection, is_connection_problem
from store.registry import DeviceInfo, find_device

log = logging.getLogger(__name__)

# How long a device the registry does not have (or another engine owns) is not looked up again.
_UNKNOWN_FOR_S = 5.0


@dataclass(slots=True)
class EngineDevice:
    info: DeviceInfo  # what ingest validates against
    profile: str
    slot: int
    sensor_slots: dict[int, int] = field(default_factory=dict)
    refreshing: bool = False


async def _lookup(
    conn: psycopg.AsyncConnection[Any], code: str
) -> tuple[DeviceInfo | None, list[RegistryDevice]]:
    return await find_device(conn, code), await load_registry(conn, [code])


class EngineDevices:
    """The detector states by norms profile, the devices registered in them, and the shift
    calendars their sensors' schedules are searched in."""

    def __init__(
        self,
        settings: AlertsSettings,
        db: ReconnectingConnection,
        owns: Callable[[str], bool],
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self._db = db
        self._owns = owns
        self._clock = clock
        self.states: dict[str, DetectorState] = {}
        #: The workplaces' schedules as calendars the detectors search.
        self.shifts = ShiftCalendars()
        self.devices: dict[str, EngineDevice] = {}
        self._bad_profiles: set[str] = set()
        self._unknown_until: dict[str, float] = {}
        self._background: set[asyncio.Task[None]] = set()

    def state(self, profile: str) -> DetectorState:
        state = self.states.get(profile)
        if state is None:
            norms, alert_norms = load_norms(profile), load_alert_norms(profile)
            state = new_state(norms, alert_norms, time_text=time_text)
            self.states[profile] = state
        return state

    def _profile_state(self, reg: RegistryDevice) -> tuple[str, DetectorState]:
        """The enterprise's norms profile (``enterprises.norms_profile``; the service's default
        when it has none) and its detector state. A profile that cannot be loaded must not
        silence the enterprise's alerts: its devices use the default profile, loudly logged."""
        profile = reg.norms_profile or self.settings.alerts_norms_profile
        if profile not in self._bad_profiles:
            try:
                return profile, self.state(profile)
            except NormsError as exc:
                self._bad_profiles.add(profile)
                log.error(
                    "enterprise %s: norms profile %r cannot be loaded (%s); its alerts use "
                    "the default profile %r until it is fixed",
                    reg.enterprise,
                    profile,
                    exc,
                    self.settings.alerts_norms_profile,
                )
        profile = self.settings.alerts_norms_profile
        return profile, self.state(profile)

    def register(self, reg: RegistryDevice, info: DeviceInfo) -> EngineDevice:
        profile, state = self._profile_state(reg)
        slot = add_subject(
            state,
            SubjectSpec(
                enterprise=reg.enterprise,
                device=reg.code,
                workplace=reg.workplace,
                timezone=reg.timezone,
            ),
        )
        device = self.devices.get(reg.code)
        if device is None or device.profile != profile:
            device = EngineDevice(info=info, profile=profile, slot=slot)
        device.info = info
        for s in reg.sensors:
            due = s.calibration_due
            device.sensor_slots[s.sensor_id] = add_subject(
                state,
                SubjectSpec(
                    enterprise=reg.enterprise,
                    device=reg.code,
                    sensor=s.code,
                    quantity=s.quantity,
                    unit=s.unit,
                    substance=s.substance,
                    workplace=s.workplace,
                    sensor_id=s.sensor_id,
                    # The sensor's shifts are its workplace's (none without a workplace).
                    schedule=schedule_of(s.shift_starts, s.shift_duration_s, reg.timezone),
                    timezone=reg.timezone,
                    calibration_due_s=(
                        datetime.combine(due, dtime(0, 0), tzinfo=UTC).timestamp()
                        if due is not None
                        else math.nan
                    ),
                ),
            )
        wanted = {state.subjects[slot].schedule for slot in device.sensor_slots.values()}
        self.shifts.attach(state, self._clock(), wanted - {None})
        self.devices[reg.code] = device
        return device

    async def find(self, code: str) -> EngineDevice | None:
        """The device, looked up in the registry on its first message; None for one the registry
        does not have or another engine owns (asked again after a few seconds)."""
        cached = self.devices.get(code)
        if cached is not None:
            return cached
        if self._unknown_until.get(code, 0.0) > time.monotonic():
            return None
        try:
            info, regs = await _lookup(await self._db.get(), code)
        except DB_ERRORS as exc:
            if not is_connection_problem(exc):
                raise
            # No retry loop here: the reader must keep serving known devices while the
            # database is away; this device is looked up again in a few seconds.
            log.warning("cannot look device %s up (%s); its messages skip the detectors", code, exc)
            self._db.discard()
            info, regs = None, []
        if info is None or not regs or not self._owns(regs[0].enterprise):
            # A device of another engine's enterprise (published under a wrong enterprise's
            # topic) must not become a subject here: its clock checks would alert twice.
            self._unknown_until[code] = time.monotonic() + _UNKNOWN_FOR_S
            return None
        return self.register(regs[0], info)

    def refresh_soon(self, code: str) -> None:
        """Look the device up again shortly: ingest registered a sensor we have not seen."""
        task = asyncio.get_running_loop().create_task(self._refresh(code))
        self._background.add(task)  # a reference, or the loop may drop the task
        task.add_done_callback(self._background.discard)

    async def _refresh(self, code: str) -> None:
        device = self.devices.get(code)
        if device is None or device.refreshing:
            return
        device.refreshing = True
        try:
            await asyncio.sleep(0.5)  # let ingest commit its registration

            async def fetch(
                conn: psycopg.AsyncConnection[Any],
            ) -> tuple[DeviceInfo | None, list[RegistryDevice]]:
                return await _lookup(conn, code)

            info, regs = await self._db.run(fetch)
            if info is not None and regs and self._owns(regs[0].enterprise):
                self.register(regs[0], info)
        finally:
            device.refreshing = False
