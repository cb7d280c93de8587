"""Two real stopitd daemons sharing one PostgreSQL store, fed over SMTP at the same time:
one case per distinct original, duplicates counted, related cases linked, a tagged reply
threaded into its case (the end-to-end proof of issue 6)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import func, select

from stopitd.store import db
from stopitd.store.queries import CaseFilter, list_cases, show_case
from stopitd.store.schema import Report
from tests.daemon_helpers import REPORT_ADDRESS, Daemon, running_daemon, wait_until
from tests.store.reports import reply, report

ORIGINALS = 8
REPORTERS = ("ann@example.edu", "bob@example.org", "cyd@example.net")


def _send(daemon: Daemon, reporter: str, raw: bytes) -> None:
    client = daemon.smtp()
    try:
        client.sendmail(reporter, [REPORT_ADDRESS], raw)
    finally:
        client.quit()


def _stored(url: str) -> int:
    engine = db.make_engine(url)
    try:
        with db.make_sessionmaker(engine)() as session:
            return int(session.scalar(select(func.count(Report.id))) or 0)
    finally:
        engine.dispose()


def test_two_daemons_on_one_postgres_store(tmp_path: Path, pg_url: str) -> None:
    with (
        running_daemon(tmp_path / "node-a", pg_url) as a,
        running_daemon(tmp_path / "node-b", pg_url) as b,
    ):
        jobs = []
        for n in range(ORIGINALS):
            for k, who in enumerate(REPORTERS):
                node = (a, b)[(n + k) % 2]  # each original reaches both nodes
                raw = report(n, reporter=who, sender=f"pest{n % 2}@harass.example")
                jobs.append((node, who, raw))
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda j: _send(*j), jobs))
        total = ORIGINALS * len(REPORTERS)
        wait_until(lambda: _stored(pg_url) == total, 120, f"{total} reports in the store")

        engine = db.make_engine(pg_url)
        with db.make_sessionmaker(engine)() as session:
            rows = list_cases(session, CaseFilter())
        assert len(rows) == ORIGINALS
        assert {(r["report_count"], r["reporter_count"]) for r in rows} == {(3, 3)}
        by_subject = {r["id"]: r for r in rows}
        groups: dict[int, list[int]] = {0: [], 1: []}
        with db.make_sessionmaker(engine)() as session:
            for case_id in by_subject:
                case = show_case(session, case_id)
                assert case is not None
                mid = case["originals"][0]["message_id"]
                n = int(mid[len("CAF8wq2u") : len("CAF8wq2u") + 6])
                groups[n % 2].append(case_id)
        for members in groups.values():
            for case_id in members:
                expected = sorted((m for m in members if m != case_id), reverse=True)
                assert by_subject[case_id]["related"] == expected

        # a reporter answers our acknowledgement, through the other node: same case
        target = groups[0][0]
        _send(b, "ann@example.edu", reply(f"[stopit #{target}]", reporter="ann@example.edu"))
        wait_until(lambda: _stored(pg_url) == total + 1, 60, "the reply in the store")
        with db.make_sessionmaker(engine)() as session:
            case = show_case(session, target)
            assert len(list_cases(session, CaseFilter())) == ORIGINALS
        engine.dispose()
        assert case is not None
        assert case["report_count"] == 4 and case["reporter_count"] == 3
        assert case["reports"][-1]["joined_by"] == "thread"
