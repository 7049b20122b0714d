"""Plain lists: one indicator per line, ``#`` comments, defanged forms accepted."""

from __future__ import annotations

import time

from vtguardian.sources.base import Stateless, decode
from vtguardian.sources.batch import Batch


class PlainParser(Stateless):
    source = "plain"

    def __init__(self, now: float | None = None) -> None:
        self.now = now if now is not None else time.time()

    def feed(self, line: bytes, batch: Batch) -> None:
        text = decode(line).strip()
        if text and not text.startswith("#"):
            batch.events += 1
            batch.see("", text, "", self.now)
