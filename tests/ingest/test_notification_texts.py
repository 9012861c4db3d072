"""Notification texts: the gettext catalogues of kk, ru and en agree, and a text names the
place, the value and the limit with units, how long and what to do, in the person's language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from analytics.alerts.params import load_alert_actions
from application.localisation import catalogue
from ingest.alerting.notifications.channels import Outgoing, SmsChannel, SmsConfig
from ingest.alerting.notifications.texts import (
    LANGUAGES,
    Catalogues,
    action_key,
    msgids,
    render,
)

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
ALERT: dict[str, Any] = {
    "alert_id": "6f1c7a52-3a0e-5d7c-9a55-0c3f4f6b8e01",
    "enterprise": "kz-mine",
    "enterprise_name": "Karaganda mine No 3",
    "site_name": "North shaft",
    "workplace": "face-1",
    "workplace_name": "Longwall face 12",
    "device": "dev-1",
    "device_name": "Gas monitor A",
    "sensor": "dev-1.ch4",
    "quantity": "gas",
    "substance": "CH4",
    "kind": "ceiling",
    "severity": "critical",
    "value": 2.345,
    "unit": "%vol",
    "threshold": 2.0,
    "threshold_unit": "%vol",
    "opened_at": NOW - timedelta(minutes=7),
    "timezone": "Asia/Almaty",
}


def test_the_catalogues_have_the_same_msgids_and_no_empty_translation() -> None:
    wanted = set(msgids()) | set(load_alert_actions().values())
    for language in LANGUAGES:
        found = {m.id: m.string for m in catalogue(language, "alerts") if m.id}
        assert set(found) == wanted, (language, set(found) ^ wanted)
        assert all(isinstance(s, str) and s.strip() for s in found.values()), language


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_text_names_place_value_limit_duration_and_action(language: str) -> None:
    catalogues = Catalogues()
    actions = load_alert_actions()
    subject, text = render(
        catalogues, language=language, event="raised", alert=ALERT, actions=actions, now=NOW
    )
    assert "Longwall face 12" in subject
    assert "CH4" in subject
    local = ALERT["opened_at"].astimezone(ZoneInfo("Asia/Almaty")).strftime("%H:%M")
    for part in ("North shaft", "Karaganda mine No 3", "Gas monitor A", "Asia/Almaty", local):
        assert part in text
    decimal = "." if language == "en" else ","
    assert f"2{decimal}35" in text  # three significant digits, the language's decimal sign
    assert catalogues.gettext(language, actions["methane"]) in text
    assert catalogues.gettext(language, "% vol") in text
    assert "7" in text  # minutes open
    if language != "en":
        assert catalogues.gettext(language, actions["methane"]) != actions["methane"]


def test_the_action_comes_from_the_hazard() -> None:
    assert action_key("ceiling", "gas", "O2") == "oxygen"
    assert action_key("short_term", "gas", "H2S") == "gas"
    assert action_key("projected_exposure", "noise_laeq", None) == "noise"
    assert action_key("projected_exposure", "vib_hav", None) == "vibration"
    assert action_key("sensor_silent", "gas", "H2S") == "device"


def test_the_sms_request_follows_the_configured_template() -> None:
    import httpx

    channel = SmsChannel(
        httpx.AsyncClient(),
        SmsConfig(
            url="https://sms.example.kz/api/send",
            encoding="query",
            fields='{"login": "qorgau", "phones": "$phone", "mes": "$text", "id": "$key"}',
            headers='{"Authorization": "Basic cW9yZ2F1"}',
        ),
    )
    request = channel.request(
        Outgoing(key="n-7", address="+77011234567", subject="Critical", text="Леave")
    )
    assert request.url.params["phones"] == "+77011234567"
    assert request.url.params["mes"] == "Critical. Леave"
    assert request.url.params["id"] == "n-7"
    assert request.url.params["login"] == "qorgau"
    assert request.headers["authorization"] == "Basic cW9yZ2F1"
    with pytest.raises(ValueError, match="JSON"):
        SmsChannel(httpx.AsyncClient(), SmsConfig(url="https://x", fields="{not json"))


def test_a_language_without_catalogue_falls_back_to_english() -> None:
    catalogues = Catalogues()
    subject, text = render(
        catalogues,
        language="de",
        event="raised",
        alert=ALERT,
        actions=load_alert_actions(),
        now=NOW,
    )
    assert text.startswith("Alert: ceiling exceeded.")
    assert "Longwall face 12" in subject
