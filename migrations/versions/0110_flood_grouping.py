"""Flood grouping: reports counted per reporter / per original and fixed window.

Revision ID: 0110
Revises: 0100
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0110"
down_revision = "0100"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flood_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("flooded_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_flood_windows_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flood_windows")),
        sa.UniqueConstraint("key", "window_start", name=op.f("uq_flood_windows_key_window_start")),
    )
    op.create_index(op.f("ix_flood_windows_case_id"), "flood_windows", ["case_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_flood_windows_case_id"), table_name="flood_windows")
    op.drop_table("flood_windows")
