"""Jobs: their definitions and state, their stored events, and the IoCs of each event.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("origin", sa.String(8), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("flow", sa.JSON()),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(255)),
        sa.Column("next_seq", sa.BigInteger(), nullable=False),
        sa.Column("events_in", sa.BigInteger(), nullable=False),
        sa.Column("skipped", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(80)),
        sa.Column("lag_bytes", sa.BigInteger(), nullable=False),
        sa.Column("output_position", sa.BigInteger(), nullable=False),
        sa.Column("flow_counts", sa.JSON()),
        sa.Column("heartbeat_at", TIMESTAMP),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_table(
        "job_events",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("is_malicious", sa.Boolean(), nullable=False),
        sa.Column("pending", sa.SmallInteger(), nullable=False),
        sa.Column("emitted", sa.SmallInteger(), nullable=False),
        sa.Column(
            "raw", sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"), nullable=False
        ),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_job_events"),
    )
    op.create_index(
        "ix_job_events_job_id_emitted_pending", "job_events", ["job_id", "emitted", "pending"]
    )
    op.create_index("ix_job_events_job_id_received_at", "job_events", ["job_id", "received_at"])
    op.create_index("ix_job_events_job_id_result_seq", "job_events", ["job_id", "result", "seq"])
    op.create_table(
        "job_event_iocs",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("ioc_id", ID, nullable=False),
        sa.Column("field", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(32)),
        sa.PrimaryKeyConstraint("job_id", "seq", "field", "ioc_id", name="pk_job_event_iocs"),
    )
    op.create_index(
        "ix_job_event_iocs_job_id_state_ioc_id", "job_event_iocs", ["job_id", "state", "ioc_id"]
    )
    op.create_index("ix_job_event_iocs_ioc_id", "job_event_iocs", ["ioc_id"])


def downgrade() -> None:
    op.drop_table("job_event_iocs")
    op.drop_table("job_events")
    op.drop_table("jobs")
