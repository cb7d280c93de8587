"""The staff views of docs/queries.md answer correctly on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text, update

from stopitd.store import actions, db
from stopitd.store.schema import Case, Event
from tests.store.reports import report, save


def test_views_answer_the_staff_questions(store_url: str) -> None:
    a = save(store_url, "s-1", report(1, sender="pest@harass.example"))
    b = save(store_url, "s-2", report(2, sender="pest@harass.example"))
    c = save(store_url, "s-3", report(3, sender="solo@other.example"))
    d = save(store_url, "s-4", report(4, sender="gone@other.example"))
    engine = db.make_engine(store_url)
    maker = db.make_sessionmaker(engine)
    created = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    with maker() as session, session.begin():
        session.execute(update(Case).values(created_at=created))
        actions.route(session, a, "title-ix", "alice")
        actions.route(session, b, "title-ix", "alice")
        actions.assign(session, b, "carol", "alice")
        actions.close(session, d, "alice")
        session.execute(
            update(Event)
            .where(Event.case_id == a, Event.actor == "alice")
            .values(at=created + timedelta(hours=2, minutes=30))
        )
    with maker() as session:
        offices = session.execute(
            text("SELECT office, open_cases, unassigned FROM open_cases_per_office ORDER BY office")
        ).all()
        assert [tuple(r) for r in offices] == [("", 1, 1), ("title-ix", 2, 1)]
        repeat = session.execute(
            text("SELECT kind, value, cases FROM repeat_sources ORDER BY kind, value")
        ).all()
        assert [tuple(r) for r in repeat] == [
            ("envelope_sender", "pest@harass.example", 2),
            ("from_address", "pest@harass.example", 2),
        ]
        first = dict(
            session.execute(
                text("SELECT case_id, seconds_to_first_action FROM case_first_action")
            ).all()
        )
        assert round(float(first[a])) == 9000
        assert first[c] is None  # nobody has acted on it yet
    engine.dispose()
