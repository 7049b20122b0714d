"""Dashboards: one set of panel definitions, drawn as Grafana JSON and on the built-in page."""
