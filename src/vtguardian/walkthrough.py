"""The offline walkthrough behind ``vtguardian demo``: no key, no network.

It creates a SQLite database, classifies a bundled list of indicators with the
privacy rule, and records the eligible ones as sightings, so a new user sees
what vtguardian keeps and what it refuses to send anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from vtguardian.iocs import Classified, Classifier
from vtguardian.store import migrate
from vtguardian.store.engine import make_engine, write_transaction
from vtguardian.store.entities import UNKNOWN_CLIENT, ensure_clients, ensure_iocs
from vtguardian.store.sightings import add_sightings, hour_bucket


@dataclass(frozen=True)
class WalkthroughResult:
    database: Path
    results: list[Classified]

    @property
    def stored(self) -> int:
        return sum(1 for result in self.results if result.eligible)


def sample_indicators() -> list[str]:
    text = resources.files("vtguardian.testing").joinpath("demo_indicators.txt").read_text()
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def run_walkthrough(folder: Path, classifier: Classifier | None = None) -> WalkthroughResult:
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "vtguardian-demo.db"
    engine = make_engine(f"sqlite:///{database}")
    migrate.upgrade(engine)
    classifier = classifier or Classifier()
    now = datetime.now(UTC).replace(tzinfo=None)
    results = [classifier.classify(value) for value in sample_indicators()]
    eligible = [r for r in results if r.eligible and r.type is not None and r.value is not None]
    with write_transaction(engine) as connection:
        ioc_ids = ensure_iocs(
            connection,
            {(str(r.type), r.value): (r.registered_domain, now, now) for r in eligible if r.value},
        )
        client_id = ensure_clients(connection, {UNKNOWN_CLIENT: (None, now)})[UNKNOWN_CLIENT]
        counts = {
            (ioc_id, client_id, "plain", hour_bucket(now)): (1, 0, now)
            for ioc_id in ioc_ids.values()
        }
        add_sightings(connection, counts)
    engine.dispose()
    return WalkthroughResult(database=database, results=results)
