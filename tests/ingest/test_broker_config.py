"""The shipped Mosquitto configuration is the renderer's, so the reasons in qorgau.broker hold
for what is deployed."""

from __future__ import annotations

from pathlib import Path

from qorgau.broker import DEPLOY_BROKER, DEPLOY_CONF_PATH, BrokerConfig, render_mosquitto_conf

ROOT = Path(__file__).resolve().parents[2]


def test_deployed_file_equals_the_rendered_configuration() -> None:
    shipped = (ROOT / DEPLOY_CONF_PATH).read_text()
    assert shipped == render_mosquitto_conf(DEPLOY_BROKER), (
        "deploy/mosquitto/mosquitto.conf is stale: run `python -m qorgau.broker`"
    )


def test_settings_that_keep_ingest_lossless() -> None:
    lines = set(render_mosquitto_conf(BrokerConfig()).splitlines())
    assert "persistence true" in lines
    inflight = next(int(x.split()[1]) for x in lines if x.startswith("max_inflight_messages "))
    assert inflight == 0 or inflight >= 1000  # 20 throttles publishers and batched acks
    queued = next(int(x.split()[1]) for x in lines if x.startswith("max_queued_messages "))
    assert queued >= 1_000_000  # Mosquitto's default of 1000 drops QoS 1 messages silently
    assert "max_queued_bytes 0" in lines
