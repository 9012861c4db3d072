"""What every part of Qorgau speaks, at the bottom of the layers: the shared errors and the
retry backoff. It imports nothing of ours, so every package (the edge agent included) may import
it without pulling anything else in.

The readings and alert wire formats, the table of quantities and units and the MQTT URLs belong
here too; they still live in ``edge.protocol``, ``edge.mqtt_url`` and ``ingest.alerting.wire``.
"""

# The release of Qorgau, which every service reports (``qorgau --version``, the API's OpenAPI
# document); kept equal to ``version`` in pyproject.toml.
__version__ = "0.1.0"
