"""The alert engine's batch path (``ingest.alerting.fast_readings``) feeds the detectors exactly
the samples, arrivals, statuses and dedupe verdicts that the one-message path
(``AlertService.handle``) feeds them, for clean messages and for every kind it leaves to that
path. No services: the devices are registered in the engines directly, so nothing is looked up.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.alerting.metrics import AlertMetrics
from ingest.alerting.service import AlertService
from ingest.alerting.settings import AlertsSettings
from store.alerts import RegistryDevice, RegistrySensor
from store.registry import DeviceInfo, SensorInfo

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
PREFIX = "fr"

pytestmark = pytest.mark.anyio
SENSORS = [  # code suffix, quantity, unit, substance, min, max
    ("noise", "noise_laeq", "dB(A)", None, None, None),
    ("co", "gas", "mg/m3", "CO", 0.0, 50.0),
    ("h2s", "gas", "mg/m3", "H2S", 0.0, 100.0),
]


def engine() -> AlertService:
    service = AlertService(
        AlertsSettings(
            database_url="postgresql://127.0.0.1:1/unused",  # never connected: nothing looked up
            mqtt_url="mqtt://127.0.0.1:1",
            topic_prefix=PREFIX,
            alerts_client_id="fast-readings-test",
        ),
        AlertMetrics(),
        clock=NOW.timestamp,
    )
    for d in (1, 2):
        code = f"dev-{d}"
        info = DeviceInfo(
            id=d, code=code, enterprise_id=1, enterprise_code="ent", workplace_id=None
        )
        registry = []
        for n, (suffix, quantity, unit, substance, lo, hi) in enumerate(SENSORS):
            sensor_id = 10 * d + n
            info.sensors[f"{code}.{suffix}"] = SensorInfo(
                sensor_id, d, f"{code}.{suffix}", quantity, unit, substance, None, lo, hi
            )
            registry.append(
                RegistrySensor(sensor_id, f"{code}.{suffix}", quantity, unit, substance, None, None)
            )
        service.subjects.register(
            RegistryDevice(d, code, 1, "ent", None, tuple(registry)),
            info,
        )
    return service


def topic(device: str, kind: str = "readings", enterprise: str = "ent") -> str:
    return f"{PREFIX}/v1/{enterprise}/{device}/{kind}"


def readings(device: str, seq: int, values: list[list[Any]], *, offset_s: int = 0) -> bytes:
    t0 = (NOW - timedelta(seconds=60 - offset_s)).isoformat()
    channels = [
        {
            "sensor": f"{device}.{suffix}",
            "quantity": quantity,
            "unit": unit,
            **({"substance": substance} if substance else {}),
            "t0": t0,
            "period_s": 1.0,
            "values": samples,
        }
        for (suffix, quantity, unit, substance, _, _), samples in zip(SENSORS, values, strict=False)
    ]
    return json.dumps({"v": 1, "device": device, "seq": seq, "channels": channels}).encode()


def fed(service: AlertService) -> dict[str, Any]:
    """What the detectors would be given, in an order that does not depend on the path."""
    batch = service._pending["default"].build()
    samples = sorted(
        zip(
            batch.slot.tolist(),
            batch.time_s.tolist(),
            [None if np.isnan(v) else v for v in batch.value.tolist()],  # NaN != NaN
            batch.duration_s.tolist(),
            batch.valid.tolist(),
            strict=True,
        ),
        key=repr,
    )
    arrivals = sorted(
        zip(
            batch.arrival_slot.tolist(),
            batch.arrival_end_s.tolist(),
            batch.arrival_now_s.tolist(),
            strict=True,
        )
    )
    state = service.states["default"]
    skipped = {
        sample.labels["reason"]: sample.value
        for metric in service.metrics.skipped.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    }
    return {
        "samples": samples,
        "arrivals": arrivals,
        "statuses": sorted(
            zip(batch.status_slot.tolist(), batch.status_online.tolist(), strict=True)
        ),
        "seq_hi": state.seq_hi.tolist(),
        "seq_seen": state.seq_seen.tolist(),
        "skipped": skipped,
        "samples_metric": service.metrics.samples._value.get(),
        "pending_messages": service._pending_count,
    }


async def both_ways(messages: list[tuple[str, bytes]]) -> tuple[dict[str, Any], dict[str, Any]]:
    batched, one_by_one = engine(), engine()
    await batched.receive(messages)
    for message in messages:
        await one_by_one.receive([message])  # a batch of one goes the same way as before
    alone = engine()
    for t, payload in messages:
        try:
            await alone.handle(t, payload)
        except ValueError:
            alone.metrics.skipped.labels("refused").inc()
    assert fed(one_by_one) == fed(alone)
    return fed(batched), fed(alone)


async def test_every_kind_of_message_feeds_the_detectors_as_the_one_message_path_does() -> None:
    messages = [
        (topic("dev-1"), readings("dev-1", 1, [[55.0], [3.0], [1.0]])),
        (topic("dev-2"), readings("dev-2", 7, [[60.0, 61.5, 62.0], [4.0, 4.5, 5.0]], offset_s=5)),
        (topic("dev-1"), readings("dev-1", 1, [[55.0], [3.0], [1.0]])),  # a duplicate
        (topic("dev-1"), readings("dev-1", 2, [[56.0], [70.0], [1.0]], offset_s=1)),  # CO > 50
        (topic("dev-1"), readings("dev-1", 3, [[57.0], [float("nan")]], offset_s=2)),
        (topic("dev-9"), readings("dev-9", 1, [[50.0]])),  # not registered
        (topic("dev-2", enterprise="other"), readings("dev-2", 8, [[50.0]])),  # foreign topic
        (topic("dev-2", "status"), b'{"online": false}'),
        (topic("dev-1"), b"{not json"),
        (topic("dev-2"), readings("dev-2", 9, [[58.0, 59.0]], offset_s=9)),
        (topic("dev-1"), readings("dev-1", 4, [[58.0], [2.0], [101.0]], offset_s=3)),  # H2S > 100
        (topic("dev-2"), readings("dev-2", 7, [[1.0]])),  # a duplicate, different content
        # The same message twice, bad then clean: the first to arrive is the one kept.
        (topic("dev-1"), readings("dev-1", 5, [[float("inf")]], offset_s=4)),
        (topic("dev-1"), readings("dev-1", 5, [[59.0]], offset_s=4)),
    ]
    batched, alone = await both_ways(messages)
    assert batched == alone
    # The cases were all there: samples of both devices, bad samples marked invalid,
    # a duplicate, a status, and refusals.
    assert len({slot for slot, *_ in alone["samples"]}) == 5  # dev-1's 3 sensors, dev-2's 2
    assert alone["statuses"]
    assert not all(valid for *_, valid in alone["samples"])
    assert alone["skipped"]["duplicate"] == 3
    assert alone["skipped"]["refused"] >= 2


sample = st.one_of(
    st.floats(-10.0, 150.0),
    st.integers(0, 120),
    st.just(float("inf")),
    st.just("7"),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["dev-1", "dev-2"]),
            st.integers(0, 6),
            st.lists(st.lists(sample, min_size=1, max_size=4), min_size=1, max_size=3),
            st.integers(-30, 30),
        ),
        min_size=1,
        max_size=12,
    )
)
async def test_random_batches_feed_the_same_samples(
    drawn: list[tuple[str, int, list[list[Any]], int]],
) -> None:
    messages = [
        (topic(device), readings(device, seq, values, offset_s=offset))
        for device, seq, values, offset in drawn
    ]
    batched, alone = await both_ways(messages)
    assert batched == alone
    assert np.isfinite([t for _, t, *_ in alone["samples"]]).all()
