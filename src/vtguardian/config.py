"""Effective configuration: ``vtguardian.toml`` overridden by environment variables.

Precedence, highest first: ``VTGUARDIAN_<SECTION>__<KEY>`` environment variables,
``VT_API_KEY`` (for the key only, the name every VirusTotal tool already uses),
the TOML file, then the defaults below. Defaults are chosen so that a home user
with a public VirusTotal key needs to set nothing but the key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from vtguardian.errors import ConfigError

CONFIG_ENV = "VTGUARDIAN_CONFIG"
DEFAULT_CONFIG_PATH = Path("vtguardian.toml")

# Names that only mean something inside a home or office network. Sending them to
# a third party leaks the network's layout and never yields intelligence.
DEFAULT_LOCAL_SUFFIXES = [
    "local",
    "lan",
    "home.arpa",
    "internal",
    "intranet",
    "private",
    "corp",
    "home",
    "localdomain",
    "localhost",
    "invalid",
    "test",
    "in-addr.arpa",
    "ip6.arpa",
    "fritz.box",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Section):
    url: str = "sqlite:///vtguardian.db"
    # How long collectors and workers wait for a database that went away (a MariaDB
    # restart) before giving up with an error; 0 gives up at once.
    reconnect_seconds: NonNegativeFloat = 600.0

    @field_validator("url")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "not a database URL (expected sqlite:///FILE or mysql+pymysql://...)"
            ) from None
        backend = url.get_backend_name()
        if backend not in ("sqlite", "mysql", "mariadb"):
            raise ValueError(f"unsupported database {backend!r} (use sqlite or mysql/mariadb)")
        try:
            url.get_dialect()
        except NoSuchModuleError:
            raise ValueError(
                f"no database driver {url.get_driver_name()!r} for {backend} "
                "(use mysql+pymysql://...)"
            ) from None
        return value


class VirusTotalSettings(_Section):
    api_key: SecretStr | None = None
    host: str = "https://www.virustotal.com"
    per_minute: PositiveInt = 4
    per_day: PositiveInt = 500
    per_month: PositiveInt = 15500
    timeout_seconds: PositiveFloat = 30.0
    # Only for running against the emulator with a shortened "minute".
    minute_seconds: PositiveFloat = 60.0
    safety_seconds: NonNegativeFloat = 1.0
    # Fresh analyses (README, "Fresh analyses"): a report whose analysis is older
    # than this, of an IoC the network still contacts, is re-analysed.
    max_analysis_age_days: PositiveFloat = 30.0
    # Re-analyses and URL submissions per UTC day (each costs a POST and its polls).
    reanalyses_per_day: NonNegativeInt = 50
    # Off: a submitted URL is visible to VirusTotal's users and may carry tokens.
    submit_unknown_urls: bool = False
    submit_urls_with_query: bool = False
    # Seconds before the first poll of an analysis; each further poll waits twice as long.
    poll_seconds: PositiveFloat = 60.0
    max_polls: PositiveInt = 6
    # Relationship requests (resolutions, contacted hosts) per UTC day; 0 turns them off.
    relationship_requests_per_day: NonNegativeInt = 20


class CacheSettings(_Section):
    max_entries: PositiveInt = 10_000
    ttl_days: PositiveFloat = 7.0
    # VirusTotal often learns about a new domain within hours; asking again sooner
    # for "no record" answers finds new malware domains while they are still active.
    unknown_ttl_days: PositiveFloat = 1.0
    # Bad verdicts age faster: a cleaned-up site should be unblocked, a growing
    # detection confirmed, while clients are still talking to it.
    malicious_ttl_days: PositiveFloat = 1.0
    suspicious_ttl_days: PositiveFloat = 2.0


class VerdictSettings(_Section):
    min_malicious: PositiveInt = 3
    ratio_threshold: float = Field(default=0.03, ge=0.0, le=1.0)
    # Vendors whose word alone is enough when `trusted_min` of them agree (off when empty).
    trusted_vendors: list[str] = Field(default_factory=list)
    trusted_min: PositiveInt = 2
    # Malicious on a domain ranked this popular (or on a top-sites file) -> suspicious.
    popular_rank: int = Field(default=1000, ge=0)
    top_sites_files: list[Path] = Field(default_factory=list)
    # A domain registered fewer days ago than this is "young", shown so everywhere.
    young_domain_days: NonNegativeInt = 30
    # A young domain with one engine flag or more is suspicious, never harmless.
    young_domain_suspicious: bool = True


class PrivacySettings(_Section):
    local_suffixes: list[str] = Field(default_factory=lambda: list(DEFAULT_LOCAL_SUFFIXES))
    # The user's own public addresses and domains: never sent, they identify the network.
    own_networks: list[str] = Field(default_factory=list)
    own_domains: list[str] = Field(default_factory=list)


class AllowlistSettings(_Section):
    domains: list[str] = Field(default_factory=list)
    networks: list[str] = Field(default_factory=list)
    files: list[Path] = Field(default_factory=list)


class QueueSettings(_Section):
    lease_seconds: PositiveInt = 300
    retry_base_seconds: NonNegativeFloat = 30.0


#: The telemetry vtguardian reads (``--source``, ``[[ingest.sources]]``).
SOURCES = ("pihole-ftl", "pihole-log", "dnsmasq", "suricata", "zeek", "ecs", "plain")


class FollowedSource(_Section):
    """One file (or Pi-hole database) to read, as which source, with its options."""

    source: str
    path: str
    fields: list[str] = Field(default_factory=list)
    flows: bool = False

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value not in SOURCES:
            raise ValueError(f"unknown source {value!r}; choose one of {', '.join(SOURCES)}")
        return value


class IngestSettings(_Section):
    # Lines per transaction: bigger is faster, smaller loses less work to a crash.
    batch_lines: PositiveInt = 50_000
    poll_seconds: PositiveFloat = 1.0
    # Followers read as soon as the file changes (inotify, on Linux; poll_seconds then only
    # spaces the reads of a busy log, by a second at most). Off: they poll every
    # poll_seconds, e.g. for a log on a network file system, whose writes inotify misses.
    file_notifications: bool = True
    # One-off reads larger than this are parsed by worker processes while this one stores.
    parallel_min_mb: NonNegativeFloat = 32.0
    # The sources `vtguardian ingest --follow` (and the daemon) follow when given no paths.
    sources: list[FollowedSource] = Field(default_factory=list)


class FlowStep(_Section):
    provider: Literal["allowlist", "feeds", "otx", "virustotal"]
    enabled: bool = True


def _default_flow() -> list[FlowStep]:
    return [
        FlowStep(provider="allowlist"),
        FlowStep(provider="feeds"),
        FlowStep(provider="otx", enabled=False),
        FlowStep(provider="virustotal"),
    ]


class FeedsSettings(_Section):
    # hosts files, domain lists, abuse.ch URLhaus CSV, IP/CIDR lists you download.
    files: list[Path] = Field(default_factory=list)


class OtxSettings(_Section):
    api_key: SecretStr | None = None
    host: str = "https://otx.alienvault.com"
    # Pulses (community reports) needed before OTX alone may call an IoC malicious.
    min_pulses: PositiveInt = 3
    timeout_seconds: PositiveFloat = 15.0


class AlertSettings(_Section):
    # POST each alert as JSON here (n8n, ntfy, Home Assistant ...); unset: stored only.
    webhook_url: str | None = None
    max_attempts: PositiveInt = 8
    timeout_seconds: PositiveFloat = 10.0
    # A connection to an address of a flagged domain the device did not resolve
    # through the local DNS in these last minutes is a dns-bypass alert.
    bypass_window_minutes: PositiveInt = 60
    # Public DNS-over-HTTPS resolvers to watch for; unset: the list shipped in the
    # package (intel/doh_resolvers.txt), whose format such a file follows.
    doh_resolvers_file: Path | None = None


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    # Required for every write endpoint, and for everything when not bound to loopback.
    token: SecretStr | None = None
    max_body_bytes: PositiveInt = 10 * 1024 * 1024
    # Host names (and addresses) the page is opened by, besides `host`, localhost and the
    # loopback addresses, which are always answered: e.g. ["pi.lan", "192.168.1.5"],
    # or "*.lan". Any other Host header gets 400, so that a page on another name that
    # resolves to this machine (DNS rebinding) reads nothing.
    allowed_hosts: list[str] = []

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, names: list[str]) -> list[str]:
        """Names as a Host header carries them, without scheme or port: a wrong entry
        would silently never match, so it is refused at start instead."""
        import ipaddress
        import re

        for name in names:
            try:
                ipaddress.ip_address(name.strip("[]"))
                continue
            except ValueError:
                pass
            if name != "*" and not re.fullmatch(r"(\*\.)?[\w-]+(\.[\w-]+)*", name, re.ASCII):
                raise ValueError(
                    f"{name!r}: a host name or address without scheme or port, "
                    "'*.example.lan', or '*'"
                )
        return names


class PiholeSettings(_Section):
    gravity_db: Path = Path("/etc/pihole/gravity.db")
    # Pi-hole v6's REST API instead of gravity.db, e.g. "http://pi.hole" (an app password).
    api_url: str | None = None
    api_password: SecretStr | None = None
    # Pi-hole v6; on v5 use "pihole restartdns reload-lists". Empty: do not reload.
    reload_command: str = "pihole reloadlists"
    block_days: PositiveFloat = 30.0
    # Circuit breaker: more new blocks than this in an hour are held back for review.
    max_new_blocks_per_hour: PositiveInt = 20
    dry_run: bool = False


class NftablesSettings(_Section):
    # The script vtguardian writes and loads with `nft -f`; it replaces only its own table.
    script: Path = Path("/var/lib/vtguardian/vtguardian.nft")
    table: str = Field(default="vtguardian", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
    nft_command: str = "nft"
    block_days: PositiveFloat = 7.0
    max_new_blocks_per_hour: PositiveInt = 50
    dry_run: bool = False
    # Also block the public addresses a malicious domain resolved to here in these
    # last days (shared hosts and CDNs left alone); 0 turns it off.
    resolution_days: float = Field(default=7.0, ge=0)


class RunSettings(_Section):
    """What ``vtguardian run`` starts besides the followers of ``[[ingest.sources]]``."""

    web: bool = True
    lookups: bool = True
    # Writing to Pi-hole's gravity.db is off until you turn it on (try
    # `vtguardian block sync --dry-run` first); pihole.dry_run still applies.
    pihole_blocking: bool = False
    nftables: bool = False
    actions_every_seconds: PositiveFloat = 60.0


#: What a job reads: a followed file of NDJSON/ECS events or Suricata eve.json, or the
#: events POSTed to ``/api/v1/jobs/{id}/events``.
JOB_INPUTS = ("ecs", "suricata", "http")
JOB_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class JobInput(_Section):
    """Where a job's events come from."""

    type: Literal["ecs", "suricata", "http"] = "http"
    path: str | None = None
    # Suricata: the event types kept (alerts by default); empty keeps every type.
    event_types: list[str] = Field(default_factory=lambda: ["alert"])


class JobOutputs(_Section):
    """Where a job's events go once their IoCs are decided (or the wait ran out)."""

    file: str | None = None
    webhook_url: str | None = None
    timeout_seconds: PositiveFloat = 10.0


class JobRetention(_Section):
    days: PositiveFloat = 30.0
    max_events: PositiveInt = 1_000_000


class JobSettings(_Section):
    """One ``[[jobs]]`` entry: an input, the IoC fields, a flow, outputs, a retention."""

    id: str = Field(pattern=JOB_ID_PATTERN)
    title: str = ""
    enabled: bool = True
    input: JobInput = Field(default_factory=JobInput)
    # Empty: the defaults of the input (ECS names, or Suricata's).
    fields: list[str] = Field(default_factory=list)
    # Empty: the global [[flow]].
    flow: list[FlowStep] = Field(default_factory=list)
    outputs: JobOutputs = Field(default_factory=JobOutputs)
    retention: JobRetention = Field(default_factory=JobRetention)
    # An event whose IoCs are still pending goes to the outputs after this long anyway.
    pending_timeout_seconds: PositiveFloat = 300.0


class RetentionSettings(_Section):
    """How long each kind of row lives (``[retention]``); ``run`` prunes once a day.

    Hourly sightings give way to the daily rollups, which keep the same totals, so
    the dashboard over older ranges still adds up. Report history keeps every
    report that changed a verdict and the last ``reports_kept`` others per IoC.
    Active blocks are never removed, whatever their age.
    """

    enabled: bool = True
    sightings_days: PositiveInt = 90
    rollups_days: PositiveInt = 730
    reports_kept: PositiveInt = 5
    ingest_errors_days: PositiveInt = 30
    quota_days: PositiveInt = 62
    alerts_days: PositiveInt = 365
    actions_days: PositiveInt = 365
    # Rows per delete: each is its own short transaction, so an ingest or a lookup
    # waits at most for one of them.
    batch_rows: PositiveInt = 5000
    every_hours: PositiveFloat = 24.0


class _VtApiKeySource(PydanticBaseSettingsSource):
    """Reads ``VT_API_KEY`` so the key set for other VirusTotal tools just works."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        key = os.environ.get("VT_API_KEY")
        return {"virustotal": {"api_key": key}} if key else {}


class Settings(BaseSettings):
    """The whole configuration; one section per pipeline box."""

    model_config = SettingsConfigDict(
        env_prefix="VTGUARDIAN_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    virustotal: VirusTotalSettings = Field(default_factory=VirusTotalSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    verdict: VerdictSettings = Field(default_factory=VerdictSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    allowlist: AllowlistSettings = Field(default_factory=AllowlistSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    feeds: FeedsSettings = Field(default_factory=FeedsSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    pihole: PiholeSettings = Field(default_factory=PiholeSettings)
    otx: OtxSettings = Field(default_factory=OtxSettings)
    nftables: NftablesSettings = Field(default_factory=NftablesSettings)
    run: RunSettings = Field(default_factory=RunSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    # Providers asked in order; the first confident answer decides and ends the flow.
    flow: list[FlowStep] = Field(default_factory=_default_flow)
    # Alert triage jobs: input, IoC fields, flow, outputs, retention (vtguardian job ...).
    jobs: list[JobSettings] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs, so environment variables must rank above it.
        return (env_settings, _VtApiKeySource(settings_cls), init_settings)


class _ValuesOnly(Settings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def settings_from_values(**values: Any) -> Settings:
    """Settings from ``values`` alone, with no environment: the demo must not pick up
    a user's VT_API_KEY (its emulator would refuse it) or their database."""
    return _ValuesOnly(**values)


def resolve_config_path(explicit: Path | None) -> tuple[Path, bool]:
    """Return the config path and whether the user asked for it by name.

    A named file that is missing is an error; the implicit ``./vtguardian.toml``
    may be absent, because defaults plus environment must be enough to run.
    """
    if explicit is not None:
        return explicit, True
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        return Path(from_env), True
    return DEFAULT_CONFIG_PATH, False


def _read_toml(path: Path, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise ConfigError(f"configuration file {path} does not exist")
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None


def describe_validation_error(exc: ValidationError, origin: str) -> str:
    """One line naming every offending key, because users fix config by key name."""
    parts = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        parts.append(f"{key}: {message}")
    return f"invalid configuration ({origin}): " + "; ".join(parts)


def load_settings(path: Path | None = None) -> Settings:
    """Load the effective settings or raise :class:`ConfigError` with one clear line."""
    config_path, required = resolve_config_path(path)
    data = _read_toml(config_path, required)
    origin = str(config_path) if data else "environment and defaults"
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, origin)) from None


def mask_secret(value: str | None) -> str | None:
    """Show that a key is set without revealing any of it (not even a prefix)."""
    if not value:
        return None
    return "********"


SECRETS = (
    ("virustotal", "api_key"),
    ("otx", "api_key"),
    ("web", "token"),
    ("pihole", "api_password"),
)


def settings_for_display(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data with every secret masked: the keys
    and passwords, and whatever a URL setting carries in its user info, query or
    fragment (a webhook's token, ``?password=`` in a database URL)."""
    data = settings.model_dump(mode="json")
    for section, name in SECRETS:
        secret = getattr(getattr(settings, section), name)
        data[section][name] = mask_secret(secret.get_secret_value() if secret else None)
    data = _mask_urls(data)
    data["database"]["url"] = mask_url(settings.database.url, keep_user=True)
    return data


def _mask_urls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _mask_urls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_urls(item) for item in value]
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


# Query options of a database URL that say how to connect, never who may: shown as set.
_PLAIN_OPTIONS = frozenset(
    {
        "charset",
        "connect_timeout",
        "read_timeout",
        "write_timeout",
        "ssl_ca",
        "ssl_cert",
        "ssl_key",
        "ssl_disabled",
        "ssl_verify_cert",
        "ssl_verify_identity",
        "local_infile",
        "unix_socket",
    }
)
_MASK = "********"


def mask_url(url: str, keep_user: bool = False) -> str:
    """``url`` with its user info (all of it, as a token can be the user name; with
    ``keep_user``, a database's, only the password), every query value but a
    database's connection options, and its fragment masked."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        name, colon, _password = user.partition(":")
        shown = f"{name}:{_MASK}" if keep_user and colon else name if keep_user else _MASK
        netloc = f"{shown}@{host}"
    query = "&".join(
        key if not sep else f"{key}={value if key in _PLAIN_OPTIONS else _MASK}"
        for key, sep, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, _MASK if parts.fragment else ""))
