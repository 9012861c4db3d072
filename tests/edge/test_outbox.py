"""The on-disk outbox without a broker: numbering, order, crash safety, compression, the cap."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.agent import build_message
from edge.outbox import (
    DEFAULT_MAX_BYTES,
    WAL_LIMIT_BYTES,
    Outbox,
    OutboxLockedError,
)
from firmware_sim.device import SimulatedDevice
from firmware_sim.instruments import (
    DustMonitor,
    GasSensor,
    HandArmVibration,
    SoundLevelMeter,
    WholeBodyVibration,
)
from vocabulary.protocol import decode_readings, encode_readings

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def payload(seq: int, size: int = 100) -> bytes:
    return json.dumps({"seq": seq, "pad": "x" * size}).encode()


def open_outbox(path: Path, **kwargs: object) -> Outbox:
    kwargs.setdefault("first_seq", lambda: 0)
    kwargs.setdefault("synchronous", "normal")
    return Outbox(path, **kwargs)  # type: ignore[arg-type]


def test_numbers_continue_across_reopen_and_are_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    with open_outbox(path) as box:
        seqs = [box.append(payload, readings=1)[0] for _ in range(3)]
        box.remove(seqs)
        assert box.pending() == 0
    with open_outbox(path) as box:
        assert box.next_seq() == 3
        assert box.append(payload, readings=1)[0] == 3


def test_a_new_outbox_starts_at_the_clock_in_milliseconds(tmp_path: Path) -> None:
    with Outbox(tmp_path / "d.sqlite3", first_seq=lambda: 1_795_000_000_000) as box:
        assert box.next_seq() == 1_795_000_000_000
    with Outbox(tmp_path / "e.sqlite3") as box:
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        assert abs(box.next_seq() - now_ms) < 60_000


def test_oldest_first_and_payloads_round_trip_exactly(tmp_path: Path) -> None:
    with open_outbox(tmp_path / "d.sqlite3") as box:
        sent = {
            box.append(lambda s: payload(s, s * 7), readings=s)[0]: payload(s, s * 7)
            for s in range(20)
        }
        first = box.oldest(5)
        assert [e.seq for e in first] == [0, 1, 2, 3, 4]
        assert [e.seq for e in box.oldest(3, after_seq=4)] == [5, 6, 7]
        for entry in box.oldest(100):
            assert entry.payload == sent[entry.seq]
            assert entry.readings == entry.seq
        assert box.pending_readings() == sum(range(20))


def test_a_second_agent_cannot_open_the_same_outbox(tmp_path: Path) -> None:
    with open_outbox(tmp_path / "d.sqlite3"), pytest.raises(OutboxLockedError):
        open_outbox(tmp_path / "d.sqlite3")


def test_append_many_is_all_or_nothing(tmp_path: Path) -> None:
    def broken(seq: int) -> bytes:
        raise RuntimeError("encoder failed")

    with open_outbox(tmp_path / "d.sqlite3") as box:
        with pytest.raises(RuntimeError):
            box.append_many([(payload, 1), (broken, 1)], cursor=T0)
        assert box.pending() == 0
        assert box.next_seq() == 0
        assert box.cursor() is None
        seqs, _ = box.append_many([(payload, 2), (payload, 3)], cursor=T0)
        assert seqs == [0, 1]
        assert box.cursor() == T0


def test_a_killed_writer_loses_no_committed_message_and_reuses_no_number(
    tmp_path: Path,
) -> None:
    """SIGKILL a process that appends as fast as it can; every number it reported as stored is
    there afterwards, and the next number is above all of them."""
    path = tmp_path / "d.sqlite3"
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from edge.outbox import Outbox
        box = Outbox(Path({str(path)!r}), first_seq=lambda: 0)
        while True:
            seq, _ = box.append(lambda s: b"x" * 200, readings=8)
            print(seq, flush=True)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        reported = [int(proc.stdout.readline()) for _ in range(300)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        reported += [int(line) for line in proc.stdout.read().split()]
    with open_outbox(path) as box:
        stored = {e.seq for e in box.oldest(1_000_000)}
        assert set(reported) <= stored
        assert box.next_seq() > max(reported)
        assert sorted(stored) == list(range(box.next_seq()))


def test_the_cap_drops_oldest_first_and_counts_exactly(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    cap = 256 * 1024
    readings_of = {}
    drops = []
    with open_outbox(path, max_bytes=cap) as box:
        for i in range(3000):
            # Incompressible payloads, so that the cap is reached quickly.
            blob = os.urandom(200)

            def payload(_seq: int, b: bytes = blob) -> bytes:
                return b

            seq, dropped = box.append(payload, readings=1 + i % 8)
            readings_of[seq] = 1 + i % 8
            if dropped:
                drops.append(dropped)
            assert box.used_bytes() <= cap
        kept = [e.seq for e in box.oldest(1_000_000)]
        counters = box.counters()
    assert drops, "the cap was never reached"
    gone = sorted(set(readings_of) - set(kept))
    # Oldest first: what is gone is a prefix, what is kept is the contiguous newest part.
    assert gone == list(range(len(gone)))
    assert kept == list(range(len(gone), 3000))
    assert counters.dropped_messages == len(gone) == sum(d.messages for d in drops)
    assert counters.dropped_readings == sum(readings_of[s] for s in gone)
    assert drops[0].first_seq == 0
    assert drops[-1].last_seq == len(gone) - 1
    with open_outbox(path, max_bytes=cap) as box:  # the counters are on disk
        assert box.counters() == counters


def test_refused_messages_are_counted_apart(tmp_path: Path) -> None:
    with open_outbox(tmp_path / "d.sqlite3") as box:
        seq, _ = box.append(payload, readings=5)
        assert box.discard_refused(seq) == 5
        assert box.discard_refused(seq) == 0
        counters = box.counters()
    assert (counters.refused_messages, counters.refused_readings) == (1, 5)
    assert counters.dropped_messages == 0


def test_the_walking_skeleton_outbox_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    db.executemany("INSERT INTO outbox VALUES (?, ?)", [(7, b"seven"), (8, b"eight")])
    db.execute("INSERT INTO meta VALUES ('next_seq', 9)")
    db.commit()
    db.close()
    with open_outbox(path) as box:
        assert [(e.seq, e.payload) for e in box.oldest(10)] == [(7, b"seven"), (8, b"eight")]
        assert box.next_seq() == 9


def eight_channel_device(start: datetime) -> SimulatedDevice:
    """Eight channels at 1 Hz: LAeq, LCpeak, CO, H2S, NO2, dust, a_hv, whole-body z."""
    return SimulatedDevice(
        "mine-01-face-12",
        [
            SoundLevelMeter(impulse_rate_per_h=4.0),
            GasSensor(substance="CO", baseline=3.0, leak_rate_per_h=0.5, leak_peak=20.0),
            GasSensor(substance="H2S", baseline=0.3, noise=0.1),
            GasSensor(substance="NO2", baseline=0.1, noise=0.05),
            DustMonitor(substance="silica_10_70", work_gm=2.0),
            HandArmVibration(a_hv=8.0),
            WholeBodyVibration(axes=("z",)),
        ],
        start=start,
    )


@pytest.mark.slow  # two hours of messages, appended one by one
def test_bytes_per_reading_hold_72_hours_of_8_channels_under_the_default_cap(
    tmp_path: Path,
) -> None:
    """Two hours of one-second messages from an 8-channel device, stored as the agent stores
    them; the measured size per reading must fit 72 h × 8 channels × 1 Hz in the default cap
    (with the WAL on top)."""
    device = eight_channel_device(T0)
    assert len(device.channels()) == 8
    with open_outbox(tmp_path / "d.sqlite3") as box:
        for second in range(1, 2 * 3600 + 1):
            blocks = device.read(T0 + timedelta(seconds=second))
            sent_at = T0 + timedelta(seconds=second, milliseconds=120)
            box.append(
                lambda seq, b=blocks, t=sent_at: encode_readings(  # type: ignore[misc]
                    build_message(device.code, seq, b, t)
                ),
                readings=8,
            )
        stored = box.pending_readings()
        bytes_per_reading = box.used_bytes() / stored
        sample = box.oldest(1, after_seq=5000)[0]
    assert stored == 2 * 3600 * 8
    assert decode_readings(sample.payload).seq == sample.seq
    readings_72h = 72 * 3600 * 8
    print(f"outbox: {bytes_per_reading:.1f} bytes per reading")
    assert readings_72h * bytes_per_reading + WAL_LIMIT_BYTES <= DEFAULT_MAX_BYTES
