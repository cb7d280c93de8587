"""Saving reports as cases and reading them back, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from stopitd.analysis import analyze
from stopitd.analysis.model import Envelope
from stopitd.analysis.policy import Policy
from stopitd.store import db
from stopitd.store.cases import CaseFilter, list_cases, save_report, show_case
from stopitd.store.schema import Case

ROOT = Path(__file__).resolve().parents[2]
REPORT = (ROOT / "fixtures" / "reports" / "thunderbird-attached.eml").read_bytes()
ENVELOPE = Envelope(
    mail_from="jdoe@example.edu",
    rcpt_tos=("stopit@localhost",),
    peer="127.0.0.1",
    helo="smtp.example.edu",
    received_at=datetime(2026, 11, 24, 3, 2, 12, tzinfo=UTC),
)


def _save(url: str, spool_id: str, raw: bytes = REPORT) -> int:
    engine = db.make_engine(url)
    maker = db.make_sessionmaker(engine)
    with maker() as session, session.begin():
        case_id = save_report(
            session,
            spool_id=spool_id,
            envelope=ENVELOPE,
            raw=raw,
            analysis=analyze(raw, ENVELOPE, Policy()),
        )
    engine.dispose()
    return case_id


def test_a_report_becomes_a_case_with_its_raw_bytes_and_original(store_url: str) -> None:
    case_id = _save(store_url, "019ab5f0-0000-7000-8000-000000000001")
    engine = db.make_engine(store_url)
    with db.make_sessionmaker(engine)() as session:
        data = show_case(session, case_id)
        case = session.get(Case, case_id)
        assert case is not None
        report = case.reports[0]
        assert report.raw == REPORT
        assert report.sha256 == hashlib.sha256(REPORT).hexdigest()
        assert report.reporter == "jdoe@example.edu"
        assert report.received_at == ENVELOPE.received_at
    engine.dispose()
    assert data is not None
    assert data["status"] == "new"
    assert data["subject"] == "you know what you did"
    assert data["tag"] == f"[stopit #{case_id}]"
    assert [o["message_id"] for o in data["originals"]] == [
        "CAF8wq2u1N5b0X+7mVq9pYdRk3hT=ZpLw4s8Xq@mail.gmail.com"
    ]
    assert [e["kind"] for e in data["events"]] == ["created"]


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
    a = _save(store_url, "019ab5f0-0000-7000-8000-00000000000a")
    b = _save(store_url, "019ab5f0-0000-7000-8000-00000000000b")
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
