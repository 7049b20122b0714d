"""The lookup counters summed per provider and outcome (what ``flow show`` prints)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vtguardian.store.answers import count_outcome
from vtguardian.store.engine import write_transaction
from vtguardian.store.stats import outcome_counts


def test_outcome_counts_sum_every_hour(engine):
    now = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    with write_transaction(engine) as connection:
        for hours, provider, outcome, count in [
            (0, "virustotal", "answer", 2),
            (3, "virustotal", "answer", 5),
            (3, "virustotal", "found", 4),
            (1, "otx", "error", 1),
        ]:
            count_outcome(connection, provider, outcome, now - timedelta(hours=hours), count)
    with engine.connect() as connection:
        assert outcome_counts(connection) == {
            ("virustotal", "answer"): 7,
            ("virustotal", "found"): 4,
            ("otx", "error"): 1,
        }
        assert outcome_counts(connection, ("answer", "decision", "error")) == {
            ("virustotal", "answer"): 7,
            ("otx", "error"): 1,
        }
