"""Whether an alert webhook can be delivered to a URL: checked by the API when a webhook or a
notification channel is created, and by the webhook dispatcher before each delivery (a URL
stored before the check existed). Here, below both, so that neither surface imports the other.
Needs httpx and idna (the ``server`` extra): the check is the HTTP client's own parsing."""

from __future__ import annotations

import contextlib
import ipaddress
import re

import httpx
import idna

# One label of a host name: letters, digits and hyphens (RFC 1123), underscores too (container
# service names), 1 to 63 characters, no hyphen at either end.
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_HOST_CHARS = 253


def check_webhook_url(url: str) -> str:
    """``url`` if a webhook can be delivered to it, else ``ValueError`` saying what is wrong.

    The checks are those the HTTP client would fail on at delivery, done when the webhook is
    created: scheme http or https, a host (an IP address, or a name whose labels are valid and
    whose non-ASCII labels have an IDNA encoding), a port from 1 to 65535.
    """
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise ValueError("the URL must start with http:// or https://")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise ValueError("the URL has no host, e.g. https://receiver.example.org/qorgau-hook")
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"port {port} is outside 1..65535")
    _check_host(host.strip("[]"))
    return url


def _check_host(host: str) -> None:
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return
    name = host.removesuffix(".")
    if len(name) > _HOST_CHARS:
        raise ValueError(f"the host name is longer than {_HOST_CHARS} characters")
    for label in name.split("."):
        if not _LABEL.match(label):
            raise ValueError(
                f"the host name {host[:100]!r} is not valid: each part between dots needs 1 to "
                "63 letters, digits, hyphens or underscores, and no hyphen at either end"
            )
        if label.lower().startswith("xn--"):
            try:
                idna.decode(label)
            except UnicodeError as exc:  # idna.IDNAError and the punycode codec's own
                raise ValueError(f"the host name {host[:100]!r} is not valid IDNA: {exc}") from None
