"""Retention runs, and Home Network Guardian's url_scans, file_scans and yara_detections.

``url_scans`` now dates a scan by when the report was fetched (Home Network
Guardian stored ``datetime.now()`` at its fetch) and its ``scan_result`` is shaped
as the VirusTotal analysis object that project stored (``data.attributes.results``
keyed by engine, ``stats``, ``date``), so its own views over that path work.
``file_scans`` and ``yara_detections`` give its file views their columns; the YARA
rows are the crowdsourced YARA results of each file's latest report.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

# The latest VirusTotal report of each IoC (reports are never updated, only added).
_LATEST = (
    "r.provider = 'virustotal' AND r.id = (SELECT MAX(r2.id) FROM reports r2 "
    "WHERE r2.ioc_id = r.ioc_id AND r2.provider = 'virustotal')"
)

# The analysis object Home Network Guardian stored, from the object we store.
_SCAN_RESULT = {
    "mysql": (
        "JSON_OBJECT('data', JSON_OBJECT('type', 'analysis', "
        "'id', JSON_UNQUOTE(JSON_EXTRACT(r.raw, '$.data.id')), "
        "'attributes', JSON_OBJECT('status', 'completed', "
        "'date', TIMESTAMPDIFF(SECOND, '1970-01-01', r.analysis_date), "
        "'stats', JSON_EXTRACT(r.raw, '$.data.attributes.last_analysis_stats'), "
        "'results', JSON_EXTRACT(r.raw, '$.data.attributes.last_analysis_results')), "
        "'links', JSON_OBJECT('self', r.permalink)))"
    ),
    "sqlite": (
        "json_object('data', json_object('type', 'analysis', "
        "'id', json_extract(r.raw, '$.data.id'), "
        "'attributes', json_object('status', 'completed', "
        "'date', CAST(strftime('%s', r.analysis_date) AS INTEGER), "
        "'stats', json(json_extract(r.raw, '$.data.attributes.last_analysis_stats')), "
        "'results', json(json_extract(r.raw, '$.data.attributes.last_analysis_results'))), "
        "'links', json_object('self', r.permalink)))"
    ),
}
_YARA = "'$.data.attributes.crowdsourced_yara_results'"


def _views(dialect: str) -> dict[str, str]:
    mysql_like = dialect != "sqlite"
    scan_result = _SCAN_RESULT["mysql" if mysql_like else "sqlite"]
    if mysql_like:
        sha256 = "COALESCE(JSON_UNQUOTE(JSON_EXTRACT(r.raw, '$.data.attributes.sha256')), i.value)"
        yara_rules = f"JSON_EXTRACT(r.raw, {_YARA})"
        yara_from = (
            "CROSS JOIN JSON_TABLE(r.raw, '$.data.attributes.crowdsourced_yara_results[*]' "
            "COLUMNS (n FOR ORDINALITY, rule_name VARCHAR(255) PATH '$.rule_name', "
            "ruleset_name VARCHAR(255) PATH '$.ruleset_name', "
            "description TEXT PATH '$.description')) y"
        )
        yara_columns = "r.id * 1000 + y.n AS id, r.ioc_id AS scan_id, y.rule_name AS rule_name, "
        yara_columns += "y.ruleset_name AS ruleset_name, y.description AS description"
    else:
        sha256 = "COALESCE(json_extract(r.raw, '$.data.attributes.sha256'), i.value)"
        yara_rules = f"json(json_extract(r.raw, {_YARA}))"
        yara_from = f"JOIN json_each(r.raw, {_YARA}) y"
        yara_columns = (
            "r.id * 1000 + y.key + 1 AS id, r.ioc_id AS scan_id, "
            "json_extract(y.value, '$.rule_name') AS rule_name, "
            "json_extract(y.value, '$.ruleset_name') AS ruleset_name, "
            "json_extract(y.value, '$.description') AS description"
        )
    return {
        "url_scans": (
            "SELECT i.id AS id, i.value AS url, r.fetched_at AS scan_date, "
            "r.malicious AS positives, r.total AS total_scans, r.permalink AS permalink, "
            f"{scan_result} AS scan_result FROM reports r JOIN iocs i ON i.id = r.ioc_id "
            f"WHERE i.type <> 'file' AND {_LATEST}"
        ),
        "file_scans": (
            f"SELECT i.id AS id, {sha256} AS sha256, r.fetched_at AS scan_date, "
            "r.malicious AS positives, r.total AS total_scans, r.permalink AS permalink, "
            f"{yara_rules} AS yara_rules, {scan_result} AS scan_result "
            f"FROM reports r JOIN iocs i ON i.id = r.ioc_id WHERE i.type = 'file' AND {_LATEST}"
        ),
        "yara_detections": (
            f"SELECT {yara_columns} FROM reports r JOIN iocs i ON i.id = r.ioc_id "
            f"{yara_from} WHERE i.type = 'file' AND {_LATEST}"
        ),
    }


# The view as revision 0001 created it, for the way back.
_OLD_URL_SCANS = (
    "SELECT i.id AS id, i.value AS url, COALESCE(r.analysis_date, r.fetched_at) AS scan_date, "
    "r.malicious AS positives, r.total AS total_scans, r.permalink AS permalink, "
    f"r.raw AS scan_result FROM reports r JOIN iocs i ON i.id = r.ioc_id WHERE {_LATEST}"
)


def upgrade() -> None:
    op.create_table(
        "retention_runs",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("removed", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_runs")),
    )
    op.create_index(
        op.f("ix_retention_runs_started_at"), "retention_runs", ["started_at"], unique=False
    )
    # Reports the retention keeps because they changed a verdict are found by this.
    op.create_index(
        op.f("ix_verdict_history_report_id"), "verdict_history", ["report_id"], unique=False
    )
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW IF EXISTS url_scans")
    for name, body in _views(dialect).items():
        op.execute(f"CREATE VIEW {name} AS {body}")


def downgrade() -> None:
    for name in ("yara_detections", "file_scans", "url_scans"):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.execute(f"CREATE VIEW url_scans AS {_OLD_URL_SCANS}")
    op.drop_index(op.f("ix_verdict_history_report_id"), table_name="verdict_history")
    op.drop_index(op.f("ix_retention_runs_started_at"), table_name="retention_runs")
    op.drop_table("retention_runs")
