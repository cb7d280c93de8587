"""The batch filer (`store.batch.save_reports`) against `save_report` report after report:
the same store, row for row, for batches that thread, de-duplicate, flood and open cases
(both databases)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from stopitd.config import IntakeSettings
from stopitd.store import db
from stopitd.store.batch import Filed, Filing, save_reports
from stopitd.store.cases import save_report
from stopitd.store.schema import Case
from tests.store.reports import ROOT, analysis_of, envelope, reply, report

FLOOD = IntakeSettings(flood_reports=3, flood_window=3600.0)


def filing(spool_id: str, raw: bytes, reporter: str = "jdoe@example.edu") -> Filing:
    return Filing(spool_id, envelope(reporter), raw, analysis_of(raw))


def fixtures() -> list[bytes]:
    folders = ("reports", "forwarded", "received", "auth")
    paths = sorted(p for sub in folders for p in (ROOT / "fixtures" / sub).glob("*.eml"))
    return [p.read_bytes() for p in paths]


def batches() -> list[list[Filing]]:
    """Three batches: in-batch duplicates, a digest join, a reply to a report of the same
    batch, a tag of an earlier batch's (closed) case, a reporter's flood and one original
    reported beyond the limit, and every report-shaped fixture."""
    first = [
        filing("a1", report(1, reporter="ann@example.edu"), "ann@example.edu"),
        filing("a2", report(2, sender="pest@harass.example", relay="185.220.101.7")),
        filing("a3", report(1, reporter="bob@example.org"), "bob@example.org"),
        filing(
            "a4",
            report(
                1,
                reporter="lee@example.edu",
                original_mid="AM0PR10MB3012.eurprd10.prod.outlook.com",
            ),
            "lee@example.edu",
        ),
        filing("a5", report(3, in_reply_to="r1-ann-1@example.edu")),
        *[filing(f"a-fix{n}", raw, "fix@example.net") for n, raw in enumerate(fixtures())],
    ]
    flood = [
        filing(f"b{n}", report(10 + n, reporter="f@x.example"), "f@x.example") for n in range(6)
    ]
    second = [
        *flood[:3],
        filing("b-tag", reply("[stopit #1]")),
        *[
            filing(f"b-dup{n}", report(1, reporter=f"u{n}@example.edu"), f"u{n}@example.edu")
            for n in range(4)
        ],
        *flood[3:],
        filing("b-again", report(2, reporter="zed@example.edu"), "zed@example.edu"),
    ]
    third = [
        filing("c1", report(20, sender="pest@harass.example", relay="185.220.101.9")),
        *flood[4:],  # already filed: idempotent
        filing("c2", report(21)),
        filing("c2", report(21)),  # the same spool id twice in one batch
    ]
    return [first, second, third]


def one_by_one(session: Session, filings: list[Filing]) -> list[Filed]:
    out = []
    for f in filings:
        before = session.scalar(text("SELECT count(*) FROM reports"))
        case_id = save_report(
            session,
            spool_id=f.spool_id,
            envelope=f.envelope,
            raw=f.raw,
            analysis=f.analysis,
            flood=FLOOD,
        )
        out.append(Filed(case_id, session.scalar(text("SELECT count(*) FROM reports")) != before))
    return out


def close_case_1(session: Session) -> None:
    case = session.get(Case, 1)
    assert case is not None
    case.status = "closed"


def fill(url: str, *, batched: bool) -> list[list[Filed]]:
    engine = db.make_engine(url, writer=True)
    out = []
    try:
        for n, filings in enumerate(batches()):
            with db.make_sessionmaker(engine)() as session, session.begin():
                if batched:
                    out.append(save_reports(session, filings, flood=FLOOD))
                else:
                    out.append(one_by_one(session, filings))
            if n == 0:
                with db.make_sessionmaker(engine)() as session, session.begin():
                    close_case_1(session)
    finally:
        engine.dispose()
    return out


_DUMP = {
    "cases": "SELECT id, status, subject, relay_ip, origin_ip, source_mode, from_address,"
    " closed_at IS NULL FROM cases",
    "reports": "SELECT id, spool_id, case_id, joined_by, sha256, reporter, subject, message_id"
    " FROM reports",
    "analyses": "SELECT a.report_id, a.analyzer_version, a.current, a.verified FROM analyses a",
    "originals": "SELECT report_id, case_id, position, how, grade, sha256, message_id,"
    " relay_ip, origin_ip FROM originals",
    "hops": "SELECT o.report_id, o.position, h.position, h.status, h.ip, h.trust FROM hops h"
    " JOIN originals o ON o.id = h.original_id",
    "verdicts": "SELECT o.report_id, o.position, v.mode, v.confidence, v.relay_ip FROM verdicts v"
    " JOIN originals o ON o.id = v.original_id",
    "auth": "SELECT o.report_id, o.position, a.source, a.method, a.domain, a.result"
    " FROM auth_results a JOIN originals o ON o.id = a.original_id",
    "findings": "SELECT an.report_id, f.original_id IS NULL, f.code, f.severity FROM findings f"
    " JOIN analyses an ON an.id = f.analysis_id",
    "keys": "SELECT key, case_id FROM dedupe_keys",
    "threads": "SELECT message_id, case_id, origin FROM thread_ids",
    "identities": "SELECT kind, value, ip_key FROM identities",
    "links": "SELECT ci.case_id, i.kind, i.value, ci.links FROM case_identities ci"
    " JOIN identities i ON i.id = ci.identity_id",
    "floods": "SELECT kind, key, count, case_id, flooded_at IS NULL FROM flood_windows",
    "events": "SELECT case_id, kind, CAST(detail AS TEXT) FROM events",
}


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: sorted(
                    (tuple(row) for row in conn.execute(text(query))), key=lambda r: repr(r)
                )
                for name, query in _DUMP.items()
            }
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        urls = [f"sqlite:///{tmp_path / f'{name}.db'}" for name in ("one", "batch")]
        for url in urls:
            db.upgrade(url)
        yield urls[0], urls[1]
        return
    server = request.getfixturevalue("pg_server")
    made = [server.url(server.create_database(template=server.template)) for _ in range(2)]
    yield made[0], made[1]


def test_a_batch_files_what_one_by_one_files(two_stores: tuple[str, str]) -> None:
    alone, batched = two_stores
    assert fill(batched, batched=True) == fill(alone, batched=False)
    expected, got = dump(alone), dump(batched)
    for table in _DUMP:
        assert got[table] == expected[table], table
    # the shapes the batches were built to show
    reports = {row[1]: row for row in got["reports"]}
    assert reports["a3"][2] == reports["a1"][2] and reports["a3"][3] == "duplicate"
    assert reports["a4"][2] == reports["a1"][2]  # by digest: Outlook's new Message-ID
    assert reports["a5"][3] == "thread" and reports["a5"][2] == reports["a1"][2]
    assert reports["b-tag"][3] == "thread"
    assert [reports[f"b{n}"][3] for n in range(6)] == ["new"] * 3 + ["flood"] * 3
    kinds = [row[1] for row in got["events"]]
    assert {"flood_detected", "reopened", "report_added", "created"} <= set(kinds)


def test_a_batch_already_filed_is_left_alone(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url, writer=True)
    filings = [filing("x1", report(1)), filing("x2", report(2)), filing("x3", report(1))]
    try:
        with db.make_sessionmaker(engine)() as session, session.begin():
            first = save_reports(session, filings)
        before = dump(sqlite_url)
        with db.make_sessionmaker(engine)() as session, session.begin():
            again = save_reports(session, filings)
    finally:
        engine.dispose()
    assert [f.case_id for f in again] == [f.case_id for f in first] == [1, 2, 1]
    assert [f.fresh for f in first] == [True] * 3 and [f.fresh for f in again] == [False] * 3
    assert dump(sqlite_url) == before


def test_a_batch_takes_a_few_statements_not_a_few_per_report(sqlite_url: str) -> None:
    from sqlalchemy import event

    engine: Engine = db.make_engine(sqlite_url, writer=True)
    statements = 0

    def count(*_args: Any) -> None:
        nonlocal statements
        statements += 1

    event.listen(engine, "before_cursor_execute", count)
    filings = [filing(f"s{n}", report(n % 8, reporter=f"r{n}@example.edu")) for n in range(32)]
    try:
        with db.make_sessionmaker(engine)() as session, session.begin():
            save_reports(session, filings, flood=FLOOD)
    finally:
        engine.dispose()
    assert statements < 40, statements  # one by one: about 25 per report
