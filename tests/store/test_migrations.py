"""The migrations and the models agree, on SQLite and PostgreSQL; one head only."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from stopitd.errors import SchemaBehindError
from stopitd.store import db
from stopitd.store.schema import Base


def test_one_alembic_head() -> None:
    script = ScriptDirectory.from_config(db.alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, "merge the migration branches: rebase down_revision"


def test_models_and_migrations_agree(store_url: str) -> None:
    engine = db.make_engine(store_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
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
