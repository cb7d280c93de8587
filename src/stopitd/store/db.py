"""Engine and sessions from a URL; migrations (alembic) and the schema-current check.

alembic (~9 MB with what it loads) is imported by the functions that use it: the daemon's
worker checks its schema with ``check_revision`` against the head the daemon's start-up
check found, so it never loads alembic (issue 9's memory target).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from stopitd.errors import SchemaBehindError, StoreError

if TYPE_CHECKING:
    from alembic.config import Config


def migrations_dir() -> Path:
    """The packaged migrations (wheel), else the checkout's (editable install)."""
    packaged = Path(str(importlib.resources.files("stopitd"))) / "migrations"
    if (packaged / "env.py").is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[3] / "migrations"
    if (checkout / "env.py").is_file():
        return checkout
    raise StoreError("the alembic migrations are missing from this installation")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL with ``synchronous=FULL``: every commit fsyncs the WAL before it returns.

    The worker unlinks a spool entry as soon as the transaction that saved it commits, so
    that commit must survive a power cut. ``NORMAL`` (WAL's usual setting) only syncs at
    checkpoints: a power cut could roll back the last commits while the unlinks of their
    spool entries survive, and accepted reports would be lost. The worker saves a batch of
    entries per transaction, so FULL costs one fsync per batch, not one per report.
    """
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_own_transactions(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # pysqlite must not BEGIN (or COMMIT) on its own


def _sqlite_begin_immediate(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, writer: bool = False) -> Engine:
    """SQLite (WAL, busy timeout, folder created) or PostgreSQL via psycopg 3.

    ``writer`` (the worker process): on SQLite every transaction is a real one, begun
    with ``BEGIN IMMEDIATE``. pysqlite on its own only opens a transaction at the first
    INSERT/UPDATE and leaves SELECT and SAVEPOINT outside it, so a SAVEPOINT (every
    ``save_report``) *started* the transaction and its RELEASE committed it: one commit per
    savepoint, and a batch was never one transaction. IMMEDIATE takes the write lock at
    BEGIN (waiting up to the busy timeout), so a transaction that reads and then writes
    never fails because another process committed in between.
    """
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args: dict[str, Any] = {"timeout": 30}
        if writer:
            # pysqlite keeps each cached statement's last bound values until it runs again:
            # the INSERT of a report kept a copy of its raw bytes (25 MB at the size limit)
            # in the worker after every big report. Statements are prepared afresh instead.
            connect_args["cached_statements"] = 0
        engine = create_engine(parsed, connect_args=connect_args)
        event.listen(engine, "connect", _sqlite_pragmas)
        if writer:
            event.listen(engine, "connect", _sqlite_own_transactions)
            event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_engine(parsed, pool_pre_ping=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    if head is None:
        raise StoreError("the migration chain has no head")
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate to `revision`. On SQLite, foreign keys are off while tables are rebuilt
    (batch mode copies a table and drops the old one) and checked afterwards."""
    from alembic import command

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:  # a no-op inside a transaction: pysqlite has none open here
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()
            with conn.begin():
                cfg = alembic_config(url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
            if sqlite:
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()
                if broken:
                    raise StoreError(f"the migration left broken references: {broken[:5]}")
    finally:
        engine.dispose()


def check_current(engine: Engine) -> None:
    """Refuse to work on a database whose schema is not this stopitd's head."""
    _refuse_behind(current_revision(engine), head_revision())


def stored_revision(engine: Engine) -> str | None:
    """The revision in ``alembic_version`` (what alembic reads), without loading alembic."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:
        raise SchemaBehindError(f"the case store records several schema heads: {sorted(rows)}")
    return str(rows[0]) if rows else None


def check_revision(engine: Engine, head: str) -> None:
    """``check_current`` against a head found before (the daemon's start-up check)."""
    _refuse_behind(stored_revision(engine), head)


def _refuse_behind(current: str | None, head: str) -> None:
    if current != head:
        state = "empty (never migrated)" if current is None else f"at revision {current}"
        raise SchemaBehindError(
            f"the case store is {state}, this stopitd needs {head}: "
            "run `stopitd db upgrade` (with the same --config) and start again"
        )
