"""When a follower reads again: as soon as its file changes, at most every
``poll_seconds`` (and at least every second) while it keeps changing, and now and
then anyway.

A follower used to look every ``poll_seconds``: half a second before a new line
was even read, and a query and a ``stat`` twice a second on a quiet night. On
Linux, inotify (through inotify_simple) now says when the file's folder changes,
and an appended line is read at once; the thread sleeps in ``poll()`` meanwhile.
Where there is no inotify (another platform, no watch left, a missing folder)
the follower polls every ``poll_seconds`` as before, and ``ingest.file_notifications
= false`` asks for that (a network file system, whose writes inotify may not see).

What is read, and how it is stored, does not change: each read takes everything
written since the stored offset and commits it with its offset in one
transaction. Under load the reads stay ``poll_seconds`` apart (a second at most),
so a busy log is stored in batches, not one transaction per line. The folder is watched, not the
file, so a rotation (a rename and a new file) is seen too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inotify_simple import Event, INotify

log = logging.getLogger("vtguardian.ingest")

#: With notifications, a quiet file is still read this often (or every poll_seconds
#: if that is longer): a change inotify did not report is late, never lost.
SAFETY_SECONDS = 10.0
#: While a log keeps changing, reads are poll_seconds apart, but never more than this.
BUSY_SECONDS = 1.0
#: How often a wait looks whether the follower was asked to stop.
STOP_CHECK_SECONDS = 0.5


class ChangeWait:
    """Waits, for one followed file, until it is worth reading again.

    Made before the first read, so that a line written while that read runs is
    reported to the wait after it.
    """

    def __init__(
        self, path: str, stop: threading.Event, poll_seconds: float, notifications: bool = True
    ) -> None:
        self.path = os.path.abspath(path)
        self.folder, self.name = os.path.split(self.path)
        self.stop = stop
        self.poll_seconds = poll_seconds
        self.last_read = time.monotonic()
        self._inotify = self._watch() if notifications else None

    @property
    def notified(self) -> bool:
        """Whether inotify reports changes (else this polls)."""
        return self._inotify is not None

    def _watch(self) -> INotify | None:
        """An inotify watch on the file's folder, or None where there is none."""
        try:
            from inotify_simple import INotify, flags
        except ImportError:  # no fcntl (Windows): polling
            return None
        try:
            inotify = INotify()
        except (OSError, AttributeError) as exc:  # not Linux, or no inotify instance left
            log.info("%s: no file notifications (%s); polling", self.path, exc)
            return None
        mask = (
            flags.MODIFY
            | flags.CLOSE_WRITE
            | flags.CREATE
            | flags.DELETE
            | flags.MOVED_FROM
            | flags.MOVED_TO
            | flags.ATTRIB
            | flags.DELETE_SELF
            | flags.MOVE_SELF
        )
        try:
            inotify.add_watch(self.folder, mask)
        except OSError as exc:  # a missing folder, no watch left
            inotify.close()
            log.info("%s: no file notifications (%s); polling", self.path, exc)
            return None
        return inotify

    def read_now(self) -> None:
        """Called as a read starts: what happened so far is covered by it."""
        self.last_read = time.monotonic()
        if self._inotify is not None:
            self._changed(self._inotify.read(timeout=0))

    def wait(self) -> bool:
        """Wait until the file is worth reading again; True when asked to stop."""
        if self._inotify is None:
            return self.stop.wait(self.poll_seconds)
        deadline = time.monotonic() + max(SAFETY_SECONDS, self.poll_seconds)
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            events = self._inotify.read(timeout=int(min(left, STOP_CHECK_SECONDS) * 1000) + 1)
            if self._changed(events):
                break
            if self._inotify is None:  # the folder itself went away: poll from now on
                return self.stop.wait(self.poll_seconds)
        # Under load, reads stay apart so that lines are stored in batches.
        rest = min(self.poll_seconds, BUSY_SECONDS) - (time.monotonic() - self.last_read)
        return self.stop.wait(rest) if rest > 0 else self.stop.is_set()

    def _changed(self, events: Iterable[Event]) -> bool:
        """Whether ``events`` touch the file or one of its rotated generations
        (``x.1``, ``x-20261205``); the folder's own removal ends the watch."""
        from inotify_simple import flags

        changed = False
        for event in events:
            if event.mask & (flags.IGNORED | flags.DELETE_SELF | flags.MOVE_SELF):
                log.info("%s: its folder was moved or removed; polling", self.path)
                self.close()
                return True
            if event.mask & flags.Q_OVERFLOW or event.name.startswith(self.name):
                changed = True
        return changed

    def close(self) -> None:
        inotify, self._inotify = self._inotify, None
        if inotify is not None:
            with contextlib.suppress(OSError):
                inotify.close()

    def __enter__(self) -> ChangeWait:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()
