"""Sightings keep the exact first stamp of their hour, as they keep the last.

Rows written before this revision only know their hour, which stands in for
their first sighting.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    # A NOT NULL column needs a value for the rows already there: a constant first,
    # then each row's hour. SQLite cannot drop a column default without copying the
    # table, and nothing relies on it, so it stays there.
    op.add_column(
        "sightings",
        sa.Column("first_seen", TIMESTAMP, nullable=False, server_default="1970-01-01 00:00:00"),
    )
    op.execute("UPDATE sightings SET first_seen = hour")
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(
            "sightings",
            "first_seen",
            existing_type=TIMESTAMP,
            existing_nullable=False,
            server_default=None,
        )


def downgrade() -> None:
    with op.batch_alter_table("sightings") as batch:
        batch.drop_column("first_seen")
