"""The registry as ingest sees it: devices looked up by code and cached, sensors registered
when a device introduces them (``QORGAU_INGEST_AUTO_REGISTER_SENSORS``).

The cache keeps a device for ``QORGAU_INGEST_DEVICE_CACHE_S``; an unknown code is remembered
for a few seconds, so that a spoofed or not yet registered device costs one query per few
seconds rather than one per message. Outages are waited out by the reconnecting connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import Any

import psycopg

from ingest.settings import IngestSettings
from store.connection import ReconnectingConnection
from store.registry import DeviceInfo, SensorInfo, find_device, find_devices, upsert_sensor
from vocabulary.protocol import Channel

log = logging.getLogger(__name__)

_UNKNOWN_FOR_S = 5.0
_UNKNOWN_KEPT = 10_000


class DeviceDirectory:
    def __init__(self, settings: IngestSettings) -> None:
        self._cache_s = settings.ingest_device_cache_s
        self._devices: dict[str, tuple[DeviceInfo, float]] = {}
        self._unknown_until: dict[str, float] = {}
        self._lookup = ReconnectingConnection(
            settings.database_url,
            settings.database_schema,
            retry_max_s=settings.ingest_retry_max_s,
            purpose="registry lookup",
        )

    async def find(self, code: str) -> DeviceInfo | None:
        """The registered device of that code, or None."""
        now = time.monotonic()
        cached = self._devices.get(code)
        if cached is not None and cached[1] > now:
            return cached[0]
        if self._unknown_until.get(code, 0.0) > now:
            return None
        device = await self._lookup.run(lambda conn: find_device(conn, code))
        if device is None:
            # Don't ask the database again for every message of a spoofed or new device.
            self._unknown_until[code] = now + _UNKNOWN_FOR_S
            if len(self._unknown_until) > _UNKNOWN_KEPT:
                self._unknown_until = {k: v for k, v in self._unknown_until.items() if v > now}
            return None
        self._devices[code] = (device, now + self._cache_s)
        return device

    async def find_many(self, codes: Collection[str]) -> dict[str, DeviceInfo | None]:
        """``find`` for many codes in one registry lookup: a worker that starts, or whose cached
        entries expire together, meets its whole fleet in one chunk."""
        now = time.monotonic()
        found: dict[str, DeviceInfo | None] = {}
        asked = []
        for code in codes:
            cached = self._devices.get(code)
            if cached is not None and cached[1] > now:
                found[code] = cached[0]
            elif self._unknown_until.get(code, 0.0) <= now:
                asked.append(code)
        looked_up = await self._lookup.run(lambda conn: find_devices(conn, asked)) if asked else {}
        for code in asked:
            device = looked_up.get(code)
            if device is None:
                self._unknown_until[code] = now + _UNKNOWN_FOR_S
            else:
                self._devices[code] = (device, now + self._cache_s)
        if len(self._unknown_until) > _UNKNOWN_KEPT:
            self._unknown_until = {k: v for k, v in self._unknown_until.items() if v > now}
        return {code: found.get(code, looked_up.get(code)) for code in codes}

    async def register_sensor(self, device: DeviceInfo, channel: Channel) -> None:
        """Add the channel's sensor to the registry and to ``device``."""

        async def upsert(conn: psycopg.AsyncConnection[Any]) -> SensorInfo:
            return await upsert_sensor(
                conn,
                device.id,
                channel.sensor,
                quantity=channel.quantity.value,
                unit=channel.unit,
                substance=channel.substance,
            )

        sensor = await self._lookup.run(upsert)
        device.sensors[sensor.code] = sensor
        log.info("registered sensor %s of device %s", sensor.code, device.code)

    async def close(self) -> None:
        await self._lookup.close()
