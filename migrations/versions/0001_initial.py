"""Initial schema: cases, reports (raw bytes + sha256), originals, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("office", sa.String(length=64), nullable=True),
        sa.Column("assignee", sa.String(length=128), nullable=True),
        sa.Column("relay_ip", sa.String(length=45), nullable=False),
        sa.Column("origin_ip", sa.String(length=45), nullable=False),
        sa.Column("source_mode", sa.String(length=24), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
    )
    op.create_index(op.f("ix_cases_assignee"), "cases", ["assignee"], unique=False)
    op.create_index(op.f("ix_cases_created_at"), "cases", ["created_at"], unique=False)
    op.create_index(op.f("ix_cases_office"), "cases", ["office"], unique=False)
    op.create_index(op.f("ix_cases_origin_ip"), "cases", ["origin_ip"], unique=False)
    op.create_index(op.f("ix_cases_relay_ip"), "cases", ["relay_ip"], unique=False)
    op.create_index(op.f("ix_cases_source_mode"), "cases", ["source_mode"], unique=False)
    op.create_index(op.f("ix_cases_status"), "cases", ["status"], unique=False)
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_events_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index(op.f("ix_events_case_id"), "events", ["case_id"], unique=False)
    op.create_index(op.f("ix_events_kind"), "events", ["kind"], unique=False)
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("spool_id", sa.String(length=40), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reporter", sa.Text(), nullable=False),
        sa.Column("rcpt_tos", sa.JSON(), nullable=False),
        sa.Column("peer", sa.String(length=64), nullable=False),
        sa.Column("helo", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("analyzer_version", sa.String(length=32), nullable=False),
        sa.Column("analysis", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_reports_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("spool_id", name=op.f("uq_reports_spool_id")),
    )
    op.create_index(op.f("ix_reports_case_id"), "reports", ["case_id"], unique=False)
    op.create_index(op.f("ix_reports_sha256"), "reports", ["sha256"], unique=False)
    op.create_table(
        "originals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("how", sa.String(length=24), nullable=False),
        sa.Column("grade", sa.String(length=24), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("from_address", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("relay_ip", sa.String(length=45), nullable=False),
        sa.Column("origin_ip", sa.String(length=45), nullable=False),
        sa.Column("source_mode", sa.String(length=24), nullable=False),
        sa.Column("analysis", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_originals_case_id_cases")),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reports.id"], name=op.f("fk_originals_report_id_reports")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_originals")),
    )
    op.create_index(op.f("ix_originals_case_id"), "originals", ["case_id"], unique=False)
    op.create_index(op.f("ix_originals_from_address"), "originals", ["from_address"], unique=False)
    op.create_index(op.f("ix_originals_message_id"), "originals", ["message_id"], unique=False)
    op.create_index(op.f("ix_originals_origin_ip"), "originals", ["origin_ip"], unique=False)
    op.create_index(op.f("ix_originals_relay_ip"), "originals", ["relay_ip"], unique=False)
    op.create_index(op.f("ix_originals_report_id"), "originals", ["report_id"], unique=False)
    op.create_index(op.f("ix_originals_sha256"), "originals", ["sha256"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_originals_sha256"), table_name="originals")
    op.drop_index(op.f("ix_originals_report_id"), table_name="originals")
    op.drop_index(op.f("ix_originals_relay_ip"), table_name="originals")
    op.drop_index(op.f("ix_originals_origin_ip"), table_name="originals")
    op.drop_index(op.f("ix_originals_message_id"), table_name="originals")
    op.drop_index(op.f("ix_originals_from_address"), table_name="originals")
    op.drop_index(op.f("ix_originals_case_id"), table_name="originals")
    op.drop_table("originals")
    op.drop_index(op.f("ix_reports_sha256"), table_name="reports")
    op.drop_index(op.f("ix_reports_case_id"), table_name="reports")
    op.drop_table("reports")
    op.drop_index(op.f("ix_events_kind"), table_name="events")
    op.drop_index(op.f("ix_events_case_id"), table_name="events")
    op.drop_table("events")
    op.drop_index(op.f("ix_cases_status"), table_name="cases")
    op.drop_index(op.f("ix_cases_source_mode"), table_name="cases")
    op.drop_index(op.f("ix_cases_relay_ip"), table_name="cases")
    op.drop_index(op.f("ix_cases_origin_ip"), table_name="cases")
    op.drop_index(op.f("ix_cases_office"), table_name="cases")
    op.drop_index(op.f("ix_cases_created_at"), table_name="cases")
    op.drop_index(op.f("ix_cases_assignee"), table_name="cases")
    op.drop_table("cases")
