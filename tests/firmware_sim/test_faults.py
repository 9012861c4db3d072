"""Fault injection: each instrument fault does what it says and nothing else; transmission
faults change only what goes over the wire, deterministically."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from firmware_sim.device import SimulatedDevice
from firmware_sim.faults import MessageFaults, SampleFault, When, corrupt
from firmware_sim.instruments import GasSensor, SoundLevelMeter
from firmware_sim.schedule import Shifts, Window, WorkplaceSchedule, parse_utc_offset
from vocabulary.driver import SampleBlock
from vocabulary.protocol import ProtocolError, RejectReason, decode_readings

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 08:00 at +05:00, the start of the shift
SHIFTS = Shifts((8 * 3600.0,), 8 * 3600.0, parse_utc_offset("+05:00"))
SCHEDULE = WorkplaceSchedule(SHIFTS, idle_level=1.0)
WINDOW = When(window=Window(600.0, 900.0))  # 08:10–08:15 every shift
END = T0 + timedelta(minutes=20)


def device(*faults: SampleFault) -> SimulatedDevice:
    return SimulatedDevice(
        "f",
        [SoundLevelMeter(), GasSensor(substance="CO", baseline=5.0)],
        start=T0,
        schedule=SCHEDULE,
        faults=faults,
    )


def series(blocks: list[SampleBlock], sensor: str) -> list[tuple[float, float]]:
    out = []
    for b in blocks:
        if b.spec.sensor == sensor:
            t0 = (b.t0 - T0).total_seconds()
            out += [(t0 + i * b.spec.period_s, v) for i, v in enumerate(b.values)]
    return out


CLEAN = dict(series(device().read(END), "f.co"))
CLEAN_NOISE = dict(series(device().read(END), "f.noise"))


def in_window(t: float) -> bool:
    return 600.0 <= t < 900.0


def test_flatline_holds_the_value_from_when_it_started() -> None:
    got = dict(series(device(SampleFault("flatline", frozenset({"co"}), WINDOW)).read(END), "f.co"))
    assert {got[t] for t in got if in_window(t)} == {CLEAN[600.0]}
    assert {t: v for t, v in got.items() if not in_window(t)} == {
        t: v for t, v in CLEAN.items() if not in_window(t)
    }
    # Other channels are untouched.
    assert dict(series(device().read(END), "f.noise")) == CLEAN_NOISE


def test_dropout_leaves_a_gap_and_splits_the_block() -> None:
    blocks = device(SampleFault("dropout", frozenset({"co"}), WINDOW)).read(END)
    got = series(blocks, "f.co")
    assert [t for t, _ in got] == [t for t in sorted(CLEAN) if not in_window(t)]
    co_blocks = [b for b in blocks if b.spec.sensor == "f.co"]
    assert [(b.t0 - T0).total_seconds() for b in co_blocks] == [0.0, 900.0]


def test_spikes_are_rare_multiples_of_the_reading() -> None:
    fault = SampleFault("spikes", frozenset({"co"}), rate_per_h=60.0, factor=10.0)
    got = dict(series(device(fault).read(T0 + timedelta(hours=4)), "f.co"))
    clean = dict(series(device().read(T0 + timedelta(hours=4)), "f.co"))
    spiked = [t for t in got if got[t] != clean[t]]
    assert 150 < len(spiked) < 330  # about 60 an hour
    assert all(got[t] == pytest.approx(clean[t] * 10.0) for t in spiked)


def test_out_of_range_replaces_readings_with_the_error_value() -> None:
    nan_fault = SampleFault("out_of_range", frozenset({"co"}), WINDOW, value=math.nan)
    got = dict(series(device(nan_fault).read(END), "f.co"))
    assert all(math.isnan(got[t]) for t in got if in_window(t))
    code = SampleFault("out_of_range", frozenset({"co"}), WINDOW, value=-999.0)
    assert {v for t, v in series(device(code).read(END), "f.co") if in_window(t)} == {-999.0}


def test_drift_grows_linearly_from_the_start_of_the_fault() -> None:
    fault = SampleFault("drift", frozenset({"co"}), WINDOW, per_hour=12.0)
    got = dict(series(device(fault).read(END), "f.co"))
    for t in (600.0, 750.0, 899.0):
        assert got[t] == pytest.approx(CLEAN[t] + 12.0 * (t - 600.0) / 3600.0)
    assert got[950.0] == CLEAN[950.0]


def test_clock_skew_shifts_the_timestamps_only() -> None:
    fault = SampleFault("clock_skew", when=WINDOW, offset_s=90.0)
    blocks = device(fault).read(END)
    got = series(blocks, "f.co")
    assert [v for _, v in got] == [CLEAN[t] for t in sorted(CLEAN)]
    skewed = [t for t, _ in got if t >= 690.0 and t < 990.0 and (t - 90.0) in CLEAN]
    assert skewed, "no sample carries a shifted time"
    assert {(b.t0 - T0).total_seconds() for b in blocks if b.spec.sensor == "f.co"} == {
        0.0,
        690.0,
        900.0,
    }


def test_faults_can_be_absolute_in_time() -> None:
    when = When(since=T0 + timedelta(minutes=5), until=T0 + timedelta(minutes=6))
    got = series(device(SampleFault("dropout", frozenset({"co"}), when)).read(END), "f.co")
    assert len(got) == len(CLEAN) - 60


def test_unknown_fault_channel_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown channels"):
        device(SampleFault("dropout", frozenset({"nope"})))


def test_message_faults_duplicate_and_corrupt_a_share_deterministically() -> None:
    faults = MessageFaults(seed=3, duplicate_share=0.1, malformed_share=0.05)
    payload = b'{"v":1,"device":"d","seq":1,"channels":[]}'
    outcomes = [faults(seq, payload) for seq in range(4000)]
    assert outcomes == [faults(seq, payload) for seq in range(4000)]
    duplicated = sum(1 for o in outcomes if o == [payload, payload])
    malformed = sum(1 for o in outcomes if len(o) == 1 and o[0] != payload)
    assert 300 < duplicated < 500
    assert 130 < malformed < 270
    assert not MessageFaults()
    with pytest.raises(ValueError, match="must not exceed 1"):
        MessageFaults(duplicate_share=0.8, malformed_share=0.5)


def test_a_corrupted_payload_is_refused_by_ingest_as_malformed_json() -> None:
    good = (
        b'{"v":1,"device":"d","seq":1,"channels":[{"sensor":"d.co","quantity":"gas",'
        b'"unit":"ppm","substance":"CO","t0":"2026-11-23T08:00:00Z","period_s":1.0,'
        b'"values":[1.0,2.0]}]}'
    )
    assert decode_readings(good).seq == 1
    with pytest.raises(ProtocolError) as refused:
        decode_readings(corrupt(good))
    assert refused.value.reason is RejectReason.MALFORMED_JSON
