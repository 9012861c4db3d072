"""Topic layout: ``{prefix}/v1/{enterprise}/{device}/readings`` and its siblings.

The prefix defaults to ``qorgau``; tests give every test its own prefix so that they never see
each other's messages on a shared broker.

Device topics and service topics share one level: ``{prefix}/v1/{enterprise}/alerts/{kind}``
sits where a device code would. A device named ``alerts`` would be granted the enterprise's
alert topics by its ACL, so the segments services use are reserved here, once, and refused as
device codes by every place that registers a device (``qorgau devices add``, the API).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WIRE_VERSION_SEGMENT = "v1"
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ALERTS_SEGMENT = "alerts"
DEVICE_KINDS = ("readings", "status")
# Segments a device code must not take (compared case-insensitively, since people read them):
# the service topic beside devices, the kinds of device topics (a device named like them makes
# topic filters ambiguous to read), and the two names device-management topics commonly take,
# kept free for commands and configuration sent to devices.
RESERVED_DEVICE_CODES: frozenset[str] = frozenset(
    {ALERTS_SEGMENT, *DEVICE_KINDS, "commands", "config"}
)


def check_segment(kind: str, value: str) -> None:
    """Refuse a value that cannot be one topic segment (wildcards, separators, empty)."""
    if not _SEGMENT.match(value):
        raise ValueError(
            f"{kind} {value!r} cannot be a topic segment: use 1–128 characters from "
            "letters, digits, '.', '_' and '-', starting with a letter or digit"
        )


def check_device_code(code: str) -> None:
    """Refuse a device code that is not one topic segment or that a service topic uses."""
    check_segment("device", code)
    if code.lower() in RESERVED_DEVICE_CODES:
        raise ValueError(
            f"device code {code!r} is reserved for service topics "
            f"({', '.join(sorted(RESERVED_DEVICE_CODES))}); choose another, e.g. {code}-1"
        )


def sensor_belongs_to(device: str, sensor: str) -> bool:
    """Whether ``sensor`` is named after ``device`` (``{device}.{suffix}``): the only sensor
    codes a device may introduce, so that it can never create sensors under another's name."""
    return sensor.startswith(f"{device}.") and len(sensor) > len(device) + 1


def readings_topic(prefix: str, enterprise: str, device: str) -> str:
    check_segment("enterprise", enterprise)
    check_device_code(device)
    return f"{prefix}/{WIRE_VERSION_SEGMENT}/{enterprise}/{device}/readings"


def status_topic(prefix: str, enterprise: str, device: str) -> str:
    check_segment("enterprise", enterprise)
    check_device_code(device)
    return f"{prefix}/{WIRE_VERSION_SEGMENT}/{enterprise}/{device}/status"


def alerts_topic(prefix: str, enterprise: str, suffix: str = "") -> str:
    check_segment("enterprise", enterprise)
    base = f"{prefix}/{WIRE_VERSION_SEGMENT}/{enterprise}/{ALERTS_SEGMENT}"
    return f"{base}/{suffix}" if suffix else base


@dataclass(frozen=True, slots=True)
class AlertTopic:
    prefix: str
    enterprise: str
    kind: str


def parse_alert_topic(topic: str) -> AlertTopic:
    """Split ``{prefix}/v1/{enterprise}/alerts/{kind}``; raises ``ValueError`` naming the layout.

    The enterprise of an alert is the one of its topic: the broker's ACL decides who may publish
    there, while anybody who may publish may write anything in the payload."""
    parts = topic.split("/")
    if len(parts) < 5 or parts[-4] != WIRE_VERSION_SEGMENT or parts[-2] != ALERTS_SEGMENT:
        raise ValueError(
            f"topic {topic!r} is not of the form "
            f"{{prefix}}/{WIRE_VERSION_SEGMENT}/{{enterprise}}/{ALERTS_SEGMENT}/{{kind}}"
        )
    return AlertTopic(prefix="/".join(parts[:-4]), enterprise=parts[-3], kind=parts[-1])


def readings_subscription(prefix: str, share_group: str | None = None) -> str:
    """Topic filter for every device's readings; with ``share_group`` an MQTT 5 shared
    subscription (``$share/{group}/...``) so that several ingest workers split the load."""
    topic_filter = f"{prefix}/{WIRE_VERSION_SEGMENT}/+/+/readings"
    return f"$share/{share_group}/{topic_filter}" if share_group else topic_filter


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    prefix: str
    enterprise: str
    device: str
    kind: str  # "readings" or "status"


def parse_device_topic(topic: str) -> DeviceTopic:
    """Split a device topic; raises ``ValueError`` naming the expected layout."""
    parts = topic.split("/")
    if len(parts) < 5 or parts[-4] != WIRE_VERSION_SEGMENT or parts[-1] not in DEVICE_KINDS:
        raise ValueError(
            f"topic {topic!r} is not of the form "
            f"{{prefix}}/{WIRE_VERSION_SEGMENT}/{{enterprise}}/{{device}}/readings|status"
        )
    return DeviceTopic(
        prefix="/".join(parts[:-4]), enterprise=parts[-3], device=parts[-2], kind=parts[-1]
    )
