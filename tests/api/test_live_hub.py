"""The live readings hub against a real Mosquitto: a browser that leaves the live page cancels
its request while the hub unsubscribes, and no aiomqtt error is logged for it."""

from __future__ import annotations

import asyncio
import logging

import anyio
import pytest

from api.live import ReadingsHub
from tests.support import eventually
from vocabulary.protocol import readings_topic

pytestmark = [pytest.mark.anyio, pytest.mark.services]


async def test_viewers_cancelled_while_leaving_leave_no_error_behind(
    mqtt_url: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    hub = ReadingsHub(mqtt_url, topic_prefix)
    stop = asyncio.Event()
    runner = asyncio.create_task(hub.run(stop))
    topics = [readings_topic(topic_prefix, "ent", f"dev-{n}") for n in range(4)]
    try:
        async with hub.watch(topics):
            await asyncio.wait_for(hub.connected.wait(), 15)
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            for _ in range(5):
                # What Starlette does to a streaming response whose client went away: cancel
                # it in a cancel scope, which cancels every later await inside it again.
                with anyio.CancelScope() as scope:
                    async with hub.watch(topics):
                        scope.cancel()
                        await anyio.sleep(1)
            await eventually(lambda: not hub.topics(), what="every viewer gone")
            # The broker answers a client's packets in order: once the SUBACK of a subscription
            # sent after the UNSUBSCRIBEs is in, so is every UNSUBACK, and whatever an answer
            # to a forgotten exchange would log has been logged.
            async with hub.watch([readings_topic(topic_prefix, "ent", "probe")]):
                pass
            await eventually(lambda: not hub._exchanges, what="every (un)subscribe finished")
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == [], [r.getMessage() for r in errors]
        assert not hub._exchanges  # every (un)subscribe finished
    finally:
        stop.set()
        await asyncio.wait_for(runner, 15)
