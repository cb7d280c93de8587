"""An index for `cases list --text` (substring of the subject or the From address).

PostgreSQL: the `pg_trgm` extension (created here; it is a trusted extension, so the
database owner may create it) and a trigram GIN index on `subject` and on `from_address`,
which serves the filter's `ILIKE '%...%'`.

SQLite: an external-content FTS5 table `cases_text` over the same two columns with the
`trigram` tokenizer (SQLite >= 3.34), kept in step with `cases` by triggers. The filter
uses it to find candidate cases and re-checks each with the plain comparison, so results
are exactly those of a scan. Without FTS5 or the trigram tokenizer the table is not
created and the filter scans, as before this revision.

A later migration that rebuilds `cases` on SQLite (batch mode copies the table) drops
these triggers with the old table: re-create them there (`create_sqlite_text_index`).

Revision ID: 0120
Revises: 0110
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from alembic import op

revision = "0120"
down_revision = "0110"
branch_labels = None
depends_on = None

PG_INDEXES = {
    "ix_cases_subject_trgm": "subject",
    "ix_cases_from_address_trgm": "from_address",
}

SQLITE_TEXT_INDEX = [
    "CREATE VIRTUAL TABLE cases_text USING fts5(subject, from_address,"
    " content='cases', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER cases_text_insert AFTER INSERT ON cases BEGIN"
    " INSERT INTO cases_text (rowid, subject, from_address)"
    " VALUES (new.id, new.subject, new.from_address); END",
    "CREATE TRIGGER cases_text_delete AFTER DELETE ON cases BEGIN"
    " INSERT INTO cases_text (cases_text, rowid, subject, from_address)"
    " VALUES ('delete', old.id, old.subject, old.from_address); END",
    "CREATE TRIGGER cases_text_update AFTER UPDATE OF subject, from_address ON cases BEGIN"
    " INSERT INTO cases_text (cases_text, rowid, subject, from_address)"
    " VALUES ('delete', old.id, old.subject, old.from_address);"
    " INSERT INTO cases_text (rowid, subject, from_address)"
    " VALUES (new.id, new.subject, new.from_address); END",
    "INSERT INTO cases_text (cases_text) VALUES ('rebuild')",
]


def sqlite_has_trigram(conn: sa.Connection) -> bool:
    """FTS5 compiled in and the trigram tokenizer there (SQLite >= 3.34): try it."""
    if sqlite3.sqlite_version_info < (3, 34, 0):
        return False
    try:
        conn.exec_driver_sql(
            "CREATE VIRTUAL TABLE temp.stopitd_probe USING fts5(a, tokenize='trigram')"
        )
    except sa.exc.OperationalError:
        return False
    conn.exec_driver_sql("DROP TABLE temp.stopitd_probe")
    return True


def create_sqlite_text_index() -> None:
    for statement in SQLITE_TEXT_INDEX:
        op.execute(statement)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, column in PG_INDEXES.items():
            op.execute(f"CREATE INDEX {name} ON cases USING gin ({column} gin_trgm_ops)")
    elif bind.dialect.name == "sqlite" and sqlite_has_trigram(bind):
        create_sqlite_text_index()


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name in PG_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    elif bind.dialect.name == "sqlite":
        for trigger in ("cases_text_insert", "cases_text_delete", "cases_text_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS cases_text")
