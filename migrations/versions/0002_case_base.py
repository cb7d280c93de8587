"""The case base: analyses per run, hops, auth results, verdicts, findings, identities,
de-duplication keys, thread ids, notes, purges; list indexes; case ids never reused.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # cases: SQLite gets AUTOINCREMENT (a rebuild) so a purged case's id is never reused
    with op.batch_alter_table(
        "cases",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch:
        batch.add_column(sa.Column("from_address", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch.drop_index("ix_cases_status")
        batch.drop_index("ix_cases_office")
        batch.drop_index("ix_cases_assignee")
    # every later rebuild of `cases` on SQLite must repeat table_kwargs (not reflected)
    with op.batch_alter_table("cases", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("from_address", server_default=None)
        batch.create_index("ix_cases_closed_at", ["closed_at"])
        batch.create_index("ix_cases_status_created", ["status", "created_at"])
        batch.create_index("ix_cases_office_created", ["office", "created_at"])
        batch.create_index("ix_cases_assignee_created", ["assignee", "created_at"])

    with op.batch_alter_table("reports") as batch:
        batch.add_column(
            sa.Column("joined_by", sa.String(16), nullable=False, server_default="new")
        )
    with op.batch_alter_table("reports") as batch:
        batch.alter_column("joined_by", server_default=None)

    op.create_table(
        "analyses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("analyzer_version", sa.String(32), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reports.id"], name=op.f("fk_analyses_report_id_reports")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analyses")),
    )
    op.create_index(op.f("ix_analyses_report_id"), "analyses", ["report_id"])
    # every stored report gets its first analysis row; its originals point at it
    op.execute(
        "INSERT INTO analyses (report_id, analyzer_version, schema_version, created_at,"
        " current, verified, result)"
        " SELECT id, analyzer_version, 1, created_at, true, false, analysis FROM reports"
    )
    with op.batch_alter_table("originals") as batch:
        batch.add_column(sa.Column("analysis_id", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE originals SET analysis_id ="
        " (SELECT a.id FROM analyses a WHERE a.report_id = originals.report_id)"
    )
    with op.batch_alter_table("originals") as batch:
        batch.alter_column("analysis_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key(
            op.f("fk_originals_analysis_id_analyses"), "analyses", ["analysis_id"], ["id"]
        )
        batch.create_index(op.f("ix_originals_analysis_id"), ["analysis_id"])

    op.create_table(
        "hops",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("original_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ip", sa.String(45), nullable=False),
        sa.Column("rdns", sa.Text(), nullable=False),
        sa.Column("helo", sa.Text(), nullable=False),
        sa.Column("by_host", sa.Text(), nullable=False),
        sa.Column("protocol", sa.String(32), nullable=False),
        sa.Column("trust", sa.String(24), nullable=False),
        sa.Column("date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["original_id"], ["originals.id"], name=op.f("fk_hops_original_id_originals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hops")),
    )
    op.create_index(op.f("ix_hops_original_id"), "hops", ["original_id"])
    op.create_index(op.f("ix_hops_ip"), "hops", ["ip"])

    op.create_table(
        "auth_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("original_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("domain", sa.Text(), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["original_id"], ["originals.id"], name=op.f("fk_auth_results_original_id_originals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_results")),
    )
    op.create_index(op.f("ix_auth_results_original_id"), "auth_results", ["original_id"])
    op.create_index(op.f("ix_auth_results_domain"), "auth_results", ["domain"])

    op.create_table(
        "verdicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("original_id", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(24), nullable=False),
        sa.Column("relay_ip", sa.String(45), nullable=False),
        sa.Column("origin_ip", sa.String(45), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("internal", sa.Boolean(), nullable=False),
        sa.Column("confidence", sa.String(16), nullable=False),
        sa.Column("from_authenticated", sa.Boolean(), nullable=True),
        sa.Column("authenticated_identity", sa.Text(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["original_id"], ["originals.id"], name=op.f("fk_verdicts_original_id_originals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verdicts")),
        sa.UniqueConstraint("original_id", name=op.f("uq_verdicts_original_id")),
    )

    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("analysis_id", sa.Integer(), nullable=False),
        sa.Column("original_id", sa.Integer(), nullable=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["analysis_id"], ["analyses.id"], name=op.f("fk_findings_analysis_id_analyses")
        ),
        sa.ForeignKeyConstraint(
            ["original_id"], ["originals.id"], name=op.f("fk_findings_original_id_originals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
    )
    op.create_index(op.f("ix_findings_analysis_id"), "findings", ["analysis_id"])
    op.create_index(op.f("ix_findings_original_id"), "findings", ["original_id"])
    op.create_index(op.f("ix_findings_code"), "findings", ["code"])

    op.create_table(
        "identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("value", sa.String(320), nullable=False),
        sa.Column("ip_key", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sa.UniqueConstraint("kind", "value", name="uq_identities_kind_value"),
    )
    op.create_index(op.f("ix_identities_ip_key"), "identities", ["ip_key"])

    op.create_table(
        "case_identities",
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("identity_id", sa.Integer(), nullable=False),
        sa.Column("links", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_identities_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["identity_id"],
            ["identities.id"],
            name=op.f("fk_case_identities_identity_id_identities"),
        ),
        sa.PrimaryKeyConstraint("case_id", "identity_id", name=op.f("pk_case_identities")),
    )
    op.create_index(
        "ix_case_identities_identity", "case_identities", ["identity_id", "links", "case_id"]
    )

    op.create_table(
        "dedupe_keys",
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_dedupe_keys_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_dedupe_keys")),
    )
    op.create_index(op.f("ix_dedupe_keys_case_id"), "dedupe_keys", ["case_id"])

    op.create_table(
        "thread_ids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_thread_ids_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_thread_ids")),
    )
    op.create_index(op.f("ix_thread_ids_message_id"), "thread_ids", ["message_id"])
    op.create_index(op.f("ix_thread_ids_case_id"), "thread_ids", ["case_id"])

    op.create_table(
        "notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_notes_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notes")),
    )
    op.create_index(op.f("ix_notes_case_id"), "notes", ["case_id"])

    op.create_table(
        "purges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("older_than_days", sa.Integer(), nullable=False),
        sa.Column("cutoff", sa.DateTime(timezone=True), nullable=False),
        sa.Column("case_count", sa.Integer(), nullable=False),
        sa.Column("report_count", sa.Integer(), nullable=False),
        sa.Column("case_ids", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purges")),
    )
    op.create_index(op.f("ix_events_at"), "events", ["at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_events_at"), table_name="events")
    for table in (
        "purges",
        "notes",
        "thread_ids",
        "dedupe_keys",
        "case_identities",
        "identities",
        "findings",
        "verdicts",
        "auth_results",
        "hops",
    ):
        op.drop_table(table)
    with op.batch_alter_table("originals") as batch:
        batch.drop_index(op.f("ix_originals_analysis_id"))
        batch.drop_constraint(op.f("fk_originals_analysis_id_analyses"), type_="foreignkey")
        batch.drop_column("analysis_id")
    op.drop_table("analyses")
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("joined_by")
    with op.batch_alter_table("cases") as batch:
        batch.drop_index("ix_cases_closed_at")
        batch.drop_index("ix_cases_status_created")
        batch.drop_index("ix_cases_office_created")
        batch.drop_index("ix_cases_assignee_created")
        batch.drop_column("closed_at")
        batch.drop_column("from_address")
        batch.create_index("ix_cases_status", ["status"])
        batch.create_index("ix_cases_office", ["office"])
        batch.create_index("ix_cases_assignee", ["assignee"])
