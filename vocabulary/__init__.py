"""What every part of Qorgau speaks, at the bottom of the layers: the readings and status wire
format with its topics and the table of quantities and units (``vocabulary.protocol``), the
alert messages on MQTT (``vocabulary.protocol.alerts``), the interface between the edge agent
and an instrument (``vocabulary.driver``), MQTT URLs (``vocabulary.mqtt_url``), the shared
errors and the retry backoff. It imports nothing of ours and needs only pydantic, so every
package (the edge agent included) may import it.
"""

# The release of Qorgau, which every service reports (``qorgau --version``, the API's OpenAPI
# document); kept equal to ``version`` in pyproject.toml.
__version__ = "0.1.0"
