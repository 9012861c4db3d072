"""The edge agent that runs beside instruments, and the wire format it speaks (``edge.protocol``).

Light on purpose: it runs on small devices, so it needs paho-mqtt and pydantic only.
"""
