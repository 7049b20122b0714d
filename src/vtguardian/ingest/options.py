"""How an ingest reads, decided once from the settings and handed down whole."""

from __future__ import annotations

from dataclasses import dataclass

from vtguardian.config import Settings

BATCH_LINES = 50_000
# Below this much unread data a child process costs more than it saves.
PARALLEL_MIN_BYTES = 32 << 20
# A file written to within this many seconds may still be growing: a one-off read
# holds its last line back when it has no newline yet, as a follower does.
SETTLE_SECONDS = 5.0


@dataclass(frozen=True)
class IngestOptions:
    #: lines per transaction: bigger is faster, smaller loses less work to a crash
    batch_lines: int = BATCH_LINES
    #: how often a follower looks for new lines (with notifications: at most how often)
    poll_seconds: float = 1.0
    #: one-off reads larger than this are parsed by worker processes
    parallel_min_bytes: int = PARALLEL_MIN_BYTES
    #: how long to wait for a database that went away (a MariaDB restart)
    patience: float = 600.0
    settle_seconds: float = SETTLE_SECONDS
    #: a follower reads when the platform reports a change (see ingest/watch.py)
    file_notifications: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestOptions:
        return cls(
            batch_lines=settings.ingest.batch_lines,
            poll_seconds=settings.ingest.poll_seconds,
            parallel_min_bytes=int(settings.ingest.parallel_min_mb * (1 << 20)),
            patience=settings.database.reconnect_seconds,
            file_notifications=settings.ingest.file_notifications,
        )
