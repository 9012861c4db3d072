"""Received messages → items ready to commit: admitted, checked, their faults quarantine records.

Clean messages go through ``ingest.fast_path`` as one set of columns; the rest, one by one,
through the one admission path (``ingest.admission``) and the general checks
(``ingest.validate``). What is wrong in a message is quarantined with its reason; a failure
outside the message (a bug, a registry row the database refuses) is retried
``QORGAU_INGEST_MAX_ATTEMPTS`` times and the message then becomes a dead letter, so nothing
in a message can stop the worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from ingest.admission import Admitted, Refusal, admit, read_topic
from ingest.devices import DeviceDirectory
from ingest.fast_path import FastPath
from ingest.items import Item, Received
from ingest.metrics import IngestMetrics
from ingest.quarantine import channel_record, describe, refused_record
from ingest.settings import IngestSettings
from ingest.validate import CheckedMessage, TimeWindow, check_channels
from store.deadletters import DeadLetterStage
from store.registry import DeviceInfo
from vocabulary.backoff import backoff_delay_s
from vocabulary.protocol import DecodedMessage

log = logging.getLogger(__name__)


def _itself(device: DeviceInfo) -> DeviceInfo:
    return device


def _enterprise_of(device: DeviceInfo) -> str:
    return device.enterprise_code


class Preparer:
    def __init__(
        self, settings: IngestSettings, metrics: IngestMetrics, devices: DeviceDirectory
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.devices = devices
        self._fast_path = FastPath(settings.ingest_max_payload_bytes)

    def _window(self, now: datetime) -> TimeWindow:
        return TimeWindow.around(
            now,
            max_past_s=self.settings.ingest_max_past_s,
            max_future_s=self.settings.ingest_max_future_s,
        )

    async def prepare_many(self, received: list[Received], generation: int) -> list[Item]:
        """Items of messages in their order of arrival: clean ones through the fast path as one
        set of columns, the others through :meth:`prepare_with_retries` one at a time."""
        arrived = time.monotonic()
        items: list[Item | None] = [None] * len(received)
        try:
            general = await self._prepare_fast(received, generation, arrived, items)
        except Exception:
            # A bug here must not cost a message: the general path takes the whole chunk.
            log.exception(
                "the fast path failed on %d messages; checking them one by one", len(received)
            )
            self.metrics.processing_failures.labels("validate").inc()
            items = [None] * len(received)
            general = list(range(len(received)))
        for index in general:
            message = received[index]
            items[index] = await self.prepare_with_retries(
                message.topic, message.payload, message.mid, message.qos, generation
            )
        return [item for item in items if item is not None]

    async def _prepare_fast(
        self,
        received: list[Received],
        generation: int,
        arrived: float,
        items: list[Item | None],
    ) -> list[int]:
        """Fill ``items`` with the messages the fast path passes whole; return the indices of
        the others."""
        screened = await self._fast_path.screen(
            [(message.topic, message.payload) for message in received],
            lookup=self.devices.find_many,
            info=_itself,
            window=lambda: self._window(datetime.now(UTC)),
        )
        for p in screened.passed:
            message = received[p.index]
            items[p.index] = Item(
                mid=message.mid,
                qos=message.qos,
                generation=generation,
                received=arrived,
                topic=message.topic,
                payload=message.payload,
                device=p.device,
                seq=p.seq,
                block=p.block,
                readings=len(p.block),
            )
        last = screened.passed[-1].sent_at if screened.passed else None
        if last is not None:
            self.metrics.broker_lag.set((datetime.now(UTC) - last).total_seconds())
        return screened.general

    async def prepare_with_retries(
        self, topic: str, payload: bytes, mid: int, qos: int, generation: int
    ) -> Item:
        """:meth:`prepare`, which raises only for a fault outside the message (its content is
        quarantined, outages are waited out in the registry lookups): a bug, or a registry row
        the database refuses. Tried ``ingest_max_attempts`` times, then a dead letter."""
        failures = 0
        while True:
            try:
                return await self.prepare(topic, payload, mid, qos, generation)
            except Exception as exc:
                failures += 1
                self.metrics.processing_failures.labels(DeadLetterStage.VALIDATE).inc()
                log.error(
                    "processing a message on %s failed (attempt %d of %d): %s",
                    topic,
                    failures,
                    self.settings.ingest_max_attempts,
                    describe(exc),
                    exc_info=failures == 1,
                )
                if failures >= self.settings.ingest_max_attempts:
                    item = Item.arriving(topic, payload, mid, qos, generation)
                    item.give_up(
                        self.settings.ingest_client_id, DeadLetterStage.VALIDATE, failures, exc
                    )
                    return item
                await asyncio.sleep(
                    backoff_delay_s(failures, cap_s=self.settings.ingest_retry_max_s)
                )

    async def prepare(
        self, topic: str, payload: bytes, mid: int, qos: int, generation: int
    ) -> Item:
        """Admit and check one message; everything bad becomes a quarantine record."""
        item = Item.arriving(topic, payload, mid, qos, generation)
        now = datetime.now(UTC)
        cap = self.settings.ingest_quarantine_payload_bytes
        where = read_topic(topic)
        admitted: Admitted[DeviceInfo] | Refusal = (
            where
            if isinstance(where, Refusal)
            else await admit(
                where,
                payload,
                max_bytes=self.settings.ingest_max_payload_bytes,
                lookup=self.devices.find,
                enterprise_of=_enterprise_of,
            )
        )
        decoded = admitted.message
        if decoded is not None and decoded.sent_at is not None:
            self.metrics.broker_lag.set((now - decoded.sent_at).total_seconds())
        if isinstance(admitted, Refusal):
            item.quarantine.append(refused_record(topic, admitted, payload, payload_cap=cap))
            return item
        device = admitted.device
        checked = await self._check(admitted.message, device, now)
        item.device = device
        item.seq = admitted.message.seq
        item.channels = checked.channels
        item.readings = checked.readings
        for rejection in checked.rejections:
            item.quarantine.append(
                channel_record(topic, admitted.message, rejection, payload_cap=cap)
            )
        return item

    async def _check(
        self, decoded: DecodedMessage, device: DeviceInfo, now: datetime
    ) -> CheckedMessage:
        window = self._window(now)

        def run() -> CheckedMessage:
            return check_channels(
                decoded,
                device,
                window=window,
                auto_register=self.settings.ingest_auto_register_sensors,
            )

        checked = run()
        if not checked.new_sensors:
            return checked
        for channel in checked.new_sensors:
            await self.devices.register_sensor(device, channel)
        return run()
