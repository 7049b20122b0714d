"""The one schema, shared by SQLite and MariaDB/MySQL (SQLAlchemy Core).

Designed for the whole pipeline so later features only add. Times are naive UTC
``DATETIME`` values: Grafana's MySQL data source reads DATETIME as UTC, and
SQLite has no time zones. Large or unbounded values (URLs) are addressed by a
digest so unique keys stay within MySQL's index length limit.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

# SQLite only auto-increments an INTEGER PRIMARY KEY; MySQL wants BIGINT for growth.
Id = BigInteger().with_variant(Integer(), "sqlite")
# Microsecond precision on MySQL so ordering by time is stable within a second.
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _fk(table: str, **kwargs: object) -> ForeignKey:
    return ForeignKey(f"{table}.id", ondelete="CASCADE", **kwargs)


iocs = Table(
    "iocs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # sha256 of "type:value": a fixed-width unique key whatever the value's length.
    Column("digest", String(64), nullable=False),
    Column("type", String(8), nullable=False),
    Column("value", String(2048), nullable=False),
    Column("registered_domain", String(255)),
    Column("first_seen", Timestamp, nullable=False),
    Column("last_seen", Timestamp, nullable=False),
    UniqueConstraint("digest"),
    Index(None, "registered_domain"),
    Index(None, "type", "last_seen"),
    Index(None, "last_seen"),
)

clients = Table(
    "clients",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # '' is the "unknown client" row, for sources that do not say who asked.
    Column("ip", String(45), nullable=False),
    Column("name", String(255)),
    Column("first_seen", Timestamp, nullable=False),
    Column("last_seen", Timestamp, nullable=False),
    UniqueConstraint("ip"),
)

sightings = Table(
    "sightings",
    metadata,
    Column("ioc_id", Id, _fk("iocs"), nullable=False),
    Column("client_id", Id, _fk("clients"), nullable=False),
    Column("source", String(16), nullable=False),
    Column("hour", Timestamp, nullable=False),
    Column("hits", BigInteger, nullable=False, default=0),
    # Of those hits, how many the DNS filter answered with a block (Pi-hole correlation).
    Column("blocked", BigInteger, nullable=False, default=0),
    Column("last_seen", Timestamp, nullable=False),
    # The exact first sighting in the hour: a hunt says 01:57:08, not 01:00.
    Column("first_seen", Timestamp, nullable=False),
    PrimaryKeyConstraint("ioc_id", "client_id", "source", "hour"),
    # Covering for the dashboard's edge hours: a range of hours read from the index alone.
    Index(None, "hour", "source", "hits", "last_seen"),
    Index(None, "client_id", "hour"),
)

# Rollups of sightings, written in the same transaction as the hourly rows, so a
# dashboard over weeks reads one row per IoC and day instead of one per client and
# hour. Clients are kept exactly as bit sets: client ``id`` is bit ``id % 63`` of
# the row whose ``client_word`` is ``id // 63`` (63 bits: every value fits a
# signed BIGINT on both engines); a household has one word per IoC and day.
CLIENT_WORD_BITS = 63
ioc_days = Table(
    "ioc_days",
    metadata,
    Column("ioc_id", Id, _fk("iocs"), nullable=False),
    Column("source", String(16), nullable=False),
    Column("day", Timestamp, nullable=False),
    Column("client_word", Integer, nullable=False),
    Column("clients_mask", BigInteger, nullable=False),
    Column("hits", BigInteger, nullable=False, default=0),
    Column("blocked", BigInteger, nullable=False, default=0),
    Column("last_seen", Timestamp, nullable=False),
    PrimaryKeyConstraint("ioc_id", "source", "day", "client_word"),
    Index(None, "day", "source"),
)

# Queries and blocks per source and hour: the Pi-hole load panels.
source_hours = Table(
    "source_hours",
    metadata,
    Column("hour", Timestamp, nullable=False),
    Column("source", String(16), nullable=False),
    Column("hits", BigInteger, nullable=False, default=0),
    Column("blocked", BigInteger, nullable=False, default=0),
    PrimaryKeyConstraint("hour", "source"),
)

reports = Table(
    "reports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ioc_id", Id, _fk("iocs"), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("fetched_at", Timestamp, nullable=False),
    # found | not_found: "VirusTotal has no record" is an answer, not an error.
    Column("outcome", String(16), nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("analysis_date", Timestamp),
    Column("malicious", Integer),
    Column("suspicious", Integer),
    Column("harmless", Integer),
    Column("undetected", Integer),
    Column("timeout", Integer),
    Column("total", Integer),
    Column("ratio", Float),
    Column("score", Float),
    Column("engines", JSON),
    Column("labels", JSON),
    Column("reputation", Integer),
    Column("popularity_rank", Integer),
    Column("permalink", String(512)),
    Column("decided", Boolean, nullable=False, default=False),
    Column("raw", JSON),
    Index(None, "ioc_id", "fetched_at"),
    Index(None, "fetched_at", "provider"),
    Index(None, "provider", "ioc_id"),
)

verdicts = Table(
    "verdicts",
    metadata,
    Column("ioc_id", Id, _fk("iocs"), primary_key=True, autoincrement=False),
    # malicious | suspicious | harmless | unknown | pending
    Column("verdict", String(16), nullable=False),
    Column("ratio", Float),
    Column("score", Float),
    Column("malicious", Integer),
    Column("total", Integer),
    Column("engines", JSON),
    Column("providers", JSON),
    Column("decided_by", String(32)),
    Column("report_id", Id),
    Column("analysis_date", Timestamp),
    Column("checked_at", Timestamp),
    Column("changed_at", Timestamp),
    # The cache: a verdict answers without a request until it expires.
    Column("expires_at", Timestamp),
    Column("last_used_at", Timestamp),
    Index(None, "verdict", "changed_at"),
    Index(None, "expires_at"),
    Index(None, "last_used_at"),
)

verdict_history = Table(
    "verdict_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ioc_id", Id, _fk("iocs"), nullable=False),
    Column("old_verdict", String(16)),
    Column("new_verdict", String(16), nullable=False),
    Column("ratio", Float),
    Column("report_id", Id),
    Column("changed_at", Timestamp, nullable=False),
    Index(None, "ioc_id", "changed_at"),
    Index(None, "changed_at"),
    # Retention keeps every report that changed a verdict: found through this.
    Index(None, "report_id"),
)

lookup_queue = Table(
    "lookup_queue",
    metadata,
    Column("ioc_id", Id, _fk("iocs"), primary_key=True, autoincrement=False),
    # Order: tier (3 IDS alert, 2 never seen, 1 re-check), then clients, hits, age.
    Column("tier", SmallInteger, nullable=False),
    Column("clients", Integer, nullable=False, default=0),
    Column("hits", BigInteger, nullable=False, default=0),
    Column("reason", String(32), nullable=False),
    Column("enqueued_at", Timestamp, nullable=False),
    Column("not_before", Timestamp, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_by", String(64)),
    Column("claimed_until", Timestamp),
    Column("last_error", String(255)),
)
# The claim order, as an index InnoDB can walk: a claim then locks only the rows it
# takes, so SKIP LOCKED lets concurrent workers take the next ones.
Index(
    "ix_lookup_queue_claim_order",
    lookup_queue.c.tier.desc(),
    lookup_queue.c.clients.desc(),
    lookup_queue.c.hits.desc(),
    lookup_queue.c.enqueued_at,
    lookup_queue.c.ioc_id,
)

quota_usage = Table(
    "quota_usage",
    metadata,
    Column("provider", String(32), nullable=False),
    # day | month: a counter per UTC window start. minute: one row per request
    # (window_start = when it was sent), because the per-minute limit slides.
    Column("window", String(8), nullable=False),
    Column("window_start", Timestamp, nullable=False),
    Column("used", Integer, nullable=False, default=0),
    PrimaryKeyConstraint("provider", "window", "window_start"),
)

# Shared pause of a provider after it answered "quota exceeded": every worker honours it.
provider_state = Table(
    "provider_state",
    metadata,
    Column("provider", String(32), primary_key=True),
    Column("paused_until", Timestamp),
    Column("consecutive_429", Integer, nullable=False, default=0),
    Column("last_error", String(255)),
    Column("updated_at", Timestamp, nullable=False),
)

lookup_stats = Table(
    "lookup_stats",
    metadata,
    Column("hour", Timestamp, nullable=False),
    Column("provider", String(32), nullable=False),
    # found | not_found | error | quota | cache_hit | cache_miss
    Column("outcome", String(16), nullable=False),
    Column("count", BigInteger, nullable=False, default=0),
    PrimaryKeyConstraint("hour", "provider", "outcome"),
)

source_offsets = Table(
    "source_offsets",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("digest", String(64), nullable=False),
    Column("source", String(16), nullable=False),
    Column("path", String(1024), nullable=False),
    Column("inode", BigInteger),
    # Hash of the file's first bytes: tells a rotated file from the one we were reading.
    Column("fingerprint", String(80)),
    Column("position", BigInteger, nullable=False, default=0),
    # For database sources (Pi-hole FTL): the last query id read.
    Column("last_id", BigInteger),
    # What a parser must remember across a restart mid-file (Zeek headers, dnsmasq joins).
    Column("state", JSON),
    Column("updated_at", Timestamp, nullable=False),
    UniqueConstraint("digest"),
)

ingest_errors = Table(
    "ingest_errors",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(16), nullable=False),
    Column("path", String(1024), nullable=False),
    Column("position", BigInteger),
    Column("reason", String(255), nullable=False),
    Column("sample", String(255)),
    Column("created_at", Timestamp, nullable=False),
    Index(None, "created_at"),
)

ids_alerts = Table(
    "ids_alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ts", Timestamp, nullable=False),
    Column("source", String(16), nullable=False),
    Column("signature_id", BigInteger),
    Column("signature", String(512)),
    Column("category", String(255)),
    Column("severity", SmallInteger),
    Column("src_ip", String(45)),
    Column("src_port", Integer),
    Column("dest_ip", String(45)),
    Column("dest_port", Integer),
    Column("proto", String(16)),
    Column("client_id", Id, ForeignKey("clients.id", ondelete="SET NULL")),
    Column("ioc_id", Id, ForeignKey("iocs.id", ondelete="SET NULL")),
    Index(None, "ts"),
    Index(None, "ioc_id"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("created_at", Timestamp, nullable=False),
    Column("ioc_id", Id, _fk("iocs"), nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("previous_verdict", String(16)),
    Column("ratio", Float),
    Column("engines", JSON),
    Column("clients", JSON),
    Column("first_seen", Timestamp),
    Column("last_seen", Timestamp),
    # One alert per flip: "<ioc_id>:<verdict>:<history id>".
    Column("flip_key", String(96), nullable=False),
    Column("delivered_at", Timestamp),
    Column("delivery_attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Timestamp),
    Column("last_error", String(255)),
    UniqueConstraint("flip_key"),
    Index(None, "created_at"),
)

actions = Table(
    "actions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ioc_id", Id, _fk("iocs"), nullable=False),
    # pihole | pihole-api | nftables | feed
    Column("target", String(32), nullable=False),
    # block | unblock
    Column("action", String(16), nullable=False),
    Column("reason", String(255), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp),
    Column("active", Boolean, nullable=False, default=True),
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("detail", JSON),
    Index(None, "active", "target"),
    Index(None, "created_at"),
    Index(None, "ioc_id", "created_at"),
)

# The network's own passive DNS: each answer a DNS source showed, per name, answer,
# device, source and hour. ``answer_id`` is an address, or the target of a CNAME
# (a domain), so a chain is kept as its links and an address is reached from the
# name the device asked by following them (store/resolutions.py).
resolutions = Table(
    "resolutions",
    metadata,
    Column("name_id", Id, _fk("iocs"), nullable=False),
    Column("answer_id", Id, _fk("iocs"), nullable=False),
    Column("client_id", Id, _fk("clients"), nullable=False),
    Column("source", String(16), nullable=False),
    Column("hour", Timestamp, nullable=False),
    Column("hits", BigInteger, nullable=False, default=0),
    Column("last_seen", Timestamp, nullable=False),
    Column("first_seen", Timestamp, nullable=False),
    PrimaryKeyConstraint("name_id", "answer_id", "client_id", "source", "hour"),
    # The reverse pivot (which names an address served) and the window scans.
    Index(None, "answer_id", "hour"),
    Index(None, "hour"),
)

# Which public addresses each device connected to (Suricata flow, tls, http, quic;
# Zeek conn, ssl, http), per source and hour, as text: an address contacted is not
# an IoC to look up by itself. With the resolutions it tells a connection that the
# local DNS answered from one that went around it (intel/bypass.py).
connections = Table(
    "connections",
    metadata,
    Column("address", String(45), nullable=False),
    Column("client_id", Id, _fk("clients"), nullable=False),
    Column("source", String(16), nullable=False),
    Column("hour", Timestamp, nullable=False),
    Column("hits", BigInteger, nullable=False, default=0),
    Column("last_seen", Timestamp, nullable=False),
    Column("first_seen", Timestamp, nullable=False),
    PrimaryKeyConstraint("address", "client_id", "source", "hour"),
    Index(None, "hour"),
)

# Devices that went around the local DNS: "dns-bypass", a connection to an address
# of a flagged domain the device had not resolved here just before (``domain``
# that domain), and "doh", talking to a public DNS-over-HTTPS resolver while
# Pi-hole serves the device (``domain`` the resolver's name, or '').
dns_bypasses = Table(
    "dns_bypasses",
    metadata,
    Column("kind", String(16), nullable=False),
    Column("client_id", Id, _fk("clients"), nullable=False),
    Column("address", String(45), nullable=False),
    Column("domain", String(255), nullable=False),
    Column("first_seen", Timestamp, nullable=False),
    Column("last_seen", Timestamp, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("kind", "client_id", "address", "domain"),
    Index(None, "last_seen"),
)

# Threat context (README, "Threat context"): what a report says beyond engine counts,
# in columns, for the IoC's current report. Values come from VirusTotal and are
# someone else's text: shown as text, never as markup.
threat_context = Table(
    "threat_context",
    metadata,
    Column("ioc_id", Id, _fk("iocs"), primary_key=True, autoincrement=False),
    Column("report_id", Id),
    Column("threat_label", String(255)),
    # Vendors' categories mapped to the threat vocabulary (phishing, malware ...).
    Column("threat_categories", JSON),
    # Vendors' categories that are not threats (news, shopping): never shown as one.
    Column("site_categories", JSON),
    Column("result_labels", JSON),
    Column("families", JSON),
    Column("rules", JSON),
    Column("sandboxes", JSON),
    Column("tags", JSON),
    Column("creation_date", Timestamp),
    Column("asn", BigInteger),
    Column("as_owner", String(255)),
    Column("country", String(8)),
    Column("updated_at", Timestamp, nullable=False),
)

# One row per threat category, family or threat label of a report: the attack-vector
# panels count them with the report each IoC's verdict history points at.
report_threats = Table(
    "report_threats",
    metadata,
    Column("report_id", Id, _fk("reports"), nullable=False),
    Column("ioc_id", Id, _fk("iocs"), nullable=False),
    # category | family | label
    Column("kind", String(16), nullable=False),
    Column("name", String(128), nullable=False),
    PrimaryKeyConstraint("report_id", "kind", "name"),
    Index(None, "ioc_id"),
    Index(None, "kind", "name"),
)

# Re-analyses of stale reports and submissions of unknown URLs, and their polls.
analysis_requests = Table(
    "analysis_requests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ioc_id", Id, _fk("iocs"), nullable=False),
    # reanalyse | submit
    Column("kind", String(16), nullable=False),
    # wanted | requested | completed | done | failed
    Column("status", String(16), nullable=False),
    Column("analysis_id", String(255)),
    Column("old_analysis_date", Timestamp),
    Column("old_verdict", String(16)),
    Column("new_verdict", String(16)),
    Column("polls", Integer, nullable=False, default=0),
    Column("created_at", Timestamp, nullable=False),
    Column("requested_at", Timestamp),
    Column("completed_at", Timestamp),
    Column("last_error", String(255)),
    Index(None, "ioc_id", "created_at"),
    Index(None, "created_at", "kind"),
)

# Relationships fetched for IoCs that turned malicious: a domain's resolutions, a
# URL's serving address, a file's contacted domains and addresses.
related_iocs = Table(
    "related_iocs",
    metadata,
    Column("ioc_id", Id, _fk("iocs"), nullable=False),
    Column("related_id", Id, _fk("iocs"), nullable=False),
    Column("relation", String(32), nullable=False),
    Column("found_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("ioc_id", "related_id", "relation"),
    Index(None, "related_id"),
)

# --- jobs (alert triage, the Event Explorer) -------------------------------------------

# A job's definition (from [[jobs]] or the API) and its state. ``flow`` is set when the
# Flows page changed the order or what is enabled; it then outlives the config file's.
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("title", String(255), nullable=False, default=""),
    Column("origin", String(8), nullable=False),  # config | api
    Column("definition", JSON, nullable=False),
    Column("flow", JSON),
    Column("enabled", Boolean, nullable=False, default=True),
    # running | stopped | failed (with ``reason``)
    Column("state", String(16), nullable=False, default="stopped"),
    Column("reason", String(255)),
    Column("next_seq", BigInteger, nullable=False, default=1),
    Column("events_in", BigInteger, nullable=False, default=0),
    Column("skipped", BigInteger, nullable=False, default=0),
    # A followed file: where it was read up to, and which file that was.
    Column("position", BigInteger, nullable=False, default=0),
    Column("fingerprint", String(80)),
    Column("lag_bytes", BigInteger, nullable=False, default=0),
    # The NDJSON output's length after the last events written to it: a crash between
    # writing and recording is undone by cutting the file back to it.
    Column("output_position", BigInteger, nullable=False, default=0),
    # Answers and decisions per provider: {"feeds": [answers, decisions], ...}
    Column("flow_counts", JSON),
    Column("heartbeat_at", Timestamp),
    Column("updated_at", Timestamp, nullable=False),
)

# One event of a job, as received, with what its IoCs made of it. ``pending`` counts its
# IoCs still waiting for a verdict; ``emitted`` is a bit per output (1 file, 2 webhook)
# that has it, set from the start for an output the job does not have.
job_events = Table(
    "job_events",
    metadata,
    Column("job_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("received_at", Timestamp, nullable=False),
    Column("result", String(16), nullable=False),
    Column("is_malicious", Boolean, nullable=False),
    Column("pending", SmallInteger, nullable=False),
    Column("emitted", SmallInteger, nullable=False),
    Column("raw", Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"), nullable=False),
    PrimaryKeyConstraint("job_id", "seq"),
    Index(None, "job_id", "emitted", "pending"),
    Index(None, "job_id", "received_at"),
    Index(None, "job_id", "result", "seq"),
)

# The IoCs of a job's events: the field each came from, its state (``pending`` or the
# verdict) and the provider that decided it in the job's flow.
job_event_iocs = Table(
    "job_event_iocs",
    metadata,
    Column("job_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("ioc_id", Id, nullable=False),
    Column("field", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("provider", String(32)),
    PrimaryKeyConstraint("job_id", "seq", "field", "ioc_id"),
    Index(None, "job_id", "state", "ioc_id"),
    Index(None, "ioc_id"),
)
# One row per retention prune: when it ran and what it removed (``removed``: rows per
# kind), so ``run`` prunes once a day across restarts and ``db stats`` can say when.
retention_runs = Table(
    "retention_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("started_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp),
    Column("removed", JSON),
    Index(None, "started_at"),
)

# The Home Network Guardian views url_scans, file_scans and yara_detections are
# created by the migrations (0001_initial_schema, 0008_retention_hng_views).
