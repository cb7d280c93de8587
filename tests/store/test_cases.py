"""Saving reports as cases and reading them back, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from stopitd.store import db
from stopitd.store.cases import CaseFilter, list_cases, show_case
from stopitd.store.schema import Case
from tests.store.reports import FIXTURE, report, save


def _save(url: str, spool_id: str, raw: bytes = FIXTURE) -> int:
    return save(url, spool_id, raw)


def test_a_report_becomes_a_case_with_its_raw_bytes_and_original(store_url: str) -> None:
    case_id = _save(store_url, "019ab5f0-0000-7000-8000-000000000001")
    engine = db.make_engine(store_url)
    with db.make_sessionmaker(engine)() as session:
        data = show_case(session, case_id)
        case = session.get(Case, case_id)
        assert case is not None
        stored = case.reports[0]
        assert stored.raw == FIXTURE
        assert stored.sha256 == hashlib.sha256(FIXTURE).hexdigest()
        assert stored.reporter == "jdoe@example.edu"
        assert stored.received_at == datetime(2026, 11, 24, 3, 2, 12, tzinfo=UTC)
    engine.dispose()
    assert data is not None
    assert data["status"] == "new"
    assert data["subject"] == "you know what you did"
    assert data["tag"] == f"[stopit #{case_id}]"
    assert [o["message_id"] for o in data["originals"]] == [
        "CAF8wq2u1N5b0X+7mVq9pYdRk3hT=ZpLw4s8Xq@mail.gmail.com"
    ]
    assert [e["kind"] for e in data["events"]] == ["created"]
    assert {"kind": "from_address", "value": "k.harlow.1987@gmail.com", "links": True} in data[
        "identities"
    ]


def test_saving_the_same_spool_entry_twice_is_one_case(store_url: str) -> None:
    first = _save(store_url, "019ab5f0-0000-7000-8000-000000000002")
    again = _save(store_url, "019ab5f0-0000-7000-8000-000000000002")
    assert first == again
    engine = db.make_engine(store_url)
    with db.make_sessionmaker(engine)() as session:
        rows = list_cases(session, CaseFilter())
    engine.dispose()
    assert [r["id"] for r in rows] == [first]
    assert rows[0]["report_count"] == 1


def test_list_filters_by_status_and_time(store_url: str) -> None:
    a = _save(store_url, "019ab5f0-0000-7000-8000-00000000000a", report(1))
    b = _save(store_url, "019ab5f0-0000-7000-8000-00000000000b", report(2))
    engine = db.make_engine(store_url)
    maker = db.make_sessionmaker(engine)
    with maker() as session, session.begin():
        case = session.get(Case, a)
        assert case is not None
        case.status = "closed"
    with maker() as session:
        assert [r["id"] for r in list_cases(session, CaseFilter(status="closed"))] == [a]
        assert [r["id"] for r in list_cases(session, CaseFilter(status="new"))] == [b]
        later = datetime.now(UTC) + timedelta(days=1)
        assert list_cases(session, CaseFilter(since=later)) == []
        assert len(list_cases(session, CaseFilter(until=later))) == 2
    engine.dispose()
