"""Wire format v1: the one home of what travels between edge agents and ingest.

A readings message (JSON, UTF-8) is published with QoS 1 to
``{prefix}/v1/{enterprise}/{device}/readings``::

    {
      "v": 1,
      "device": "mine-01-dev-03",
      "seq": 1842,
      "sent_at": "2026-11-23T08:15:02.120Z",
      "channels": [
        {"sensor": "mine-01-dev-03.noise", "quantity": "noise_laeq", "unit": "dB(A)",
         "t0": "2026-11-23T08:15:00Z", "period_s": 1.0, "values": [84.1, 85.0]},
        {"sensor": "mine-01-dev-03.co", "quantity": "gas", "unit": "mg/m3", "substance": "CO",
         "t0": "2026-11-23T08:15:00Z", "offsets_s": [0.0, 0.7], "values": [3.2, 3.4]}
      ]
    }

``seq`` increases by one per message and device; together with ``device`` it identifies a
message, which is how ingest stores a redelivered message exactly once. A channel carries either
a fixed ``period_s`` or explicit ``offsets_s`` (seconds after ``t0``, one per value).
"""

from vocabulary.protocol.errors import ProtocolError, RejectReason
from vocabulary.protocol.messages import (
    MAX_CHANNELS,
    MAX_PAYLOAD_BYTES,
    MAX_VALUES_PER_CHANNEL,
    PROTOCOL_VERSION,
    Channel,
    DecodedMessage,
    ReadingsMessage,
    RejectedChannel,
    decode_readings,
    encode_readings,
)
from vocabulary.protocol.quantities import UNITS_BY_QUANTITY, Quantity, normalise_unit
from vocabulary.protocol.status import DeviceStatus, OutboxStatus, decode_status, encode_status
from vocabulary.protocol.topics import (
    RESERVED_DEVICE_CODES,
    AlertTopic,
    DeviceTopic,
    alerts_topic,
    check_device_code,
    parse_alert_topic,
    parse_device_topic,
    readings_subscription,
    readings_topic,
    sensor_belongs_to,
    status_topic,
)

__all__ = [
    "MAX_CHANNELS",
    "MAX_PAYLOAD_BYTES",
    "MAX_VALUES_PER_CHANNEL",
    "PROTOCOL_VERSION",
    "RESERVED_DEVICE_CODES",
    "UNITS_BY_QUANTITY",
    "AlertTopic",
    "Channel",
    "DecodedMessage",
    "DeviceStatus",
    "DeviceTopic",
    "OutboxStatus",
    "ProtocolError",
    "Quantity",
    "ReadingsMessage",
    "RejectReason",
    "RejectedChannel",
    "alerts_topic",
    "check_device_code",
    "decode_readings",
    "decode_status",
    "encode_readings",
    "encode_status",
    "normalise_unit",
    "parse_alert_topic",
    "parse_device_topic",
    "readings_subscription",
    "readings_topic",
    "sensor_belongs_to",
    "status_topic",
]
