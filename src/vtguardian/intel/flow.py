"""The flow: providers asked in the user's order, cheapest first, until one is sure.

``allowlist`` (trusted: harmless), ``feeds`` (listed: malicious) and ``otx``
(enough pulses: malicious) answer without spending VirusTotal quota; when one
of them is confident the flow ends there. VirusTotal is asked when nothing
before it decided; providers placed after it are only asked when VirusTotal has
no record. Every answer is kept as a report; the verdict names who decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vtguardian.config import Settings
from vtguardian.errors import ConfigError
from vtguardian.intel.feeds import Feeds
from vtguardian.intel.otx import OtxClient, OtxUnavailable
from vtguardian.iocs import Classifier, IocType, matching_suffix, normalise_ip
from vtguardian.store.answers import ReportRow
from vtguardian.verdict import Level

VIRUSTOTAL = "virustotal"


@dataclass
class FlowOutcome:
    """What the providers said; ``decider`` is None when the flow must go on."""

    answers: list[ReportRow] = field(default_factory=list)
    decider: ReportRow | None = None
    errors: list[str] = field(default_factory=list)


class Flow:
    def __init__(self, settings: Settings, classifier: Classifier) -> None:
        self.classifier = classifier
        self.order = [step.provider for step in settings.flow if step.enabled]
        self.feeds = Feeds(settings.feeds.files) if "feeds" in self.order else None
        self.otx: OtxClient | None = None
        self.min_pulses = settings.otx.min_pulses
        if "otx" in self.order:
            key = settings.otx.api_key
            if key is None:
                raise ConfigError("flow: otx is enabled but otx.api_key is not set")
            otx = settings.otx
            self.otx = OtxClient(key.get_secret_value(), otx.host, otx.timeout_seconds)

    @property
    def uses_virustotal(self) -> bool:
        return VIRUSTOTAL in self.order

    def _steps(self, after_virustotal: bool) -> list[str]:
        if VIRUSTOTAL not in self.order:
            return [] if after_virustotal else self.order
        cut = self.order.index(VIRUSTOTAL)
        return self.order[cut + 1 :] if after_virustotal else self.order[:cut]

    async def ask(self, kind: IocType, value: str, after_virustotal: bool = False) -> FlowOutcome:
        """Ask the providers before (or after) VirusTotal, stopping at a confident one."""
        outcome = FlowOutcome()
        for name in self._steps(after_virustotal):
            try:
                answer, decisive = await self._answer(name, kind, value)
            except OtxUnavailable as exc:
                outcome.errors.append(f"{name}: {exc}")
                continue
            if answer is None:
                continue
            outcome.answers.append(answer)
            if decisive:
                outcome.decider = answer
                break
        return outcome

    def ask_local(self, kind: IocType, value: str) -> FlowOutcome:
        """Only what answers from this machine (allowlist, feeds), for enrichment."""
        outcome = FlowOutcome()
        for name in self.order:
            if name not in ("allowlist", "feeds"):
                continue
            answer = (
                self._allowlist(kind, value) if name == "allowlist" else self._feed(kind, value)
            )
            if answer is not None:
                outcome.answers.append(answer)
                outcome.decider = answer
                break
        return outcome

    async def _answer(self, name: str, kind: IocType, value: str) -> tuple[ReportRow | None, bool]:
        if name == "allowlist":
            return self._allowlist(kind, value), True
        if name == "feeds":
            return self._feed(kind, value), True
        if name == "otx" and self.otx is not None:
            return await self._otx(kind, value)
        return None, False

    def _allowlist(self, kind: IocType, value: str) -> ReportRow | None:
        classifier = self.classifier
        if kind in (IocType.DOMAIN, IocType.URL):
            host = host_of(kind, value)
            entry = matching_suffix(host, classifier.allow_domains) if host else None
        elif kind is IocType.IP:
            address = normalise_ip(value)
            entry = next(
                (str(n) for n in classifier.allow_networks if address in n),
                None,
            )
        else:
            entry = None
        if entry is None:
            return None
        return ReportRow(
            provider="allowlist",
            outcome="found",
            verdict=Level.HARMLESS.value,
            labels=[f"allowlisted: {entry}"],
        )

    def _feed(self, kind: IocType, value: str) -> ReportRow | None:
        name = self.feeds.lookup(kind, value) if self.feeds is not None else None
        if name is None:
            return None
        return ReportRow(
            provider="feeds",
            outcome="found",
            verdict=Level.MALICIOUS.value,
            score=1.0,
            labels=[f"feed: {name}"],
        )

    async def _otx(self, kind: IocType, value: str) -> tuple[ReportRow | None, bool]:
        assert self.otx is not None
        answer = await self.otx.fetch(kind, value)
        if answer is None:
            return None, False
        if answer.pulses >= self.min_pulses:
            level = Level.MALICIOUS
        elif answer.pulses:
            level = Level.SUSPICIOUS
        else:
            level = Level.HARMLESS
        report = ReportRow(
            provider="otx",
            outcome="found",
            verdict=level.value,
            score=min(1.0, answer.pulses / (2 * self.min_pulses)),
            labels=[f"otx pulses: {answer.pulses}", *answer.names[:5]],
        )
        return report, level is Level.MALICIOUS


def host_of(kind: IocType, value: str) -> str | None:
    """The DNS name an IoC is about (the host of a URL); None for an address."""
    if kind is IocType.DOMAIN:
        return value
    if kind is IocType.URL:
        host = value.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
        return None if host.startswith("[") or host.replace(".", "").isdigit() else host
    return None
