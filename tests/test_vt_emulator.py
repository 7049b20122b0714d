"""The emulator speaks API v3 as vt-py expects it (over real HTTP)."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import aiohttp
import pytest
import vt

from vtguardian.testing.vt_emulator import DEFAULT_KEY


def _run(coro):
    return asyncio.run(coro)


async def _get(url: str, path: str, key: str | None = DEFAULT_KEY):
    async with vt.Client(key or "", host=url) as client:
        return await client.get_json_async(path)


async def _raw(url: str, path: str, headers: dict) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.get(url + path, headers=headers) as r:
        return r.status, await r.json()


def test_domain_object_shape(vt_emulator):
    doc = _run(_get(vt_emulator.url, "/domains/Malware-C2.example.net"))
    data = doc["data"]
    assert data["type"] == "domain" and data["id"] == "malware-c2.example.net"
    assert data["links"]["self"] == f"{vt_emulator.url}/api/v3/domains/malware-c2.example.net"
    attributes = data["attributes"]
    assert set(attributes["last_analysis_stats"]) == {
        "harmless",
        "malicious",
        "suspicious",
        "undetected",
        "timeout",
    }
    assert attributes["last_analysis_stats"]["malicious"] == 14
    results = attributes["last_analysis_results"]
    flagged = [r for r in results.values() if r["category"] == "malicious"]
    assert len(flagged) == 14
    assert all(set(r) == {"category", "engine_name", "method", "result"} for r in results.values())
    assert isinstance(attributes["last_analysis_date"], int)
    for key in ("reputation", "total_votes", "categories", "tags", "last_dns_records"):
        assert key in attributes
    assert "popularity_ranks" in attributes


def test_vt_py_object_parses_dates(vt_emulator):
    async def fetch():
        async with vt.Client(DEFAULT_KEY, host=vt_emulator.url) as client:
            return await client.get_object_async("/ip_addresses/185.220.101.66")

    obj = _run(fetch())
    assert obj.type == "ip_address"
    assert obj.last_analysis_stats["malicious"] == 7
    assert obj.last_analysis_date.year >= 2025
    assert {"asn", "as_owner", "country", "network"} <= set(obj.to_dict()["attributes"])


def test_url_ids_base64_and_sha256_give_the_same_object(vt_emulator):
    url = "http://malware-c2.example.net/gate.php"
    digest = hashlib.sha256(url.encode()).hexdigest()
    by_b64 = _run(_get(vt_emulator.url, f"/urls/{vt.url_id(url)}"))
    by_sha = _run(_get(vt_emulator.url, f"/urls/{digest}"))
    assert by_b64["data"]["id"] == by_sha["data"]["id"] == digest
    assert by_b64["data"]["attributes"]["last_analysis_stats"]["malicious"] == 11
    assert "=" not in vt.url_id(url) and base64.urlsafe_b64decode(vt.url_id(url) + "==")


def test_files_by_md5_and_sha256(vt_emulator):
    md5 = "44d88612fea8a8f36de82e1278abb02f"
    doc = _run(_get(vt_emulator.url, f"/files/{md5}"))
    data = doc["data"]
    assert data["type"] == "file" and len(data["id"]) == 64
    stats = data["attributes"]["last_analysis_stats"]
    assert len(stats) == 8
    assert {"confirmed-timeout", "failure", "type-unsupported"} <= set(stats)
    for key in ("crowdsourced_yara_results", "names", "size", "type_tag", "md5", "sha1"):
        assert key in data["attributes"]
    assert data["attributes"]["md5"] == md5


def test_url_submission_and_analysis(vt_emulator):
    async def flow():
        async with vt.Client(DEFAULT_KEY, host=vt_emulator.url) as client:
            analysis = await client.scan_url_async("http://new.example.com/landing")
            return await client.get_json_async(f"/analyses/{analysis.id}")

    doc = _run(flow())
    assert doc["data"]["type"] == "analysis"
    assert doc["data"]["attributes"]["status"] == "completed"
    assert set(doc["data"]["attributes"]["stats"]) >= {"malicious", "harmless"}
    assert doc["meta"]["url_info"]["url"] == "http://new.example.com/landing"


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "AuthenticationRequiredError"),
        ({"x-apikey": "not-a-key"}, 401, "WrongCredentialsError"),
    ],
)
def test_authentication_errors(vt_emulator, headers, status, code):
    got_status, body = _run(_raw(vt_emulator.url, "/api/v3/domains/example.com", headers))
    assert got_status == status
    assert body["error"]["code"] == code and body["error"]["message"]


def test_not_found_is_a_404_with_vt_error_body(vt_emulator):
    with pytest.raises(vt.APIError) as info:
        _run(_get(vt_emulator.url, "/domains/brand-new-domain.example.com"))
    assert info.value.code == "NotFoundError"
    status, body = _run(
        _raw(
            vt_emulator.url,
            "/api/v3/domains/brand-new-domain.example.com",
            {"x-apikey": DEFAULT_KEY},
        )
    )
    assert status == 404 and body["error"]["code"] == "NotFoundError"


def test_quota_exceeded_after_budget_and_404_counts(vt_emulator):
    vt_emulator.emulator.configure({"quota": {"per_minute": 3}})
    _run(_get(vt_emulator.url, "/domains/example.com"))
    with pytest.raises(vt.APIError):
        _run(_get(vt_emulator.url, "/domains/brand-new-domain.example.com"))  # a 404 counts
    _run(_get(vt_emulator.url, "/domains/example.org"))
    with pytest.raises(vt.APIError) as info:
        _run(_get(vt_emulator.url, "/domains/example.net"))
    assert info.value.code == "QuotaExceededError"
    assert vt_emulator.emulator.over_budget() == 1


def test_day_budget_resets_at_midnight_utc(vt_emulator):
    clock = {"now": 1_767_225_500.0}  # 2025-12-31 23:58:20 UTC
    emulator = vt_emulator.emulator
    emulator.clock = lambda: clock["now"]
    emulator.configure({"quota": {"per_day": 2}})
    _run(_get(vt_emulator.url, "/domains/a.example.com"))
    _run(_get(vt_emulator.url, "/domains/b.example.com"))
    with pytest.raises(vt.APIError):
        _run(_get(vt_emulator.url, "/domains/c.example.com"))
    clock["now"] += 120  # past midnight
    assert _run(_get(vt_emulator.url, "/domains/c.example.com"))["data"]["id"] == "c.example.com"


def test_transient_error_body(vt_emulator):
    vt_emulator.emulator.configure({"faults": {"error_rate": 1.0}})
    status, body = _run(
        _raw(vt_emulator.url, "/api/v3/domains/example.com", {"x-apikey": DEFAULT_KEY})
    )
    assert status == 503 and body["error"]["code"] == "TransientError"


def test_generated_answers_are_deterministic(vt_emulator):
    first = _run(_get(vt_emulator.url, "/domains/some-random-site.example.com"))
    second = _run(_get(vt_emulator.url, "/domains/some-random-site.example.com"))
    assert first == second


def test_call_log_records_every_request(vt_emulator):
    _run(_get(vt_emulator.url, "/domains/example.com"))
    with pytest.raises(vt.APIError):
        _run(_get(vt_emulator.url, "/domains/example.com", key="bad"))
    calls = vt_emulator.emulator.calls()
    assert [(c.status, c.outcome) for c in calls] == [(200, "ok"), (401, "auth")]
    assert vt_emulator.emulator.looked_up() == [("domain", "example.com")]


def test_control_endpoint_serves_the_call_log(vt_emulator):
    _run(_get(vt_emulator.url, "/domains/example.com"))

    async def fetch():
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{vt_emulator.url}/_emulator/calls") as response,
        ):
            return await response.json()

    calls = _run(fetch())["calls"]
    assert calls[0]["value"] == "example.com" and calls[0]["status"] == 200


def test_emulator_runs_from_the_command_line(tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    seeds = tmp_path / "seeds.json"
    seeds.write_text(
        '[{"type": "domain", "value": "bad.example.com", "malicious": 9, "harmless": 60}]'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "vtguardian", "vt-emulator", "--port", str(port),
         "--seed-file", str(seeds), "--per-minute", "1", "--faults", "slow_rate=0"],
        env=os.environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        doc = _run(_get(url, "/domains/bad.example.com"))
        assert doc["data"]["attributes"]["last_analysis_stats"]["malicious"] == 9
        with pytest.raises(vt.APIError) as info:
            _run(_get(url, "/domains/other.example.com"))
        assert info.value.code == "QuotaExceededError"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_emulator_rejects_unknown_faults():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "vtguardian", "vt-emulator", "--faults", "explode=1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "unknown fault 'explode'" in result.stderr


def test_a_reanalysis_goes_queued_in_progress_completed_and_can_change_the_verdict(vt_emulator):
    emulator = vt_emulator.emulator
    emulator.configure({"analysis": {"polls_to_complete": 3}})

    async def flow():
        async with vt.Client(DEFAULT_KEY, host=vt_emulator.url) as client:
            before = await client.get_json_async("/domains/one-engine-fp.example.com")
            response = await client.post_async("/domains/one-engine-fp.example.com/analyse")
            created = await response.json_async()
            polls = [
                await client.get_json_async(f"/analyses/{created['data']['id']}") for _ in range(3)
            ]
            after = await client.get_json_async("/domains/one-engine-fp.example.com")
            return before, created, polls, after

    before, created, polls, after = _run(flow())
    assert created["data"]["type"] == "analysis"
    statuses = [p["data"]["attributes"]["status"] for p in polls]
    assert statuses == ["queued", "in-progress", "completed"]
    assert polls[0]["data"]["attributes"]["stats"] == {}
    assert polls[2]["data"]["attributes"]["stats"]["malicious"] == 0
    old = before["data"]["attributes"]
    new = after["data"]["attributes"]
    assert old["last_analysis_stats"]["malicious"] == 1  # the seed's lone false positive
    assert new["last_analysis_stats"]["malicious"] == 0
    assert new["last_analysis_date"] > old["last_analysis_date"] + 300 * 86400


def test_a_file_analysis_carries_file_info(vt_emulator):
    sha256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"

    async def flow():
        async with vt.Client(DEFAULT_KEY, host=vt_emulator.url) as client:
            response = await client.post_async(f"/files/{sha256}/analyse")
            analysis_id = (await response.json_async())["data"]["id"]
            return await client.get_json_async(f"/analyses/{analysis_id}")

    doc = _run(flow())
    assert doc["meta"]["file_info"]["sha256"] == sha256
    assert len(doc["meta"]["file_info"]["md5"]) == 32


def test_analysing_an_unknown_object_is_the_real_not_found_error(vt_emulator):
    async def flow():
        async with vt.Client(DEFAULT_KEY, host=vt_emulator.url) as client:
            response = await client.post_async("/domains/brand-new-domain.example.com/analyse")
            return response.status, await client.get_error_async(response)

    status, error = _run(flow())
    assert status == 404 and error.code == "NotFoundError"


def test_relationships_page_with_meta_cursor_and_links_next(vt_emulator):
    addresses = [f"198.51.100.{n}" for n in range(1, 26)]
    vt_emulator.emulator.configure(
        {"seeds": [{"type": "domain", "value": "many.example.net", "harmless": 60,
                    "undetected": 20, "related": {"resolutions": addresses}}]}
    )  # fmt: skip

    async def flow():
        async with vt.Client(DEFAULT_KEY, host=vt_emulator.url) as client:
            first = await client.get_json_async(
                "/domains/many.example.net/resolutions", params={"limit": 10}
            )
            walked = [
                obj.ip_address
                async for obj in client.iterator(
                    "/domains/many.example.net/resolutions", batch_size=10
                )
            ]
            return first, walked

    first, walked = _run(flow())
    assert first["meta"]["count"] == 25 and first["meta"]["cursor"]
    assert "cursor=" in first["links"]["next"]
    assert first["data"][0]["type"] == "resolution"
    assert first["data"][0]["attributes"]["host_name"] == "many.example.net"
    assert walked == addresses  # vt-py follows meta.cursor to the end
    pages = [c for c in vt_emulator.emulator.calls() if c.path.endswith("/resolutions")]
    assert len(pages) == 1 + 3
