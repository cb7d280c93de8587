"""`sources top` counts: with and without `--since` (whose SQLite plan starts from the
recent cases, docs/performance.md "Case store"), on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update

from stopitd.store import db
from stopitd.store.queries import top_sources
from stopitd.store.schema import Case
from tests.store.reports import report, save


def test_since_counts_only_the_recent_cases_and_their_reports(store_url: str) -> None:
    pest = [
        save(store_url, f"t-{n}", report(n, sender="pest@harass.example", relay="185.220.101.7"))
        for n in range(3)
    ]
    save(
        store_url,
        "t-dup",
        report(2, reporter="ann@example.edu", sender="pest@harass.example", relay="185.220.101.7"),
        "ann@example.edu",
    )
    save(store_url, "t-other", report(9, sender="x@other.example"))
    engine = db.make_engine(store_url)
    try:
        sessions = db.make_sessionmaker(engine)
        with sessions() as session, session.begin():
            session.execute(
                update(Case)
                .where(Case.id.in_(pest[:2]))
                .values(created_at=datetime(2020, 1, 1, tzinfo=UTC))
            )
        with sessions() as session:
            every = top_sources(session, kind="from_address")
            recent = top_sources(
                session, kind="from_address", since=datetime(2021, 1, 1, tzinfo=UTC)
            )
            relays = top_sources(session, kind="relay_ip", since=datetime(2021, 1, 1, tzinfo=UTC))
    finally:
        engine.dispose()

    def counts(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
        return [(r["value"], r["cases"], r["reports"]) for r in rows]

    assert counts(every) == [("pest@harass.example", 3, 4), ("x@other.example", 1, 1)]
    assert every[0]["first_seen"] == "2020-01-01T00:00:00Z"
    assert counts(recent) == [("pest@harass.example", 1, 2), ("x@other.example", 1, 1)]
    assert recent[0]["first_seen"] == recent[0]["last_seen"] != "2020-01-01T00:00:00Z"
    assert counts(relays)[0] == ("185.220.101.7", 1, 2)
