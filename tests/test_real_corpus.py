"""Real logs, IoC by IoC and device by device (tests/data/real/README.md).

Every ``<log>.expected.json`` in tests/data/real/ was worked out from its log
independently of vtguardian; this ingests the log as a user would and compares
what was stored: the same IoCs, on each the same devices, with the same hits
and blocks. A sighting whose log names its device must carry that device.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from helpers import TEST_DATA
from sources_helpers import ingest, stored_by_device
from vtguardian.store import migrate
from vtguardian.store.engine import make_engine

CORPUS = TEST_DATA / "real"
EXPECTATIONS = sorted(CORPUS.glob("*/*.expected.json"))


def _log_of(expectation: Path) -> Path:
    return expectation.with_name(expectation.name.removesuffix(".expected.json"))


@pytest.mark.parametrize(
    "expectation", EXPECTATIONS, ids=[str(e.relative_to(CORPUS)) for e in EXPECTATIONS]
)
def test_every_sighting_carries_the_device_that_made_it(expectation, tmp_path):
    expected = json.loads(expectation.read_text())
    log = tmp_path / _log_of(expectation).name
    shutil.copy(_log_of(expectation), log)
    if expected.get("mtime"):  # syslog lines carry no year: the file's time gives it
        moment = datetime.fromisoformat(expected["mtime"]).timestamp()
        os.utime(log, (moment, moment))
    else:  # a settled file: its last line is complete
        os.utime(log, (0, 0))
    engine = make_engine(f"sqlite:///{tmp_path / 'corpus.db'}")
    migrate.upgrade(engine)
    totals = ingest(engine, expected["source"], log, fields=expected.get("fields") or ())
    found = stored_by_device(engine)
    engine.dispose()

    wanted = expected["sightings"]
    assert sorted(set(found) - set(wanted)) == [], "stored, not expected"
    assert sorted(set(wanted) - set(found)) == [], "expected, not stored"
    wrong = [
        f"{ioc}: stored {found[ioc]}, expected {wanted[ioc]}"
        for ioc in sorted(wanted)
        if found[ioc] != wanted[ioc]
    ]
    assert not wrong, "{device: [hits, blocked]} differ:\n" + "\n".join(wrong)
    unnamed = {ioc for ioc, devices in wanted.items() if "" in devices}
    assert unnamed == set(expected.get("no_device", {})), "a device left out needs a reason"
    assert totals.errors == expected.get("errors", 0)


def test_the_corpus_covers_every_source_it_claims():
    sources = {json.loads(e.read_text())["source"] for e in EXPECTATIONS}
    assert {"suricata", "zeek", "ecs"} <= sources
