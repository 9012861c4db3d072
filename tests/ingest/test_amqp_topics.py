"""Routing keys of RabbitMQ's MQTT plugin, back to the topics devices published to, and the
settings of the RabbitMQ source."""

from __future__ import annotations

import pytest
from paho.mqtt.client import topic_matches_sub

from ingest.alerting.partition import subscriptions
from ingest.amqp import readings_binding
from ingest.amqp_broker import amqp_urls, binding_key, routing_key, topic_of
from vocabulary.errors import ConfigurationError
from vocabulary.protocol import parse_device_topic, readings_topic, status_topic


@pytest.mark.parametrize("prefix", ["qorgau", "site/qorgau"])
def test_a_readings_topic_survives_the_trip_through_a_routing_key(prefix: str) -> None:
    topic = readings_topic(prefix, "ent-1", "dev_7")
    key = topic.replace("/", ".")  # what the plugin makes of it
    assert topic_of(key, prefix) == topic
    assert parse_device_topic(topic_of(key, prefix)).device == "dev_7"


def test_a_code_with_a_dot_is_not_guessed_but_left_to_the_topic_checks() -> None:
    key = readings_topic("qorgau", "ent", "dev.1").replace("/", ".")
    topic = topic_of(key, "qorgau")
    assert topic == "qorgau/v1/ent/dev/1/readings"
    # Not a device topic: ingest quarantines the message as bad_topic, with this topic in the
    # record, instead of storing it under a device it guessed.
    with pytest.raises(ValueError, match="is not of the form"):
        parse_device_topic(topic)


def test_the_binding_takes_every_device_of_the_prefix_and_nothing_else() -> None:
    assert readings_binding("site/qorgau") == "site.qorgau.v1.#.readings"


def test_the_amqp_urls_are_one_per_node_and_checked() -> None:
    assert amqp_urls(" amqp://u:p@a:5672/, amqps://u:p@b:5671/ ") == [
        "amqp://u:p@a:5672/",
        "amqps://u:p@b:5671/",
    ]
    for bad in ("", "mqtt://u:secret@a:1883", "amqp://"):
        with pytest.raises(ConfigurationError, match="QORGAU_AMQP_URL") as caught:
            amqp_urls(bad)
        assert "secret" not in str(caught.value)


def _routes(binding: str, key: str) -> bool:
    """RabbitMQ's topic matching, for bindings without ``#``: ``*`` is exactly one word."""
    words, pattern = key.split("."), binding.split(".")
    return len(words) == len(pattern) and all(
        p in ("*", w) for p, w in zip(pattern, words, strict=True)
    )


@pytest.mark.parametrize("enterprises", [None, frozenset({"acme", "globex"})])
def test_the_alert_engines_bindings_route_what_its_mqtt_filters_match(
    enterprises: frozenset[str] | None,
) -> None:
    wanted = subscriptions("site/qorgau", enterprises)
    topics = [
        readings_topic("site/qorgau", "acme", "dev-1"),
        status_topic("site/qorgau", "globex", "dev-2"),
        readings_topic("site/qorgau", "initech", "dev-3"),
        "site/qorgau/v1/acme/alerts/ceiling",
        "site/qorgau/v1/initech/alerts/ceiling",
        "site/qorgau/v1/acme/dev-1/other",
        "qorgau/v1/acme/dev-1/readings",
    ]
    for topic in topics:
        by_mqtt = any(topic_matches_sub(f, topic) for f in wanted.filters)
        by_amqp = any(_routes(binding_key(f), routing_key(topic)) for f in wanted.filters)
        assert by_amqp == by_mqtt, topic
    # Not every topic, nor none: the filters do select.
    assert 0 < sum(any(topic_matches_sub(f, t) for f in wanted.filters) for t in topics) < 7
