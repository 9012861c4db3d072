"""Topic layout: ``{prefix}/v1/{enterprise}/{device}/readings`` and its siblings.

The prefix defaults to ``qorgau``; tests give every test its own prefix so that they never see
each other's messages on a shared broker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WIRE_VERSION_SEGMENT = "v1"
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_segment(kind: str, value: str) -> None:
    """Refuse a value that cannot be one topic segment (wildcards, separators, empty)."""
    if not _SEGMENT.match(value):
        raise ValueError(
            f"{kind} {value!r} cannot be a topic segment: use 1–128 characters from "
            "letters, digits, '.', '_' and '-', starting with a letter or digit"
        )


def readings_topic(prefix: str, enterprise: str, device: str) -> str:
    check_segment("enterprise", enterprise)
    check_segment("device", device)
    return f"{prefix}/{WIRE_VERSION_SEGMENT}/{enterprise}/{device}/readings"


def status_topic(prefix: str, enterprise: str, device: str) -> str:
    check_segment("enterprise", enterprise)
    check_segment("device", device)
    return f"{prefix}/{WIRE_VERSION_SEGMENT}/{enterprise}/{device}/status"


def alerts_topic(prefix: str, enterprise: str, suffix: str = "") -> str:
    check_segment("enterprise", enterprise)
    base = f"{prefix}/{WIRE_VERSION_SEGMENT}/{enterprise}/alerts"
    return f"{base}/{suffix}" if suffix else base


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
    if (
        len(parts) < 5
        or parts[-4] != WIRE_VERSION_SEGMENT
        or parts[-1]
        not in {
            "readings",
            "status",
        }
    ):
        raise ValueError(
            f"topic {topic!r} is not of the form "
            f"{{prefix}}/{WIRE_VERSION_SEGMENT}/{{enterprise}}/{{device}}/readings|status"
        )
    return DeviceTopic(
        prefix="/".join(parts[:-4]), enterprise=parts[-3], device=parts[-2], kind=parts[-1]
    )
