"""Resolutions: the DNS answers the sources show, per name, answer, device and hour;
the public addresses devices connected to; and the devices that went around the
local DNS (dns-bypass, DNS-over-HTTPS).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0006"
down_revision: str | None = "0005"
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
    op.create_table(
        "connections",
        sa.Column("address", sa.String(45), nullable=False),
        sa.Column("client_id", ID, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("hour", TIMESTAMP, nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.Column("last_seen", TIMESTAMP, nullable=False),
        sa.Column("first_seen", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name="fk_connections_client_id_clients",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("address", "client_id", "source", "hour", name="pk_connections"),
    )
    op.create_index("ix_connections_hour", "connections", ["hour"])
    op.create_table(
        "dns_bypasses",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("client_id", ID, nullable=False),
        sa.Column("address", sa.String(45), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("first_seen", TIMESTAMP, nullable=False),
        sa.Column("last_seen", TIMESTAMP, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name="fk_dns_bypasses_client_id_clients",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("kind", "client_id", "address", "domain", name="pk_dns_bypasses"),
    )
    op.create_index("ix_dns_bypasses_last_seen", "dns_bypasses", ["last_seen"])


def downgrade() -> None:
    op.drop_table("dns_bypasses")
    op.drop_table("connections")
    op.drop_table("resolutions")
