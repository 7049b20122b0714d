"""Resolutions: the DNS answers the sources show, per name, answer, device and hour.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-05 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "resolutions",
        sa.Column("name_id", ID, nullable=False),
        sa.Column("answer_id", ID, nullable=False),
        sa.Column("client_id", ID, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("hour", TIMESTAMP, nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.Column("last_seen", TIMESTAMP, nullable=False),
        sa.Column("first_seen", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["name_id"],
            ["iocs.id"],
            name="fk_resolutions_name_id_iocs",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["answer_id"],
            ["iocs.id"],
            name="fk_resolutions_answer_id_iocs",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name="fk_resolutions_client_id_clients",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "name_id", "answer_id", "client_id", "source", "hour", name="pk_resolutions"
        ),
    )
    op.create_index("ix_resolutions_answer_id_hour", "resolutions", ["answer_id", "hour"])
    op.create_index("ix_resolutions_hour", "resolutions", ["hour"])


def downgrade() -> None:
    op.drop_table("resolutions")
