"""Pivots on the network's own passive DNS: ``hunt``, the API's IoC detail (issue 27).

A Pi-hole log with a CNAME chain and shared CDN addresses is ingested as a user
would; the pivots must follow the chain to the address, name the device that
was given it, and list the other domains that share an address.
"""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from helpers import run_cli, settings_for
from resolution_helpers import (
    C2,
    C2_ADDRESS,
    C2_EDGE,
    HARMLESS,
    SHARED_BAD,
    resolution_log,
    store_verdict,
)
from sources_helpers import ingest
from vtguardian.clock import utcnow
from vtguardian.intel.hunt import pivot
from vtguardian.web.app import create_app


def _values(rows):
    return sorted(row["value"] for row in rows)


def test_a_domain_pivots_through_its_cname_to_its_address_and_its_neighbours(engine, tmp_path):
    ingest(engine, "pihole-log", resolution_log(tmp_path))
    store_verdict(engine, "domain", HARMLESS, "harmless", utcnow())

    c2 = pivot(engine, C2)
    assert _values(c2["addresses"]) == [C2_ADDRESS]  # the private answer is not kept
    assert c2["addresses"][0]["devices"] == ["192.168.1.20"]
    assert c2["neighbours"] == []  # its own CNAME target is its chain, not a neighbour

    shared = pivot(engine, SHARED_BAD)
    assert _values(shared["addresses"]) == ["151.101.1.1", "151.101.2.2"]
    neighbours = {row["value"]: row["verdict"] for row in shared["neighbours"]}
    assert neighbours == {
        HARMLESS: "harmless",
        "shop.cdn-example.net": None,
        "assets.allowed-example.com": None,
    }

    by_address = pivot(engine, "151.101.1.1")
    assert _values(by_address["names"]) == sorted([SHARED_BAD, HARMLESS, "shop.cdn-example.net"])
    assert _values(pivot(engine, C2_ADDRESS)["names"]) == sorted([C2, C2_EDGE])
    assert pivot(engine, "198.51.100.77") == {}  # never resolved here


def test_hunt_prints_the_pivots_and_the_api_detail_carries_them(engine, db_url, tmp_path):
    ingest(engine, "pihole-log", resolution_log(tmp_path))
    env = {"VTGUARDIAN_DATABASE__URL": db_url}
    shown = run_cli("hunt", C2, env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"Addresses {C2} resolved to here" in shown.stdout
    assert C2_ADDRESS in shown.stdout
    lines = run_cli("hunt", "--json", C2_ADDRESS, env=env).stdout.splitlines()
    pivots = [json.loads(line)["resolutions"] for line in lines if '"resolutions"' in line]
    assert _values(pivots[0]["names"]) == sorted([C2, C2_EDGE])

    settings = settings_for(db_url, "http://127.0.0.1:9")
    with TestClient(create_app(settings, engine), base_url="http://127.0.0.1") as client:
        detail = client.get(f"/api/v1/iocs/{C2}").json()
    assert _values(detail["resolutions"]["addresses"]) == [C2_ADDRESS]
