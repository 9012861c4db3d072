"""The alert engine: broker → validated samples → detectors → alerts on MQTT, in PostgreSQL and
to webhooks.

Shape (one asyncio loop):
- the **reader** decodes and validates each message with ingest's code, de-duplicates it by
  (device, seq) and appends its samples to the pending batch of its norms profile;
- the **detector** task takes everything pending at once (so batches grow under load and stay
  single messages when idle), runs ``analytics.alerts.evaluate`` and hands the transitions on;
- the **publisher** sends them to ``{prefix}/v1/{enterprise}/alerts/{kind}`` (QoS 1), in order;
- the **store writer** writes them to ``alerts``/``alert_events`` in batches, retrying while the
  database is away, never holding up detection;
- the **webhook dispatcher** pushes them to subscribed URLs with retries;
- the **ticker** wakes the detectors for clock-driven checks (silence, offline, escalation).

An engine may own only some enterprises (``QORGAU_ALERTS_ENTERPRISES``, ``partition.py``): then
it subscribes to their topics only and loads, warms and checks only their devices, so every
subject, alert and webhook delivery of an enterprise is one engine's.

People's transitions (acknowledge, resolve) are made by the API, which publishes them on the
same alert topics; the engine applies them to its state when they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as dtime
from typing import Any

import aiomqtt
import numpy as np
import psycopg
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import ValidationError

from analytics import NormsError, load_norms
from analytics.alerts import (
    AlertEvent,
    AlertKind,
    BatchBuilder,
    DetectorState,
    Severity,
    SubjectSpec,
    TransitionError,
    acknowledge,
    add_subject,
    admit,
    evaluate,
    load_alert_norms,
    new_state,
    resolve,
    restore,
)
from analytics.alerts.lifecycle import ACKNOWLEDGED
from application.detector_warmup import warm_detectors
from ingest import admission
from ingest.alerting.metrics import AlertMetrics
from ingest.alerting.notifications.sender import NotificationSender
from ingest.alerting.partition import Ownership
from ingest.alerting.settings import AlertsSettings
from ingest.alerting.shifts import ShiftCalendars, schedule_of, time_text
from ingest.alerting.webhooks import WebhookDispatcher
from ingest.alerting.wire import from_event
from ingest.mqtt import mqtt5_client
from ingest.validate import ChannelRows, TimeWindow, check_channels
from store.alerts import (
    RegistryDevice,
    list_webhooks,
    load_registry,
    open_alerts,
    record_of,
    record_webhook_outcome,
    settled_alerts,
    write_transitions,
)
from store.connection import ReconnectingConnection, is_connection_problem
from store.registry import DeviceInfo, find_device
from store.settings import DEFAULT_MAX_PAST_S
from vocabulary.backoff import backoff_delay_s, supervise
from vocabulary.mqtt_url import MqttEndpoint
from vocabulary.protocol import (
    DecodedMessage,
    ProtocolError,
    RejectReason,
    decode_status,
)
from vocabulary.protocol.alerts import AlertMessage, decode_alert

log = logging.getLogger(__name__)

_BAD_SAMPLES = (RejectReason.NON_FINITE, RejectReason.OUT_OF_RANGE)


@dataclass(slots=True)
class _Device:
    info: DeviceInfo  # what ingest validates against
    profile: str
    slot: int
    sensor_slots: dict[int, int] = field(default_factory=dict)
    refreshing: bool = False


async def _find_device(conn: psycopg.AsyncConnection[Any], *, code: str) -> DeviceInfo | None:
    return await find_device(conn, code)


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
        self.endpoint = MqttEndpoint.parse(settings.mqtt_url)
        self.ownership = Ownership(settings, self.metrics)
        #: The enterprises this engine owns; ``None``: all of them.
        self.enterprises = self.ownership.enterprises
        self._codes = sorted(self.enterprises) if self.enterprises is not None else None
        self.states: dict[str, DetectorState] = {}
        #: The workplaces' schedules as calendars the detectors search.
        self.shifts = ShiftCalendars()
        self._bad_profiles: set[str] = set()
        self.devices: dict[str, _Device] = {}
        self._unknown_until: dict[str, float] = {}
        self._pending: dict[str, BatchBuilder] = {}
        self._pending_since: float | None = None
        self._pending_count = 0
        self._external: list[AlertMessage] = []
        self._wake = asyncio.Event()
        self._tick_due = False
        self._outbox: asyncio.Queue[AlertMessage] = asyncio.Queue()
        self._store: deque[AlertMessage] = deque()
        self._store_wake = asyncio.Event()
        self._db = ReconnectingConnection(
            settings.database_url,
            settings.database_schema,
            retry_max_s=settings.alerts_retry_max_s,
            purpose="alert engine",
        )
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self.subscribed = asyncio.Event()
        self.ready = asyncio.Event()
        self.webhooks = WebhookDispatcher(
            self._load_webhooks,
            self.metrics,
            record=self._record_webhook_outcome,
            timeout_s=settings.alerts_webhook_timeout_s,
            max_attempts=settings.alerts_webhook_max_attempts,
            retry_max_s=settings.alerts_webhook_retry_max_s,
            refresh_s=settings.alerts_webhook_refresh_s,
        )
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
            enterprises=self._codes,
            default_profile=settings.alerts_norms_profile,
            clock=clock,
        )
        #: Messages whose samples went through the detectors (for embedding and tests).
        self.messages_evaluated = 0
        #: Every message published, for callers embedding the engine (tests, the demo).
        self.listeners: list[Callable[[AlertMessage], None]] = []

    # ------------------------------------------------------------------ set-up

    def _state(self, profile: str) -> DetectorState:
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
                return profile, self._state(profile)
            except NormsError as exc:
                self._bad_profiles.add(profile)
                log.error(
                    "enterprise %s: norms profile %r cannot be loaded (%s); its alerts use "
                    "the default profile %r until it is fixed",
                    reg.enterprise, profile, exc, self.settings.alerts_norms_profile,
                )  # fmt: skip
        profile = self.settings.alerts_norms_profile
        return profile, self._state(profile)

    def _register(self, reg: RegistryDevice, info: DeviceInfo) -> _Device:
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
            device = _Device(info=info, profile=profile, slot=slot)
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
        self.shifts.attach(state, self.clock(), wanted - {None})
        self.devices[reg.code] = device
        return device

    async def load(self) -> None:
        """Registry (with the workplaces' schedules and the enterprises' norms profiles), open
        alerts and (optionally) recent statistics."""

        async def fetch(
            conn: psycopg.AsyncConnection[Any],
        ) -> tuple[list[RegistryDevice], list[dict[str, Any]]]:
            return (
                await load_registry(conn, enterprises=self._codes),
                await open_alerts(conn, self._codes),
            )

        registry, stored = await self._db.run(fetch)
        infos: dict[str, DeviceInfo] = {}
        for reg in registry:
            info: DeviceInfo | None = await self._db.run(
                functools.partial(_find_device, code=reg.code)
            )
            if info is not None:
                infos[reg.code] = info
                self._register(reg, info)
        now = self.clock()
        restored = 0
        for row in stored:
            device = self.devices.get(row["device"])
            if device is None:
                continue
            state = self.states[device.profile]
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
        if self.settings.alerts_warm_start:
            await self._warm(now)
        self.metrics.open_alerts.set(sum(len(s.cells.by_id) for s in self.states.values()))
        log.info(
            "alert engine loaded %d devices in %d norms profiles; %d open alerts restored",
            len(self.devices),
            len(self.states),
            restored,
        )

    async def _warm(self, now: float) -> None:
        """Rebuild windows and shift sums from stored readings (``application.detector_warmup``,
        the same rebuild the dashboard's running figures use). The shift is the one of the
        sensor's workplace schedule that holds its latest reading, found in the same calendars
        the detectors use."""
        slots: dict[int, tuple[DetectorState, int]] = {}
        for device in self.devices.values():
            state = self.states[device.profile]
            for sensor_id, slot in device.sensor_slots.items():
                slots[sensor_id] = (state, slot)
        bins, shifts = await self._db.run(
            functools.partial(
                warm_detectors,
                slots=slots,
                now=now,
                longest_shift_s=self.shifts.longest_shift_s,
                # An engine owning some enterprises reads only their sensors' readings.
                only_these=self.enterprises is not None,
            )
        )
        log.info("warmed detector state from %d bins and %d shift sums", bins, shifts)

    async def _load_webhooks(self) -> list[Any]:
        conn = await self._db.get()
        return await list_webhooks(conn, enterprises=self._codes)

    async def _record_webhook_outcome(self, hook_id: int, at: datetime, error: str | None) -> None:
        conn = await self._db.get()
        try:
            await record_webhook_outcome(conn, hook_id, at, error)
        except Exception as exc:
            if is_connection_problem(exc):
                self._db.discard()  # the next one reconnects
            raise

    def owns(self, enterprise: str) -> bool:
        return self.enterprises is None or enterprise in self.enterprises

    async def _device(self, code: str) -> _Device | None:
        cached = self.devices.get(code)
        if cached is not None:
            return cached
        if self._unknown_until.get(code, 0.0) > time.monotonic():
            return None

        async def fetch(
            conn: psycopg.AsyncConnection[Any],
        ) -> tuple[DeviceInfo | None, list[RegistryDevice]]:
            return await find_device(conn, code), await load_registry(conn, [code])

        try:
            info, regs = await fetch(await self._db.get())
        except Exception as exc:
            if not is_connection_problem(exc):
                raise
            # No retry loop here: the reader must keep serving known devices while the
            # database is away; this device is looked up again in a few seconds.
            log.warning("cannot look device %s up (%s); its messages skip the detectors", code, exc)
            self._db.discard()
            info, regs = None, []
        if info is None or not regs or not self.owns(regs[0].enterprise):
            # A device of another engine's enterprise (published under a wrong enterprise's
            # topic) must not become a subject here: its clock checks would alert twice.
            self._unknown_until[code] = time.monotonic() + 5.0
            return None
        return self._register(regs[0], info)

    async def _refresh_device(self, code: str) -> None:
        """Pick up sensors that ingest registered since we looked (auto-registration)."""
        device = self.devices.get(code)
        if device is None or device.refreshing:
            return
        device.refreshing = True
        try:
            await asyncio.sleep(0.5)  # let ingest commit its registration

            async def fetch(
                conn: psycopg.AsyncConnection[Any],
            ) -> tuple[DeviceInfo | None, list[RegistryDevice]]:
                return await find_device(conn, code), await load_registry(conn, [code])

            info, regs = await self._db.run(fetch)
            if info is not None and regs and self.owns(regs[0].enterprise):
                self._register(regs[0], info)
        finally:
            device.refreshing = False

    async def _refresh_registry(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.alerts_registry_refresh_s)
            if stop.is_set():
                return
            try:
                conn = await self._db.get()
                codes = list(self.devices)
                regs = await load_registry(conn, codes, enterprises=self._codes) if codes else []
                for reg in regs:
                    device = self.devices.get(reg.code)
                    if device is not None:
                        self._register(reg, device.info)
                await self._reconcile(conn)
            except Exception as exc:
                log.warning("registry refresh failed: %s", exc)
                self._db.discard()

    async def _reconcile(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Apply people's transitions the alert topic did not bring (the API stored them while
        the broker was away): the database is the record of what people did."""
        held = {i for state in self.states.values() for i in state.cells.by_id}
        if not held or self._store:
            return  # our own writes are still pending: the rows may be behind us
        settled = await settled_alerts(conn, list(held))
        now = self.clock()
        for ident, state_name, acked_by, resolved_by in settled:
            for state in self.states.values():
                where = state.cells.by_id.get(ident)
                if where is None:
                    continue
                current = int(state.cells.status[where])
                with contextlib.suppress(TransitionError):
                    if state_name == "resolved":
                        resolve(state, ident, now, actor=resolved_by, comment=None)
                    elif state_name == "acknowledged" and current != ACKNOWLEDGED:
                        acknowledge(state, ident, now, actor=acked_by, comment=None)

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
            asyncio.create_task(self._publisher_loop(), name="alerts-publish"),
            asyncio.create_task(self._store_loop(), name="alerts-store"),
            asyncio.create_task(self.webhooks.run(stop), name="alerts-webhooks"),
            *(
                [asyncio.create_task(self.notifier.run(stop), name="alerts-notify")]
                if self.settings.alerts_notify
                else []
            ),
            asyncio.create_task(self._refresh_registry(stop), name="alerts-registry"),
            asyncio.create_task(self.ownership.run(stop), name="alerts-heartbeat"),
        ]

        def broker_lost(exc: BaseException, delay: float) -> None:
            self.metrics.mqtt_reconnects.inc()
            log.warning(
                "broker %s unavailable (%s); retrying in %.1f s",
                self.endpoint.redacted(),
                exc,
                delay,
            )

        try:
            await supervise(
                lambda: self._session(stop, tasks),
                stop,
                retry_on=(aiomqtt.MqttError,),
                cap_s=self.settings.alerts_retry_max_s,
                on_retry=broker_lost,
            )
        finally:
            await self._drain_store(timeout_s=10.0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._db.close()
            await self.notifier.close()

    def _client_for_session(self) -> aiomqtt.Client:
        return mqtt5_client(
            self.endpoint,
            client_id=self.settings.alerts_client_id,
            session_expiry_s=self.settings.alerts_session_expiry_s,
            receive_maximum=self.settings.alerts_receive_maximum,
            clean_start=False,
        )

    async def _session(self, stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
        client = self._client_for_session()
        async with client:
            self._client = client
            self._connected.set()
            wanted = self.ownership.subscriptions
            await client.subscribe([(f, SubscribeOptions(qos=1)) for f in wanted.devices])
            # No-local: our own alerts don't come back; the API's (people's actions) do.
            await client.subscribe(
                [(f, SubscribeOptions(qos=1, noLocal=True)) for f in wanted.alerts]
            )
            await self.ownership.forget_stale(client)
            log.info(
                "alert engine subscribed on %s to %d topic filters",
                self.endpoint.redacted(),
                len(wanted.filters),
            )
            self.subscribed.set()
            self.metrics.ready.set(1)
            reader = asyncio.create_task(self._read_loop(client), name="alerts-reader")
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
                self.subscribed.clear()
                self._connected.clear()
                reader.result()
                return
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            # Publish what the detectors decided before leaving the broker.
            await self._drain_outbox(timeout_s=5.0)
            self.subscribed.clear()
            self._connected.clear()
            self._client = None

    # ------------------------------------------------------------------ reader

    async def _read_loop(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.metrics.messages.inc()
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                payload = str(payload).encode()
            try:
                await self.handle(str(message.topic), bytes(payload))
            except (ValueError, ValidationError) as exc:
                self.metrics.skipped.labels("refused").inc()
                log.debug("ignored message on %s: %s", message.topic, exc)

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

    def _add_readings(self, device: _Device, decoded: DecodedMessage, received: float) -> None:
        checked = check_channels(
            decoded,
            device.info,
            window=TimeWindow.around(
                datetime.fromtimestamp(received, UTC),
                max_past_s=DEFAULT_MAX_PAST_S,
                max_future_s=self.settings.ingest_max_future_s,
            ),
            auto_register=True,
        )
        if checked.new_sensors:
            task = asyncio.get_running_loop().create_task(self._refresh_device(device.info.code))
            self._background.add(task)  # a reference, or the loop may drop the task
            task.add_done_callback(self._background.discard)
        bad: dict[str, int] = {}
        refused: set[str] = set()
        for rejection in checked.rejections:
            if rejection.sensor is None:
                continue
            if rejection.reason in _BAD_SAMPLES:
                bad[rejection.sensor] = bad.get(rejection.sensor, 0) + 1
            else:
                refused.add(rejection.sensor)
        good_by_sensor: dict[int, list[ChannelRows]] = {}
        if bad:
            for rows in checked.channels:
                good_by_sensor.setdefault(rows.sensor.id, []).append(rows)
        builder = self._pending.setdefault(device.profile, BatchBuilder())
        samples = 0
        for channel in decoded.channels:
            sensor = device.info.sensors.get(channel.sensor)
            if sensor is None or channel.sensor in refused:
                continue
            slot = device.sensor_slots.get(sensor.id)
            if slot is None:
                continue
            offsets = np.asarray(channel.offsets(), dtype=np.float64)
            if channel.period_s is not None:
                duration = channel.period_s
            elif offsets.size > 1:
                duration = float(np.median(np.diff(offsets))) or 1.0
            else:
                duration = self.states[device.profile].norms.sampling.fallback_interval_s
            if channel.sensor not in bad:
                times = channel.t0.timestamp() + offsets
                values = np.asarray(channel.values, dtype=np.float64)
                valid = np.ones(values.size, dtype=bool)
            else:
                good = good_by_sensor.get(sensor.id, [])
                good_times = np.concatenate(
                    [g.times_us / 1e6 for g in good] or [np.empty(0, dtype=np.float64)]
                )
                good_values = np.concatenate([g.values for g in good] or [np.empty(0)])
                n_bad = len(channel.values) - good_values.size
                end = channel.end().timestamp()
                times = np.concatenate([good_times, np.full(n_bad, end)])
                values = np.concatenate([good_values, np.full(n_bad, math.nan)])
                valid = np.concatenate(
                    [np.ones(good_values.size, dtype=bool), np.zeros(n_bad, dtype=bool)]
                )
            builder.channel(slot, times, values, duration, valid, received)
            samples += int(values.size)
        self.metrics.samples.inc(samples)
        self._mark_pending()

    def _mark_pending(self) -> None:
        if self._pending_since is None:
            self._pending_since = time.perf_counter()
        self._pending_count += 1
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
            self._dispatch(events)
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

    def _dispatch(self, events: list[AlertEvent]) -> None:
        sent_at = datetime.fromtimestamp(self.clock(), UTC)
        for event in events:
            message = from_event(event, sent_at)
            self.metrics.transitions.labels(message.kind, message.transition).inc()
            self._outbox.put_nowait(message)
            self._store.append(message)
            if len(self._store) > self.settings.alerts_store_backlog_max:
                self._store.popleft()
                self.metrics.store_dropped.inc()
            self.webhooks.submit(message)
            for listener in self.listeners:
                listener(message)
            log.info(
                "alert %s %s: %s (%s) %s",
                message.alert_id,
                message.transition,
                message.kind,
                message.severity,
                message.message,
            )
        self.metrics.store_backlog.set(len(self._store))
        self._store_wake.set()

    # ------------------------------------------------------------------ delivery

    async def _publisher_loop(self) -> None:
        prefix = self.settings.topic_prefix
        while True:
            message = await self._outbox.get()
            while True:
                await self._connected.wait()
                client = self._client
                if client is None:
                    await asyncio.sleep(0.05)
                    continue
                try:
                    await client.publish(message.topic(prefix), message.payload(), qos=1)
                    break
                except aiomqtt.MqttError as exc:
                    self.metrics.publish_failures.inc()
                    log.warning("could not publish alert %s (%s); retrying", message.alert_id, exc)
                    await asyncio.sleep(0.2)
            self._outbox.task_done()

    async def _drain_outbox(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), timeout_s)

    async def _store_loop(self) -> None:
        attempt = 0
        while True:
            if not self._store:
                self._store_wake.clear()
                await self._store_wake.wait()
                continue
            batch = [self._store[i] for i in range(min(500, len(self._store)))]
            try:
                conn = await self._db.get()
                await write_transitions(conn, [record_of(m) for m in batch])
            except (psycopg.Error, OSError) as exc:
                attempt += 1
                self.metrics.db_retries.inc()
                self._db.discard()
                delay = backoff_delay_s(attempt, cap_s=self.settings.alerts_retry_max_s)
                log.warning("storing %d alert transitions failed (%s); retrying in %.1f s",
                            len(batch), exc, delay)  # fmt: skip
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self.notifier.wake()  # the transitions' notifications are queued with them
            for _ in batch:
                if self._store:
                    self._store.popleft()
            self.metrics.store_backlog.set(len(self._store))

    async def _drain_store(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self._store and time.monotonic() < deadline:  # noqa: ASYNC110 - the writer pops
            await asyncio.sleep(0.05)
        if self._store:
            log.warning("%d alert transitions were not stored before shutdown", len(self._store))
