"""Fixtures that start real services: a throwaway PostgreSQL and Mosquitto per test session on
free loopback ports (or the servers named by QORGAU_TEST_DATABASE_URL / QORGAU_TEST_MQTT_URL),
a fresh schema and topic prefix per test, and factories for tests that stop and restart them."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from qorgau.localrabbitmq import LocalRabbitCluster, rabbitmq_installed
from qorgau.localservices import LocalMosquitto, LocalPostgres, scratch_dir
from store.migrate import upgrade
from tests.support import drop_schema, pause_jobs

# Fixtures shared by test folders that do not share a conftest.
pytest_plugins = ["tests.tls_support"]


# The fixtures that start or reach a real PostgreSQL or Mosquitto. A test that uses one, itself
# or through another fixture, is a service test even where its module forgot the marker: the
# unit layer (`scripts/test --fast`, ``-m "not services"``) never waits for a server.
SERVICE_FIXTURES = frozenset(
    {"pg_url", "mqtt_url", "pg_factory", "broker_factory", "tls_broker", "rabbitmq_cluster"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses = SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if uses and item.get_closest_marker("services") is None:
            item.add_marker(pytest.mark.services)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    external = os.environ.get("QORGAU_TEST_DATABASE_URL")
    if external:
        yield external
        return
    folder = scratch_dir("qorgau-test-pg-")
    server = LocalPostgres(folder / "data", durable=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    external = os.environ.get("QORGAU_TEST_MQTT_URL")
    if external:
        yield external
        return
    folder = scratch_dir("qorgau-test-mqtt-")
    broker = LocalMosquitto(folder)
    broker.start()
    try:
        yield broker.url
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def rabbitmq_cluster() -> Iterator[LocalRabbitCluster]:
    """A 3-node RabbitMQ cluster on loopback (Debian's package, MQTT plugin on), shared by the
    session: a test that kills a node starts it again (``start_node``) before it ends."""
    if not rabbitmq_installed():
        pytest.skip(
            "RabbitMQ is not installed: apt-get install rabbitmq-server (or run "
            "scripts/bootstrap --test)"
        )
    folder = scratch_dir("qorgau-test-rabbitmq-")
    cluster = LocalRabbitCluster(folder, size=3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def timescale_test_mode() -> Literal["auto", "on", "off"]:
    """``QORGAU_TEST_TIMESCALE``: the backend of every test's own schema (off: plain
    PostgreSQL, the default; on: TimescaleDB, which the server must have)."""
    mode = os.environ.get("QORGAU_TEST_TIMESCALE", "off")
    if mode not in ("auto", "on", "off"):
        raise pytest.UsageError(f"QORGAU_TEST_TIMESCALE must be auto, on or off, not {mode!r}")
    return mode  # type: ignore[return-value]


@pytest.fixture
def schema(pg_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A schema of its own for this test, with every migration applied: plain PostgreSQL, or
    TimescaleDB with ``QORGAU_TEST_TIMESCALE=on``. TimescaleDB's background jobs are paused
    (tests write, then read: a refresh in between would hide later rows until the next one)
    unless the test is marked ``background_jobs``. Tests marked ``plain`` get plain PostgreSQL
    whatever the setting: they test its own storage (day partitions, rollup tables)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    plain = request.node.get_closest_marker("plain") is not None
    upgrade(pg_url, name, timescale="off" if plain else timescale_test_mode())
    if request.node.get_closest_marker("background_jobs") is None:
        pause_jobs(pg_url, name)
    yield name
    drop_schema(pg_url, name)


@pytest.fixture
def topic_prefix() -> str:
    """A topic root of its own for this test, so tests on one broker never see each other."""
    return f"qt-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pg_factory() -> Iterator[Callable[..., LocalPostgres]]:
    """Start dedicated PostgreSQL servers that a test may stop, kill and restart (keyword
    arguments go to ``LocalPostgres``, e.g. ``timescaledb=False``)."""
    started: list[tuple[LocalPostgres, Path]] = []

    def make(**kwargs: Any) -> LocalPostgres:
        folder = scratch_dir("qorgau-test-pg-")
        server = LocalPostgres(folder / "data", durable=False, **kwargs)
        server.start()
        started.append((server, folder))
        return server

    yield make
    for server, folder in started:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def broker_factory() -> Iterator[Callable[..., LocalMosquitto]]:
    """Start dedicated Mosquitto brokers that a test may stop and restart."""
    started: list[tuple[LocalMosquitto, Path]] = []

    def make(**kwargs: object) -> LocalMosquitto:
        folder = scratch_dir("qorgau-test-mqtt-")
        broker = LocalMosquitto(folder, **kwargs)  # type: ignore[arg-type]
        broker.start()
        started.append((broker, folder))
        return broker

    yield make
    for broker, folder in started:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)
