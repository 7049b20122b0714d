"""Threat context, re-analyses and relationships (README, "Threat context").

threat_context: an IoC's current report beyond engine counts, in columns;
report_threats: each report's threat categories, families and labels, one row
each, for the attack-vector panels; analysis_requests: re-analyses of stale
reports and URL submissions with their polls; related_iocs: relationships.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "threat_context",
        sa.Column("ioc_id", ID, autoincrement=False, nullable=False),
        sa.Column("report_id", ID, nullable=True),
        sa.Column("threat_label", sa.String(length=255), nullable=True),
        sa.Column("threat_categories", sa.JSON(), nullable=True),
        sa.Column("site_categories", sa.JSON(), nullable=True),
        sa.Column("result_labels", sa.JSON(), nullable=True),
        sa.Column("families", sa.JSON(), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=True),
        sa.Column("sandboxes", sa.JSON(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.Column("creation_date", TIMESTAMP, nullable=True),
        sa.Column("asn", sa.BigInteger(), nullable=True),
        sa.Column("as_owner", sa.String(length=255), nullable=True),
        sa.Column("country", sa.String(length=8), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["ioc_id"], ["iocs.id"], ondelete="CASCADE", name=op.f("fk_threat_context_ioc_id_iocs")
        ),
        sa.PrimaryKeyConstraint("ioc_id", name=op.f("pk_threat_context")),
    )
    op.create_table(
        "report_threats",
        sa.Column("report_id", ID, nullable=False),
        sa.Column("ioc_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["reports.id"],
            ondelete="CASCADE",
            name=op.f("fk_report_threats_report_id_reports"),
        ),
        sa.ForeignKeyConstraint(
            ["ioc_id"], ["iocs.id"], ondelete="CASCADE", name=op.f("fk_report_threats_ioc_id_iocs")
        ),
        sa.PrimaryKeyConstraint("report_id", "kind", "name", name=op.f("pk_report_threats")),
    )
    op.create_index(op.f("ix_report_threats_ioc_id"), "report_threats", ["ioc_id"])
    op.create_index(op.f("ix_report_threats_kind_name"), "report_threats", ["kind", "name"])
    op.create_table(
        "analysis_requests",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("ioc_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("analysis_id", sa.String(length=255), nullable=True),
        sa.Column("old_analysis_date", TIMESTAMP, nullable=True),
        sa.Column("old_verdict", sa.String(length=16), nullable=True),
        sa.Column("new_verdict", sa.String(length=16), nullable=True),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("requested_at", TIMESTAMP, nullable=True),
        sa.Column("completed_at", TIMESTAMP, nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["ioc_id"],
            ["iocs.id"],
            ondelete="CASCADE",
            name=op.f("fk_analysis_requests_ioc_id_iocs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_requests")),
    )
    op.create_index(
        op.f("ix_analysis_requests_ioc_id_created_at"),
        "analysis_requests",
        ["ioc_id", "created_at"],
    )
    op.create_index(
        op.f("ix_analysis_requests_created_at_kind"), "analysis_requests", ["created_at", "kind"]
    )
    op.create_table(
        "related_iocs",
        sa.Column("ioc_id", ID, nullable=False),
        sa.Column("related_id", ID, nullable=False),
        sa.Column("relation", sa.String(length=32), nullable=False),
        sa.Column("found_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["ioc_id"], ["iocs.id"], ondelete="CASCADE", name=op.f("fk_related_iocs_ioc_id_iocs")
        ),
        sa.ForeignKeyConstraint(
            ["related_id"],
            ["iocs.id"],
            ondelete="CASCADE",
            name=op.f("fk_related_iocs_related_id_iocs"),
        ),
        sa.PrimaryKeyConstraint("ioc_id", "related_id", "relation", name=op.f("pk_related_iocs")),
    )
    op.create_index(op.f("ix_related_iocs_related_id"), "related_iocs", ["related_id"])


def downgrade() -> None:
    op.drop_table("related_iocs")
    op.drop_table("analysis_requests")
    op.drop_table("report_threats")
    op.drop_table("threat_context")
