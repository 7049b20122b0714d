"""Privacy and secrets, proven over generated traffic and every output.

- Whatever a household's logs contain, the set of values VirusTotal (the
  emulator) received intersected with the private, local and allowlisted
  values in those logs is empty.
- The API key never appears in the database, the logs and errors of the
  commands, /metrics, the page or the API.
"""

from __future__ import annotations

import asyncio
import ipaddress

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, text

from helpers import run_cli, settings_for
from sources_helpers import ingest
from vtguardian.intel.lookup import LookupService
from vtguardian.iocs import Classifier
from vtguardian.store import migrate
from vtguardian.store.engine import make_engine
from vtguardian.web.app import create_app

PRIVATE_NAMES = ["printer.local", "nas.home.arpa", "router", "wpad.lan", "tv.fritz.box",
                 "db.corp.internal", "10.1.168.192.in-addr.arpa", "mybank.com",
                 "login.mybank.com", "family-photos.example-family.net"]  # fmt: skip
PUBLIC_NAMES = ["www.google.com", "api.spotify.com", "malware-c2.example.net", "news.example.org"]
PRIVATE_IPS = ["192.168.1.1", "10.0.0.7", "172.16.5.4", "100.64.0.9", "169.254.1.1",
               "fe80::1", "fd00::5", "127.0.0.1", "203.0.113.7"]  # fmt: skip
PUBLIC_IPS = ["8.8.8.8", "185.220.101.66", "2a00:1450:4009:81f::200e"]

line = st.tuples(
    st.sampled_from(PRIVATE_NAMES + PUBLIC_NAMES),
    st.sampled_from(PRIVATE_IPS + PUBLIC_IPS),
    st.sampled_from(["192.168.1.10", "192.168.1.11", "10.0.0.2"]),
)


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(line, min_size=1, max_size=40))
def test_nothing_private_local_or_allowlisted_ever_reaches_virustotal(
    tmp_path_factory, vt_emulator, entries
):
    folder = tmp_path_factory.mktemp("privacy")
    url = f"sqlite:///{folder / 'p.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    log = folder / "pihole.log"
    log.write_text(
        "".join(
            f"Jan  1 00:00:{n % 60:02d} dnsmasq[1]: query[A] {name} from {client}\n"
            f"Jan  1 00:00:{n % 60:02d} dnsmasq[1]: reply {name} is {address}\n"
            for n, (name, address, client) in enumerate(entries)
        )
    )
    settings_ = settings_for(
        url,
        vt_emulator.url,
        privacy={"own_domains": ["example-family.net"], "own_networks": ["203.0.113.7/32"]},
        allowlist={"domains": ["mybank.com"]},
    )
    vt_emulator.emulator.reset()
    ingest(engine, "pihole-log", log, classifier=Classifier.from_settings(settings_))
    asyncio.run(LookupService(settings_, engine).run_worker(once=True))
    sent = {value for _kind, value in vt_emulator.emulator.looked_up()}
    engine.dispose()
    private = set(PRIVATE_NAMES) | set(PRIVATE_IPS)
    assert sent & private == set()
    assert all(ipaddress.ip_address(v).is_global for v in sent if _is_ip(v))
    used_public = {name for name, *_ in entries if name in PUBLIC_NAMES}
    assert used_public <= sent  # and every public name was asked about


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


SECRET = "c0ffee" * 10 + "f00d"


def test_the_api_key_never_appears_anywhere(tmp_path, vt_emulator, db_url):
    vt_emulator.emulator.configure({"keys": [SECRET]})
    log = tmp_path / "pihole.log"
    log.write_text(
        "Jan  1 00:00:01 dnsmasq[1]: query[A] malware-c2.example.net from 192.168.1.10\n"
        "Jan  1 00:00:02 dnsmasq[1]: query[A] www.google.com from 192.168.1.11\n"
    )
    env = {
        "VTGUARDIAN_DATABASE__URL": db_url,
        "VTGUARDIAN_VIRUSTOTAL__HOST": vt_emulator.url,
        "VTGUARDIAN_VIRUSTOTAL__PER_MINUTE": "1000",
        "VTGUARDIAN_PIHOLE__API_PASSWORD": "pihole-" + SECRET,
        "VT_API_KEY": SECRET,
    }
    outputs = []
    for args in (
        ["ingest", "--source", "pihole-log", str(log)],
        ["worker", "--once"],
        ["lookup", "8.8.8.8", "--json"],
        ["quota", "--json"],
        ["config", "show"],
        ["config", "show", "--json"],
        ["flow", "show"],
    ):
        result = run_cli(*args, env=env)
        assert result.returncode == 0, (args, result.stderr)
        outputs.append(result.stdout + result.stderr)
    vt_emulator.emulator.configure({"keys": ["another-key"]})  # revoked mid-run
    revoked = run_cli("lookup", "example.org", "--refresh", env=env)
    assert revoked.returncode == 2
    outputs.append(revoked.stdout + revoked.stderr)
    for output in outputs:
        assert SECRET not in output
    engine = make_engine(db_url)
    settings_ = settings_for(db_url, vt_emulator.url, virustotal={"api_key": SECRET})
    client = TestClient(create_app(settings_, engine), base_url="http://127.0.0.1")
    paths = ["/", "/metrics", "/api/v1/iocs", "/api/v1/panels", "/openapi.json",
             "/api/v1/iocs/malware-c2.example.net", "/feeds/domains.txt", "/healthz"]  # fmt: skip
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        assert SECRET not in response.text, path
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f"SELECT * FROM {table}")):
                assert SECRET not in repr(tuple(row)), table
    engine.dispose()
    if db_url.startswith("sqlite"):
        for path in tmp_path.parent.glob("**/*.db*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path
