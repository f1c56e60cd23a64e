"""Monitoring: Prometheus exporter, alert rules, dashboards and the big-screen page."""
