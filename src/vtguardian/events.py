"""Reading fields of JSON events the way ECS names them (``dns.question.name``).

Shared by the ECS collector and event enrichment, which both take events from
Logstash, Vector, Filebeat or Suricata, nested or flattened.
"""

from __future__ import annotations

from typing import Any


def lookup(event: dict[str, Any], path: str) -> Any:
    """``a.b.c`` in nested objects, flat dotted keys, or a mix of both."""
    if path in event:
        return event[path]
    head, _, rest = path.partition(".")
    while rest:
        value = event.get(head)
        if isinstance(value, dict):
            found = lookup(value, rest)
            if found is not None:
                return found
        part, _, rest = rest.partition(".")
        head = f"{head}.{part}"
    return event.get(head)
