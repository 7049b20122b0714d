"""The one counting type: hits and blocks of one key, with its first and last stamp.

Parsers count every observation into one per (IoC, device, hour); preparing a
batch merges them per IoC and day; the store adds them up again per day and
hour. Every step adds the same way, here.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, TypeVar

K = TypeVar("K", bound=Hashable)


class Tally:
    """Counts that only grow and a span of stamps that only widens.

    Stamps are whatever the step keeps (Unix seconds, aware datetimes, naive UTC
    text that sorts as its moment does): only ``<`` and ``>`` are asked of them.
    Slotted, because a batch holds tens of thousands of them.
    """

    __slots__ = ("blocked", "first", "hits", "last")

    def __init__(self, hits: int, blocked: int, last: Any, first: Any) -> None:
        self.hits = hits
        self.blocked = blocked
        self.last = last
        self.first = first

    def see(self, ts: Any) -> None:
        """One more allowed hit at ``ts``. Logs are nearly in time order, so the first
        stamp is only compared when ``ts`` is not the latest."""
        self.hits += 1
        if ts > self.last:
            self.last = ts
        elif ts < self.first:
            self.first = ts

    def add(self, hits: int, blocked: int, last: Any, first: Any) -> None:
        """Another tally's counts and span, merged in."""
        self.hits += hits
        self.blocked += blocked
        if last > self.last:
            self.last = last
        if first < self.first:
            self.first = first

    def __repr__(self) -> str:
        return f"Tally({self.hits}, {self.blocked}, {self.last!r}, {self.first!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tally):
            return NotImplemented
        return (self.hits, self.blocked, self.last, self.first) == (
            other.hits,
            other.blocked,
            other.last,
            other.first,
        )


def add_to(counts: dict[K, Tally], key: K, hits: int, blocked: int, last: Any, first: Any) -> None:
    """Add to ``counts[key]``, starting its tally when the key is new."""
    entry = counts.get(key)
    if entry is None:
        counts[key] = Tally(hits, blocked, last, first)
    else:
        entry.add(hits, blocked, last, first)
