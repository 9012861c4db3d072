"""Application services: what every surface (API, CLI, reports, dashboard, alert engine) calls.

The shift schedule (the only definition of a shift), the stored shift assessments and the
service that keeps them current, running exposure, history, scoring and the reports' model.
They call ``analytics`` for every formula and ``store`` for every SQL statement; they know
nothing of HTTP or MQTT.
"""
