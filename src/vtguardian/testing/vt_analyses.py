"""The emulator's analyses and relationships, in the shapes of VirusTotal's API v3.

Analyses (https://docs.virustotal.com/reference/analyses-object): a re-analysis is
asked for with ``POST /{collection}/{id}/analyse`` (``/domains``, ``/ip_addresses``,
``/urls``, ``/files``) and a URL submitted with ``POST /urls`` (a form field
``url``, which vt-py's ``Client.scan_url_async`` sends); both answer
``{"data": {"type": "analysis", "id", "links": {"self"}}}``. ``GET /analyses/{id}``
answers an analysis object whose ``attributes.status`` is ``queued``, then
``in-progress``, then ``completed`` with ``stats`` and ``results`` (the values
https://docs.virustotal.com/reference/private-analyses lists too), and whose
``meta`` says what was analysed: ``url_info`` (``id``, ``url``) or ``file_info``
(``sha256``, ``md5``, ``sha1``, ``size``), as vt-py's own tests read them
(``tests/test_client.py`` in VirusTotal/vt-py, ``test_scan_url``).

Relationships (https://docs.virustotal.com/reference/domains-relationships):
``GET /{collection}/{id}/{relationship}?limit=N&cursor=C`` answers
``{"data": [objects], "meta": {"count", "cursor"}, "links": {"self", "next"}}``;
``meta.cursor`` and ``links.next`` are there only while more follow. A
resolution object is ``{"type": "resolution", "id": ip + domain, "attributes":
{"date", "host_name", "ip_address", "resolver"}}``.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from vtguardian.testing.vt_content import COLLECTIONS, OBJECT_TYPES

#: Relationships the emulator serves, per object kind, and the kind of what they list.
RELATIONSHIPS: dict[str, dict[str, str]] = {
    "domain": {"resolutions": "resolution"},
    "ip": {"resolutions": "resolution"},
    "url": {"last_serving_ip_address": "ip"},
    "file": {"contacted_domains": "domain", "contacted_ips": "ip"},
}


@dataclass
class Analysis:
    """One analysis the emulator runs: what it is of and how often it was polled."""

    analysis_id: str
    kind: str
    value: str
    object_id: str
    created: int
    polls: int = 0
    completed_at: int | None = None


class AnalysisBook:
    """Every analysis asked for, and which objects a completed one re-analysed."""

    def __init__(self, polls_to_complete: int = 1) -> None:
        # The poll that first answers "completed" (1: the first one).
        self.polls_to_complete = polls_to_complete
        self._analyses: dict[str, Analysis] = {}
        # (kind, value) -> the date of its latest completed analysis.
        self.reanalysed: dict[tuple[str, str], int] = {}

    def start(self, kind: str, value: str, object_id: str, now: int) -> Analysis:
        """A new analysis; its id is opaque base64, as VirusTotal's are."""
        digest = hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:32]
        raw = f"{kind[0]}-{digest}:{now}:{len(self._analyses)}".encode()
        analysis_id = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        analysis = Analysis(analysis_id, kind, value, object_id, now)
        self._analyses[analysis_id] = analysis
        return analysis

    def get(self, analysis_id: str) -> Analysis | None:
        return self._analyses.get(analysis_id)

    def poll(self, analysis: Analysis, now: int) -> str:
        """One more poll: the status it answers, completing the analysis in time."""
        analysis.polls += 1
        if analysis.completed_at is None and analysis.polls >= self.polls_to_complete:
            analysis.completed_at = now
            self.reanalysed[(analysis.kind, analysis.value)] = now
        if analysis.completed_at is not None:
            return "completed"
        return "queued" if analysis.polls == 1 else "in-progress"


def created_body(analysis: Analysis, host: str) -> dict[str, Any]:
    """The answer to a POST that starts an analysis."""
    return {
        "data": {
            "type": "analysis",
            "id": analysis.analysis_id,
            "links": {"self": f"{host}/api/v3/analyses/{analysis.analysis_id}"},
        }
    }


def analysis_body(
    analysis: Analysis, status: str, obj: dict[str, Any] | None, host: str
) -> dict[str, Any]:
    """``GET /analyses/{id}``: empty stats and results until it has completed."""
    attributes = (obj or {}).get("data", {}).get("attributes", {})
    completed = status == "completed"
    meta: dict[str, Any] = {}
    if analysis.kind == "url":
        meta["url_info"] = {"id": analysis.object_id, "url": analysis.value}
    elif analysis.kind == "file":
        meta["file_info"] = {
            "sha256": analysis.object_id,
            "md5": attributes.get("md5"),
            "sha1": attributes.get("sha1"),
            "size": attributes.get("size"),
        }
    return {
        "data": {
            "type": "analysis",
            "id": analysis.analysis_id,
            "links": {"self": f"{host}/api/v3/analyses/{analysis.analysis_id}"},
            "attributes": {
                "date": analysis.completed_at or analysis.created,
                "status": status,
                "stats": attributes.get("last_analysis_stats", {}) if completed else {},
                "results": attributes.get("last_analysis_results", {}) if completed else {},
            },
        },
        "meta": meta,
    }


def related_objects(
    kind: str, object_id: str, relationship: str, values: list[str], now: int
) -> list[dict[str, Any]]:
    """The related objects, as descriptors of their own type."""
    listed = RELATIONSHIPS[kind][relationship]
    objects: list[dict[str, Any]] = []
    for value in values:
        if listed == "resolution":
            host, address = (object_id, value) if kind == "domain" else (value, object_id)
            objects.append(
                {
                    "type": "resolution",
                    "id": f"{address}{host}",
                    "links": {"self": f"/api/v3/resolutions/{address}{host}"},
                    "attributes": {
                        "date": now,
                        "host_name": host,
                        "ip_address": address,
                        "resolver": "VirusTotal",
                    },
                }
            )
        else:
            collection = COLLECTIONS[listed]
            objects.append(
                {
                    "type": OBJECT_TYPES[listed],
                    "id": value,
                    "links": {"self": f"/api/v3/{collection}/{value}"},
                }
            )
    return objects


def collection_page(
    objects: list[dict[str, Any]], self_url: str, limit: int, cursor: str | None
) -> dict[str, Any]:
    """One page of a relationship: ``meta.cursor`` and ``links.next`` while more follow.

    The cursor is opaque to clients (base64 of the next offset here); a cursor the
    emulator did not hand out starts from the beginning, as a bad one would be refused.
    """
    start = 0
    if cursor:
        try:
            start = max(0, int(base64.urlsafe_b64decode(cursor + "==").decode()))
        except (ValueError, UnicodeDecodeError):
            start = 0
    page = objects[start : start + limit]
    body: dict[str, Any] = {
        "data": page,
        "meta": {"count": len(objects)},
        "links": {"self": self_url},
    }
    following = start + limit
    if following < len(objects):
        token = base64.urlsafe_b64encode(str(following).encode()).decode().rstrip("=")
        body["meta"]["cursor"] = token
        body["links"]["next"] = f"{self_url.split('?')[0]}?cursor={token}&limit={limit}"
    return body
