"""The migrations and the models agree, on SQLite and PostgreSQL; one head only."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from stopitd.errors import SchemaBehindError
from stopitd.store import db
from stopitd.store.schema import Base, include_name


def test_one_alembic_head() -> None:
    script = ScriptDirectory.from_config(db.alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, "merge the migration branches: rebase down_revision"


def test_models_and_migrations_agree(store_url: str) -> None:
    engine = db.make_engine(store_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": include_name}
        )
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == [], f"models differ from the migrations: {diff}"


def test_schema_check_refuses_an_empty_database(tmp_path: object) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path}/empty.db")
    try:
        db.check_current(engine)
    except SchemaBehindError as e:
        assert "stopitd db upgrade" in str(e)
    else:
        raise AssertionError("an unmigrated database was accepted")
    finally:
        engine.dispose()


def test_schema_check_accepts_a_migrated_database(store_url: str) -> None:
    engine = db.make_engine(store_url)
    db.check_current(engine)
    assert db.current_revision(engine) == db.head_revision()
    engine.dispose()


def _fresh_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    server = request.getfixturevalue("pg_server")
    return str(server.url(server.create_database()))


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_upgrade_from_0001_keeps_reports_and_gives_them_an_analysis(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _fresh_url(kind, tmp_path, request)
    db.upgrade(url, "0001")
    engine = db.make_engine(url)
    now = datetime(2026, 11, 24, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO cases (id, status, subject, created_at, updated_at, relay_ip,"
                " origin_ip, source_mode) VALUES (1, 'closed', 's', :t, :t, '', '', 'unknown')"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO reports (id, spool_id, case_id, received_at, reporter, rcpt_tos,"
                " peer, helo, raw, sha256, size, subject, message_id, analyzer_version,"
                " analysis, created_at) VALUES (1, 'sp', 1, :t, 'r@x', '[]', '', '', :raw,"
                " 'h', 3, '', '', '0.0.1', :a, :t)"
            ),
            {"t": now, "raw": b"abc", "a": '{"schema_version": 1, "originals": []}'},
        )
        conn.execute(
            text(
                "INSERT INTO originals (id, report_id, case_id, position, how, grade, raw,"
                " sha256, message_id, from_address, subject, relay_ip, origin_ip,"
                " source_mode, analysis) VALUES (1, 1, 1, 0, 'attachment', 'full-message',"
                " :raw, 'h', 'm@x', 'f@x', 's', '', '', 'unknown', '{}')"
            ),
            {"raw": b"abc"},
        )
    engine.dispose()
    db.upgrade(url)
    engine = db.make_engine(url)
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT a.analyzer_version, a.current, o.analysis_id = a.id FROM analyses a"
                " JOIN originals o ON o.report_id = a.report_id"
            )
        ).one()
        assert (row[0], bool(row[1]), bool(row[2])) == ("0.0.1", True, True)
        for table in ("reports", "originals"):  # 0130 moves `raw` to the end on SQLite
            assert bytes(conn.execute(text(f"SELECT raw FROM {table}")).scalar_one()) == b"abc"
        if kind == "sqlite":  # case ids are never reused after a purge
            sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'cases'"))
            assert "AUTOINCREMENT" in sql.scalar_one()
    engine.dispose()
