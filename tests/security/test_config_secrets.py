"""Secrets in URLs stay hidden and bad database URLs are one line (issue #24, point 10).

``config show`` printed ``alerts.webhook_url`` and ``virustotal.host`` with their
user info and query tokens, and a database password given as ``?password=`` (also
in the "cannot reach database" error); bad database URLs printed 50 to 90 lines of
traceback. The commands run as a user runs them.
"""

from __future__ import annotations

import json

import pytest

from helpers import run_cli

SECRETS = ["hunter2", "s3cret", "webhookpass", "tok3n", "vtkey", "frag-secret", "otxsig"]
ENV = {
    "VTGUARDIAN_DATABASE__URL": "mysql+pymysql://root:s3cret@127.0.0.1:3399/test?password=hunter2",
    "VTGUARDIAN_ALERTS__WEBHOOK_URL": "https://ntfy:webhookpass@hooks.example.net/x?token=tok3n",
    "VTGUARDIAN_VIRUSTOTAL__HOST": "https://proxy.example.net/vt?key=vtkey#frag-secret",
    "VTGUARDIAN_OTX__HOST": "https://otxsig@otx.example.net/",
}


@pytest.mark.parametrize("args", [["config", "show"], ["config", "show", "--json"]])
def test_config_show_masks_every_secret_a_url_carries(args):
    result = run_cli(*args, env=ENV)
    assert result.returncode == 0, result.stderr
    for secret in SECRETS:
        assert secret not in result.stdout, secret
    if "--json" in args:
        shown = json.loads(result.stdout)
        assert shown["database"]["url"].startswith("mysql+pymysql://root:********@127.0.0.1")
        assert shown["alerts"]["webhook_url"] == (
            "https://********@hooks.example.net/x?token=********"
        )


def test_the_unreachable_database_error_masks_the_password():
    result = run_cli("db", "status", env=ENV)
    assert result.returncode == 3
    assert "cannot reach database" in result.stderr
    for secret in SECRETS:
        assert secret not in result.stderr + result.stdout, secret


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql+nodriver://root@127.0.0.1/test", "no database driver 'nodriver'"),
        ("mysql+pymysql://root@127.0.0.1/test?charset=nonexistent", "unknown charset"),
        ("mysql+pymysql://root@127.0.0.1/test?ssl_ca=/nonexistent/ca.pem", "FileNotFoundError"),
        ("mysql+pymysql://root@127.0.0.1/test?connect_timeout=abc", "cannot be used"),
    ],
)
def test_a_bad_database_url_is_one_line(url, says):
    result = run_cli("db", "status", env={"VTGUARDIAN_DATABASE__URL": url})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vtguardian: ") and says in lines[0], lines
