"""The alert engine: broker → validated samples → detectors → alerts on the broker, in
PostgreSQL and to webhooks.

Shape (one asyncio loop), each part in a module of its own:
- the **source** (``source.py``: ``mqtt_source`` on Mosquitto, ``amqp_source`` on RabbitMQ)
  hands what has arrived, a batch at a time, to :meth:`AlertService.receive`: clean readings
  messages are decoded, checked and de-duplicated together (``fast_readings.py``, ingest's fast
  path), every other message by :meth:`AlertService.handle` with ingest's one-message checks;
  either way the samples (``samples.py``) join the pending batch of their norms profile;
- the **detector** task takes everything pending at once (so batches grow under load and stay
  single messages when idle), runs ``analytics.alerts.evaluate`` and hands the transitions to
  **delivery** (``delivery.py``: the broker first, then the database and webhooks);
- the **ticker** wakes the detectors for clock-driven checks (silence, offline, escalation);
- the devices are detector subjects (``devices.py``), loaded with the open alerts and recent
  statistics at start (``warm_start.py``) and refreshed from the registry (``registry_refresh.py``).

An engine may own only some enterprises (``QORGAU_ALERTS_ENTERPRISES``, ``partition.py``): then
it subscribes to their topics only and loads, warms and checks only their devices, so every
subject, alert and webhook delivery of an enterprise is one engine's.

People's transitions (acknowledge, resolve) are made by the API, which publishes them on the
same alert topics; the engine applies them to its state when they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from analytics.alerts import (
    AlertEvent,
    BatchBuilder,
    DetectorState,
    TransitionError,
    acknowledge,
    admit,
    evaluate,
    resolve,
)
from ingest import admission
from ingest.alerting.delivery import AlertDelivery
from ingest.alerting.devices import EngineDevice, EngineDevices
from ingest.alerting.fast_readings import FastReadings
from ingest.alerting.metrics import AlertMetrics
from ingest.alerting.notifications.sender import NotificationSender
from ingest.alerting.partition import Ownership
from ingest.alerting.registry_refresh import RegistryRefresh
from ingest.alerting.samples import feed_readings
from ingest.alerting.settings import AlertsSettings
from ingest.alerting.source import AlertSource, BrokerLink, make_source
from ingest.alerting.warm_start import warm_start
from store.connection import ReconnectingConnection
from vocabulary.backoff import supervise
from vocabulary.protocol import (
    DecodedMessage,
    ProtocolError,
    RejectReason,
    decode_status,
)
from vocabulary.protocol.alerts import AlertMessage, decode_alert

log = logging.getLogger(__name__)


class AlertService:
    def __init__(
        self,
        settings: AlertsSettings,
        metrics: AlertMetrics | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or AlertMetrics()
        self.clock = clock
        self.ownership = Ownership(settings, self.metrics)
        #: The enterprises this engine owns; ``None``: all of them.
        self.enterprises = self.ownership.enterprises
        codes = sorted(self.enterprises) if self.enterprises is not None else None
        self.source: AlertSource = make_source(settings, self.ownership)
        self._db = ReconnectingConnection(
            settings.database_url,
            settings.database_schema,
            retry_max_s=settings.alerts_retry_max_s,
            purpose="alert engine",
        )
        self.subjects = EngineDevices(settings, self._db, self.owns, clock)
        self.states: dict[str, DetectorState] = self.subjects.states
        self.devices: dict[str, EngineDevice] = self.subjects.devices
        self.shifts = self.subjects.shifts
        self._pending: dict[str, BatchBuilder] = {}
        self._fast = FastReadings(settings.ingest_max_payload_bytes, settings.ingest_max_future_s)
        self._pending_since: float | None = None
        self._pending_count = 0
        self._external: list[AlertMessage] = []
        self._wake = asyncio.Event()
        self._tick_due = False
        self.subscribed = asyncio.Event()
        self.ready = asyncio.Event()
        # People's notifications and escalation, from the stored outbox (own connection: the
        # store writer's may be busy).
        self.notifier = NotificationSender(
            ReconnectingConnection(
                settings.database_url,
                settings.database_schema,
                retry_max_s=settings.alerts_retry_max_s,
                purpose="alert notifications",
            ),
            settings,
            self.metrics,
            enterprises=codes,
            default_profile=settings.alerts_norms_profile,
            clock=clock,
        )
        self.delivery = AlertDelivery(
            settings,
            self.metrics,
            self._db,
            publish_errors=self.source.errors,
            stored=self.notifier.wake,
            clock=clock,
        )
        self.webhooks = self.delivery.webhooks
        #: Every message published, for callers embedding the engine (tests, the demo).
        self.listeners = self.delivery.listeners
        self.registry_refresh = RegistryRefresh(
            self.subjects,
            self._db,
            every_s=settings.alerts_registry_refresh_s,
            enterprises=codes,
            writes_pending=lambda: self.delivery.writes_pending,
            clock=clock,
        )
        #: Messages whose samples went through the detectors (for embedding and tests).
        self.messages_evaluated = 0

    def owns(self, enterprise: str) -> bool:
        return self.enterprises is None or enterprise in self.enterprises

    async def load(self) -> None:
        """Registry, open alerts and (optionally) recent statistics (``warm_start``)."""
        await warm_start(self.subjects, self._db, self.settings, self.clock)
        self.metrics.open_alerts.set(sum(len(s.cells.by_id) for s in self.states.values()))

    # ------------------------------------------------------------------ supervisor

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then publish and store what was decided, and return.

        Raises :class:`~ingest.alerting.partition.OwnershipConflictError` at once when another live
        engine owns some of this engine's enterprises."""
        await self.ownership.claim()
        try:
            await self._run(stop)
        finally:
            await self.ownership.release()

    async def _run(self, stop: asyncio.Event) -> None:
        await self.load()
        self.ready.set()
        tasks = [
            asyncio.create_task(self._detector_loop(), name="alerts-detect"),
            asyncio.create_task(self._ticker(stop), name="alerts-tick"),
            asyncio.create_task(self.delivery.publisher_loop(), name="alerts-publish"),
            asyncio.create_task(self.delivery.store_loop(), name="alerts-store"),
            asyncio.create_task(self.webhooks.run(stop), name="alerts-webhooks"),
            *(
                [asyncio.create_task(self.notifier.run(stop), name="alerts-notify")]
                if self.settings.alerts_notify
                else []
            ),
            asyncio.create_task(self.registry_refresh.run(stop), name="alerts-registry"),
            asyncio.create_task(self.ownership.run(stop), name="alerts-heartbeat"),
        ]

        def broker_lost(exc: BaseException, delay: float) -> None:
            self.metrics.mqtt_reconnects.inc()
            log.warning(
                "broker %s unavailable (%s); retrying in %.1f s",
                self.source.label(),
                exc,
                delay,
            )

        try:
            await supervise(
                lambda: self._session(stop, tasks),
                stop,
                retry_on=self.source.errors,
                cap_s=self.settings.alerts_retry_max_s,
                on_retry=broker_lost,
            )
        finally:
            await self.delivery.drain_store(timeout_s=10.0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._db.close()
            await self.notifier.close()

    async def _session(self, stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
        async with self.source.connect() as link:
            self.delivery.attach(link)
            try:
                await self._serve(link, stop, tasks)
            finally:
                self.subscribed.clear()
                self.delivery.detach()

    async def _serve(
        self, link: BrokerLink, stop: asyncio.Event, tasks: list[asyncio.Task[None]]
    ) -> None:
        log.info(
            "alert engine subscribed on %s to %d topic filters",
            self.source.label(),
            len(self.ownership.subscriptions.filters),
        )
        self.subscribed.set()
        self.metrics.ready.set(1)
        reader = asyncio.create_task(link.read(self.receive), name="alerts-reader")
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({reader, stopping, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                reader.cancel()
                task.result()  # a bug in a worker task: fail loudly
        self.metrics.ready.set(0)
        if reader.done():
            reader.result()
            return
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        # Publish what the detectors decided before leaving the broker.
        await self.delivery.drain_outbox(timeout_s=5.0)

    # ------------------------------------------------------------------ reader

    async def receive(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Take a batch of messages ``(topic, payload)`` in arrival order: clean readings
        messages as columns (``fast_readings``), every other one through :meth:`handle`."""
        self.metrics.messages.inc(len(messages))
        general: Sequence[int]
        try:
            taken = await self._fast.take(
                messages,
                self.clock(),
                find=self._device,
                cached=self.devices.get,
                owns=self.owns,
                states=self.states,
                pending=self._pending,
            )
        except Exception:
            # A bug here must not cost a message: the one-message path takes the whole batch.
            log.exception(
                "the fast path failed on %d messages; handling them one by one", len(messages)
            )
            general = range(len(messages))
        else:
            general = taken.general
            for verdict, count in taken.dropped.items():
                self.metrics.skipped.labels(verdict).inc(count)
            if taken.fed:
                self.metrics.samples.inc(taken.samples)
                self._mark_pending(taken.fed)
        for index in general:
            topic, payload = messages[index]
            try:
                await self.handle(topic, payload)
            except (ValueError, ValidationError) as exc:
                self.metrics.skipped.labels("refused").inc()
                log.debug("ignored message on %s: %s", topic, exc)

    async def handle(self, topic: str, payload: bytes) -> None:
        """Route one message: readings, a device status, or an alert someone else published.
        Readings are admitted as ingest admits them (``ingest.admission``)."""
        parts = topic.split("/")
        if len(parts) >= 4 and parts[-2] == "alerts":
            if not self.owns(parts[-3]):
                self.metrics.skipped.labels("not_owned").inc()
                return
            self._on_alert(topic, payload)
            return
        where = admission.read_topic(topic)
        if isinstance(where, admission.Refusal):
            self.metrics.skipped.labels("refused").inc()
            log.debug("ignored message on %s: %s", topic, where.detail)
            return
        if not self.owns(where.enterprise):
            # Queued for this session under a filter it no longer owns, before the engine
            # could unsubscribe it: another engine handles that enterprise now.
            self.metrics.skipped.labels("not_owned").inc()
            return
        received = self.clock()
        if where.kind == "status":
            await self._on_status(where.device, where.enterprise, payload)
            return
        admitted = await admission.admit(
            where,
            payload,
            max_bytes=self.settings.ingest_max_payload_bytes,
            lookup=self._device,
            enterprise_of=lambda device: device.info.enterprise_code,
        )
        if isinstance(admitted, admission.Refusal):
            unknown = admitted.reason is RejectReason.UNKNOWN_DEVICE
            self.metrics.skipped.labels("unknown_device" if unknown else "refused").inc()
            return
        device, decoded = admitted.device, admitted.message
        state = self.states[device.profile]
        verdict = admit(state, device.slot, decoded.seq)
        if verdict != "new":
            self.metrics.skipped.labels(verdict).inc()
            return
        self._add_readings(device, decoded, received)

    async def _device(self, code: str) -> EngineDevice | None:
        return await self.subjects.find(code)

    def _add_readings(self, device: EngineDevice, decoded: DecodedMessage, received: float) -> None:
        fed = feed_readings(
            self._pending.setdefault(device.profile, BatchBuilder()),
            device,
            decoded,
            received,
            max_future_s=self.settings.ingest_max_future_s,
            fallback_interval_s=self.states[device.profile].norms.sampling.fallback_interval_s,
        )
        if fed.new_sensors:
            self.subjects.refresh_soon(device.info.code)
        self.metrics.samples.inc(fed.samples)
        self._mark_pending()

    def _mark_pending(self, messages: int = 1) -> None:
        if self._pending_since is None:
            self._pending_since = time.perf_counter()
        self._pending_count += messages
        self._wake.set()

    async def _on_status(self, code: str, enterprise: str, payload: bytes) -> None:
        try:
            online = decode_status(payload).online
        except ProtocolError:
            self.metrics.skipped.labels("refused").inc()
            return
        device = await self._device(code)
        if device is None or device.info.enterprise_code != enterprise:
            self.metrics.skipped.labels("unknown_device").inc()
            return
        self._pending.setdefault(device.profile, BatchBuilder()).status(device.slot, online)
        self._mark_pending()

    def _on_alert(self, topic: str, payload: bytes) -> None:
        message = decode_alert(topic, payload)  # ProtocolError: counted as refused by the reader
        if message.source != "api":
            return
        self._external.append(message)
        self._wake.set()

    # ------------------------------------------------------------------ detectors

    async def _ticker(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.settings.alerts_tick_s)
            self._tick_due = True
            self._wake.set()

    async def _detector_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            started = time.perf_counter()
            self.evaluate_now()
            # Under load, let messages gather for about as long as the evaluation took, so its
            # fixed cost is shared by many of them; an idle engine evaluates at once.
            await asyncio.sleep(min(time.perf_counter() - started, 0.05))

    def evaluate_now(self) -> list[AlertEvent]:
        """Run the detectors on everything pending (and the clock checks); dispatch the
        transitions. Returns them (for embedding and tests)."""
        pending, self._pending = self._pending, {}
        started, self._pending_since = self._pending_since, None
        count, self._pending_count = self._pending_count, 0
        external, self._external = self._external, []
        tick, self._tick_due = self._tick_due, False
        now = self.clock()
        events: list[AlertEvent] = []
        # Keep the shift calendars ahead of the clock (a day before they run out).
        self.shifts.renew(self.states.values(), now)
        for message in external:
            self._apply_external(message, now)
        profiles = set(pending) | (set(self.states) if tick else set())
        for profile in profiles:
            state = self.states.get(profile)
            if state is None:
                continue
            builder = pending.get(profile) or BatchBuilder()
            t0 = time.perf_counter()
            _, found = evaluate(state, builder.build(), now, clock_checks=tick)
            self.metrics.evaluate_seconds.observe(time.perf_counter() - t0)
            events += found
        if count:
            self.metrics.batch_messages.observe(count)
            self.messages_evaluated += count
        if events:
            self.delivery.dispatch(events)
            if started is not None:
                self.metrics.decide_seconds.observe(time.perf_counter() - started)
            self.metrics.open_alerts.set(sum(len(s.cells.by_id) for s in self.states.values()))
        return events

    def _apply_external(self, message: AlertMessage, now: float) -> None:
        for state in self.states.values():
            where = state.cells.by_id.get(message.alert_id)
            if where is None:
                continue
            subject = state.subjects[where[0]]
            if subject.enterprise != message.enterprise:
                # The topic said which enterprise published; it must own the alert it changes.
                self.metrics.skipped.labels("refused").inc()
                log.warning(
                    "refused %s of alert %s: it belongs to %s, the message came from %s",
                    message.transition,
                    message.alert_id,
                    subject.enterprise,
                    message.enterprise,
                )
                return
            try:
                if message.transition == "acknowledged":
                    acknowledge(state, message.alert_id, now, actor=message.actor, comment=None)
                elif message.transition == "resolved":
                    resolve(state, message.alert_id, now, actor=message.actor, comment=None)
            except TransitionError as exc:
                log.info("ignored %s of alert %s: %s", message.transition, message.alert_id, exc)
            return
