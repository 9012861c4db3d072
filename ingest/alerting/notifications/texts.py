"""Notification texts a person understands, in their language (kk, ru, en).

Texts name the workplace, site and enterprise by their names, the measured quantity, the value
and the limit with units, how long the alert has been open and what to do, the last from the
norms profile's ``[alerts.actions]`` (``analytics.alerts.params.load_alert_actions``). Every
phrase is a msgid of the gettext domain ``alerts`` (``locales/{kk,ru,en}/LC_MESSAGES/alerts.po``),
loaded by ``application.localisation`` like every other domain.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime, format_timedelta
from babel.numbers import format_decimal
from babel.support import NullTranslations

from analytics.alerts.text import fmt
from application import localisation

log = logging.getLogger(__name__)

DOMAIN: Final = "alerts"
LANGUAGES: Final = localisation.LOCALES

HEALTH_KINDS: Final = frozenset(
    {
        "flatline",
        "out_of_range",
        "sensor_silent",
        "sequence_gap",
        "device_offline",
        "calibration_overdue",
    }
)


def _(msgid: str) -> str:
    """Marks a msgid for extraction; translated when rendered."""
    return msgid


SEVERITY: Final = {
    "info": _("Information"),
    "warning": _("Warning"),
    "high": _("High"),
    "critical": _("Critical"),
}
KIND: Final = {
    "ceiling": _("ceiling exceeded"),
    "short_term": _("15-minute mean above the short-term limit"),
    "pre_exceedance": _("approaching a limit"),
    "floor": _("below the lower alarm"),
    "pre_floor": _("approaching the lower alarm"),
    "projected_exposure": _("projected over-exposure by the end of the shift"),
    "trend": _("rising towards a limit"),
    "flatline": _("sensor stuck on one value"),
    "out_of_range": _("readings out of the instrument's range"),
    "sensor_silent": _("sensor silent"),
    "sequence_gap": _("messages from the device missing"),
    "device_offline": _("device offline"),
    "calibration_overdue": _("calibration overdue"),
}
QUANTITY: Final = {
    "noise_laeq": _("noise level"),
    "noise_lamax": _("maximum noise level"),
    "noise_lcpeak": _("peak noise level"),
    "vib_hav": _("hand-arm vibration"),
    "vib_wbv_x": _("whole-body vibration X"),
    "vib_wbv_y": _("whole-body vibration Y"),
    "vib_wbv_z": _("whole-body vibration Z"),
    "dust": _("dust"),
}
UNIT: Final = {
    "mg/m3": _("mg/m3"),
    "m/s2": _("m/s2"),
    "%vol": _("% vol"),
    "%LEL": _("% LEL"),
}
EVENT: Final = {
    "raised": _("Alert: {kind}."),
    "escalation": _(
        "Escalated to you: nobody has acknowledged this alert for {duration}. Please act."
    ),
    "reminder": _("Reminder: this alert has not been acknowledged for {duration}."),
    "resolved": _("Resolved: {kind}."),
}
SUBJECT: Final = _("{severity}: {what} — {kind} at {place}")
WHERE: Final = _("Where: {place}")
MEASURED_WITH_LIMIT: Final = _("Measured: {what} {value} {unit}, limit {limit} {limit_unit}")
MEASURED: Final = _("Measured: {what} {value} {unit}")
SENSOR: Final = _("Sensor {sensor} of device {device}")
SINCE: Final = _("Since {time} ({duration}).")
TODO: Final = _("What to do: {action}")
FOOTER: Final = _("Alert {alert_id}. Acknowledge it in Qorgau to stop the escalation.")
NO_WORKPLACE: Final = _("no workplace")


class Catalogues:
    """The ``alerts`` catalogues, from the one loader (``application.localisation``). A
    language without a readable catalogue is logged as an error and falls back to the English
    msgids: people still get their alerts."""

    def __init__(self) -> None:
        self.translations: dict[str, NullTranslations] = {}

    def _of(self, language: str) -> NullTranslations:
        found = self.translations.get(language)
        if found is None:
            try:
                found = localisation.translations(language, DOMAIN)
            except (OSError, ValueError) as exc:  # unknown locale, unreadable catalogue
                log.error(
                    "notification texts in %s: no catalogue (%s); sending English", language, exc
                )
                found = NullTranslations()
            self.translations[language] = found
        return found

    def gettext(self, language: str, msgid: str) -> str:
        return self._of(language).gettext(msgid)


def action_key(kind: str, quantity: str | None, substance: str | None) -> str:
    """The ``[alerts.actions]`` key of an alert: its hazard, or ``device`` for sensor health."""
    if kind in HEALTH_KINDS:
        return "device"
    q = quantity or ""
    gas = (substance or "").upper()
    if q == "gas" and gas == "O2":
        return "oxygen"
    if q == "gas" and gas == "CH4":
        return "methane"
    if q in ("gas", "dust"):
        return q
    if q.startswith("noise"):
        return "noise"
    if q.startswith("vib"):
        return "vibration"
    return "device"


def _number(x: float, language: str) -> str:
    if not math.isfinite(x):
        return str(x)
    return format_decimal(float(fmt(x)), locale=language)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def render(
    catalogues: Catalogues,
    *,
    language: str,
    event: str,
    alert: Mapping[str, Any],
    actions: Mapping[str, str],
    now: datetime,
) -> tuple[str, str]:
    """(subject, text) of one notification of ``alert`` (a row of
    ``store.notifications.alert_context``) in ``language``."""

    def t(msgid: str) -> str:
        return catalogues.gettext(language, msgid)

    kind = t(KIND.get(alert["kind"], alert["kind"]))
    what = alert["substance"] if alert["quantity"] == "gas" and alert["substance"] else None
    what = what or t(QUANTITY.get(alert["quantity"] or "", alert["quantity"] or alert["kind"]))
    place = ", ".join(
        p
        for p in (
            alert["workplace_name"] or alert["workplace"] or t(NO_WORKPLACE),
            alert["site_name"],
            alert["enterprise_name"] or alert["enterprise"],
        )
        if p
    )
    opened: datetime = alert["opened_at"]
    open_for = format_timedelta(
        max(timedelta(0), now - opened), locale=language, threshold=1.5, format="long"
    )
    unit = t(UNIT.get(alert["unit"], alert["unit"]))
    limit_unit = t(UNIT.get(alert["threshold_unit"], alert["threshold_unit"]))
    lines = [t(EVENT[event]).format(kind=kind, duration=open_for), t(WHERE).format(place=place)]
    if alert["value"] is not None and alert["threshold"] is not None:
        lines.append(
            t(MEASURED_WITH_LIMIT).format(
                what=what,
                value=_number(alert["value"], language),
                unit=unit,
                limit=_number(alert["threshold"], language),
                limit_unit=limit_unit,
            )
        )
    elif alert["value"] is not None:
        lines.append(
            t(MEASURED).format(what=what, value=_number(alert["value"], language), unit=unit)
        )
    if alert["sensor"]:
        lines.append(
            t(SENSOR).format(sensor=alert["sensor"], device=alert["device_name"] or alert["device"])
        )
    zone = _zone(alert["timezone"])
    local = format_datetime(opened, "d MMM HH:mm", tzinfo=zone, locale=language)
    lines.append(t(SINCE).format(time=f"{local} ({zone.key})", duration=open_for))
    if event != "resolved":
        action = actions.get(action_key(alert["kind"], alert["quantity"], alert["substance"]))
        if action:
            lines.append(t(TODO).format(action=t(action)))
    lines.append(t(FOOTER).format(alert_id=alert["alert_id"]))
    subject = t(SUBJECT).format(
        severity=t(SEVERITY.get(alert["severity"], alert["severity"])),
        what=what,
        kind=kind,
        place=alert["workplace_name"] or alert["workplace"] or place,
    )
    return subject, "\n".join(lines)


def msgids() -> list[str]:
    """Every msgid the texts use but the actions (those come from the norms profiles)."""
    fixed = [
        SUBJECT,
        WHERE,
        MEASURED_WITH_LIMIT,
        MEASURED,
        SENSOR,
        SINCE,
        TODO,
        FOOTER,
        NO_WORKPLACE,
    ]
    return [
        *SEVERITY.values(),
        *KIND.values(),
        *QUANTITY.values(),
        *UNIT.values(),
        *EVENT.values(),
        *fixed,
    ]
