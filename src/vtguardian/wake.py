"""Wake-ups inside one process: a writer says "there is work" right after its commit,
and whoever waits for that work stops waiting.

``vtguardian run`` is a pipeline of parts that used to poll each other (a follower
stores IoCs, the lookup worker asks VirusTotal, blocking and alerts act on the
verdicts). Polling made the first query of a malicious domain wait up to a
minute for its block. Each part now raises a :class:`Signal` after the
transaction that made work for the next one, and the next part waits on it, with
its old timer kept as a safety net: a signal only ever shortens a wait, so work
made by another process (several workers on one MariaDB) is still found by the
timer, and a lost signal costs time, never data.

Writers run in threads (the followers) or on the event loop (the worker); the
waiters are coroutines on the daemon's loop. :meth:`Signal.notify` is safe from
any thread. Each waiter holds its own :class:`Listener`, which remembers what it
has seen, so several parts can wait on one signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class Signal:
    """Something another part of this process may be waiting for."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._count = 0
        # The coroutines waiting now: their loop, and the event that wakes them there.
        self._waiting: dict[Listener, tuple[asyncio.AbstractEventLoop, asyncio.Event]] = {}

    @property
    def count(self) -> int:
        """How many times it was raised since the process started."""
        return self._count

    def notify(self) -> None:
        """Raise the signal (after the commit that made the work; any thread)."""
        with self._lock:
            self._count += 1
            waiting = list(self._waiting.values())
        for loop, event in waiting:
            with contextlib.suppress(RuntimeError):  # that loop has closed meanwhile
                loop.call_soon_threadsafe(event.set)

    def listen(self) -> Listener:
        """A listener that sees every notify from now on."""
        return Listener(self)


class Listener:
    """One waiter's view of a :class:`Signal`: whether it was raised since last asked."""

    def __init__(self, signal: Signal) -> None:
        self.signal = signal
        self._seen = signal.count

    def pending(self) -> bool:
        """Whether the signal was raised since the last wait returned (and forget it)."""
        with self.signal._lock:
            raised = self.signal._count != self._seen
            self._seen = self.signal._count
        return raised

    async def wait(self, timeout: float, stop: asyncio.Event | None = None) -> bool:
        """Wait until the signal is raised (True), ``timeout`` passes or ``stop`` is set
        (False). A notify that came while nobody waited is not lost: it returns at once."""
        if self.pending():
            return True
        if stop is not None and stop.is_set():
            return False
        event = asyncio.Event()  # made here: an event belongs to the loop that awaits it
        with self.signal._lock:
            self.signal._waiting[self] = (asyncio.get_running_loop(), event)
        try:
            if self.pending():  # raised between the first look and registering
                return True
            waits = [asyncio.ensure_future(event.wait())]
            if stop is not None:
                waits.append(asyncio.ensure_future(stop.wait()))
            try:
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
        finally:
            with self.signal._lock:
                self.signal._waiting.pop(self, None)
        return self.pending()


#: New IoCs (or re-checks) were queued for lookup: wakes the lookup worker.
QUEUED = Signal("queued")
#: A verdict became malicious or stopped being malicious: wakes the blocking targets.
VERDICTS = Signal("verdicts")
#: An alert was created and waits for its webhook: wakes the alert delivery.
ALERTS = Signal("alerts")
