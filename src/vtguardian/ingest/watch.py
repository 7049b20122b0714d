"""When a follower reads again: as soon as its file changes, at most every
``poll_seconds`` while it keeps changing, and now and then anyway.

A follower used to look every ``poll_seconds``: half a second of delay before a
new line was even read, and a query and a ``stat`` twice a second on a quiet
night. Where the platform tells about file changes (inotify on Linux, FSEvents,
kqueue, ReadDirectoryChangesW), watchfiles passes them on and an appended line
is read within about a tenth of a second; where it does not (or the watch cannot
be set up: the folder is missing, inotify's watch limit is reached), the
follower polls as before.

What is read, and how it is stored, does not change: each read still takes
everything written since the stored offset and commits it with its offset in
one transaction. Under load the reads stay ``poll_seconds`` apart, so a busy
log is stored in batches, not one transaction per line. The folder is watched,
not the file, so a rotation (a rename and a new file) is seen too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from types import TracebackType
from typing import Any

log = logging.getLogger("vtguardian.ingest")

#: With notifications, a quiet file is still read this often: a change the
#: platform did not report (a network file system) is late, never lost.
SAFETY_SECONDS = 10.0
#: How long watchfiles waits for more changes before it reports them.
STEP_MS = 50


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
        self._notify: Any = self._watch() if notifications else None

    @property
    def notified(self) -> bool:
        """Whether the platform reports changes (else this polls)."""
        return self._notify is not None

    def _watch(self) -> Any:
        """watchfiles' watcher of the file's folder (its thread starts here), or None
        when changes cannot be had here: then the follower polls."""
        try:
            from watchfiles._rust_notify import RustNotify
        except ImportError:  # pragma: no cover - a dependency; polling still works
            return None
        try:
            return RustNotify([self.folder], False, False, 0, False, False)
        except (OSError, RuntimeError) as exc:  # no folder, no inotify watch left ...
            log.info("%s: no file notifications (%s); polling", self.path, exc)
            return None

    def read_now(self) -> None:
        """Called as a read starts: the next one is at least ``poll_seconds`` later."""
        self.last_read = time.monotonic()

    def wait(self) -> bool:
        """Wait until the file is worth reading again; True when asked to stop."""
        if self._notify is None:
            return self.stop.wait(self.poll_seconds)
        deadline = time.monotonic() + SAFETY_SECONDS
        debounce = max(STEP_MS, int(self.poll_seconds * 1000))
        while (left := deadline - time.monotonic()) > 0:
            try:
                changes = self._notify.watch(debounce, STEP_MS, int(left * 1000) + 1, self.stop)
            except (OSError, RuntimeError) as exc:  # the watch broke: poll from now on
                log.info("%s: file notifications stopped (%s); polling", self.path, exc)
                self.close()
                return self.stop.wait(self.poll_seconds)
            if changes == "stop" or self.stop.is_set():
                return True
            if changes == "timeout" or any(self._ours(path) for _kind, path in changes):
                break  # ("signal": a signal handler ran in this thread; look again)
        # Under load, reads stay poll_seconds apart so that lines are stored in batches.
        rest = self.poll_seconds - (time.monotonic() - self.last_read)
        return self.stop.wait(rest) if rest > 0 else self.stop.is_set()

    def _ours(self, changed: str) -> bool:
        """The file itself, or one of its rotated generations (``x.1``, ``x-2026...``)."""
        return os.path.basename(changed).startswith(self.name)

    def close(self) -> None:
        notify, self._notify = self._notify, None
        if notify is not None:
            with contextlib.suppress(Exception):
                notify.close()

    def __enter__(self) -> ChangeWait:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()
