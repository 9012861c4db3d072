"""The edge agent that runs beside instruments; it speaks the wire format of ``vocabulary``.

Light on purpose: it runs on small devices, so it needs paho-mqtt and pydantic only.
"""
