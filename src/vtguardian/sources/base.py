"""The one interface every line parser offers the ingest pipeline.

A parser turns lines into observations in a :class:`~vtguardian.sources.batch.Batch`
and knows nothing of files, offsets or the database: ``ingest/`` splits the
file, hands the parser blocks of whole lines, and stores what it counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import orjson

from vtguardian.sources.batch import Batch

#: reports a bad line of a block: its index in the block, and the reason
BadLine = Callable[[int, str], None]


class ParseError(ValueError):
    """A line that cannot be read; the message is the reason recorded for it."""


class LineParser(Protocol):
    #: stored in ``sightings.source``: the kind of sensor, not the file format
    source: str
    #: each line stands alone: segments of a file can be parsed side by side
    independent_lines: bool

    def feed(self, line: bytes, batch: Batch) -> None:
        """Parse one line (without its newline) into ``batch``; raise ParseError."""

    def feed_block(self, lines: list[bytes], batch: Batch, bad: BadLine) -> None:
        """Parse many lines in one call (the hot path); report bad ones to ``bad``."""

    def state(self) -> dict[str, Any] | None:
        """What must survive a restart mid-file (headers, pending joins)."""

    def restore(self, state: dict[str, Any] | None) -> None: ...


class LineByLine:
    """``feed_block`` for a parser that reads one line at a time."""

    def feed(self, line: bytes, batch: Batch) -> None:
        raise NotImplementedError

    def feed_block(self, lines: list[bytes], batch: Batch, bad: BadLine) -> None:
        feed = self.feed
        for index, line in enumerate(lines):
            if line.endswith(b"\r"):
                line = line[:-1]
            if line:  # blank lines are skipped
                try:
                    feed(line, batch)
                except ParseError as exc:
                    bad(index, str(exc))


class Stateless(LineByLine):
    """For parsers whose lines stand alone: nothing to carry across a restart."""

    independent_lines = True

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
