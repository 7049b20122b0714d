"""The fields a job adds to an event, as its outputs and the Explorer's Structured tab
show them: ECS ``threat.enrichments[]`` (one per answered IoC, with the field it came
from) and ``vtguardian.is_malicious`` / ``vtguardian.ioc.global.result``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from vtguardian.clock import iso_z
from vtguardian.intel.enrich import SEVERITY, enrichment_template
from vtguardian.jobs.answers import Answer

PENDING = "pending"


def worst(states: Iterable[str]) -> str:
    """The event's global result: the worst level among its IoCs (as ``enrich`` does)."""
    result = None
    for state in states:
        if result is None:
            result = "harmless"
        if SEVERITY.get(state, 0) > SEVERITY[result]:
            result = state
    return result or "unknown"


def added_fields(
    job_id: str,
    seq: int,
    atoms: Iterable[tuple[str, tuple[str, str]]],
    answers: Mapping[tuple[str, str], Answer | None],
    occurred: str | None,
) -> dict[str, Any]:
    """What the job adds to event ``seq``, from the answers of its IoCs."""
    enrichments = []
    states = []
    for field, ioc in atoms:
        answer = answers.get(ioc)
        states.append(answer.verdict if answer is not None else PENDING)
        if answer is None:
            continue
        entry = enrichment_template(
            ioc,
            answer.verdict,
            answer.provider,
            answer.ratio,
            answer.analysis_date,
            list(answer.labels) or None,
            answer.malicious,
        )
        if answer.engines:
            entry["vtguardian"]["engines"] = list(answer.engines)
        entry["matched"] = {
            "atomic": ioc[1],
            "field": field,
            "type": "indicator_match_rule",
            "occurred": occurred,
        }
        enrichments.append(entry)
    result = worst(states)
    added: dict[str, Any] = {
        "vtguardian": {
            "is_malicious": result == "malicious",
            "ioc": {"global": {"result": result}},
            "job": {"id": job_id, "event": seq},
        }
    }
    if enrichments:
        added["threat"] = {"enrichments": enrichments}
    return added


def merged(raw: str | bytes, added: dict[str, Any]) -> dict[str, Any]:
    """The event as received with the added fields (enrichments appended to any there)."""
    event = orjson.loads(raw)
    if not isinstance(event, dict):
        event = {"event": event}
    threat = added.get("threat")
    if threat is not None:
        existing = event.get("threat")
        if isinstance(existing, dict) and isinstance(existing.get("enrichments"), list):
            existing["enrichments"].extend(threat["enrichments"])
        else:
            event["threat"] = threat
    event["vtguardian"] = added["vtguardian"]
    return event


def occurred_now(moment: Any) -> str | None:
    return iso_z(moment)
