"""What every AMQP client of Qorgau needs of RabbitMQ: the node URLs, the exchange RabbitMQ's MQTT
plugin publishes to, and the mapping between MQTT topics and AMQP routing keys.

The plugin turns topic ``a/b/c`` into routing key ``a.b.c`` on ``amq.topic``; a message published
there over AMQP with such a key reaches the MQTT subscribers of the topic. Ingest's readings
queue (``ingest.amqp``) and the alert engine's queue (``ingest.alerting.amqp_source``) are both
bound there.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import aio_pika.abc
import aiormq
import pamqp.exceptions

from vocabulary.errors import ConfigurationError
from vocabulary.protocol.topics import WIRE_VERSION_SEGMENT

EXCHANGE = "amq.topic"  # where RabbitMQ's MQTT plugin publishes

#: What a lost node, a closed channel or a refused connection raises: reconnect, to the next node.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,  # used after its channel closed
    pamqp.exceptions.PAMQPException,
    ConnectionError,
    OSError,
    TimeoutError,
)


def amqp_urls(setting: str) -> list[str]:
    """The node URLs of ``QORGAU_AMQP_URL`` (comma-separated); ``ConfigurationError`` for one
    that is not ``amqp://`` or ``amqps://`` with a host."""
    urls = [url.strip() for url in setting.split(",") if url.strip()]
    if not urls:
        raise ConfigurationError(
            "QORGAU_AMQP_URL names no broker: give amqp://user:password@host:5672/"
        )
    for url in urls:
        parsed = urlsplit(url)
        if parsed.scheme not in ("amqp", "amqps") or not parsed.hostname:
            raise ConfigurationError(
                f"QORGAU_AMQP_URL: {redacted(url)!r} is not an amqp:// or amqps:// URL with a "
                "host (e.g. amqp://user:password@rabbitmq-1:5672/)"
            )
    return urls


def routing_prefix(topic_prefix: str) -> str:
    return topic_prefix.replace("/", ".")


def topic_of(routing_key: str, topic_prefix: str) -> str:
    """The MQTT topic a device published to, from the routing key RabbitMQ made of it.

    The plugin turns every ``/`` into ``.``; since codes may contain dots themselves, only the
    known layout tells them apart: ``{prefix}.v1.{enterprise}.{device}.readings``. With more
    than one dot between prefix and kind the split is ambiguous; the dots become slashes and
    the message is quarantined by the topic checks, with the topic in the record.
    """
    head = f"{routing_prefix(topic_prefix)}.{WIRE_VERSION_SEGMENT}."
    if routing_key.startswith(head):
        middle, dot, kind = routing_key[len(head) :].rpartition(".")
        if dot and middle.count(".") == 1:
            enterprise, device = middle.split(".")
            return f"{topic_prefix}/{WIRE_VERSION_SEGMENT}/{enterprise}/{device}/{kind}"
    return routing_key.replace(".", "/")


async def closed(
    connection: aio_pika.abc.AbstractConnection, channel: aio_pika.abc.AbstractChannel
) -> None:
    """Return when the connection or the channel closes (the node died, the broker closed the
    channel): the session ends and the supervisor reconnects."""
    done = asyncio.get_running_loop().create_future()

    def closed(*_: Any) -> None:
        if not done.done():
            done.set_result(None)

    connection.close_callbacks.add(closed)
    channel.close_callbacks.add(closed)
    await done


def redacted(url: str) -> str:
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, userinfo = head.partition("://")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}"


def routing_key(topic: str) -> str:
    """The routing key of an MQTT topic, as RabbitMQ's MQTT plugin makes it."""
    return topic.replace("/", ".")


def binding_key(topic_filter: str) -> str:
    """The binding key that matches what an MQTT topic filter matches: ``+`` is ``*`` (one
    segment), ``#`` is ``#`` (any number)."""
    return ".".join("*" if part == "+" else part for part in topic_filter.split("/"))
