"""Local threat feeds the user downloads: hosts files, domain lists, URLhaus CSV, IP lists.

Checked before VirusTotal: a hit on a feed the user chose to trust decides the
verdict and costs no quota. Files are re-read when they change, so a cron job
that refreshes them needs no restart. Matching is exact (a listed name, URL or
address, or an address inside a listed network): a feed entry for a shared
hosting domain must not condemn every site under it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import ipaddress
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from vtguardian.iocs import Classifier, IocType, IpNetwork

_HOSTS_PREFIXES = {"0.0.0.0", "127.0.0.1", "::", "::1"}


@dataclass
class FeedIndex:
    domains: dict[str, str] = field(default_factory=dict)  # value -> feed name
    urls: dict[str, str] = field(default_factory=dict)
    ips: dict[str, str] = field(default_factory=dict)
    networks: list[tuple[IpNetwork, str]] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)

    def lookup(self, kind: IocType, value: str) -> str | None:
        if kind is IocType.DOMAIN:
            return self.domains.get(value)
        if kind is IocType.URL:
            return self.urls.get(value)
        if kind is IocType.FILE:
            return self.hashes.get(value)
        found = self.ips.get(value)
        if found is None and self.networks:
            address = ipaddress.ip_address(value)
            for network, name in self.networks:
                if address.version == network.version and address in network:
                    return name
        return found


def parse_feed(text: str, name: str, index: FeedIndex, classifier: Classifier) -> None:
    """Add one feed file's entries to ``index``; unreadable lines are skipped."""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "!", ";")):
            continue
        if line.startswith('"') and "," in line:  # URLhaus CSV: id,dateadded,url,...
            row = next(csv.reader(io.StringIO(line)), [])
            if len(row) > 2:
                _add(index, classifier.classify(row[2]), name)
            continue
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0] in _HOSTS_PREFIXES:
            for host in fields[1:]:
                _add(index, classifier.classify_as(host, IocType.DOMAIN), name)
            continue
        entry = fields[0] if fields else ""
        if "/" in entry and "://" not in entry:
            with contextlib.suppress(ValueError):  # not a network: skip the line
                index.networks.append((ipaddress.ip_network(entry, strict=False), name))
            continue
        _add(index, classifier.classify(entry), name)


def _add(index: FeedIndex, result: object, name: str) -> None:
    kind = getattr(result, "type", None)
    value = getattr(result, "value", None)
    if kind is None or value is None:
        return
    target = {
        IocType.DOMAIN: index.domains,
        IocType.URL: index.urls,
        IocType.IP: index.ips,
        IocType.FILE: index.hashes,
    }[kind]
    target.setdefault(value, name)


class Feeds:
    """The user's feed files, indexed, and re-read when one changes on disk."""

    def __init__(self, paths: list[Path], check_every: float = 5.0) -> None:
        self.paths = [Path(p) for p in paths]
        self.check_every = check_every
        # Feeds list threats: classify without the privacy rule, which is about sending.
        self._classifier = Classifier(local_suffixes=())
        self._stamps: dict[Path, float] = {}
        self._checked = 0.0
        self.index = FeedIndex()
        self.reload_if_changed(force=True)

    def reload_if_changed(self, force: bool = False) -> bool:
        now = time.monotonic()
        if not force and now - self._checked < self.check_every:
            return False
        self._checked = now
        stamps = {path: _mtime(path) for path in self.paths}
        if not force and stamps == self._stamps:
            return False
        index = FeedIndex()
        for path in self.paths:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue  # a feed being replaced right now: keep going with the others
            parse_feed(text, path.name, index, self._classifier)
        self.index, self._stamps = index, stamps
        return True

    def lookup(self, kind: IocType, value: str) -> str | None:
        self.reload_if_changed()
        return self.index.lookup(kind, value)


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime_ns / 1e9
    except OSError:
        return -1.0
