"""Configuration: file, environment, VT_API_KEY, masking, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import run_cli
from vtguardian.config import load_settings

SECRET = "f00dfacecafe0123456789abcdef0123456789abcdef0123456789abcdef0123"


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VTGUARDIAN_CONFIG", raising=False)
    settings = load_settings()
    assert settings.database.url == "sqlite:///vtguardian.db"
    assert (settings.virustotal.per_minute, settings.virustotal.per_day) == (4, 500)
    assert settings.virustotal.per_month == 15500
    assert (settings.cache.max_entries, settings.cache.ttl_days) == (10000, 7)
    assert settings.verdict.min_malicious == 3


def test_file_then_environment_precedence(tmp_path, monkeypatch):
    path = tmp_path / "custom.toml"
    path.write_text(
        '[virustotal]\nper_minute = 2\napi_key = "from-file"\n'
        '[database]\nurl = "sqlite:////tmp/x.db"\n[allowlist]\ndomains = ["bank.example"]\n'
    )
    monkeypatch.setenv("VTGUARDIAN_CONFIG", str(path))
    monkeypatch.setenv("VTGUARDIAN_VIRUSTOTAL__PER_DAY", "100")
    monkeypatch.delenv("VT_API_KEY", raising=False)
    settings = load_settings()
    assert settings.virustotal.per_minute == 2
    assert settings.virustotal.per_day == 100
    assert settings.virustotal.api_key.get_secret_value() == "from-file"
    assert settings.allowlist.domains == ["bank.example"]
    monkeypatch.setenv("VT_API_KEY", "from-vt-env")
    assert load_settings().virustotal.api_key.get_secret_value() == "from-vt-env"
    monkeypatch.setenv("VTGUARDIAN_VIRUSTOTAL__API_KEY", "from-own-env")
    assert load_settings().virustotal.api_key.get_secret_value() == "from-own-env"


def test_explicit_path_beats_environment(tmp_path, monkeypatch):
    (tmp_path / "a.toml").write_text("[cache]\nttl_days = 3\n")
    (tmp_path / "b.toml").write_text("[cache]\nttl_days = 5\n")
    monkeypatch.setenv("VTGUARDIAN_CONFIG", str(tmp_path / "a.toml"))
    assert load_settings(tmp_path / "b.toml").cache.ttl_days == 5


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[virustotal]\nper_minute = 0\n", "virustotal.per_minute"),
        ("[virustotal]\nper_minute = 'four'\n", "virustotal.per_minute"),
        ("[verdict]\nratio_threshold = 1.5\n", "verdict.ratio_threshold"),
        ("[database]\nurl = 'postgres://x/y'\n", "database.url"),
        ("[database]\nurl = 'not a url'\n", "database.url"),
        ("[cache]\nmax_entires = 5\n", "cache.max_entires: unknown setting"),
        ("[virustotal\n", "invalid TOML"),
    ],
)
def test_invalid_file_is_one_line_naming_the_key(tmp_path, content, expected):
    path = tmp_path / "vtguardian.toml"
    path.write_text(content)
    result = run_cli("--config", str(path), "config", "show")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_invalid_environment_value_names_the_key(tmp_path):
    result = run_cli("config", "show", env={"VTGUARDIAN_CACHE__TTL_DAYS": "-1"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "cache.ttl_days" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_named_file_is_an_error(tmp_path):
    result = run_cli("--config", str(tmp_path / "nope.toml"), "config", "show")
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_show_masks_the_api_key_and_database_password(tmp_path):
    env = {
        "VT_API_KEY": SECRET,
        "VTGUARDIAN_DATABASE__URL": "mysql+pymysql://vtg:hunter2@db.example:3306/vtg",
    }
    for fmt in ([], ["--json"]):
        result = run_cli("config", "show", *fmt, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert SECRET not in result.stdout and SECRET[:8] not in result.stdout
        assert "hunter2" not in result.stdout
        assert "********" in result.stdout
    data = json.loads(run_cli("config", "show", "--json", env=env, cwd=tmp_path).stdout)
    assert data["virustotal"]["api_key"] == "********"
    assert data["database"]["url"] == "mysql+pymysql://vtg:********@db.example:3306/vtg"


def test_bad_allowlist_entry_is_a_config_error(tmp_path):
    path = tmp_path / "vtguardian.toml"
    path.write_text('[allowlist]\nnetworks = ["10.0.0.0/33"]\n')
    result = run_cli("--config", str(path), "ioc", "8.8.8.8")
    assert result.returncode == 2
    assert "allowlist.networks" in result.stderr


def test_allowlist_file_is_applied(tmp_path):
    listing = tmp_path / "allow.txt"
    listing.write_text("# my bank\nmybank.example.com\n0.0.0.0 updates.example.net\n9.9.9.0/24\n")
    path = tmp_path / "vtguardian.toml"
    path.write_text(f'[allowlist]\nfiles = ["{listing}"]\n')
    result = run_cli(
        "--config", str(path), "ioc", "www.mybank.example.com", "updates.example.net", "9.9.9.9"
    )
    assert [json.loads(line)["reason"] for line in result.stdout.splitlines()] == [
        "allowlisted",
        "allowlisted",
        "allowlisted",
    ]


def test_the_shipped_example_config_is_valid_and_means_what_it_says():
    example = Path(__file__).resolve().parents[1] / "deploy" / "vtguardian.example.toml"
    result = run_cli("--config", str(example), "config", "show", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert [s["source"] for s in shown["ingest"]["sources"]] == ["pihole-log", "suricata"]
    assert shown["run"]["pihole_blocking"] is False and shown["virustotal"]["per_minute"] == 4
