"""What an ingest run did, as the command line and ``--json`` report it."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Totals:
    """The ``--json`` summary of an ingest run.

    Only counters: nothing here grows with the file or the uptime of a follower.
    """

    lines: int = 0
    events: int = 0
    #: IoCs this run stored for the first time (new to the database). Distinct by
    #: construction, since an IoC is new once, and counted batch by batch with
    #: nothing kept in between: a set of every IoC of the run grew for the life
    #: of a follower. An IoC already stored, by an earlier run or a lookup, is
    #: not counted; on a fresh database this is every distinct IoC read.
    new_iocs: int = 0
    #: IoCs read and stored, each time it was seen (the hits the hourly sightings
    #: add up); private, local and invalid values are counted below instead.
    hits: int = 0
    skipped_private: int = 0
    invalid: int = 0
    errors: int = 0
    #: files whose last line had no newline yet and was left for the next read
    held: int = 0
    #: resolution rows written (a name's answer, per device and hour), batch by batch
    resolutions: int = 0

    def as_dict(self) -> dict[str, int]:
        return {item.name: getattr(self, item.name) for item in fields(self)}

    def add(self, other: Totals) -> None:
        for name, value in other.as_dict().items():
            setattr(self, name, getattr(self, name) + value)
