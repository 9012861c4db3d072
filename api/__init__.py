"""The HTTP API (FastAPI): registry, readings and exposure, В, ПР scoring, alerts, dashboard."""
