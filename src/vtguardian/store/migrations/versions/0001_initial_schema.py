"""Initial schema: the whole pipeline, and the url_scans compatibility view.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 13:15:26.948444
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types of vtguardian.store.schema at this revision.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

# The Home Network Guardian compatibility view url_scans(id, url,
# scan_date, positives, total_scans, permalink, scan_result) over the latest
# VirusTotal report of every IoC.
URL_SCANS_VIEW = """
CREATE VIEW url_scans AS
SELECT i.id AS id,
       i.value AS url,
       COALESCE(r.analysis_date, r.fetched_at) AS scan_date,
       r.malicious AS positives,
       r.total AS total_scans,
       r.permalink AS permalink,
       r.raw AS scan_result
FROM reports r
JOIN iocs i ON i.id = r.ioc_id
WHERE r.provider = 'virustotal'
  AND r.id = (SELECT MAX(r2.id) FROM reports r2
              WHERE r2.ioc_id = r.ioc_id AND r2.provider = 'virustotal')
"""


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("first_seen", TIMESTAMP, nullable=False),
        sa.Column("last_seen", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clients")),
        sa.UniqueConstraint("ip", name=op.f("uq_clients_ip")),
    )
    op.create_table(
        "ingest_errors",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("sample", sa.String(length=255), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_errors")),
    )
    op.create_index(
        op.f("ix_ingest_errors_created_at"), "ingest_errors", ["created_at"], unique=False
    )
    op.create_table(
        "iocs",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=2048), nullable=False),
        sa.Column("registered_domain", sa.String(length=255), nullable=True),
        sa.Column("first_seen", TIMESTAMP, nullable=False),
        sa.Column("last_seen", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iocs")),
        sa.UniqueConstraint("digest", name=op.f("uq_iocs_digest")),
    )
    op.create_index(op.f("ix_iocs_last_seen"), "iocs", ["last_seen"], unique=False)
    op.create_index(op.f("ix_iocs_registered_domain"), "iocs", ["registered_domain"], unique=False)
    op.create_index(op.f("ix_iocs_type_last_seen"), "iocs", ["type", "last_seen"], unique=False)
    op.create_table(
        "lookup_stats",
        sa.Column("hour", TIMESTAMP, nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "provider", "outcome", name=op.f("pk_lookup_stats")),
    )
    op.create_table(
        "quota_usage",
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("window", sa.String(length=8), nullable=False),
        sa.Column("window_start", TIMESTAMP, nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("provider", "window", "window_start", name=op.f("pk_quota_usage")),
    )
    op.create_table(
        "source_offsets",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("inode", sa.BigInteger(), nullable=True),
        sa.Column("fingerprint", sa.String(length=80), nullable=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.JSON(), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_offsets")),
        sa.UniqueConstraint("digest", name=op.f("uq_source_offsets_digest")),
    )
    op.create_table(
        "actions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("ioc_id", ID, nullable=False),
        sa.Column("target", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ioc_id"], ["iocs.id"], name=op.f("fk_actions_ioc_id_iocs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_actions")),
    )
    op.create_index(op.f("ix_actions_active_target"), "actions", ["active", "target"], unique=False)
    op.create_index(op.f("ix_actions_created_at"), "actions", ["created_at"], unique=False)
    op.create_index(
        op.f("ix_actions_ioc_id_created_at"), "actions", ["ioc_id", "created_at"], unique=False
    )
    op.create_table(
        "alerts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("ioc_id", ID, nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("previous_verdict", sa.String(length=16), nullable=True),
        sa.Column("ratio", sa.Float(), nullable=True),
        sa.Column("engines", sa.JSON(), nullable=True),
        sa.Column("clients", sa.JSON(), nullable=True),
        sa.Column("first_seen", TIMESTAMP, nullable=True),
        sa.Column("last_seen", TIMESTAMP, nullable=True),
        sa.Column("flip_key", sa.String(length=96), nullable=False),
        sa.Column("delivered_at", TIMESTAMP, nullable=True),
        sa.Column("delivery_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["ioc_id"], ["iocs.id"], name=op.f("fk_alerts_ioc_id_iocs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("flip_key", name=op.f("uq_alerts_flip_key")),
    )
    op.create_index(op.f("ix_alerts_created_at"), "alerts", ["created_at"], unique=False)
    op.create_table(
        "ids_alerts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("ts", TIMESTAMP, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("signature_id", sa.BigInteger(), nullable=True),
        sa.Column("signature", sa.String(length=512), nullable=True),
        sa.Column("category", sa.String(length=255), nullable=True),
        sa.Column("severity", sa.SmallInteger(), nullable=True),
        sa.Column("src_ip", sa.String(length=45), nullable=True),
        sa.Column("src_port", sa.Integer(), nullable=True),
        sa.Column("dest_ip", sa.String(length=45), nullable=True),
        sa.Column("dest_port", sa.Integer(), nullable=True),
        sa.Column("proto", sa.String(length=16), nullable=True),
        sa.Column("client_id", ID, nullable=True),
        sa.Column("ioc_id", ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_ids_alerts_client_id_clients"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["ioc_id"], ["iocs.id"], name=op.f("fk_ids_alerts_ioc_id_iocs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ids_alerts")),
    )
    op.create_index(op.f("ix_ids_alerts_ioc_id"), "ids_alerts", ["ioc_id"], unique=False)
    op.create_index(op.f("ix_ids_alerts_ts"), "ids_alerts", ["ts"], unique=False)
    op.create_table(
        "lookup_queue",
        sa.Column("ioc_id", ID, autoincrement=False, nullable=False),
        sa.Column("tier", sa.SmallInteger(), nullable=False),
        sa.Column("clients", sa.Integer(), nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("enqueued_at", TIMESTAMP, nullable=False),
        sa.Column("not_before", TIMESTAMP, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", TIMESTAMP, nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["ioc_id"], ["iocs.id"], name=op.f("fk_lookup_queue_ioc_id_iocs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ioc_id", name=op.f("pk_lookup_queue")),
    )
    op.create_index(
        "ix_lookup_queue_claim_order",
        "lookup_queue",
        [
            sa.text("tier DESC"),
            sa.text("clients DESC"),
            sa.text("hits DESC"),
            "enqueued_at",
            "ioc_id",
        ],
        unique=False,
    )
    op.create_table(
        "reports",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("ioc_id", ID, nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("fetched_at", TIMESTAMP, nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("analysis_date", TIMESTAMP, nullable=True),
        sa.Column("malicious", sa.Integer(), nullable=True),
        sa.Column("suspicious", sa.Integer(), nullable=True),
        sa.Column("harmless", sa.Integer(), nullable=True),
        sa.Column("undetected", sa.Integer(), nullable=True),
        sa.Column("timeout", sa.Integer(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("ratio", sa.Float(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("engines", sa.JSON(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=True),
        sa.Column("reputation", sa.Integer(), nullable=True),
        sa.Column("popularity_rank", sa.Integer(), nullable=True),
        sa.Column("permalink", sa.String(length=512), nullable=True),
        sa.Column("decided", sa.Boolean(), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ioc_id"], ["iocs.id"], name=op.f("fk_reports_ioc_id_iocs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
    )
    op.create_index(
        op.f("ix_reports_fetched_at_provider"), "reports", ["fetched_at", "provider"], unique=False
    )
    op.create_index(
        op.f("ix_reports_ioc_id_fetched_at"), "reports", ["ioc_id", "fetched_at"], unique=False
    )
    op.create_index(
        op.f("ix_reports_provider_ioc_id"), "reports", ["provider", "ioc_id"], unique=False
    )
    op.create_table(
        "sightings",
        sa.Column("ioc_id", ID, nullable=False),
        sa.Column("client_id", ID, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("hour", TIMESTAMP, nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.Column("blocked", sa.BigInteger(), nullable=False),
        sa.Column("last_seen", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_sightings_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ioc_id"], ["iocs.id"], name=op.f("fk_sightings_ioc_id_iocs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ioc_id", "client_id", "source", "hour", name=op.f("pk_sightings")),
    )
    op.create_index(
        op.f("ix_sightings_client_id_hour"), "sightings", ["client_id", "hour"], unique=False
    )
    op.create_index(op.f("ix_sightings_hour_source"), "sightings", ["hour", "source"], unique=False)
    op.create_table(
        "verdict_history",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("ioc_id", ID, nullable=False),
        sa.Column("old_verdict", sa.String(length=16), nullable=True),
        sa.Column("new_verdict", sa.String(length=16), nullable=False),
        sa.Column("ratio", sa.Float(), nullable=True),
        sa.Column("report_id", ID, nullable=True),
        sa.Column("changed_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["ioc_id"], ["iocs.id"], name=op.f("fk_verdict_history_ioc_id_iocs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verdict_history")),
    )
    op.create_index(
        op.f("ix_verdict_history_changed_at"), "verdict_history", ["changed_at"], unique=False
    )
    op.create_index(
        op.f("ix_verdict_history_ioc_id_changed_at"),
        "verdict_history",
        ["ioc_id", "changed_at"],
        unique=False,
    )
    op.create_table(
        "verdicts",
        sa.Column("ioc_id", ID, autoincrement=False, nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("ratio", sa.Float(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("malicious", sa.Integer(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("engines", sa.JSON(), nullable=True),
        sa.Column("providers", sa.JSON(), nullable=True),
        sa.Column("decided_by", sa.String(length=32), nullable=True),
        sa.Column("report_id", ID, nullable=True),
        sa.Column("analysis_date", TIMESTAMP, nullable=True),
        sa.Column("checked_at", TIMESTAMP, nullable=True),
        sa.Column("changed_at", TIMESTAMP, nullable=True),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("last_used_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["ioc_id"], ["iocs.id"], name=op.f("fk_verdicts_ioc_id_iocs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ioc_id", name=op.f("pk_verdicts")),
    )
    op.create_index(op.f("ix_verdicts_expires_at"), "verdicts", ["expires_at"], unique=False)
    op.create_index(op.f("ix_verdicts_last_used_at"), "verdicts", ["last_used_at"], unique=False)
    op.create_index(
        op.f("ix_verdicts_verdict_changed_at"), "verdicts", ["verdict", "changed_at"], unique=False
    )

    op.execute(URL_SCANS_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS url_scans")
    op.drop_table("verdicts")
    op.drop_table("verdict_history")
    op.drop_table("sightings")
    op.drop_table("reports")
    op.drop_table("lookup_queue")
    op.drop_table("ids_alerts")
    op.drop_table("alerts")
    op.drop_table("actions")
    op.drop_table("source_offsets")
    op.drop_table("quota_usage")
    op.drop_table("lookup_stats")
    op.drop_table("iocs")
    op.drop_table("ingest_errors")
    op.drop_table("clients")
