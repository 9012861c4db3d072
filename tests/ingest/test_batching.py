"""How the writer cuts the reader's chunks into batches: at the readings limit or at the
message limit (half the Receive Maximum), never splitting a message, never an empty batch, and
the rest kept, in order, for the next batch."""

from __future__ import annotations

from ingest.batching import fill
from ingest.items import Item


def items(*readings: int) -> list[Item]:
    return [
        Item(mid=n, qos=1, generation=1, received=0.0, readings=r) for n, r in enumerate(readings)
    ]


def test_a_chunk_larger_than_the_readings_limit_is_cut_and_its_rest_kept_in_order() -> None:
    batch: list[Item] = []
    chunk = items(2000, 2000, 2000, 2000)
    readings, rest = fill(batch, chunk, 0, max_readings=5000, max_messages=100)
    assert [i.mid for i in batch] == [0, 1, 2]  # the message that crosses the limit is taken
    assert readings == 6000
    assert [i.mid for i in rest] == [3]


def test_the_message_limit_cuts_too() -> None:
    batch: list[Item] = []
    readings, rest = fill(batch, items(*[8] * 10), 0, max_readings=50_000, max_messages=4)
    assert (len(batch), readings, len(rest)) == (4, 32, 6)


def test_a_batch_takes_at_least_one_message_whatever_its_size() -> None:
    batch: list[Item] = []
    readings, rest = fill(batch, items(90_000, 5), 0, max_readings=50_000, max_messages=10)
    assert ([i.mid for i in batch], readings, [i.mid for i in rest]) == ([0], 90_000, [1])


def test_a_full_batch_takes_nothing_more() -> None:
    batch = items(60_000)
    chunk = items(1, 2)
    readings, rest = fill(batch, chunk, 60_000, max_readings=50_000, max_messages=10)
    assert (len(batch), readings, rest) == (1, 60_000, chunk)
