"""Sighting rollups: per IoC and day (clients as exact bit sets), per source and hour;
the hourly index on sightings also carries hits and last_seen (covering).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 16:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

# Existing sightings, rolled up once; from here on every flush keeps them in step.
BACKFILL = {
    "mysql": (
        "INSERT INTO ioc_days (ioc_id, source, day, client_word, clients_mask, hits, blocked, "
        "last_seen) SELECT ioc_id, source, TIMESTAMP(DATE(hour)), client_id DIV 63, "
        "BIT_OR(1 << (client_id MOD 63)), SUM(hits), SUM(blocked), MAX(last_seen) "
        "FROM sightings GROUP BY ioc_id, source, TIMESTAMP(DATE(hour)), client_id DIV 63",
        "INSERT INTO source_hours (hour, source, hits, blocked) "
        "SELECT hour, source, SUM(hits), SUM(blocked) FROM sightings GROUP BY hour, source",
    ),
    "sqlite": (
        # SQLite has no BIT_OR aggregate: one row per client first, then OR-ed by upsert.
        "INSERT INTO ioc_days (ioc_id, source, day, client_word, clients_mask, hits, blocked, "
        "last_seen) SELECT ioc_id, source, strftime('%Y-%m-%d 00:00:00.000000', hour) AS d, "
        "client_id / 63, 1 << (client_id % 63), SUM(hits), SUM(blocked), MAX(last_seen) "
        "FROM sightings WHERE true GROUP BY ioc_id, source, d, client_id "
        "ON CONFLICT (ioc_id, source, day, client_word) DO UPDATE SET "
        "clients_mask = clients_mask | excluded.clients_mask, hits = hits + excluded.hits, "
        "blocked = blocked + excluded.blocked, last_seen = max(last_seen, excluded.last_seen)",
        "INSERT INTO source_hours (hour, source, hits, blocked) "
        "SELECT hour, source, SUM(hits), SUM(blocked) FROM sightings GROUP BY hour, source",
    ),
}


def upgrade() -> None:
    op.create_table(
        "ioc_days",
        sa.Column("ioc_id", ID, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("day", TIMESTAMP, nullable=False),
        sa.Column("client_word", sa.Integer(), nullable=False),
        sa.Column("clients_mask", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.Column("blocked", sa.BigInteger(), nullable=False),
        sa.Column("last_seen", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["ioc_id"], ["iocs.id"], name=op.f("fk_ioc_days_ioc_id_iocs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ioc_id", "source", "day", "client_word", name=op.f("pk_ioc_days")),
    )
    op.create_index(op.f("ix_ioc_days_day_source"), "ioc_days", ["day", "source"], unique=False)
    op.create_table(
        "source_hours",
        sa.Column("hour", TIMESTAMP, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.Column("blocked", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "source", name=op.f("pk_source_hours")),
    )
    op.create_index(
        op.f("ix_sightings_hour_source_hits_last_seen"),
        "sightings",
        ["hour", "source", "hits", "last_seen"],
        unique=False,
    )
    op.drop_index(op.f("ix_sightings_hour_source"), table_name="sightings")
    dialect = "sqlite" if op.get_bind().dialect.name == "sqlite" else "mysql"
    for statement in BACKFILL[dialect]:
        op.execute(statement)


def downgrade() -> None:
    op.create_index(op.f("ix_sightings_hour_source"), "sightings", ["hour", "source"], unique=False)
    op.drop_index(op.f("ix_sightings_hour_source_hits_last_seen"), table_name="sightings")
    op.drop_table("source_hours")
    op.drop_index(op.f("ix_ioc_days_day_source"), table_name="ioc_days")
    op.drop_table("ioc_days")
