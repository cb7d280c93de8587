"""`cases list --text` through its index (migration 0120) finds exactly what a scan finds.

PostgreSQL serves the filter from pg_trgm GIN indexes; SQLite from the FTS5 trigram table
`cases_text`, kept in step by triggers, with every candidate re-checked. The reference in
each test is the same comparison run as a plain scan (on PostgreSQL with index scans
turned off), so a term the index misses or over-matches shows up as a difference.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, or_, select, text, update
from sqlalchemy.orm import Session

from stopitd.store import db, queries
from stopitd.store.queries import CaseFilter, list_cases
from stopitd.store.schema import Case

START = datetime(2026, 11, 1, tzinfo=UTC)

# (subject, From address) of the cases, oldest first: case ids are 1, 2, ...
CASES = [
    ("you know what you did", "user12345@gmail.com"),
    ("you know what you did", "user123456@gmail.com"),
    ("Last WARNING", "user1234@gmail.com"),
    ("watch out", "troll.account77@gmail.com"),
    ("Ты знаешь, что ты сделал", "anon@mail.ru"),
    ("ТЫ ЗНАЕШЬ", "anon2@mail.ru"),
    ("Ärger im Büro", "chef@firma.de"),
    ("ärger im büro", "chef2@firma.de"),
    ("café crème à 100% (50_50)", "o'brien@example.ie"),
    ('she said "leave" [now]', "x+tag@example.org"),
    ("Straße", "strasse@example.de"),
    ("", ""),
]

TERMS = [
    "user12345@",  # rare, with punctuation: not user1234@, not user123456@
    "USER12345",  # any case (ASCII)
    "you know",  # common, with a space
    "warning",
    "out",
    "Ты знаешь",  # non-ASCII, exact case
    "ты знаешь",  # non-ASCII, other case: each database's own case rules decide
    "ТЫ ЗНАЕШЬ",
    "Büro",
    "BÜRO",
    "ärger",
    "100%",  # LIKE wildcards are literal
    "(50_50)",
    "o'brien",
    '"leave"',  # FTS5 query syntax is literal too
    "[now]",
    "x+tag@",
    "Straße",
    "STRASSE",
    "ss",  # under three characters: no trigram to look up
    "é",
    "nothing like this anywhere",
    "gmail.com",
]


@pytest.fixture
def session(store_url: str) -> Iterator[Session]:
    yield from _filled(store_url)


@pytest.fixture
def sqlite_session(sqlite_url: str) -> Iterator[Session]:
    yield from _filled(sqlite_url)


@pytest.fixture
def pg_session(pg_url: str) -> Iterator[Session]:
    yield from _filled(pg_url)


def _filled(url: str) -> Iterator[Session]:
    engine = db.make_engine(url)
    maker = db.make_sessionmaker(engine)
    with maker() as s:
        for n, (subject, sender) in enumerate(CASES):
            s.add(Case(subject=subject, from_address=sender, created_at=START + timedelta(hours=n)))
        s.commit()
        yield s
    engine.dispose()


def _scan(session: Session, term: str) -> list[int]:
    """The filter's comparison as a plain scan, newest first."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL enable_indexscan = off"))
        session.execute(text("SET LOCAL enable_bitmapscan = off"))
    ids = list(
        session.scalars(
            select(Case.id)
            .where(
                or_(
                    Case.subject.icontains(term, autoescape=True),
                    Case.from_address.icontains(term, autoescape=True),
                )
            )
            .order_by(Case.created_at.desc(), Case.id.desc())
        )
    )
    session.rollback()
    return ids


def _listed(session: Session, term: str) -> list[int]:
    ids = [c["id"] for c in list_cases(session, CaseFilter(text=term))]
    session.rollback()
    return ids


def test_indexed_filter_equals_the_scan(session: Session) -> None:
    for term in TERMS:
        assert _listed(session, term) == _scan(session, term), term


def test_what_the_filter_finds(session: Session) -> None:
    """The documented meaning, independent of the index: a substring, in any case."""
    assert _listed(session, "user12345@") == [1]
    assert _listed(session, "USER12345") == [2, 1]
    assert _listed(session, "you know") == [2, 1]
    assert _listed(session, "warning") == [3]
    if session.get_bind().dialect.name == "postgresql":  # the server's Unicode case rules
        assert _listed(session, "Ты знаешь") == [6, 5]
        assert _listed(session, "BÜRO") == [8, 7]
    else:  # SQLite's LIKE and lower() fold ASCII letters only
        assert _listed(session, "Ты знаешь") == [5]
        assert _listed(session, "BÜRO") == []
    assert _listed(session, "Büro") == [8, 7]  # B and b differ in ASCII case only
    assert _listed(session, "100%") == [9]
    assert _listed(session, "(50_50)") == [9]
    assert _listed(session, "50%") == []
    assert _listed(session, '"leave"') == [10]
    assert _listed(session, "x+tag@") == [10]
    assert _listed(session, "ss") == [11]
    assert _listed(session, "nothing like this anywhere") == []


def test_many_candidates_fall_back_to_the_scan(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queries, "TEXT_CANDIDATES", 1)
    for term in ("gmail.com", "you know", "user12345@"):
        assert _listed(session, term) == _scan(session, term), term


def test_index_follows_updates_and_deletes(session: Session) -> None:
    session.execute(update(Case).where(Case.id == 4).values(subject="a brand new subject line"))
    session.execute(update(Case).where(Case.id == 3).values(from_address="renamed@example.net"))
    session.execute(delete(Case).where(Case.id == 2))
    session.commit()
    assert _listed(session, "brand new") == [4]
    assert _listed(session, "watch out") == []
    assert _listed(session, "renamed@") == [3]
    assert _listed(session, "user1234@") == []
    assert _listed(session, "user123456@") == []
    for term in TERMS:
        assert _listed(session, term) == _scan(session, term), term
    if session.get_bind().dialect.name == "sqlite":
        # FTS5 compares its index with the `cases` rows and raises on any difference
        session.execute(text("INSERT INTO cases_text (cases_text) VALUES ('integrity-check')"))


def test_sqlite_answers_from_the_text_table(sqlite_session: Session) -> None:
    """The trigram table is what answers on SQLite: a case missing from it is not found."""
    session = sqlite_session
    row = session.execute(select(Case.subject, Case.from_address).where(Case.id == 1)).one()
    session.execute(
        text(
            "INSERT INTO cases_text (cases_text, rowid, subject, from_address)"
            " VALUES ('delete', 1, :s, :f)"
        ),
        {"s": row.subject, "f": row.from_address},
    )
    assert _listed(session, "user12345@") == []
    assert _scan(session, "user12345@") == [1]


def test_sqlite_without_the_text_table_scans(sqlite_session: Session) -> None:
    """An SQLite without FTS5 trigram gets no table from 0120; the filter still works."""
    session = sqlite_session
    for trigger in ("cases_text_insert", "cases_text_delete", "cases_text_update"):
        session.execute(text(f"DROP TRIGGER {trigger}"))
    session.execute(text("DROP TABLE cases_text"))
    session.commit()
    for term in TERMS:
        assert _listed(session, term) == _scan(session, term), term


def test_postgres_plan_uses_trigrams(pg_session: Session) -> None:
    session = pg_session
    session.execute(text("SET LOCAL enable_seqscan = off"))
    query = queries._filtered(session, CaseFilter(text="user12345@"))
    compiled = query.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
    plan = "\n".join(session.scalars(text(f"EXPLAIN {compiled}")))
    assert "ix_cases_subject_trgm" in plan and "ix_cases_from_address_trgm" in plan, plan
