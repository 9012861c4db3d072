"""Scenarios through a real Mosquitto and PostgreSQL: crafted readings (explicit, backfilled
sample times) published on the device topics, the alert engine subscribed beside an ingest
worker, and its alerts received on the alert topics and found in the database."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiomqtt
import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from analytics import load_norms
from analytics.alerts import load_alert_norms, running_projections
from analytics.alerts.lifecycle import ACKNOWLEDGED
from application.running import running_exposure
from application.schedule import Schedule, current_shift, last_finished, local_time_text
from ingest.alerting.partition import OwnershipConflictError
from ingest.alerting.service import AlertService
from ingest.alerting.settings import AlertsSettings
from ingest.service import IngestWorker
from ingest.settings import IngestSettings
from qorgau.localservices import free_port
from store import catalog
from store.alerts import add_webhook
from store.catalog import Scope
from store.connection import connect_async
from store.migrate import current_backend_async
from store.readings import ReadingBlock, datetime_to_us, days_of, ensure_day_partitions
from store.registry import upsert_device, upsert_enterprise, upsert_sensor, upsert_workplace
from store.writes import write_readings
from tests.support import eventually, rows
from vocabulary.mqtt_url import MqttEndpoint
from vocabulary.protocol import (
    Channel,
    ReadingsMessage,
    encode_readings,
    readings_topic,
    status_topic,
)
from vocabulary.protocol.alerts import AlertMessage, alerts_subscription
from vocabulary.protocol.quantities import Quantity

pytestmark = [pytest.mark.anyio, pytest.mark.services]

ENT = "acme"
DEV = "acme-dev-1"


async def register(
    pg_url: str,
    schema: str,
    sensors: list[tuple[str, str, str, str | None]],
    *,
    enterprise: str = ENT,
    device: str = DEV,
) -> None:
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        ent = await upsert_enterprise(conn, enterprise, f"{enterprise} mine")
        wp = await upsert_workplace(conn, ent, "face-1", "Longwall face")
        dev = await upsert_device(conn, ent, device, workplace_id=wp)
        for code, quantity, unit, substance in sensors:
            await upsert_sensor(
                conn,
                dev,
                code,
                quantity=quantity,
                unit=unit,
                substance=substance,
                workplace_id=wp,
                min_value=0.0,
                max_value=1000.0,
            )


@dataclass
class Rig:
    """The engine (and an ingest worker) running, a publisher, and the alerts received."""

    engine: AlertService
    publisher: aiomqtt.Client
    prefix: str
    received: list[AlertMessage] = field(default_factory=list)
    seq: int = 0

    async def publish(self, channels: list[Channel], *, settle: bool = True) -> None:
        message = ReadingsMessage(device=DEV, seq=self.seq, channels=channels)
        self.seq += 1
        before = self.engine.messages_evaluated
        await self.publisher.publish(
            readings_topic(self.prefix, ENT, DEV), encode_readings(message), qos=1
        )
        if settle:  # one message per evaluation, as a live device sending every few seconds
            while self.engine.messages_evaluated <= before:  # noqa: ASYNC110
                await asyncio.sleep(0.001)

    def of(self, kind: str) -> list[AlertMessage]:
        return [m for m in self.received if m.kind == kind]


@contextlib.asynccontextmanager
async def rig(
    pg_url: str, mqtt_url: str, schema: str, prefix: str, *, with_ingest: bool = True
) -> AsyncIterator[Rig]:
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    if with_ingest:
        worker = IngestWorker(
            IngestSettings(
                database_url=pg_url,
                database_schema=schema,
                mqtt_url=mqtt_url,
                topic_prefix=prefix,
                ingest_client_id=f"ingest-{prefix}",
            )
        )
        tasks.append(asyncio.create_task(worker.run(stop)))
        await asyncio.wait_for(worker.subscribed.wait(), 10)
    engine = AlertService(
        AlertsSettings(
            database_url=pg_url,
            database_schema=schema,
            mqtt_url=mqtt_url,
            topic_prefix=prefix,
            alerts_client_id=f"alerts-{prefix}",
            alerts_tick_s=0.05,
        )
    )
    tasks.append(asyncio.create_task(engine.run(stop)))
    await asyncio.wait_for(engine.subscribed.wait(), 10)
    endpoint = MqttEndpoint.parse(mqtt_url)
    listener = aiomqtt.Client(endpoint.host, endpoint.port, identifier=f"listen-{prefix}")
    publisher = aiomqtt.Client(endpoint.host, endpoint.port, identifier=f"pub-{prefix}")
    async with listener, publisher:
        the_rig = Rig(engine, publisher, prefix)

        async def listen() -> None:
            async for m in listener.messages:
                with contextlib.suppress(ValidationError):  # what tests publish as forgeries
                    the_rig.received.append(AlertMessage.model_validate_json(bytes(m.payload)))

        await listener.subscribe(alerts_subscription(prefix), qos=1)
        listening = asyncio.create_task(listen())
        try:
            yield the_rig
        finally:
            listening.cancel()
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)


async def set_schedule(
    pg_url: str, schema: str, starts: list[time], duration_s: int, zone: str
) -> Schedule:
    """The workplace's shift schedule and its enterprise's zone, as the registry API sets them."""
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        await conn.execute("UPDATE enterprises SET timezone = %s WHERE code = %s", [zone, ENT])
        await conn.execute(
            "UPDATE workplaces SET shift_starts = %s, shift_duration_s = %s", [starts, duration_s]
        )
    return Schedule.of(starts, duration_s, zone)


def gas(sensor: str, t0: datetime, values: np.ndarray, substance: str = "H2S") -> Channel:
    return Channel(
        sensor=sensor,
        quantity=Quantity.GAS,
        unit="mg/m3",
        substance=substance,
        t0=t0,
        period_s=1.0,
        values=[float(v) for v in values],
    )


def opened(messages: list[AlertMessage]) -> list[str]:
    return [m.kind for m in messages if m.transition == "opened"]


async def test_h2s_leak_raises_pre_then_short_term_then_ceiling_and_resolves(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    await register(pg_url, schema, [(f"{DEV}.h2s", "gas", "mg/m3", "H2S")])
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    rng = np.random.default_rng(11)
    t = np.arange(0.0, 60 * 60.0)
    # A plateau at 15 mg/m³ (over ПДК_max 10, under the ceiling 20) between the ramps keeps the
    # three crossings minutes apart in sample time: the 15-minute mean passes 10 at about
    # 1180 s and the ceiling is reached at about 1530 s. Crossings inside one message would be
    # decided in one evaluation, where the order of the alerts is not that of the samples.
    leak = np.interp(t, [0, 300, 900, 1500, 1560, 1800, 1801, 3600], [1, 1, 15, 15, 25, 25, 1, 1])
    values = leak * (1 + 0.02 * rng.standard_normal(t.size))
    async with rig(pg_url, mqtt_url, schema, topic_prefix) as r:
        for i in range(0, t.size, 10):
            await r.publish([gas(f"{DEV}.h2s", start + timedelta(seconds=i), values[i : i + 10])])
        await eventually(
            lambda: (
                {m.kind for m in r.received if m.transition == "resolved"}
                >= {"pre_exceedance", "short_term", "ceiling"}
            ),
            what="the leak's alerts to resolve",
        )
    wanted = ["pre_exceedance", "short_term", "ceiling"]
    assert [k for k in opened(r.received) if k in wanted] == wanted
    ceiling = r.of("ceiling")[0]
    assert ceiling.severity == "critical"
    assert ceiling.unit == "mg/m3"
    assert ceiling.threshold_unit == "mg/m3"
    assert ceiling.threshold == pytest.approx(20.0)
    assert ceiling.value is not None
    assert ceiling.value > 20.0
    assert ceiling.sensor == f"{DEV}.h2s"
    assert ceiling.workplace == "face-1"
    assert "H2S" in ceiling.message
    for kind in wanted:
        resolved = [m for m in r.of(kind) if m.transition == "resolved"]
        assert len(resolved) == 1
        assert resolved[0].reason == "cleared"
        assert resolved[0].at > start + timedelta(seconds=1800)

    async def stored() -> bool:
        got = rows(pg_url, schema, "SELECT kind, state FROM alerts WHERE kind = ANY(%s)", [wanted])
        return sorted(got) == sorted((k, "resolved") for k in wanted)

    await eventually(stored, what="the alerts stored as resolved")
    audit = rows(
        pg_url,
        schema,
        "SELECT a.kind, e.transition FROM alert_events e JOIN alerts a ON a.id = e.alert_id "
        "WHERE a.kind = 'ceiling' ORDER BY e.id",
    )
    assert [tr for _, tr in audit if tr != "escalated"] == ["opened", "resolved"]


async def test_noisy_signal_near_the_ceiling_raises_exactly_one_alert(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    await register(pg_url, schema, [(f"{DEV}.h2s", "gas", "mg/m3", "H2S")])
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    rng = np.random.default_rng(4)
    values = 20.0 + rng.uniform(-1.5, 1.5, 1200)  # crosses 20 mg/m³ hundreds of times
    values[1000:] = 1.0
    async with rig(pg_url, mqtt_url, schema, topic_prefix, with_ingest=False) as r:
        for i in range(0, values.size, 5):
            await r.publish([gas(f"{DEV}.h2s", start + timedelta(seconds=i), values[i : i + 5])])
        await eventually(
            lambda: any(m.transition == "resolved" for m in r.of("ceiling")),
            what="the ceiling alert to resolve",
        )
    assert [m.transition for m in r.of("ceiling") if m.transition != "escalated"] == [
        "opened",
        "resolved",
    ]
    assert int(np.sum(np.diff((values[:1000] > 20).astype(int)) == 1)) > 100


async def test_silent_sensor_of_a_live_device_is_flagged_after_the_silence_floor(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    await register(
        pg_url,
        schema,
        [(f"{DEV}.co", "gas", "mg/m3", "CO"), (f"{DEV}.h2s", "gas", "mg/m3", "H2S")],
    )
    interval = 1.0
    # A 1 Hz sensor: 1.5 intervals are less than the floor, which decides.
    floor = load_alert_norms().silence_min_s
    assert floor > 1.5 * interval
    async with rig(pg_url, mqtt_url, schema, topic_prefix, with_ingest=False) as r:
        i = 0
        while not [m for m in r.of("sensor_silent") if m.sensor == f"{DEV}.h2s"]:
            assert i < 5 + 3 * floor, "no sensor_silent alert for H2S"
            now = datetime.now(UTC)
            channels = [gas(f"{DEV}.co", now, np.array([3.0 + 0.1 * i]), "CO")]
            if i < 5:
                channels.append(gas(f"{DEV}.h2s", now, np.array([1.0 + 0.1 * i])))
            await r.publish(channels)
            co_last = datetime.now(UTC)
            await asyncio.sleep(interval)
            i += 1
        silent = r.of("sensor_silent")
        # CO kept talking: nothing about it while it did
        assert all(m.at > co_last for m in silent if m.sensor == f"{DEV}.co")
        (alert,) = [m for m in silent if m.sensor == f"{DEV}.h2s"]
        assert alert.threshold == pytest.approx(floor)
        assert alert.value is not None
        assert floor < alert.value < floor + 2 * interval
        assert alert.unit == "s"
        # and a device that says it is offline raises that instead
        await r.publisher.publish(
            status_topic(r.prefix, ENT, DEV), b'{"online": false}', qos=1, retain=True
        )
        await eventually(lambda: bool(r.of("device_offline")), what="device offline alert")
        await r.publisher.publish(status_topic(r.prefix, ENT, DEV), b"", qos=1, retain=True)


async def test_projected_overexposure_is_raised_before_the_limit_is_reached(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    await register(pg_url, schema, [(f"{DEV}.noise", "noise_laeq", "dB(A)", None)])
    # Two twelve-hour shifts a day, 07:00 and 19:30 in Almaty: replay the start of the last
    # one that has ended (all of its first 15 minutes are in the past).
    zone = "Asia/Almaty"
    schedule = await set_schedule(pg_url, schema, [time(7, 0), time(19, 30)], 43200, zone)
    shift = last_finished(schedule, datetime.now(UTC))
    start = shift.start
    t = np.arange(0.0, 900.0)
    levels = 90.0 + 1.5 * np.sin(t / 11.0)
    async with rig(pg_url, mqtt_url, schema, topic_prefix) as r:
        for i in range(0, t.size, 10):
            await r.publish(
                [
                    Channel(
                        sensor=f"{DEV}.noise",
                        quantity=Quantity.NOISE_LAEQ,
                        unit="dB(A)",
                        t0=start + timedelta(seconds=i),
                        period_s=1.0,
                        values=[float(v) for v in levels[i : i + 10]],
                    )
                ]
            )
        await eventually(lambda: bool(r.of("projected_exposure")), what="projection alert")
        state = next(iter(r.engine.states.values()))
        slot = state.index[f"{DEV}/{DEV}.noise"]
        # The engine's shift is the schedule's: the projection runs to its end.
        assert state.shift_start[slot] == shift.start.timestamp()
        assert state.shift_end[slot] == shift.end.timestamp()
    alert = r.of("projected_exposure")[0]
    elapsed = (alert.at - start).total_seconds()
    # LEX,8h of the exposure so far (90 dB(A) for `elapsed` seconds) is still below 80 dB(A)
    assert 90.0 + 1.0 + 10 * math.log10(elapsed / 28800) < 80.0
    # About 90 dB(A) for the whole twelve-hour shift: LEX,8h = L + 10·lg(12 h / 8 h).
    level = 10 * math.log10(np.mean(10 ** (levels / 10)))
    assert alert.value == pytest.approx(level + 10 * math.log10(12 / 8), abs=0.5)
    # The message states the shift's end in the enterprise's local time, with its zone.
    assert f"ends the shift at {local_time_text(shift.end, zone)}" in alert.message
    assert "(Asia/Almaty)" in alert.message
    assert alert.unit == "dB(A)"
    assert alert.threshold == load_alert_norms().noise_lex8h_levels_db[-1]
    assert alert.severity == "high"
    assert alert.time_left_s is not None
    assert 0 < alert.time_left_s < 43200
    assert "LEX,8h" in alert.message


async def test_a_restarted_engine_keeps_its_open_alerts_and_windows(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    await register(pg_url, schema, [(f"{DEV}.h2s", "gas", "mg/m3", "H2S")])
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    t = np.arange(0.0, 2100.0)
    values = np.interp(t, [0, 900, 901, 2100], [12, 12, 1, 1]) + 0.01 * np.sin(t)
    async with rig(pg_url, mqtt_url, schema, topic_prefix) as first:
        for i in range(0, 900, 10):
            await first.publish(
                [gas(f"{DEV}.h2s", start + timedelta(seconds=i), values[i : i + 10])]
            )
        await eventually(lambda: bool(first.of("short_term")), what="the 15-min alert")
        ident = first.of("short_term")[0].alert_id
        await eventually(
            lambda: rows(pg_url, schema, "SELECT count(*) FROM readings")[0][0] >= 900,
            what="readings stored by ingest",
        )
    async with rig(pg_url, mqtt_url, schema, topic_prefix) as second:
        second.seq = first.seq
        state = next(iter(second.engine.states.values()))
        assert ident in state.cells.by_id  # restored from the database
        # the window was rebuilt from stored readings: the mean is still over ПДК_max
        slot = state.index[f"{DEV}/{DEV}.h2s"]
        wsum, w = state.bins.window_sums(
            np.array([slot]), np.array([(start + timedelta(seconds=899)).timestamp()]), 900.0
        )
        assert wsum[0] / w[0] == pytest.approx(12.0, abs=0.1)
        for i in range(900, 2100, 10):
            await second.publish(
                [gas(f"{DEV}.h2s", start + timedelta(seconds=i), values[i : i + 10])]
            )
        await eventually(
            lambda: any(m.transition == "resolved" for m in second.of("short_term")),
            what="the restored alert to resolve",
        )
    assert [m.alert_id for m in second.of("short_term") if m.transition != "escalated"] == [ident]


async def test_a_restart_mid_shift_projects_from_the_whole_shift_so_far(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    await register(pg_url, schema, [(f"{DEV}.noise", "noise_laeq", "dB(A)", None)])
    # A shift that began two hours ago: 40 loud minutes, then 30 quiet ones (longer than any
    # window, so the loud minutes reach the engine through the shift sums only), none of them
    # seen by an engine before it starts.
    zone = "Europe/Berlin"
    shift = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    local_start = shift.astimezone(ZoneInfo(zone)).time()
    schedule = await set_schedule(pg_url, schema, [local_start], 28800, zone)
    assert current_shift(schedule, datetime.now(UTC)).start == shift
    t0 = shift + timedelta(seconds=17.25)  # the shift's first partial minute holds readings
    rng = np.random.default_rng(3)
    levels = np.concatenate([rng.uniform(103.0, 107.0, 2400), rng.uniform(68.0, 72.0, 1800)])
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        row = await (await conn.execute("SELECT id FROM sensors")).fetchone()
        assert row is not None
        times_us = datetime_to_us(t0) + np.arange(levels.size, dtype=np.int64) * 1_000_000
        block = ReadingBlock(times_us, np.full(levels.size, row[0], np.int32), levels)
        await ensure_day_partitions(conn, days_of(block.times_us))
        async with conn.transaction():
            await write_readings(conn, block, backend=await current_backend_async(conn))
    async with rig(pg_url, mqtt_url, schema, topic_prefix) as r:
        state = next(iter(r.engine.states.values()))
        slot = state.index[f"{DEV}/{DEV}.noise"]
        # Sums of the whole shift so far, each 1 s sample weighing its second: what the
        # projected end-of-shift LEX,8h goes on from.
        assert state.shift_start[slot] == shift.timestamp()
        assert state.shift_end[slot] == shift.timestamp() + 28800
        assert state.shift_w[slot] == levels.size
        assert state.shift_sum[slot] == pytest.approx(np.sum(10 ** (levels / 10)), rel=1e-9)
        # Two quiet minutes now: the loud minutes before the restart alone take the shift over
        # the noise limit (LEX,8h 85 dB(A) or more), so the projection alert opens (after its
        # minimum duration).
        quiet_from = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=120)
        for i in range(12):
            await r.publish(
                [
                    Channel(
                        sensor=f"{DEV}.noise",
                        quantity=Quantity.NOISE_LAEQ,
                        unit="dB(A)",
                        t0=quiet_from + timedelta(seconds=10 * i),
                        period_s=1.0,
                        values=[70.0] * 10,
                    )
                ]
            )
        await eventually(
            lambda: any(m.transition == "opened" for m in r.of("projected_exposure")),
            what="the projection alert after the restart",
        )
        (opened,) = [m for m in r.of("projected_exposure") if m.transition == "opened"]
        assert opened.severity == "high"
        assert opened.threshold == pytest.approx(load_alert_norms().noise_lex8h_levels_db[-1])
        # The projection adds to the energy of the shift so far, never takes from it.
        so_far_lex = 10 * np.log10((np.sum(10 ** (levels / 10)) + 120 * 10**7.0) / 28800)
        assert opened.value is not None
        assert opened.value >= so_far_lex - 0.01


async def test_an_enterprise_profile_sets_its_own_thresholds(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str, tmp_path: Path
) -> None:
    await register(pg_url, schema, [(f"{DEV}.h2s", "gas", "mg/m3", "H2S")])
    profile = tmp_path / "acme.toml"
    profile.write_text(
        'extends = "default"\n[sources]\nacme = "Acme standard 12: alarm at ПДК_max"\n'
        '[alerts.ceiling]\ngas_pdk_max_multiple = { value = 1.0, source = "acme" }\n',
        encoding="utf-8",
    )
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        # A custom profile file is an operator's doing (the API offers the built-in ones).
        await conn.execute(
            "UPDATE enterprises SET norms_profile = %s WHERE code = %s", [str(profile), ENT]
        )
    start = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    async with rig(pg_url, mqtt_url, schema, topic_prefix, with_ingest=False) as r:
        await r.publish([gas(f"{DEV}.h2s", start, np.full(5, 12.0))])
        await eventually(lambda: bool(r.of("ceiling")), what="the ceiling alert")
    assert r.of("ceiling")[0].threshold == pytest.approx(10.0)


async def test_qorgau_alerts_stops_cleanly_on_sigterm(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "QORGAU_DATABASE_URL": pg_url,
        "QORGAU_DATABASE_SCHEMA": schema,
        "QORGAU_MQTT_URL": mqtt_url,
        "QORGAU_TOPIC_PREFIX": topic_prefix,
        "QORGAU_ALERTS_METRICS_PORT": str(port),
        "QORGAU_ALERTS_CLIENT_ID": f"sigterm-{topic_prefix}",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "qorgau.cli",
        "alerts",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient() as http:

            async def ready() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                    return "qorgau_alerts_ready 1.0" in text
                return False

            await eventually(ready, what="the engine to subscribe")
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, err.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_samples_ingest_refuses_feed_only_the_health_detector(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    await register(pg_url, schema, [(f"{DEV}.h2s", "gas", "mg/m3", "H2S")])
    start = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    async with rig(pg_url, mqtt_url, schema, topic_prefix, with_ingest=False) as r:
        # 5000 mg/m³ is outside the registered instrument range [0, 1000]: not a ceiling breach
        await r.publish([gas(f"{DEV}.h2s", start, np.array([1.0, math.nan, 5000.0, 1.2]))])
        await eventually(lambda: bool(r.of("out_of_range")), what="the out-of-range alert")
        await asyncio.sleep(0.3)
    assert opened(r.received) == ["out_of_range"]
    assert r.of("out_of_range")[0].value == 2.0


# ------------------------------------------------------------------ partitioned engines


def engine_settings(
    pg_url: str, mqtt_url: str, schema: str, prefix: str, client_id: str, enterprises: str
) -> AlertsSettings:
    return AlertsSettings(
        database_url=pg_url,
        database_schema=schema,
        mqtt_url=mqtt_url,
        topic_prefix=prefix,
        alerts_client_id=client_id,
        alerts_enterprises=enterprises,
        alerts_tick_s=0.05,
    )


@dataclass
class Fleet:
    """Alert engines running side by side, a publisher, and every alert on the broker."""

    engines: dict[str, AlertService]
    publisher: aiomqtt.Client
    prefix: str
    received: list[AlertMessage] = field(default_factory=list)
    published: dict[str, list[AlertMessage]] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)

    async def publish(self, enterprise: str, device: str, values: np.ndarray) -> None:
        seq = self.seq.get(device, 0)
        self.seq[device] = seq + 1
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
        message = ReadingsMessage(
            device=device, seq=seq, channels=[gas(f"{device}.h2s", start, values)]
        )
        await self.publisher.publish(
            readings_topic(self.prefix, enterprise, device), encode_readings(message), qos=1
        )

    async def publish_to(self, engine: str, enterprise: str, device: str, v: float) -> None:
        """Publish and wait until ``engine`` has evaluated the message."""
        before = self.engines[engine].messages_evaluated
        await self.publish(enterprise, device, np.full(5, v))
        await eventually(
            lambda: self.engines[engine].messages_evaluated > before,
            what=f"{engine} to evaluate {device}'s message",
        )

    def opened(self) -> list[tuple[str, str | None, str]]:
        return sorted(
            (m.enterprise, m.sensor, m.kind) for m in self.received if m.transition == "opened"
        )


@contextlib.asynccontextmanager
async def fleet(
    pg_url: str,
    mqtt_url: str,
    schema: str,
    prefix: str,
    engines: dict[str, str],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Fleet]:
    """Engines by client id → QORGAU_ALERTS_ENTERPRISES, started one after the other."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    running: dict[str, AlertService] = {}
    published: dict[str, list[AlertMessage]] = {}
    endpoint = MqttEndpoint.parse(mqtt_url)
    # Fleets may nest: client ids of their own, or the broker would disconnect the outer ones.
    tag = "-".join(engines)
    listener = aiomqtt.Client(endpoint.host, endpoint.port, identifier=f"listen-{prefix}-{tag}")
    publisher = aiomqtt.Client(endpoint.host, endpoint.port, identifier=f"pub-{prefix}-{tag}")
    try:
        for client_id, enterprises in engines.items():
            engine = AlertService(
                engine_settings(pg_url, mqtt_url, schema, prefix, client_id, enterprises)
            )
            engine.webhooks.transport = transport
            published[client_id] = []
            engine.listeners.append(published[client_id].append)
            task = asyncio.create_task(engine.run(stop))
            tasks.append(task)
            running[client_id] = engine
            subscribed = asyncio.create_task(engine.subscribed.wait())
            await asyncio.wait({task, subscribed}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            subscribed.cancel()
            if task.done():
                task.result()  # it refused to start: the test sees why
            assert engine.subscribed.is_set(), client_id
        async with listener, publisher:
            the_fleet = Fleet(running, publisher, prefix, published=published)

            async def listen() -> None:
                async for m in listener.messages:
                    the_fleet.received.append(AlertMessage.model_validate_json(bytes(m.payload)))

            await listener.subscribe(alerts_subscription(prefix), qos=1)
            listening = asyncio.create_task(listen())
            try:
                yield the_fleet
            finally:
                listening.cancel()
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)


def h2s(device: str) -> list[tuple[str, str, str, str | None]]:
    return [(f"{device}.h2s", "gas", "mg/m3", "H2S")]


def not_owned(engine: AlertService) -> float:
    value: float = engine.metrics.skipped.labels("not_owned")._value.get()
    return value


async def test_two_engines_split_the_enterprises_and_raise_each_alert_once(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    for ent in ("acme", "globex", "initech"):
        await register(pg_url, schema, h2s(f"{ent}-dev-1"), enterprise=ent, device=f"{ent}-dev-1")
    conn = await connect_async(pg_url, schema, autocommit=True)
    async with conn:
        await add_webhook(conn, url="http://receiver/all", secret="s" * 16)
        await add_webhook(conn, url="http://receiver/acme", secret="s" * 16, enterprise="acme")
    deliveries: list[tuple[str, str]] = []

    def receive(request: httpx.Request) -> httpx.Response:
        deliveries.append((request.url.path, request.headers["X-Qorgau-Alert"]))
        return httpx.Response(200)

    engines = {"alerts-a": "acme", "alerts-b": "globex"}
    async with fleet(
        pg_url, mqtt_url, schema, topic_prefix, engines, transport=httpx.MockTransport(receive)
    ) as f:
        a, b = f.engines["alerts-a"], f.engines["alerts-b"]
        # Each engine loaded its own enterprise's devices only.
        assert set(a.devices) == {"acme-dev-1"}
        assert set(b.devices) == {"globex-dev-1"}
        # initech is in the registry and nobody owns it: said at start and in the metrics.
        assert b.metrics.unowned_enterprises._value.get() == 1
        assert any("initech" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
        # 25 mg/m³ of H2S: over the ceiling (2 × ПДК_max, 20 mg/m³).
        await f.publish("initech", "initech-dev-1", np.full(5, 25.0))
        await f.publish_to("alerts-a", "acme", "acme-dev-1", 25.0)
        await f.publish_to("alerts-b", "globex", "globex-dev-1", 25.0)
        wanted = [(ent, f"{ent}-dev-1.h2s", "ceiling") for ent in ("acme", "globex")]
        await eventually(lambda: f.opened() == wanted, what="the alerts of acme and globex")
        ceiling = next(m for m in f.received if m.kind == "ceiling" and m.enterprise == "acme")
        # A person acknowledges acme's ceiling alert through the API (which publishes it).
        ack = ceiling.model_copy(
            update={
                "transition": "acknowledged",
                "state": "acknowledged",
                "source": "api",
                "actor": "shift-lead",
            }
        )
        await f.publisher.publish(ack.topic(topic_prefix), ack.payload(), qos=1)
        # The broker handles messages in order: once the engines have evaluated these, they
        # have been sent everything published before.
        await f.publish_to("alerts-a", "acme", "acme-dev-1", 1.0)
        await f.publish_to("alerts-b", "globex", "globex-dev-1", 1.0)
        await eventually(lambda: len(deliveries) >= 3, what="the webhook deliveries")
        state = a.states["default"]
        assert state.cells.status[state.cells.by_id[ceiling.alert_id]] == ACKNOWLEDGED
    # Every alert exactly once overall, each from the engine owning its enterprise.
    assert f.opened() == wanted
    assert {m.enterprise for m in f.published["alerts-a"]} == {"acme"}
    assert {m.enterprise for m in f.published["alerts-b"]} == {"globex"}
    # The broker sent each engine its enterprise's messages only: two readings each, and the
    # acknowledgement to acme's engine (not the other engine's alerts, not initech's readings).
    assert a.metrics.messages._value.get() == 3
    assert b.metrics.messages._value.get() == 2
    assert not_owned(a) == not_owned(b) == 0
    # The webhook for all enterprises got each alert once; acme's webhook acme's alerts only.
    by_alert = {m.alert_id: m.enterprise for m in f.received}
    to_all = sorted(h for path, h in deliveries if path == "/all")
    to_acme = sorted(h for path, h in deliveries if path == "/acme")
    assert to_all == sorted(f"{m.alert_id}:opened" for m in f.received if m.transition == "opened")
    assert len(to_all) == len(set(to_all)) == 2
    assert {by_alert[h.split(":")[0]] for h in to_acme} == {"acme"}
    assert len(to_acme) == len(set(to_acme)) == 1
    stored = rows(pg_url, schema, "SELECT enterprise, kind FROM alerts ORDER BY 1, 2")
    assert stored == [(e, k) for e, _, k in wanted]


@pytest.mark.parametrize("first", ["acme,globex", ""], ids=["partitioned", "all"])
async def test_an_engine_restarted_without_an_enterprise_stops_receiving_it(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str, first: str
) -> None:
    for ent, dev in (
        ("acme", "acme-dev-1"),
        ("globex", "globex-dev-1"),
        ("globex", "globex-dev-2"),
    ):
        await register(pg_url, schema, h2s(dev), enterprise=ent, device=dev)
    async with fleet(pg_url, mqtt_url, schema, topic_prefix, {"alerts-x": first}) as f:
        await f.publish_to("alerts-x", "globex", "globex-dev-1", 25.0)
        await eventually(lambda: bool(f.received), what="globex's alert from the first engine")
    if not first:
        # As an engine of a version without claims left it: nothing recorded of its session.
        rows(pg_url, schema, "DELETE FROM alert_engines RETURNING client_id")
    # The same client id (the same persistent broker session) now owns acme only; globex moves
    # to an engine of its own.
    engines = {"alerts-x": "acme", "alerts-y": "globex"}
    async with fleet(pg_url, mqtt_url, schema, topic_prefix, engines) as g:
        x, y = g.engines["alerts-x"], g.engines["alerts-y"]
        await g.publish_to("alerts-y", "globex", "globex-dev-2", 25.0)
        await g.publish_to("alerts-x", "acme", "acme-dev-1", 1.0)
        await eventually(lambda: bool(g.opened()), what="globex-dev-2's alert")
        await g.publish_to("alerts-x", "acme", "acme-dev-1", 1.0)
    assert g.opened() == [("globex", "globex-dev-2.h2s", "ceiling")]
    assert g.published["alerts-x"] == []
    # The broker no longer sends globex's readings (or its alerts) to the first client id.
    assert not_owned(x) == 0
    assert x.metrics.messages._value.get() == 2
    assert {m.enterprise for m in g.published["alerts-y"]} == {"globex"}
    # globex's devices and its open alert moved to the new engine.
    assert set(x.devices) == {"acme-dev-1"}
    assert set(y.devices) == {"globex-dev-1", "globex-dev-2"}
    assert set(y.states["default"].cells.by_id) >= {f.received[0].alert_id}
    assert not x.states or not x.states["default"].cells.by_id
    (filters,) = rows(
        pg_url, schema, "SELECT topic_filters FROM alert_engines WHERE client_id = 'alerts-x'"
    )[0]
    assert filters
    assert all("/v1/acme/" in t for t in filters)


async def test_readings_published_while_the_engine_was_away_raise_their_alert_when_it_returns(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    """The engine's persistent session holds what arrives while it is stopped, and its reader
    (ingest's inbox, set up before connecting) takes it right after CONNACK."""
    await register(pg_url, schema, h2s("acme-dev-1"), enterprise="acme", device="acme-dev-1")
    async with fleet(pg_url, mqtt_url, schema, topic_prefix, {"alerts-back": "acme"}) as f:
        await f.publish_to("alerts-back", "acme", "acme-dev-1", 1.0)
    # The engine is stopped and its session outlives it; the fleet's next message (its next
    # seq) goes out through a client of our own.
    endpoint = MqttEndpoint.parse(mqtt_url)
    async with aiomqtt.Client(endpoint.host, endpoint.port, identifier="pub-while-away") as pub:
        f.publisher = pub
        await f.publish("acme", "acme-dev-1", np.full(5, 25.0))  # over the ceiling
    async with fleet(pg_url, mqtt_url, schema, topic_prefix, {"alerts-back": "acme"}) as g:
        engine = g.engines["alerts-back"]
        await eventually(
            lambda: any(m.kind == "ceiling" for m in g.published["alerts-back"]),
            what="the ceiling alert of the reading published while the engine was away",
        )
        assert engine.metrics.messages._value.get() >= 1


async def test_an_engine_refuses_to_start_beside_a_live_engine_owning_some_of_its_enterprises(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    await register(pg_url, schema, h2s("acme-dev-1"), enterprise="acme", device="acme-dev-1")

    def settings(client_id: str, enterprises: str) -> AlertsSettings:
        return engine_settings(pg_url, mqtt_url, schema, topic_prefix, client_id, enterprises)

    async def refused(client_id: str, enterprises: str) -> str:
        engine = AlertService(settings(client_id, enterprises))
        with pytest.raises(OwnershipConflictError) as caught:
            await asyncio.wait_for(engine.run(asyncio.Event()), 20)
        assert not engine.subscribed.is_set()
        return str(caught.value)

    async with fleet(pg_url, mqtt_url, schema, topic_prefix, {"alerts-a": "acme,globex"}):
        message = await refused("alerts-b", "globex,initech")
        assert "'alerts-a'" in message
        assert "owns globex" in message
        assert "'alerts-a'" in await refused("alerts-all", "")
        # The command says so and exits non-zero.
        env = {
            **os.environ,
            "QORGAU_DATABASE_URL": pg_url,
            "QORGAU_DATABASE_SCHEMA": schema,
            "QORGAU_MQTT_URL": mqtt_url,
            "QORGAU_TOPIC_PREFIX": topic_prefix,
            "QORGAU_ALERTS_CLIENT_ID": "alerts-cli",
            "QORGAU_ALERTS_ENTERPRISES": "acme",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "qorgau.cli",
            "alerts",
            "--no-upgrade",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 2
        assert "'alerts-a'" in err.decode()
        # A disjoint set runs beside it.
        async with fleet(pg_url, mqtt_url, schema, topic_prefix, {"alerts-c": "initech"}):
            pass
    # A clean stop releases the claim: an engine for all enterprises may start now, and then
    # a partitioned one may not.
    async with fleet(pg_url, mqtt_url, schema, topic_prefix, {"alerts-all": ""}):
        assert "'alerts-all'" in await refused("alerts-d", "initech")
    # A claim that stopped being renewed (a crashed engine) blocks nothing once it is older than
    # the heartbeat timeout; a fresh one does.
    rows(
        pg_url,
        schema,
        "INSERT INTO alert_engines (client_id, enterprises, heartbeat_at) VALUES "
        "('ghost', '{acme}', now() - interval '1 hour'), ('fresh', '{globex}', now()) "
        "RETURNING client_id",
    )
    async with fleet(pg_url, mqtt_url, schema, topic_prefix, {"alerts-e": "acme"}):
        pass
    assert "'fresh'" in await refused("alerts-f", "globex")


async def test_people_transitions_count_only_on_their_own_enterprise_topic(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    await register(pg_url, schema, [(f"{DEV}.h2s", "gas", "mg/m3", "H2S")])
    await register(
        pg_url,
        schema,
        [("globex-dev-1.h2s", "gas", "mg/m3", "H2S")],
        enterprise="globex",
        device="globex-dev-1",
    )
    start = (datetime.now(UTC) - timedelta(minutes=10)).replace(microsecond=0)
    async with rig(pg_url, mqtt_url, schema, topic_prefix, with_ingest=False) as r:
        await r.publish([gas(f"{DEV}.h2s", start, np.full(5, 25.0))])
        await eventually(lambda: bool(r.of("ceiling")), what="acme's ceiling alert")
        ceiling = r.of("ceiling")[0]
        ack = ceiling.model_copy(
            update={
                "transition": "acknowledged",
                "state": "acknowledged",
                "source": "api",
                "actor": "intruder",
            }
        )
        forged = [
            # globex's topic (whoever may publish there), acme in the payload
            (ack.topic(topic_prefix).replace("/acme/", "/globex/"), ack),
            # globex's topic and name, acme's alert
            (
                ack.topic(topic_prefix).replace("/acme/", "/globex/"),
                ack.model_copy(update={"enterprise": "globex"}),
            ),
        ]
        for topic, message in forged:
            await r.publisher.publish(topic, message.payload(), qos=1)
        # Messages arrive in order: once this one is evaluated, the forgeries were handled.
        await r.publish([gas(f"{DEV}.h2s", start + timedelta(seconds=5), np.full(5, 25.0))])
        state = r.engine.states["default"]
        assert state.cells.status[state.cells.by_id[ceiling.alert_id]] != ACKNOWLEDGED
        assert r.engine.metrics.skipped.labels("refused")._value.get() == 2
        await r.publisher.publish(ack.topic(topic_prefix), ack.payload(), qos=1)
        await r.publish([gas(f"{DEV}.h2s", start + timedelta(seconds=10), np.full(5, 25.0))])
        assert state.cells.status[state.cells.by_id[ceiling.alert_id]] == ACKNOWLEDGED


async def test_hostile_messages_on_every_topic_it_reads_do_not_stop_the_engine(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    await register(pg_url, schema, [(f"{DEV}.h2s", "gas", "mg/m3", "H2S")])
    start = (datetime.now(UTC) - timedelta(minutes=10)).replace(microsecond=0)
    deep = b"[" * 1100 + b"]" * 1100  # the message that stopped ingest for good (issue 13)
    readings, status = readings_topic(topic_prefix, ENT, DEV), status_topic(topic_prefix, ENT, DEV)
    alerts = f"{topic_prefix}/v1/{ENT}/alerts/ceiling"
    hostile = [
        (topic, payload)
        for topic in (readings, status, alerts)
        for payload in (deep, b'{"a":' * 1100 + b"1" + b"}" * 1100, b"\xff\xfe", b"[1]", b"1e400")
    ]
    async with rig(pg_url, mqtt_url, schema, topic_prefix, with_ingest=False) as r:
        for topic, payload in hostile:
            await r.publisher.publish(topic, payload, qos=1)
        # Handled in order: once this good message is evaluated, every hostile one was read.
        await r.publish([gas(f"{DEV}.h2s", start, np.full(5, 25.0))])
        await eventually(lambda: bool(r.of("ceiling")), what="an alert after the hostile ones")
        assert r.engine.metrics.skipped.labels("refused")._value.get() == len(hostile)


async def test_the_dashboard_shows_the_projection_the_engine_holds(
    pg_url: str, mqtt_url: str, schema: str, topic_prefix: str
) -> None:
    """One shift's readings through the broker into the alert engine and into the database:
    the dashboard's "so far" and "projected" (rebuilt from what ingest stored) are the engine's
    own figures at the same latest reading."""
    noise, co = f"{DEV}.noise", f"{DEV}.co"
    await register(
        pg_url, schema, [(noise, "noise_laeq", "dB(A)", None), (co, "gas", "mg/m3", "CO")]
    )
    zone = "Asia/Almaty"
    shift = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    await set_schedule(pg_url, schema, [shift.astimezone(ZoneInfo(zone)).time()], 28800, zone)
    rng = np.random.default_rng(11)
    minutes = 70
    first = shift + timedelta(seconds=30.5)  # not on a minute: rollups and raw edges both count
    async with rig(pg_url, mqtt_url, schema, topic_prefix) as r:
        for i in range(minutes):
            loud = i >= minutes - 8  # the rate window sees louder, dirtier air than the shift
            t0 = first + timedelta(minutes=i)
            db = rng.uniform(*((92.0, 96.0) if loud else (78.0, 84.0)), 60)
            mg = rng.uniform(*((25.0, 30.0) if loud else (3.0, 6.0)), 60)
            await r.publish(
                [
                    Channel(
                        sensor=noise,
                        quantity=Quantity.NOISE_LAEQ,
                        unit="dB(A)",
                        t0=t0,
                        period_s=1.0,
                        values=[float(v) for v in db],
                    ),
                    gas(co, t0, mg, "CO"),
                ]
            )
        conn = await connect_async(pg_url, schema, autocommit=True)
        async with conn:

            async def stored() -> bool:
                cur = await conn.execute("SELECT count(*) FROM readings")
                got = await cur.fetchone()
                return got is not None and got[0] == 2 * 60 * minutes

            await eventually(stored, what="every reading stored")
            state = next(iter(r.engine.states.values()))
            slots = np.array([state.index[f"{DEV}/{noise}"], state.index[f"{DEV}/{co}"]])
            engine = running_projections(state, slots)
            (workplace,) = await catalog.workplaces_of(conn, Scope())
            board = await running_exposure(
                conn, load_norms(), load_alert_norms(), workplace, ENT, late_s=28 * 86400.0
            )
        shown = {s.sensor.code: s.running for s in board.sensors}
        for j, code in enumerate((noise, co)):
            figure = shown[code]
            assert figure is not None, code
            assert figure.at.timestamp() == state.last_time[slots[j]]
            assert figure.so_far == pytest.approx(float(engine.so_far[j]), rel=1e-9), code
            assert figure.projected == pytest.approx(float(engine.projected[j]), rel=1e-9), code
            # and the projection is the engine's alert: over the limit at the current rate
            assert figure.limit is not None
            assert figure.projected > figure.limit > figure.so_far, code
