"""What travels through the worker: a received message (``Received``), the same message checked
and on its way to the database (``Item``), and what a commit made of a batch (``CommitResult``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ingest import mqtt
from ingest.quarantine import QuarantineRecord, dead_letter_record
from ingest.validate import ChannelRows
from store.deadletters import DeadLetterRecord, DeadLetterStage
from store.readings import ReadingBlock
from store.registry import DeviceInfo

# A message as a broker source hands it to the worker: topic, payload, mid (MQTT packet id, or
# AMQP delivery tag: what the source's ``acknowledge`` sends back) and QoS.
Received = mqtt.RawMessage


@dataclass(slots=True)
class Item:
    """One received message on its way to the database."""

    mid: int
    qos: int
    generation: int  # which broker connection it came on; acks go back on that one only
    received: float  # time.monotonic() at arrival
    topic: str = ""
    # Kept until the commit for a dead letter, which stores the whole message for replay.
    payload: bytes = b""
    device: DeviceInfo | None = None
    seq: int | None = None
    channels: list[ChannelRows] = field(default_factory=list)
    # The readings to store: from the fast path directly, else built from ``channels``.
    block: ReadingBlock | None = None
    readings: int = 0
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    dead_letter: DeadLetterRecord | None = None

    @classmethod
    def arriving(cls, topic: str, payload: bytes, mid: int, qos: int, generation: int) -> Item:
        """The item of a message taken now, before anything is known of its content."""
        return cls(
            mid=mid,
            qos=qos,
            generation=generation,
            received=time.monotonic(),
            topic=topic,
            payload=payload,
        )

    @property
    def key(self) -> tuple[int, int] | None:
        # A dead letter is not marked as ingested: its replay must be able to store it.
        if self.device is None or self.seq is None or self.dead_letter is not None:
            return None
        return (self.device.id, self.seq)

    def give_up(
        self, client_id: str, stage: DeadLetterStage, attempts: int, exc: BaseException
    ) -> None:
        """Make this message a dead letter: stored whole, none of its readings."""
        self.dead_letter = dead_letter_record(
            client_id=client_id,
            stage=stage,
            topic=self.topic,
            device=self.device.code if self.device is not None else None,
            seq=self.seq,
            attempts=attempts,
            exc=exc,
            payload=self.payload,
        )
        self.channels = []
        self.block = None
        self.readings = 0
        self.quarantine = []

    def block_of(self) -> ReadingBlock:
        """The readings to store as columns."""
        if self.block is not None:
            return self.block
        return ReadingBlock.concat(
            ReadingBlock(c.times_us, np.full(len(c.values), c.sensor.id, dtype=np.int32), c.values)
            for c in self.channels
        )

    def channel_rows(self) -> list[ChannelRows]:
        """The stored readings per sensor, for listeners (the fast path keeps only the
        message's columns)."""
        if self.block is None or self.device is None:
            return self.channels
        block = self.block
        sensors = {s.id: s for s in self.device.sensors.values()}
        return [
            ChannelRows(sensors[int(sensor_id)], block.times_us[rows], block.values[rows])
            for sensor_id in np.unique(block.sensor_ids)
            for rows in [block.sensor_ids == sensor_id]
        ]


@dataclass(frozen=True, slots=True)
class CommitResult:
    fresh: list[Item]  # first copies of (device, seq): their readings are now stored
    keyless: list[Item]  # quarantined whole before a (device, seq) was known, or dead letters
    duplicates: int  # copies of messages stored before (or earlier in this batch)
    readings: int
    quarantine: list[QuarantineRecord]
    dead_letters: list[DeadLetterRecord] = field(default_factory=list)

    @classmethod
    def merge(cls, results: list[CommitResult]) -> CommitResult:
        return cls(
            fresh=[i for r in results for i in r.fresh],
            keyless=[i for r in results for i in r.keyless],
            duplicates=sum(r.duplicates for r in results),
            readings=sum(r.readings for r in results),
            quarantine=[q for r in results for q in r.quarantine],
            dead_letters=[d for r in results for d in r.dead_letters],
        )
