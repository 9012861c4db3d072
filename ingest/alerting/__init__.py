"""``qorgau alerts``: the streaming detector runner beside the ingest workers.

Ingest workers share an MQTT 5 shared subscription, which spreads a device's messages across
workers; detectors need every reading of a sensor in one place. So the detectors run in a
service of their own, on a non-shared persistent subscription to every device's readings and
status (on RabbitMQ: a quorum queue of its own bound to those topics), decoding and validating
with ingest's code, and keep the database out of the alert path: alerts are published on the
broker first, then stored and pushed to webhooks. See ``docs/alerts.md``.
"""
