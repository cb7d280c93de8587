"""SQLite: `raw` becomes the last column of `reports` and of `originals`.

Why: the worker writes a big raw message (> 1 MiB, `store/blobs.py`) as `zeroblob(n)`
and then in pieces with SQLite's incremental blob I/O, so that neither pysqlite (which
copies a bound blob) nor SQLite's record builder holds a second and third copy of it.
SQLite keeps a zeroblob unexpanded only when it is the record's last column; anywhere
else it builds the whole record in memory (docs/performance.md, "Memory").

How: add `raw_last` (appended, so last), copy, drop `raw`, rename (SQLite >= 3.35 for
DROP COLUMN; an older SQLite keeps the order, and big blobs then cost what they cost
before). Indexes, views, triggers and foreign keys are untouched: no table is
rebuilt. The column keeps NOT NULL; it gains `DEFAULT x''` (ADD COLUMN needs one), which
the models do not name and nothing relies on.

PostgreSQL: nothing to do (its large values live out of line in TOAST; column order does
not matter there). Downgrade: nothing to undo (column order carries no meaning).

Revision ID: 0130
Revises: 0120
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlite3

from alembic import op

revision = "0130"
down_revision = "0120"
branch_labels = None
depends_on = None

TABLES = ("reports", "originals")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite" or sqlite3.sqlite_version_info < (3, 35, 0):
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ADD COLUMN raw_last BLOB NOT NULL DEFAULT x''")
        op.execute(f"UPDATE {table} SET raw_last = raw")
        op.execute(f"ALTER TABLE {table} DROP COLUMN raw")
        op.execute(f"ALTER TABLE {table} RENAME COLUMN raw_last TO raw")


def downgrade() -> None:
    pass
