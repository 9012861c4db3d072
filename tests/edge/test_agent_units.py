"""Agent pieces that need no broker: splitting a backlog into messages, credentials."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.agent import EdgeAgent, build_message, split_blocks
from edge.drivers import load_driver_factory, parse_options
from edge.settings import EdgeSettings
from firmware_sim.device import standard_device
from vocabulary.driver import ChannelSpec, SampleBlock
from vocabulary.errors import ConfigurationError
from vocabulary.protocol import MAX_VALUES_PER_CHANNEL, Quantity, decode_readings, encode_readings

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
NOISE = ChannelSpec("d.noise", Quantity.NOISE_LAEQ, "dB(A)")
CO = ChannelSpec("d.co", Quantity.GAS, "ppm", "CO", period_s=2.0)


def test_a_long_backlog_is_split_into_valid_messages_without_losing_a_sample() -> None:
    blocks = [
        SampleBlock(NOISE, T0, tuple(float(i) for i in range(2500))),
        SampleBlock(CO, T0, tuple(float(i) for i in range(700))),
        SampleBlock(NOISE, T0 + timedelta(hours=1), (1.0, 2.0, 3.0), (0.0, 0.5, 4.0)),
    ]
    groups = split_blocks(blocks, 1000)
    assert [len(g) for g in groups] == [3, 1, 1]
    times: dict[str, list[datetime]] = {}
    for seq, group in enumerate(groups):
        message = decode_readings(encode_readings(build_message("d", seq, group, T0)))
        for channel in message.channels:
            assert len(channel.values) <= 1000
            times.setdefault(channel.sensor, []).extend(channel.times())
    hour = T0 + timedelta(hours=1)
    assert sorted(times["d.noise"]) == [T0 + timedelta(seconds=i) for i in range(2500)] + [
        hour,
        hour + timedelta(seconds=0.5),
        hour + timedelta(seconds=4),
    ]
    assert times["d.co"] == [T0 + timedelta(seconds=2 * i) for i in range(700)]


def test_the_default_split_stays_under_the_wire_limit() -> None:
    assert EdgeSettings().edge_max_values_per_message <= MAX_VALUES_PER_CHANNEL


def settings(tmp_path: Path, **extra: object) -> EdgeSettings:
    return EdgeSettings(edge_outbox_dir=tmp_path, **extra)  # type: ignore[arg-type]


def test_credentials_come_from_the_url_or_a_password_file(tmp_path: Path) -> None:
    device = standard_device("dev-7", T0)
    agent = EdgeAgent(settings(tmp_path, mqtt_url="mqtt://u:p%40ss@h:1"), device)
    assert (agent.link.credentials.username, agent.link.credentials.password) == ("u", "p@ss")
    agent.stop(0)
    (tmp_path / "dev-7.password").write_text("from-file\n")
    agent = EdgeAgent(settings(tmp_path, mqtt_password_file=tmp_path / "{device}.password"), device)
    # With a password and no user name, the device code is the user.
    assert (agent.link.credentials.username, agent.link.credentials.password) == (
        "dev-7",
        "from-file",
    )
    agent.stop(0)


def test_a_driver_plugs_in_by_import_path() -> None:
    factory = load_driver_factory("tests.edge.test_agent_units:example_driver")
    driver = factory("dev-9", parse_options(["port=/dev/ttyUSB0", "baud=9600"]))
    assert driver.device == "dev-9"
    for bad in ("nocolon", "no.such.module:x", "tests.edge.test_agent_units:missing"):
        with pytest.raises(ConfigurationError, match="driver"):
            load_driver_factory(bad)
    with pytest.raises(ConfigurationError, match="key=value"):
        parse_options(["port"])


def example_driver(device: str, options: dict[str, str]) -> object:
    assert options == {"port": "/dev/ttyUSB0", "baud": "9600"}
    return standard_device(device, T0)


class FlakyDriver:
    """The demo device, except that its first read fails like a serial timeout."""

    def __init__(self) -> None:
        self.inner = standard_device("dev-flaky", T0)
        self.failed = False

    @property
    def device(self) -> str:
        return self.inner.device

    def channels(self) -> list[ChannelSpec]:
        return list(self.inner.channels())

    def read(self, until: datetime) -> list[SampleBlock]:
        if not self.failed:
            self.failed = True
            raise TimeoutError("instrument did not answer")
        return self.inner.read(until)


def test_a_failing_driver_read_does_not_end_the_agent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    from edge.clock import ScaledClock
    from qorgau.localservices import free_port

    agent = EdgeAgent(
        settings(
            tmp_path,
            mqtt_url=f"mqtt://127.0.0.1:{free_port()}",  # nobody listens
            edge_batch_interval_s=0.02,
            edge_flush_timeout_s=0.0,
        ),
        FlakyDriver(),
        clock=ScaledClock(T0, speed=600.0),
    )
    agent.run(threading.Event(), until=T0 + timedelta(minutes=2))
    assert "reading the driver into the outbox failed" in caplog.text
    assert agent.stats.collected_messages > 0
