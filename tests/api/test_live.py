"""The shift in progress: running exposure from the analytics running sums, and the live
stream of a workplace's readings straight from the broker."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import numpy as np
import pytest

from analytics import load_norms
from analytics.alerts import BatchBuilder, SubjectSpec, load_alert_norms, thresholds_for, warm
from application.assessments import SensorRef, schedule_of
from application.running import RunningMetric, limit_lines, running_metrics, running_state
from application.schedule import Schedule, current_shift
from tests.live_support import DEVICE, NOISE, live_world, noise
from tests.support import eventually

NORMS = load_norms()
ALERTS = load_alert_norms()
HOUR = 3600.0


def thresholds(quantity: str, unit: str, substance: str | None = None) -> Any:
    spec = SubjectSpec(
        enterprise="e", device="d", sensor="s", quantity=quantity, unit=unit, substance=substance
    )
    return thresholds_for(spec, NORMS, ALERTS)


START = datetime(2026, 11, 10, 0, 0, tzinfo=UTC)
WORKPLACE = {
    "id": 1,
    "code": "wp",
    "shift_starts": [time(0, 0)],
    "shift_duration_s": int(8 * HOUR),
    "timezone": "UTC",
}


def running(
    quantity: str,
    unit: str,
    t: np.ndarray[Any, Any],
    values: np.ndarray[Any, Any],
    substance: str | None = None,
) -> RunningMetric | None:
    """The dashboard's running figure of one sensor sampled at 1 Hz at ``t`` s into its shift,
    the samples fed to the detectors as the alert engine's stream feeds them."""
    sensor = SensorRef(7, "s", quantity, unit, substance)
    state, slots = running_state(NORMS, ALERTS, WORKPLACE, "e", [sensor], START)
    batch = BatchBuilder()
    batch.channel(slots[7], START.timestamp() + t, values, 1.0, np.ones(t.size, dtype=bool), 0.0)
    warm(state, batch.build())
    (found,) = running_metrics(state, [slots[7]], current_shift(schedule_of(WORKPLACE), START))
    return found


def test_constant_noise_half_a_shift_in() -> None:
    # 3 dB(A) above the profile's limit for the first 4 h of an 8 h shift, one sample a second.
    action, limit = ALERTS.noise_lex8h_levels_db
    level = limit + 3.0
    t = np.arange(0.0, 4 * HOUR)
    r = running("noise_laeq", "dB(A)", t, np.full(t.size, level))
    assert r is not None
    assert r.metric == "LEX,8h"
    assert r.unit == "dB(A)"
    assert r.so_far == pytest.approx(level + 10 * math.log10(0.5), abs=1e-9)
    # From the latest sample on at the same level: the whole shift at `level` (the last sample
    # counts its second, the projection starts at its time).
    assert r.projected == pytest.approx(
        level + 10 * math.log10((4 * HOUR + 8 * HOUR - t[-1]) / (8 * HOUR)), abs=1e-9
    )
    assert (r.action_level, r.limit) == (action, limit)
    # The limit over 8 h is half the energy of limit + 3 dB(A): reached after 8 h·10^-0.3.
    assert r.time_to_limit_s == pytest.approx(8 * HOUR * 10**-0.3 - 4 * HOUR, rel=1e-9)
    assert r.at == START + timedelta(seconds=float(t[-1]))


def test_projection_uses_the_current_rate() -> None:
    # CO at 2 mg/m³ for 3 h, then 40 mg/m³ for the last 10 minutes: TWA so far is small, the
    # projection at the current rate is far over ПДК_сс (20 mg/m³).
    t = np.arange(0.0, 3 * HOUR + 600.0)
    c = np.where(t < 3 * HOUR, 2.0, 40.0)
    r = running("gas", "mg/m3", t, c, substance="CO")
    assert r is not None
    so_far = (2.0 * 3 * HOUR + 40.0 * 600.0) / (8 * HOUR)
    assert r.so_far == pytest.approx(so_far)
    assert r.projected == pytest.approx(so_far + 40.0 * (8 * HOUR - t[-1]) / (8 * HOUR))
    assert r.limit == 20.0 < r.projected
    have = 2.0 * 3 * HOUR + 40.0 * 600.0
    assert r.time_to_limit_s == pytest.approx((20.0 * 8 * HOUR - have) / 40.0)


def test_no_daily_value_for_peaks_but_its_ceiling_is_drawn() -> None:
    th = thresholds("noise_lcpeak", "dB(C)")
    t = np.arange(0.0, 60.0)
    assert running("noise_lcpeak", "dB(C)", t, np.full(60, 120.0)) is None
    (line,) = limit_lines(th)
    assert (line.value, line.kind) == (137.0, "ceiling")
    assert "dB(C)" in line.label


def test_gas_chart_lines_are_pdk_in_the_sensor_unit() -> None:
    lines = {line.kind: line for line in limit_lines(thresholds("gas", "mg/m3", "H2S"))}
    assert lines["limit"].value == NORMS.substance("H2S").pdk_ss_mg_m3
    assert lines["short_term"].value == NORMS.substance("H2S").pdk_max_mg_m3
    assert lines["limit"].label.startswith("ПДК_сс")


def test_current_shift_between_shifts_is_the_last_one() -> None:
    day = Schedule.of([time(8, 0)], 8 * 3600, "Asia/Almaty")
    during = current_shift(day, datetime(2026, 11, 10, 5, 0, tzinfo=UTC))
    assert during.start == datetime(2026, 11, 10, 3, 0, tzinfo=UTC)
    evening = current_shift(day, datetime(2026, 11, 10, 15, 0, tzinfo=UTC))
    assert evening.start == during.start


async def read_events(
    http: httpx.AsyncClient, url: str, into: list[tuple[str, dict[str, Any]]]
) -> None:
    async with http.stream("GET", url) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        event = "message"
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                into.append((event, json.loads(line[6:])))


@pytest.mark.anyio
@pytest.mark.services
async def test_live_exposure_and_stream(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    async with (
        live_world(pg_url, mqtt_url, schema, topic_prefix, exposure_every_s=0.5) as world,
        httpx.AsyncClient(
            base_url=world.base,
            timeout=10,
            headers={"Authorization": f"Bearer {world.officer}"},
        ) as http,
    ):
        path = f"/api/v1/workplaces/{world.workplace_id}/live"
        exposure = (await http.get(f"{path}/exposure")).json()
        assert exposure["running"] is True
        sensors = {s["sensor"]: s for s in exposure["sensors"]}
        assert set(sensors) >= {NOISE, f"{DEVICE}.co", f"{DEVICE}.hav"}
        noise_now = sensors[NOISE]
        assert noise_now["samples"] > 600  # the last 15 minutes at 1 Hz
        running = noise_now["running"]
        limit = ALERTS.noise_lex8h_levels_db[-1]
        assert (running["metric"], running["unit"], running["limit"]) == ("LEX,8h", "dB(A)", limit)
        assert running["projected"] >= running["so_far"] > 0
        assert {line["kind"] for line in noise_now["lines"]} == {"action", "limit"}
        assert sensors[f"{DEVICE}.co"]["running"]["metric"] == "TWA"
        assert sensors[f"{DEVICE}.hav"]["running"]["unit"] == "m/s2"
        assert exposure["B"] in (1, 2, 3, 4, 5)
        assert exposure["working_class"] is not None

        events: list[tuple[str, dict[str, Any]]] = []
        reader = asyncio.create_task(read_events(http, path, events))
        try:
            await world.watching()
            at = datetime.now(UTC).replace(microsecond=0)
            stranger = noise(at, [55.0], sensor=f"{DEVICE}.not-registered")
            await world.publish([noise(at, [93.25, 94.5]), stranger])

            def readings() -> list[dict[str, Any]]:
                return [d for e, d in events if e == "readings"]

            await eventually(lambda: bool(readings()), what="the reading on the stream")
            (message,) = readings()
            (channel,) = message["sensors"]
            assert channel["sensor_id"] == noise_now["sensor_id"]
            assert channel["values"] == [93.25, 94.5]
            assert channel["times"] == [at.timestamp() * 1000, at.timestamp() * 1000 + 1000]
            await eventually(
                lambda: sum(e == "exposure" for e, _ in events) >= 2,
                what="running exposure pushed on the stream",
            )
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        # The viewer is gone: the API no longer listens to the device.
        hub = world.app.state.readings_hub
        await eventually(lambda: not hub.topics(), what="unsubscribed after the viewer left")

        outsider = await http.get(
            f"{path}/exposure", headers={"Authorization": "Bearer qg_not-a-token"}
        )
        assert outsider.status_code == 401


def test_oxygen_and_methane_charts_carry_their_alarm_lines() -> None:
    o2 = {line.kind: line for line in limit_lines(thresholds("gas", "%vol", "O2"), "%vol")}
    first, second = ALERTS.oxygen_low_pct_vol
    floors = sorted(
        line.value
        for line in limit_lines(thresholds("gas", "%vol", "O2"), "%vol")
        if line.kind == "floor"
    )
    assert floors == [second, first]
    assert o2["ceiling"].value == ALERTS.oxygen_high_pct_vol
    assert o2["ceiling"].label.endswith("%vol")
    ch4 = {line.kind: line for line in limit_lines(thresholds("gas", "%vol", "CH4"), "%vol")}
    assert (ch4["action"].value, ch4["ceiling"].value) == ALERTS.methane_pct_vol
    lel = {line.kind: line for line in limit_lines(thresholds("gas", "%LEL", "CH4"), "%LEL")}
    assert lel["ceiling"].label.endswith("%LEL")  # not dB(A)
