"""A local VirusTotal API v3 server for tests and the offline demo.

vt-py talks to it over real HTTP (``vt.Client(key, host=emulator.url)``), so the
client, its error mapping and our quota logic are exercised exactly as against
the real service: the same paths, bodies, status codes and error codes
(``AuthenticationRequiredError``, ``WrongCredentialsError``, ``NotFoundError``,
``QuotaExceededError``, ``TransientError``), per-key budgets per minute, day
(UTC) and month, and injectable faults. Every request is logged, so a test can
prove what reached "VirusTotal" and what never did.

Control endpoints under ``/_emulator/`` are not part of the VirusTotal API:
``GET calls``, ``POST config`` (faults, quota, keys, seeds), ``POST reset``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from vtguardian.testing.server import BackgroundServer, json_response
from vtguardian.testing.vt_analyses import (
    RELATIONSHIPS,
    AnalysisBook,
    analysis_body,
    collection_page,
    created_body,
    related_objects,
)
from vtguardian.testing.vt_content import (
    URL_ENGINES,
    Profile,
    build_object,
    generated_profile,
    load_seed_file,
    seed_key,
)

DEFAULT_KEY = "emulator-key"
_HEX = re.compile(r"[0-9a-fA-F]+")
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}")
_COLLECTION_KINDS = {"domains": "domain", "ip_addresses": "ip", "urls": "url", "files": "file"}


@dataclass
class Faults:
    """Misbehaviour to inject; rates are shares of requests (0..1)."""

    error_rate: float = 0.0  # 503 TransientError
    drop_rate: float = 0.0  # connection closed without an answer
    truncate_rate: float = 0.0  # 200 with half a JSON body
    wrong_shape_rate: float = 0.0  # 200 with valid JSON of the wrong shape
    slow_rate: float = 0.0
    slow_seconds: float = 0.0
    burst_429: int = 0  # the next N requests get 429 whatever the budget
    seed: int = 0


@dataclass
class Quota:
    """Budgets per API key; None means unlimited (the default for ad-hoc use)."""

    per_minute: int | None = None
    per_day: int | None = None
    per_month: int | None = None
    # Length of the sliding "minute": tests shorten it to run quota scenarios fast.
    minute_seconds: float = 60.0


@dataclass
class Call:
    at: float
    method: str
    path: str
    status: int
    outcome: str
    kind: str | None = None
    value: str | None = None
    key_valid: bool = False


@dataclass
class _Usage:
    recent: deque[float] = field(default_factory=deque)
    days: dict[str, int] = field(default_factory=dict)
    months: dict[str, int] = field(default_factory=dict)


class VirusTotalEmulator:
    """State and behaviour of the fake service; the aiohttp app is built on top."""

    def __init__(
        self,
        keys: set[str] | None = None,
        quota: Quota | None = None,
        faults: Faults | None = None,
        seeds: dict[tuple[str, str], Profile] | None = None,
        clock: Any = time.time,
    ) -> None:
        self.keys = set(keys or {DEFAULT_KEY})
        self.quota = quota or Quota()
        self.faults = faults or Faults()
        self.seeds: dict[tuple[str, str], Profile] = dict(seeds or {})
        self.clock = clock
        self.host = "http://127.0.0.1"
        self._rng = random.Random(self.faults.seed)
        self._usage: dict[str, _Usage] = {}
        self._urls: dict[str, str] = {}  # sha256 -> URL, learnt from ids and submissions
        self._submitted: set[str] = set()
        self._calls: list[Call] = []
        self._lock = threading.Lock()
        self.analyses = AnalysisBook()

    # --- what tests read ---------------------------------------------------------

    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def looked_up(self) -> list[tuple[str, str]]:
        """(kind, value) of every object request that reached the API with a valid key."""
        return [(c.kind, c.value) for c in self.calls() if c.key_valid and c.kind and c.value]

    def answered(self) -> list[tuple[str, str]]:
        """(kind, value) of every request that got a usable answer (200 or 404)."""
        return [
            (c.kind, c.value)
            for c in self.calls()
            if c.outcome in ("ok", "not_found") and c.kind and c.value
        ]

    def over_budget(self) -> int:
        """Requests answered 429 because the key really was over a budget."""
        return sum(1 for c in self.calls() if c.outcome == "quota")

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._usage.clear()

    def configure(self, changes: dict[str, Any]) -> None:
        """Apply ``{"faults": {...}, "quota": {...}, "keys": [...], "seeds": [...]}``."""
        if "faults" in changes:
            self.faults = Faults(**{**asdict(self.faults), **changes["faults"]})
            self._rng = random.Random(self.faults.seed)
        if "quota" in changes:
            self.quota = Quota(**{**asdict(self.quota), **changes["quota"]})
        if "keys" in changes:
            self.keys = set(changes["keys"])
        if "analysis" in changes:
            self.analyses.polls_to_complete = int(changes["analysis"]["polls_to_complete"])
        for entry in changes.get("seeds", []):
            self.seeds[seed_key(entry["type"], entry["value"])] = Profile.from_seed(entry)

    # --- the API -----------------------------------------------------------------

    def app(self) -> web.Application:
        application = web.Application(client_max_size=1024 * 1024)
        application.router.add_get("/api/v3/analyses/{id}", self._analysis)
        application.router.add_post("/api/v3/urls", self._submit_url)
        application.router.add_get("/api/v3/{collection}/{id}", self._object)
        application.router.add_post("/api/v3/{collection}/{id}/analyse", self._analyse)
        application.router.add_get("/api/v3/{collection}/{id}/{relationship}", self._relationship)
        application.router.add_get("/_emulator/calls", self._control_calls)
        application.router.add_post("/_emulator/config", self._control_config)
        application.router.add_post("/_emulator/reset", self._control_reset)
        return application

    async def _object(self, request: web.Request) -> web.StreamResponse:
        addressed = await self._addressed(request)
        if isinstance(addressed, web.StreamResponse):
            return addressed
        kind, raw_id, object_id, lookup_value, extra = addressed
        profile = self._profile(kind, lookup_value)
        found = profile.found
        self._log(
            request, 200 if found else 404, "ok" if found else "not_found", kind, lookup_value
        )
        if not profile.found:
            label = {"domain": "Domain", "ip": "IP address", "url": "URL", "file": "File"}[kind]
            return json_response(404, _error_body("NotFoundError", f'{label} "{raw_id}" not found'))
        return await self._deliver(build_object(kind, object_id, profile, self.host, extra))

    async def _addressed(
        self, request: web.Request, known: Callable[[str], bool] = lambda _kind: True
    ) -> tuple[str, str, str, str, dict[str, Any] | None] | web.StreamResponse:
        """What a ``/{collection}/{id}...`` request names: (kind, id as sent, object id,
        value the content is keyed by, extra attributes), or the answer VirusTotal gives
        first: 404 for an unknown collection (or a path ``known`` refuses), the gate's
        refusal (key, quota, faults), or the error for an id that names nothing."""
        kind = _COLLECTION_KINDS.get(request.match_info["collection"])
        raw_id = request.match_info["id"]
        if kind is None or not known(kind):
            return self._error(request, 404, "NotFoundError", "Resource not found.", "not_found")
        denied = await self._gate(request, kind, raw_id)
        if denied is not None:
            return denied
        resolved = self._resolve(kind, raw_id)
        if isinstance(resolved, web.Response):
            return resolved
        return (kind, raw_id, *resolved)

    async def _submit_url(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        url = str(form.get("url", ""))
        denied = await self._gate(request, "url", url)
        if denied is not None:
            return denied
        if not url:
            return self._error(request, 400, "InvalidArgumentError", "url is required", "bad")
        digest = hashlib.sha256(url.encode()).hexdigest()
        self._urls[digest] = url
        self._submitted.add(digest)
        self._log(request, 200, "ok", "url", url)
        analysis = self.analyses.start("url", url, digest, int(self.clock()))
        return json_response(200, created_body(analysis, self.host))

    async def _analyse(self, request: web.Request) -> web.StreamResponse:
        """``POST /{collection}/{id}/analyse``: a fresh analysis of a known object."""
        addressed = await self._addressed(request)
        if isinstance(addressed, web.StreamResponse):
            return addressed
        kind, raw_id, object_id, lookup_value, _extra = addressed
        if not self._profile(kind, lookup_value).found:
            self._log(request, 404, "not_found", kind, lookup_value)
            return json_response(404, _error_body("NotFoundError", f'"{raw_id}" not found'))
        self._log(request, 200, "ok", kind, lookup_value)
        analysis = self.analyses.start(kind, lookup_value, object_id, int(self.clock()))
        return json_response(200, created_body(analysis, self.host))

    async def _relationship(self, request: web.Request) -> web.StreamResponse:
        """``GET /{collection}/{id}/{relationship}``: one page of related objects."""
        relationship = request.match_info["relationship"]
        addressed = await self._addressed(
            request, lambda kind: relationship in RELATIONSHIPS.get(kind, {})
        )
        if isinstance(addressed, web.StreamResponse):
            return addressed
        kind, raw_id, object_id, lookup_value, _extra = addressed
        profile = self._profile(kind, lookup_value)
        if not profile.found:
            self._log(request, 404, "not_found", kind, lookup_value)
            return json_response(404, _error_body("NotFoundError", f'"{raw_id}" not found'))
        try:
            limit = max(1, min(40, int(request.query.get("limit", "10"))))
        except ValueError:
            return self._error(request, 400, "BadRequestError", "limit is not a number", "bad")
        self._log(request, 200, "ok", kind, lookup_value)
        values = profile.related.get(relationship, [])
        objects = related_objects(kind, object_id, relationship, values, int(self.clock()))
        self_url = f"{self.host}{request.path_qs}"
        page = collection_page(objects, self_url, limit, request.query.get("cursor"))
        return await self._deliver(page)

    async def _analysis(self, request: web.Request) -> web.StreamResponse:
        analysis_id = request.match_info["id"]
        denied = await self._gate(request, None, analysis_id)
        if denied is not None:
            return denied
        started = self.analyses.get(analysis_id)
        if started is not None:
            status = self.analyses.poll(started, int(self.clock()))
            obj = None
            if status == "completed":
                profile = self._profile(started.kind, started.value)
                extra = {"url": started.value} if started.kind == "url" else None
                obj = build_object(started.kind, started.object_id, profile, self.host, extra)
            self._log(request, 200, "ok", None, analysis_id)
            return await self._deliver(analysis_body(started, status, obj, self.host))
        return self._error(
            request, 404, "NotFoundError", f'Analysis "{analysis_id}" not found', "not_found"
        )

    # --- gatekeeping: key, budget, faults ------------------------------------------

    async def _gate(
        self, request: web.Request, kind: str | None, value: str
    ) -> web.StreamResponse | None:
        key = request.headers.get("x-apikey")
        if not key:
            return self._error(
                request, 401, "AuthenticationRequiredError", "X-Apikey header is missing", "auth"
            )
        if key not in self.keys:
            return self._error(request, 401, "WrongCredentialsError", "Wrong API key", "auth")
        if self.faults.burst_429 > 0:
            self.faults.burst_429 -= 1
            return self._error(
                request, 429, "QuotaExceededError", "Quota exceeded", "burst", kind, value, True
            )
        if not self._spend(key):
            return self._error(
                request, 429, "QuotaExceededError", "Quota exceeded", "quota", kind, value, True
            )
        roll = self._rng.random()
        faults = self.faults
        if roll < faults.drop_rate:
            self._log(request, 0, "dropped", kind, value)
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        roll -= faults.drop_rate
        if roll < faults.error_rate:
            return self._error(
                request,
                503,
                "TransientError",
                "The service is temporarily unavailable, try again later",
                "transient",
                kind,
                value,
                True,
            )
        if self._rng.random() < faults.slow_rate:
            await asyncio.sleep(faults.slow_seconds)
        return None

    def _spend(self, key: str) -> bool:
        """Count one request against the key's budgets; False when any is spent."""
        now = self.clock()
        usage = self._usage.setdefault(key, _Usage())
        quota = self.quota
        while usage.recent and usage.recent[0] <= now - quota.minute_seconds:
            usage.recent.popleft()
        moment = datetime.fromtimestamp(now, UTC)
        day, month = moment.strftime("%Y-%m-%d"), moment.strftime("%Y-%m")
        if (
            (quota.per_minute is not None and len(usage.recent) >= quota.per_minute)
            or (quota.per_day is not None and usage.days.get(day, 0) >= quota.per_day)
            or (quota.per_month is not None and usage.months.get(month, 0) >= quota.per_month)
        ):
            return False
        usage.recent.append(now)
        usage.days[day] = usage.days.get(day, 0) + 1
        usage.months[month] = usage.months.get(month, 0) + 1
        return True

    async def _deliver(self, body: dict[str, Any]) -> web.Response:
        if self._rng.random() < self.faults.wrong_shape_rate:
            body = self._rng.choice(_WRONG_SHAPES)
            with self._lock:
                self._calls[-1].outcome = "wrong_shape"
        data = orjson.dumps(body)
        if self._rng.random() < self.faults.truncate_rate:
            data = data[: len(data) // 2]
            with self._lock:  # the client gets no usable answer: not a success
                self._calls[-1].outcome = "truncated"
        return web.Response(status=200, body=data, content_type="application/json")

    # --- identifiers -------------------------------------------------------------

    def _resolve(
        self, kind: str, raw_id: str
    ) -> tuple[str, str, dict[str, Any] | None] | web.Response:
        """(object id, value the content is keyed by, extra attributes) or an error."""
        if kind == "domain":
            name = raw_id.lower().rstrip(".")
            if not _DOMAIN.fullmatch(name):
                return json_response(
                    400,
                    _error_body("InvalidArgumentError", f'Domain "{raw_id}" is not a valid domain'),
                )
            return name, name, None
        if kind == "ip":
            try:
                address = ipaddress.ip_address(raw_id)
            except ValueError:
                return json_response(
                    400, _error_body("InvalidArgumentError", f'"{raw_id}" is not a valid IP')
                )
            return str(address), str(address), None
        if kind == "file":
            if len(raw_id) not in (32, 40, 64) or not _HEX.fullmatch(raw_id):
                return json_response(
                    400,
                    _error_body("InvalidArgumentError", f'"{raw_id}" is not a valid file hash'),
                )
            value = raw_id.lower()
            if len(value) == 64:
                return value, value, None
            # A stable stand-in for the sha256 VirusTotal would know for this md5/sha1.
            sha256 = hashlib.sha256(b"file:" + value.encode()).hexdigest()
            return sha256, value, {"md5": value} if len(value) == 32 else {"sha1": value}
        if len(raw_id) == 64 and _HEX.fullmatch(raw_id):
            digest = raw_id.lower()
            url = self._urls.get(digest)
            return digest, url or digest, {"url": url}
        try:
            url = base64.urlsafe_b64decode(raw_id + "=" * (-len(raw_id) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return json_response(404, _error_body("NotFoundError", f'URL "{raw_id}" not found'))
        digest = hashlib.sha256(url.encode()).hexdigest()
        self._urls[digest] = url
        return digest, url, {"url": url}

    def _profile(self, kind: str, value: str) -> Profile:
        seeded = self.seeds.get(seed_key(kind, value))
        profile = seeded if seeded is not None else generated_profile(kind, value)
        submitted = kind == "url" and hashlib.sha256(value.encode()).hexdigest() in self._submitted
        if submitted and not profile.found and profile.reanalysed is None:
            # A URL nobody knew is known once submitted: scanned, and found clean.
            half = len(URL_ENGINES) // 2
            profile = Profile(harmless=half, undetected=len(URL_ENGINES) - half)
        analysed = self.analyses.reanalysed.get((kind, value))
        if analysed is None and submitted and profile.reanalysed is not None:
            analysed = int(self.clock())
        if analysed is not None:
            # A completed analysis is the object's last one, and may change its counts.
            if profile.reanalysed is not None:
                profile = Profile.from_seed(profile.reanalysed)
            profile = replace(profile, last_analysis_date=analysed, found=True)
        return profile

    # --- logging and errors --------------------------------------------------------

    def _log(
        self,
        request: web.Request,
        status: int,
        outcome: str,
        kind: str | None,
        value: str | None,
        key_valid: bool = True,
    ) -> None:
        call = Call(self.clock(), request.method, request.path, status, outcome, kind, value)
        call.key_valid = key_valid
        with self._lock:
            self._calls.append(call)

    def _error(
        self,
        request: web.Request,
        status: int,
        code: str,
        message: str,
        outcome: str,
        kind: str | None = None,
        value: str | None = None,
        key_valid: bool = False,
    ) -> web.Response:
        self._log(request, status, outcome, kind, value, key_valid)
        return json_response(status, _error_body(code, message))

    # --- control -----------------------------------------------------------------

    async def _control_calls(self, _request: web.Request) -> web.Response:
        return json_response(200, {"calls": [asdict(c) for c in self.calls()]})

    async def _control_config(self, request: web.Request) -> web.Response:
        self.configure(await request.json())
        return json_response(200, {"ok": True})

    async def _control_reset(self, _request: web.Request) -> web.Response:
        self.reset()
        return json_response(200, {"ok": True})


# Valid JSON that is not an API v3 object, the way a proxy or an API change answers.
_WRONG_SHAPES: list[Any] = [
    [],
    {"data": []},
    {"data": {"id": "x", "attributes": "none"}},
    {"data": {"id": "x", "attributes": {"last_analysis_stats": [1, 2]}}},
    {"data": {"id": "x", "attributes": {"last_analysis_stats": {"malicious": "many"}}}},
    {"data": {"id": "x", "attributes": {"last_analysis_stats": {"malicious": 1},
                                        "last_analysis_results": ["Kaspersky"]}}},
    {"data": {"id": "x", "attributes": {"last_analysis_stats": {"malicious": 1},
                                        "last_analysis_results": "malicious",
                                        "categories": ["x"], "popularity_ranks": "high",
                                        "last_analysis_date": "yesterday"}}},
    {"data": {"id": "x", "attributes": {"last_analysis_stats": {"malicious": 1},
                                        "last_analysis_results": 5,
                                        "last_analysis_date": 2**62}}},
    {"error": "maintenance"},
]  # fmt: skip


def _error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class EmulatorServer(BackgroundServer):
    """The VirusTotal emulator on 127.0.0.1 in a background thread (tests, the demo)."""

    def __init__(self, emulator: VirusTotalEmulator, port: int = 0) -> None:
        super().__init__(emulator.app, port)
        self.emulator = emulator

    def start(self) -> EmulatorServer:
        super().start()
        self.emulator.host = self.url
        return self


def serve_forever(emulator: VirusTotalEmulator, port: int) -> None:
    """Foreground server for ``vtguardian vt-emulator``."""
    emulator.host = f"http://127.0.0.1:{port}"
    web.run_app(emulator.app(), host="127.0.0.1", port=port, access_log=None, print=None)


def emulator_from_options(
    seed_file: Path | None, faults: Faults, quota: Quota, keys: list[str]
) -> VirusTotalEmulator:
    return VirusTotalEmulator(
        keys=set(keys) or {DEFAULT_KEY}, quota=quota, faults=faults, seeds=load_seed_file(seed_file)
    )
