"""The writer loop: items from the reader, cut into batches, each committed and then handed on.

Batches close by size (``QORGAU_INGEST_BATCH_MAX_READINGS``), by count (half the Receive
Maximum, so the broker can send the next half while one commits), or by time counted from the
arrival of their first message, so light load sees low latency and heavy load gets big
batches. The queue between reader and writer is bounded; the broker's Receive Maximum bounds
it first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ingest.items import CommitResult, Item
from ingest.metrics import IngestMetrics
from ingest.settings import IngestSettings

log = logging.getLogger(__name__)

# Messages a source hands over at once: big enough that per-chunk costs vanish, small enough
# that the event loop is not held long.
CHUNK_MESSAGES = 500


@dataclass(slots=True)
class _Flush:
    """Marker: commit everything queued before it, then set ``done``."""

    done: asyncio.Event = field(default_factory=asyncio.Event)


def fill(
    batch: list[Item], chunk: list[Item], readings: int, max_readings: int, max_messages: int
) -> tuple[int, list[Item]]:
    """Move the chunk's items into the batch while it has room (a batch takes at least one);
    return the batch's readings and the items left over."""
    for index, item in enumerate(chunk):
        if batch and (readings >= max_readings or len(batch) >= max_messages):
            return readings, chunk[index:]
        batch.append(item)
        readings += item.readings
    return readings, []


class Batcher:
    """The queue between reader and writer, and the writer loop that empties it: each batch
    goes to ``commit``, then to ``committed`` (acknowledgements, listeners, counters)."""

    def __init__(
        self,
        settings: IngestSettings,
        metrics: IngestMetrics,
        commit: Callable[[list[Item]], Awaitable[CommitResult]],
        committed: Callable[[list[Item], CommitResult], None],
    ) -> None:
        self.metrics = metrics
        self._commit = commit
        self._committed = committed
        self._max_readings = settings.ingest_batch_max_readings
        # Half the window: the broker can send the next half while this batch commits.
        self._max_messages = max(1, settings.ingest_receive_maximum // 2)
        self._max_delay = settings.ingest_batch_max_delay_ms / 1000
        # The broker never has more than Receive Maximum messages unacknowledged with us, so the
        # queue cannot outgrow that; the bound is a second line of defence.
        self._queue: asyncio.Queue[list[Item] | _Flush] = asyncio.Queue(
            maxsize=max(2 * settings.ingest_receive_maximum, 1000) // CHUNK_MESSAGES + 1
        )
        self.queued = 0  # messages in the queue's lists

    async def put(self, items: list[Item]) -> None:
        self.queued += len(items)
        await self._queue.put(items)
        self.metrics.queue_depth.set(self.queued)

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until everything queued so far is committed and handed on."""
        marker = _Flush()
        await self._queue.put(marker)
        try:
            await asyncio.wait_for(marker.done.wait(), timeout_s)
        except TimeoutError:
            log.warning("flush did not finish within %s s; the broker will redeliver", timeout_s)
            return False
        return True

    async def run(self) -> None:
        # Items of a chunk that did not fit the last batch: they start the next one, and a
        # flush waits for them (they were queued before it).
        carry: list[Item] = []
        flushes: list[_Flush] = []
        while True:
            first = carry or await self._queue.get()
            batch: list[Item] = []
            if isinstance(first, _Flush):  # (carry is empty: it came from the queue)
                flushes.append(first)
            elif first:
                carry = await self._gather(batch, first, flushes)
            if batch:
                self.queued -= len(batch)
                result = await self._commit(batch)
                self._committed(batch, result)
            self.metrics.queue_depth.set(self.queued)
            if not carry:
                for marker in flushes:
                    marker.done.set()
                flushes = []

    async def _gather(
        self, batch: list[Item], first: list[Item], flushes: list[_Flush]
    ) -> list[Item]:
        """Fill ``batch`` from ``first`` and whatever arrives before it is full or due; return
        the items left over (flush markers met on the way go to ``flushes``)."""
        max_readings, max_messages = self._max_readings, self._max_messages
        readings, carry = fill(batch, first, 0, max_readings, max_messages)
        # The delay counts from the first message's arrival: one that waited in the queue
        # during the previous commit is not held back any longer.
        deadline = first[0].received + self._max_delay
        while not carry and readings < max_readings and len(batch) < max_messages:
            try:
                nxt = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if isinstance(nxt, _Flush):
                flushes.append(nxt)
                break
            readings, carry = fill(batch, nxt, readings, max_readings, max_messages)
        return carry
