"""Grafana dashboards as JSON (provisioning-ready) and their publisher."""
