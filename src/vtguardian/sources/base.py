"""What every line parser provides to the file reader."""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from vtguardian.sources.batch import Batch


class ParseError(ValueError):
    """A line that cannot be read; the message is the reason recorded for it."""


class LineParser(Protocol):
    #: stored in ``sightings.source``: the kind of sensor, not the file format
    source: str

    def feed(self, line: bytes, batch: Batch) -> None:
        """Parse one line (without its newline) into ``batch``; raise ParseError."""

    def state(self) -> dict[str, Any] | None:
        """What must survive a restart mid-file (headers, pending joins)."""

    def restore(self, state: dict[str, Any] | None) -> None: ...


class Stateless:
    """For parsers whose lines stand alone: nothing to carry across a restart."""

    def state(self) -> None:
        return None

    def restore(self, state: dict[str, Any] | None) -> None:
        return None


def json_object(line: bytes) -> dict[str, Any]:
    """One NDJSON line as an object; anything else is a recorded bad line."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON: {str(exc).split(':')[0]}") from None
    if not isinstance(value, dict):
        raise ParseError("not a JSON object")
    return value


def decode(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("invalid UTF-8") from None


def text_field(value: Any) -> str | None:
    """A non-empty string field, or None; any other type is a wrong-type error."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ParseError(f"expected text, got {type(value).__name__}")
    return value


def looks_like_ip(value: str) -> bool:
    """Cheap pre-check for DNS answers: an address, not a CNAME like 2-01-ab.cdn.net."""
    return ":" in value or (value[:1].isdigit() and value.replace(".", "").isdigit())
