"""Partitioning enterprises over alert engines, without services: the setting, the topic
filters of an engine, and the rules that decide overlaps and uncovered enterprises. The
behaviour through a real broker and database is in test_alerting.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from paho.mqtt.client import topic_matches_sub
from pydantic import ValidationError

from ingest.alerting.partition import conflict_message, subscriptions, unowned
from ingest.alerting.settings import AlertsSettings
from store.alert_engines import ClaimResult, EngineClaim, conflicts_with, overlap


def claim(client_id: str, enterprises: set[str] | None, *, live: bool = True) -> EngineClaim:
    return EngineClaim(
        client_id=client_id,
        enterprises=frozenset(enterprises) if enterprises is not None else None,
        topic_filters=(),
        host="h1",
        heartbeat_at=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
        live=live,
    )


def test_the_setting_is_a_clean_set_of_topic_segments() -> None:
    settings = AlertsSettings(alerts_enterprises=" globex, acme,,acme ")
    assert settings.alerts_enterprises == "acme,globex"
    assert settings.owned_enterprises() == frozenset({"acme", "globex"})
    assert AlertsSettings().owned_enterprises() is None
    for bad in ("acme,+", "mine/1", "#"):
        with pytest.raises(ValidationError, match="topic segment"):
            AlertsSettings(alerts_enterprises=bad)
    with pytest.raises(ValidationError, match="twice"):
        AlertsSettings(alerts_heartbeat_s=30, alerts_heartbeat_timeout_s=60)


def test_a_partitioned_engine_subscribes_to_its_enterprises_topics_only() -> None:
    subs = subscriptions("q", frozenset({"acme", "globex"}))
    for topic in ("q/v1/acme/d1/readings", "q/v1/globex/d2/status", "q/v1/acme/alerts/ceiling"):
        assert any(topic_matches_sub(f, topic) for f in subs.filters), topic
    for topic in ("q/v1/initech/d3/readings", "q/v1/initech/alerts/ceiling", "q/v1/acme/d1/x"):
        assert not any(topic_matches_sub(f, topic) for f in subs.filters), topic
    # The default: the filters of an engine for every enterprise, as before partitions.
    assert subscriptions("q", None).filters == {
        "q/v1/+/+/readings",
        "q/v1/+/+/status",
        "q/v1/+/alerts/+",
    }


def test_claims_overlap_when_they_share_an_enterprise_or_one_is_all() -> None:
    assert overlap(frozenset({"a", "b"}), frozenset({"b", "c"})) == frozenset({"b"})
    assert not conflicts_with(frozenset({"a"}), frozenset({"b"}))
    assert conflicts_with(frozenset({"a", "b"}), frozenset({"b"}))
    assert conflicts_with(None, frozenset({"b"}))
    assert conflicts_with(frozenset({"b"}), None)
    assert conflicts_with(None, None)


def test_enterprises_no_live_engine_owns_are_found() -> None:
    registry = ["acme", "globex", "initech"]
    claims = [claim("a", {"acme"}), claim("b", {"globex"}, live=False)]
    assert unowned(registry, claims) == ["globex", "initech"]
    assert unowned(registry, [*claims, claim("all", None)]) == []
    assert unowned(registry, [claim("all", None, live=False)]) == registry


def test_the_refusal_names_the_other_engine_and_what_they_share() -> None:
    result = ClaimResult(previous=None, conflicts=(claim("alerts-a", {"acme", "globex"}),))
    message = conflict_message("alerts-b", frozenset({"globex", "initech"}), result, 60.0)
    assert "'alerts-b' cannot own globex, initech" in message
    assert "engine 'alerts-a' on host 'h1' (acme, globex) owns globex " in message
    assert "60 s" in message
    everything = conflict_message("alerts-c", None, result, 60.0)
    assert "cannot own all enterprises" in everything
    assert "owns every enterprise" in everything
