"""The edge agent: driver → message → outbox → broker (QoS 1) → removed on PUBACK.

One thread does everything: it reads the driver, writes the outbox, drives the MQTT connection
(``BrokerLink.poll``, no paho network thread) and handles acknowledgements, so the order of
events is the order of the code and nothing needs a lock.

Delivery, and why it holds:
- A message is committed to the outbox before it is first published and deleted only on a
  successful PUBACK, so a broker outage, a lost connection or a killed agent loses nothing.
- After every (re)connection the agent replays the outbox from its oldest message, in sequence
  order, on a fresh client: no copies left inside paho from the lost connection can be sent
  again out of order. A message that reached the broker just before the connection dropped is
  sent once more; ingest stores each (device, seq) once.
- At most ``edge_max_inflight`` messages (and never more than the broker's Receive Maximum,
  which paho itself ignores) are unacknowledged at any time.
- Nothing is published while disconnected: paho would keep such a message and send it on the
  next connection, ahead of the replay.
- A PUBACK with a failure reason (0x87 Not authorized, 0x97 Quota exceeded, …) leaves the
  message in the outbox; the agent drops the connection and retries with backoff, so a broker
  ACL fixed later still receives everything. Only reasons that cannot change on a retry
  (packet too large, invalid topic or payload format) discard the message, counted as refused.
- A PUBACK 0x10 "No matching subscribers" is a success code, but the broker dropped the
  message: nobody subscribes yet (Mosquitto 2.0 forgets ingest's shared subscription on a
  restart until ingest subscribes again). It is held and sent again the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from edge.clock import AnchoredClock
from edge.link import (
    FAILURE,
    NO_MATCHING_SUBSCRIBERS,
    BrokerLink,
    Credentials,
    LinkError,
    LinkState,
    Will,
)
from edge.outbox import DropReport, Outbox
from edge.settings import EdgeSettings
from vocabulary.backoff import backoff_delay_s
from vocabulary.driver import Driver, Resumable, SampleBlock
from vocabulary.errors import ConfigurationError
from vocabulary.mqtt_url import MqttEndpoint
from vocabulary.protocol import (
    Channel,
    DeviceStatus,
    OutboxStatus,
    ReadingsMessage,
    encode_readings,
    encode_status,
    readings_topic,
    status_topic,
)

log = logging.getLogger(__name__)

AGENT = "qorgau-edge/1"

# PUBACK reasons a retry cannot change: Topic Name invalid, Packet too large, Payload format
# invalid.
PERMANENT_REFUSALS = frozenset({0x90, 0x95, 0x99})

# Receives (seq, payload) and returns the payloads to publish in its place: the seam where a
# simulator injects message-level faults (duplicate sends, malformed payloads). The message
# leaves the outbox once every returned payload is acknowledged.
PayloadFilter = Callable[[int, bytes], Sequence[bytes]]


def build_message(
    device: str, seq: int, blocks: Sequence[SampleBlock], sent_at: datetime
) -> ReadingsMessage:
    channels = [
        Channel(
            sensor=b.spec.sensor,
            quantity=b.spec.quantity,
            unit=b.spec.unit,
            substance=b.spec.substance,
            t0=b.t0,
            period_s=None if b.offsets_s is not None else b.spec.period_s,
            offsets_s=list(b.offsets_s) if b.offsets_s is not None else None,
            values=list(b.values),
        )
        for b in blocks
    ]
    return ReadingsMessage(device=device, seq=seq, sent_at=sent_at, channels=channels)


def split_blocks(blocks: Sequence[SampleBlock], max_values: int) -> list[list[SampleBlock]]:
    """Group samples into messages of at most ``max_values`` values per channel: piece ``k`` of
    every channel goes into message ``k``."""
    pieces: list[list[SampleBlock]] = []
    for block in blocks:
        for k, start in enumerate(range(0, len(block.values), max_values)):
            if k == len(pieces):
                pieces.append([])
            pieces[k].append(_slice(block, start, start + max_values))
    return pieces


def _slice(block: SampleBlock, start: int, stop: int) -> SampleBlock:
    if start == 0 and stop >= len(block.values):
        return block
    values = block.values[start:stop]
    if block.offsets_s is None:
        t0 = block.t0 + timedelta(seconds=start * block.spec.period_s)
        return SampleBlock(block.spec, t0, values)
    offsets = block.offsets_s[start:stop]
    t0 = block.t0 + timedelta(seconds=offsets[0])
    return SampleBlock(block.spec, t0, values, tuple(o - offsets[0] for o in offsets))


@dataclass(slots=True)
class AgentStats:
    """Counters of this run (the outbox keeps the lifetime ones)."""

    collected_messages: int = 0
    published: int = 0
    acknowledged: int = 0
    refusals: int = 0
    unrouted: int = 0  # PUBACK 0x10: no subscriber, the broker dropped it (sent again later)
    connections: int = 0


class EdgeAgent:
    def __init__(
        self,
        settings: EdgeSettings,
        driver: Driver,
        *,
        clock: Callable[[], datetime] | None = None,
        wall_clock: Callable[[], datetime] | None = None,
        payload_filter: PayloadFilter | None = None,
    ) -> None:
        """``clock`` gives the time up to which the driver is read (simulated time for the
        simulator); ``wall_clock`` stamps ``sent_at`` and the status. Both default to one
        ``AnchoredClock``."""
        self.settings = settings
        self.driver = driver
        anchored = AnchoredClock()
        self.clock = clock or anchored
        self.wall_clock = wall_clock or anchored
        self.payload_filter = payload_filter
        self.device = driver.device
        self.topic = readings_topic(settings.topic_prefix, settings.enterprise, self.device)
        self.status_topic = status_topic(settings.topic_prefix, settings.enterprise, self.device)
        # Several URLs: the nodes of a broker cluster, tried in turn after a failed attempt.
        self.endpoints = [
            MqttEndpoint.parse(url.strip()) for url in settings.mqtt_url.split(",") if url.strip()
        ]
        if not self.endpoints:
            raise ConfigurationError("QORGAU_MQTT_URL names no broker")
        self.endpoint = self.endpoints[0]
        credentials = self._credentials()  # before the outbox: a bad setting holds no lock
        if settings.mqtt_ca_file is not None and not settings.mqtt_ca_file.is_file():
            raise ConfigurationError(f"QORGAU_MQTT_CA_FILE {settings.mqtt_ca_file} is not a file")
        self.outbox = Outbox(
            settings.edge_outbox_dir / f"{self.device}.sqlite3",
            max_bytes=settings.edge_outbox_max_bytes,
            synchronous=settings.edge_outbox_sync,
        )
        self._closed = False
        self.link = BrokerLink(
            self.endpoint,
            client_id=f"qorgau-edge-{self.device}",
            will=Will(
                self.status_topic,
                encode_status(
                    DeviceStatus(online=False, device=self.device, reason="connection lost")
                ),
            ),
            credentials=credentials,
            ca_file=settings.mqtt_ca_file,
            keepalive_s=settings.edge_keepalive_s,
            protocol=settings.edge_mqtt_protocol,
        )
        self.stats = AgentStats()
        self._inflight: dict[int, int] = {}  # packet id → seq
        self._copies: dict[int, int] = {}  # seq → published copies not yet acknowledged
        self._status_mids: set[int] = set()
        self._last_sent = -1
        self._state = LinkState.DOWN
        self._attempt = 0
        self._next_connect: float | None = None  # None: not started
        self._next_status = 0.0
        self._hold_streak = 0
        cursor = self.outbox.cursor()
        if cursor is not None and isinstance(driver, Resumable):
            log.info("device %s: resuming the driver after %s", self.device, cursor.isoformat())
            driver.resume(cursor)

    def _credentials(self) -> Credentials:
        username = self.endpoint.username or self.settings.mqtt_username
        password = self.endpoint.password
        if password is None and self.settings.mqtt_password_file is not None:
            # "{device}" in the path: one file per device, for processes running several.
            path = str(self.settings.mqtt_password_file).replace("{device}", self.device)
            try:
                password = Path(path).read_text().strip()
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot read the broker password (QORGAU_MQTT_PASSWORD_FILE): {exc}"
                ) from exc
        if password is not None and username is None:
            username = self.device
        return Credentials(username, password)

    # ------------------------------------------------------------------ collecting

    def collect(self, until: datetime) -> list[int]:
        """Pack the driver's samples before ``until`` into messages in the outbox; returns
        their sequence numbers (none when the driver had nothing)."""
        blocks = self.driver.read(until)
        if not blocks:
            return []
        sent_at = self.wall_clock()
        groups = split_blocks(blocks, self.settings.edge_max_values_per_message)

        def builder(group: list[SampleBlock]) -> Callable[[int], bytes]:
            return lambda seq: encode_readings(build_message(self.device, seq, group, sent_at))

        seqs, dropped = self.outbox.append_many(
            [(builder(g), sum(len(b.values) for b in g)) for g in groups], cursor=until
        )
        self.stats.collected_messages += len(seqs)
        if dropped:
            self._report_drop(dropped)
        return seqs

    def _report_drop(self, dropped: DropReport) -> None:
        totals = self.outbox.counters()
        log.warning(
            "device %s: outbox reached its cap of %d bytes; dropped the oldest %d messages "
            "(seq %s..%s, %d readings); dropped so far: %d messages, %d readings",
            self.device,
            self.outbox.max_bytes,
            dropped.messages,
            dropped.first_seq,
            dropped.last_seq,
            dropped.readings,
            totals.dropped_messages,
            totals.dropped_readings,
        )
        self._next_status = 0.0  # tell the broker now

    # ------------------------------------------------------------------ connection

    def start(self) -> None:
        """Begin connecting (the first attempt is made at once)."""
        if self._next_connect is None:
            self._next_connect = 0.0
            self._connect_if_due()

    def _connect_if_due(self) -> None:
        if (
            self._next_connect is None
            or self.link.state is not LinkState.DOWN
            or time.monotonic() < self._next_connect
        ):
            return
        try:
            self.link.open()
        except LinkError as exc:
            self._schedule_reconnect(str(exc))
            return
        self._state = self.link.state

    def _schedule_reconnect(self, why: str) -> None:
        self._attempt += 1
        delay = backoff_delay_s(self._attempt, base_s=0.5, cap_s=self.settings.edge_reconnect_max_s)
        # Quiet for the first few tries: a broker restart is routine.
        level = logging.INFO if self._attempt <= 3 else logging.WARNING
        log.log(
            level,
            "device %s: broker %s unavailable (%s); attempt %d in %.1f s, %d messages waiting",
            self.device,
            self.endpoint.redacted(),
            why,
            self._attempt,
            delay,
            self.outbox.pending(),
        )
        self._next_connect = time.monotonic() + delay
        if len(self.endpoints) > 1:
            # That node is away: the next attempt goes to the next one (same credentials).
            following = (self.endpoints.index(self.endpoint) + 1) % len(self.endpoints)
            self.endpoint = self.link.endpoint = self.endpoints[following]

    def _on_state_change(self) -> None:
        state = self.link.state
        if state is self._state:
            return
        previous, self._state = self._state, state
        if state is LinkState.UP:
            self._attempt = 0
            self.stats.connections += 1
            self._forget_inflight()
            log.info(
                "device %s: connected to %s; %d messages to send",
                self.device,
                self.endpoint.redacted(),
                self.outbox.pending(),
            )
            self._publish_status()
        elif state is LinkState.DOWN:
            self._forget_inflight()
            if previous is LinkState.UP:
                self._attempt = 0
            self._schedule_reconnect(self.link.last_error or "connection closed")

    def _forget_inflight(self) -> None:
        # Whatever was in flight on a finished connection is replayed from the outbox.
        self._inflight.clear()
        self._copies.clear()
        self._status_mids.clear()
        self._last_sent = -1

    # ------------------------------------------------------------------ publishing

    def _window(self) -> int:
        window = self.settings.edge_max_inflight
        if self.link.receive_maximum:
            # Keep one slot for the status message.
            window = min(window, max(1, self.link.receive_maximum - 1))
        return window

    def pump(self) -> None:
        """Publish the next messages of the outbox, oldest first, while the window has room."""
        if self.link.state is not LinkState.UP:
            return
        room = self._window() - len(self._inflight)
        if room <= 0:
            return
        try:
            for entry in self.outbox.oldest(room, after_seq=self._last_sent):
                payloads = (
                    [entry.payload]
                    if self.payload_filter is None
                    else list(self.payload_filter(entry.seq, entry.payload))
                )
                for payload in payloads:
                    mid = self.link.publish(self.topic, payload)
                    self._inflight[mid] = entry.seq
                    self._copies[entry.seq] = self._copies.get(entry.seq, 0) + 1
                    self.stats.published += 1
                if not payloads:
                    self.outbox.remove([entry.seq])  # the filter swallowed it
                self._last_sent = entry.seq
        except LinkError:
            self._on_state_change()

    def _handle_acks(self) -> None:
        done: list[int] = []
        held: tuple[int, int, str] | None = None
        for ack in self.link.take_acks():
            if ack.mid in self._status_mids:
                self._status_mids.discard(ack.mid)
                if ack.reason >= FAILURE:
                    log.error(
                        "device %s: broker refused the status on %s (%s)",
                        self.device,
                        self.status_topic,
                        ack.reason_name,
                    )
                continue
            seq = self._inflight.pop(ack.mid, None)
            if seq is None:
                continue
            if ack.reason >= FAILURE and ack.reason in PERMANENT_REFUSALS:
                self.stats.refusals += 1
                self._discard_refused(seq, ack.reason_name)
                continue
            if ack.reason >= FAILURE or ack.reason == NO_MATCHING_SUBSCRIBERS:
                if ack.reason >= FAILURE:
                    self.stats.refusals += 1
                else:
                    self.stats.unrouted += 1
                if held is None or seq < held[0]:
                    held = (seq, ack.reason, ack.reason_name)
                continue
            self._hold_streak = 0
            left = self._copies.get(seq, 1) - 1
            if left <= 0:
                self._copies.pop(seq, None)
                done.append(seq)
            else:
                self._copies[seq] = left
        if done:
            self.outbox.remove(done)
            self.stats.acknowledged += len(done)
        if held is not None:
            self._hold(*held)

    def _discard_refused(self, seq: int, name: str) -> None:
        readings = self.outbox.discard_refused(seq)
        self._copies.pop(seq, None)
        log.error(
            "device %s: broker refused message %d for good (%s); discarded its %d readings",
            self.device,
            seq,
            name,
            readings,
        )
        self._next_status = 0.0

    def _hold(self, seq: int, reason: int, name: str) -> None:
        """The broker did not take message ``seq``: keep it and everything after it, reconnect
        after a backoff and replay from it."""
        self._hold_streak += 1
        delay = backoff_delay_s(
            self._hold_streak, base_s=1.0, cap_s=self.settings.edge_reconnect_max_s
        )
        if reason == NO_MATCHING_SUBSCRIBERS:
            # Nobody subscribes, so the broker dropped it: ingest is not subscribed yet, or
            # Mosquitto restarted and forgot ingest's shared subscription until it comes back.
            log.log(
                logging.INFO if self._hold_streak <= 3 else logging.WARNING,
                "device %s: no subscriber took message %d on %s (0x10); keeping it and every "
                "later one, sending again in %.1f s",
                self.device,
                seq,
                self.topic,
                delay,
            )
        else:
            log.error(
                "device %s: broker refused message %d (0x%02X %s: does the broker ACL let this "
                "device write %s?); keeping it and every later one, retrying in %.1f s",
                self.device,
                seq,
                reason,
                name,
                self.topic,
                delay,
            )
        self.link.close()
        self._state = LinkState.DOWN
        self._forget_inflight()
        self._next_connect = time.monotonic() + delay

    # ------------------------------------------------------------------ status

    def status(self, *, online: bool = True, reason: str | None = None) -> DeviceStatus:
        counters = self.outbox.counters()
        return DeviceStatus(
            online=online,
            device=self.device,
            at=self.wall_clock(),
            reason=reason,
            agent=AGENT,
            next_seq=self.outbox.next_seq(),
            outbox=OutboxStatus(
                pending_messages=self.outbox.pending(),
                pending_readings=self.outbox.pending_readings(),
                used_bytes=self.outbox.used_bytes(),
                max_bytes=self.outbox.max_bytes,
                dropped_messages=counters.dropped_messages,
                dropped_readings=counters.dropped_readings,
                refused_messages=counters.refused_messages,
                refused_readings=counters.refused_readings,
            ),
        )

    def _publish_status(self, *, online: bool = True, reason: str | None = None) -> int | None:
        if self.link.state is not LinkState.UP:
            return None
        payload = encode_status(self.status(online=online, reason=reason))
        try:
            mid = self.link.publish(self.status_topic, payload, retain=True)
        except LinkError:
            self._on_state_change()
            return None
        self._status_mids.add(mid)
        self._next_status = time.monotonic() + self.settings.edge_status_interval_s
        return mid

    # ------------------------------------------------------------------ the loop

    def step(self, timeout_s: float = 0.05) -> None:
        """One turn: connect if due, move bytes (waiting up to ``timeout_s``), handle acks,
        publish more, refresh the status when due."""
        self._connect_if_due()
        self.link.poll(timeout_s)
        self._on_state_change()
        self._handle_acks()
        self.pump()
        if self.link.state is LinkState.UP and time.monotonic() >= self._next_status:
            self._publish_status()

    def flush(self, timeout_s: float) -> bool:
        """Keep publishing until the outbox is empty (True) or ``timeout_s`` has passed."""
        self.start()
        deadline = time.monotonic() + timeout_s
        while not self.outbox.is_empty():
            if time.monotonic() >= deadline:
                return False
            self.step(0.02)
        return True

    def stop(self, flush_timeout_s: float | None = None) -> None:
        """Publish what is left (up to the timeout), announce offline, disconnect, close."""
        if self._closed:
            return
        timeout = self.settings.edge_flush_timeout_s if flush_timeout_s is None else flush_timeout_s
        try:
            if self._next_connect is not None and not self.flush(timeout):
                log.warning(
                    "device %s: stopping with %d messages still in the outbox; they are sent "
                    "on the next start",
                    self.device,
                    self.outbox.pending(),
                )
            mid = self._publish_status(online=False, reason="shutdown")
            deadline = time.monotonic() + 2.0
            while mid is not None and mid in self._status_mids and time.monotonic() < deadline:
                self.step(0.02)
            self.link.close()
        finally:
            self._closed = True
            self.outbox.close()

    def run(self, stop: threading.Event, *, until: datetime | None = None) -> None:
        """Collect every ``edge_batch_interval_s`` and publish until ``stop`` is set (or the
        clock reaches ``until``); then collect the last samples, flush and close."""
        interval = self.settings.edge_batch_interval_s
        self.start()
        try:
            next_batch = time.monotonic()
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_batch:
                    if until is not None and self.clock() >= until:
                        break
                    self._collect_logged(self.clock())
                    # Skip beats missed while busy instead of bursting to catch up.
                    next_batch += max(1, int((now - next_batch) / interval) + 1) * interval
                self.step(min(0.05, max(0.0, next_batch - time.monotonic())))
            end = self.clock()
            self._collect_logged(end if until is None else min(end, until))
        finally:
            self.stop()

    def _collect_logged(self, until: datetime) -> None:
        # An instrument that fails to answer, or a full disk, must not end the agent: what
        # is in the outbox still goes out, and the next beat tries again.
        try:
            self.collect(until)
        except Exception:
            log.exception("device %s: reading the driver into the outbox failed", self.device)
