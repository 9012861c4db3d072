"""What every part of Qorgau speaks, at the bottom of the layers: the readings and status wire
format with its topics and the table of quantities and units (``vocabulary.protocol``), the
alert messages on MQTT (``vocabulary.protocol.alerts``), the interface between the edge agent
and an instrument (``vocabulary.driver``), MQTT URLs (``vocabulary.mqtt_url``) and the one
MQTT 5 client factory of the services (``vocabulary.mqtt_client``), the check of a webhook URL
(``vocabulary.webhook_url``), the shared errors and the retry backoff. It imports nothing of
ours, so every package may import it. Most of it needs only pydantic, so the edge agent imports
it too; ``mqtt_client`` (aiomqtt) and ``webhook_url`` (httpx, idna) need the ``server`` extra
and only the services import them.
"""

# The release of Qorgau, which every service reports (``qorgau --version``, the API's OpenAPI
# document); kept equal to ``version`` in pyproject.toml.
__version__ = "0.1.0"
