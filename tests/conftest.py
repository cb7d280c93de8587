from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from stopitd.store import db
from tests.pg import PgServer

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HYPOTHESIS_PROFILE", "ci")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the whole run, with a migrated template database."""
    server = PgServer()
    server.start()
    template = server.create_database()
    db.upgrade(server.url(template))
    server.template = template  # type: ignore[attr-defined]
    yield server
    server.destroy()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, migrated PostgreSQL database for one test."""
    return pg_server.url(pg_server.create_database(template=pg_server.template))  # type: ignore[attr-defined]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh, migrated SQLite file for one test."""
    url = f"sqlite:///{tmp_path / 'stopitd.db'}"
    db.upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each store test runs on both databases."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


def _hypothesis_profiles() -> None:
    from hypothesis import settings

    settings.register_profile("ci", deadline=None, derandomize=True, max_examples=200)
    settings.register_profile("dev", deadline=None, max_examples=200)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


_hypothesis_profiles()


@pytest.fixture(autouse=True)
def restore_umask() -> Iterator[None]:
    """The CLI sets umask 077 for its process; in-process CLI tests must not leak it into
    later tests (which create files other users must read)."""
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)
