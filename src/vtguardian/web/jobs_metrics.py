"""Prometheus metrics of jobs: state, events (in, enriched, malicious, pending), lag."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Engine

from vtguardian.config import Settings
from vtguardian.jobs.service import status

STATES = ("running", "stopped", "failed")


class JobCollector:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        jobs = status(self.engine, self.settings)
        state = GaugeMetricFamily(
            "vtguardian_job_state", "1 for the job's current state", labels=["job", "state"]
        )
        events = GaugeMetricFamily(
            "vtguardian_job_events",
            "A job's events: in (read or received), enriched, malicious, pending",
            labels=["job", "kind"],
        )
        lag = GaugeMetricFamily(
            "vtguardian_job_lag_bytes", "Bytes of the job's file not read yet", labels=["job"]
        )
        for job in jobs:
            for name in STATES:
                state.add_metric([job["id"], name], 1.0 if job["state"] == name else 0.0)
            for kind, key in (("in", "events_in"), ("enriched", "enriched"),
                              ("malicious", "malicious"), ("pending", "pending")):  # fmt: skip
                events.add_metric([job["id"], kind], float(job[key]))
            lag.add_metric([job["id"]], float(job["lag_bytes"]))
        yield state
        yield events
        yield lag


def render_job_metrics(engine: Engine, settings: Settings) -> bytes:
    """The job gauges in the text format, appended to the store's on /metrics."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobCollector(engine, settings))  # type: ignore[arg-type]
    return generate_latest(registry)
