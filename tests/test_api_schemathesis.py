"""Schemathesis against the REST API's own OpenAPI: generated requests, valid and
invalid, must never get a 5xx. Runs on SQLite and MariaDB, seeded with IoCs."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from helpers import settings_for
from test_api import AUTH, TOKEN, _seed
from vtguardian.web.app import create_app


def test_no_generated_request_gets_a_server_error(engine, db_url):
    _seed(engine)
    # Schemathesis calls the app as Host "testserver": allowed like a user's own name.
    web = {"token": TOKEN, "max_body_bytes": 4096, "allowed_hosts": ["testserver"]}
    app = create_app(settings_for(db_url, "http://127.0.0.1:9", web=web), engine)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    tried: list[str] = []
    server_errors: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        tried.append(f"{operation.method.upper()} {operation.path}")
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=25,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def call(case) -> None:
                response = case.call(headers=AUTH)
                if response.status_code >= 500:
                    server_errors.append(
                        f"{case.method} {case.formatted_path} -> {response.status_code}: "
                        f"{response.text[:200]}"
                    )

            try:
                call()
            except Unsatisfiable:
                # Nothing in the request can be made invalid (no parameters, no body).
                assert mode is GenerationMode.NEGATIVE, tried[-1]
    assert len(tried) >= 6, tried  # every documented operation was exercised
    assert server_errors == []
