"""Values from traffic reach the terminal as text (issue #24, point 3).

A URL path ``/[link=https://evil.example/phish]CLICK-ME[/link]`` made ``alerts``
print a clickable OSC-8 link and ``lookup`` hide part of the URL; ``/[/x]``
crashed both with a MarkupError; device names and clients holding ``\\x1b[2J``
were printed raw. The commands run here as a user runs them, with colour forced
on as in a terminal, over data that came in through a real ingest and lookup.
"""

from __future__ import annotations

import asyncio

import orjson

from helpers import run_cli, settings_for
from sources_helpers import ingest
from vtguardian.clock import utcnow
from vtguardian.intel.lookup import LookupService
from vtguardian.store.engine import write_transaction
from vtguardian.store.entities import ensure_clients

LINK = "http://malware.example.com/[link=https://evil.example/phish]CLICK-ME[/link]"
BROKEN = "http://malware.example.com/[/x]"
NAME = "laptop\x1b[2J\x1b]8;;https://evil.example/\x07name"
CLIENT = "192.168.1.50"


def _eve(url_path: str) -> bytes:
    event = {
        "timestamp": "2026-11-20T08:10:00.000000+0000",
        "event_type": "http",
        "src_ip": CLIENT,
        "src_port": 50000,
        "dest_ip": "93.184.216.34",
        "dest_port": 80,
        "http": {"hostname": "malware.example.com", "url": url_path},
    }
    return orjson.dumps(event) + b"\n"


def test_alerts_lookup_and_hunt_print_data_as_text(engine, db_url, vt_emulator, tmp_path):
    log = tmp_path / "eve.json"
    log.write_bytes(_eve(LINK.removeprefix("http://malware.example.com")) + _eve("/[/x]"))
    ingest(engine, "suricata", log)
    with write_transaction(engine) as connection:  # the name Pi-hole's database gave it
        ensure_clients(connection, {CLIENT: (NAME, utcnow(), utcnow())})
    vt_emulator.emulator.configure(
        {"seeds": [{"type": "url", "value": url, "malicious": 9, "harmless": 60}
                   for url in (LINK, BROKEN)]}
    )  # fmt: skip
    settings = settings_for(db_url, vt_emulator.url)
    asyncio.run(LookupService(settings, engine).run_worker(once=True))
    env = {
        "VTGUARDIAN_DATABASE__URL": db_url,
        "VTGUARDIAN_VIRUSTOTAL__HOST": vt_emulator.url,
        "VT_API_KEY": "emulator-key",
        "FORCE_COLOR": "1",  # styles and hyperlinks on, as in a terminal
        "COLUMNS": "400",
    }
    outputs = {
        "alerts": run_cli("alerts", env=env),
        "lookup": run_cli("lookup", LINK, BROKEN, env=env),
        "hunt": run_cli("hunt", LINK, "--days", "100000", env=env),
    }
    for command, result in outputs.items():
        assert result.returncode == 0, (command, result.stderr)
        printed = result.stdout
        assert "\x1b]8;" not in printed, command  # no OSC-8 hyperlink from the data
        assert "\x1b[2J" not in printed, command  # no screen clearing
        assert LINK in printed or command == "hunt", command  # the whole URL, literally
    assert BROKEN in outputs["lookup"].stdout and BROKEN in outputs["alerts"].stdout
    assert "laptop\\x1b[2J\\x1b]8;;https://evil.example/\\x07name" in outputs["alerts"].stdout
    assert "\\x1b[2J" in outputs["hunt"].stdout and LINK in outputs["hunt"].stdout
