"""Flood grouping on both databases: a reporter beyond the rate gets one flood case per
window, one original beyond the rate stays one flagged case, and several nodes racing on
one PostgreSQL store neither lose a count nor open a second flood case."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from stopitd import config
from stopitd.analysis.model import Analysis
from stopitd.config import IntakeSettings
from stopitd.errors import ConfigError
from stopitd.store import db
from stopitd.store.cases import CaseFilter, list_cases, save_report, show_case
from stopitd.store.grouping import FloodWindow, window_start
from stopitd.store.retention import purge
from stopitd.store.schema import Case, DedupeKey, Report
from tests.store.reports import analysis_of, envelope, report

RATE = IntakeSettings(flood_reports=5, flood_window=3600.0)
T0 = datetime(2026, 11, 24, 3, 2, 12, tzinfo=UTC)  # tests/store/reports.py's received_at


class Store:
    """One engine on the test database; saves as the worker does (one transaction each)."""

    def __init__(self, url: str) -> None:
        self.engine = db.make_engine(url)
        self.maker = db.make_sessionmaker(self.engine)

    def save(
        self,
        spool_id: str,
        raw: bytes,
        reporter: str,
        *,
        analysis: Analysis | None = None,
        at: datetime = T0,
        flood: IntakeSettings | None = RATE,
    ) -> int:
        with self.maker() as session, session.begin():
            return save_report(
                session,
                spool_id=spool_id,
                envelope=replace(envelope(reporter), received_at=at),
                raw=raw,
                analysis=analysis or analysis_of(raw),
                flood=flood,
            )

    def cases(self) -> list[dict[str, Any]]:
        with self.maker() as session:
            return list_cases(session, CaseFilter())

    def show(self, case_id: int) -> dict[str, Any]:
        with self.maker() as session:
            data = show_case(session, case_id)
        assert data is not None
        return data

    def count(self, what: Any) -> int:
        with self.maker() as session:
            return int(session.scalar(select(func.count()).select_from(what)) or 0)

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def store(store_url: str) -> Any:
    s = Store(store_url)
    yield s
    s.close()


def _distinct(n: int, reporter: str) -> bytes:
    return report(n, reporter=reporter, sender=f"pest{n}@harass.example")


def test_reporter_beyond_the_rate_gets_one_flood_case_and_keeps_every_report(
    store: Store,
) -> None:
    flooder, good = "mallory@example.net", "ann@example.edu"
    ids = [store.save(f"f-{n:02d}", _distinct(n, flooder), flooder) for n in range(12)]
    own = store.save("g-1", _distinct(100, good), good)  # a well-behaved reporter, same window

    assert len(set(ids[:5])) == 5, "below the rate every distinct original opens its case"
    assert len(set(ids[5:])) == 1, "beyond it, one flood case for the window"
    flood_id = ids[5]
    assert flood_id not in ids[:5] and own not in ids
    assert store.count(Report) == 13  # every report stored
    rows = {r["id"]: r for r in store.cases()}
    assert len(rows) == 7  # 5 + 1 flood + the good reporter's own
    assert rows[flood_id]["flood"] == "reporter"
    assert rows[flood_id]["report_count"] == 7 and rows[flood_id]["reporter_count"] == 1
    assert all(rows[i]["flood"] is None for i in (*ids[:5], own))

    case = store.show(flood_id)
    assert [r["joined_by"] for r in case["reports"]] == ["flood"] * 7
    created = case["events"][0]
    assert created["kind"] == "created"
    assert created["detail"]["flood"] == "reporter"
    assert created["detail"]["report"] == "f-05"
    assert created["detail"]["limit"] == 5 and created["detail"]["window_s"] == 3600.0
    assert created["detail"]["window_start"] == "2026-11-24T03:00:00Z"
    assert "mallory" not in str(created), "the reporter's address is not in the flood record"
    # the flood's originals are kept (evidence) and the case got a source from them
    assert len(case["originals"]) == 7
    assert case["source"]["relay_ip"] == "198.51.100.25"


def test_a_flooded_original_reported_by_someone_else_opens_their_own_case(
    store: Store,
) -> None:
    """A harasser flooding stopit@ with copies of their mail must not bury a victim's
    report of that mail in the flood case."""
    flooder = "mallory@example.net"
    for n in range(7):
        store.save(f"f-{n}", _distinct(n, flooder), flooder)
    flood_id = store.save("f-x", _distinct(50, flooder), flooder)
    victim = store.save("v-1", _distinct(50, "vic@example.edu"), "vic@example.edu")
    assert victim != flood_id
    assert store.show(victim)["reports"][0]["joined_by"] == "new"
    with store.maker() as session:
        keyed = set(session.scalars(select(DedupeKey.case_id)))
    assert flood_id not in keyed


def test_hundreds_of_copies_of_one_original_stay_one_case_with_the_count(
    store: Store, store_url: str
) -> None:
    """Hundreds of copies (300 on SQLite, 150 on PostgreSQL: the count is one integer row
    per window, so a thousand proves no more and costs minutes on a loaded CI machine):
    one case, the exact count, flagged once. Saved 50 to a transaction, as a batching
    worker would."""
    copies = 300 if store_url.startswith("sqlite") else 150
    raw = report(3, reporter="mallory@example.net")
    analysis = analysis_of(raw)
    ids = set()
    for batch in range(0, copies, 50):
        with store.maker() as session, session.begin():
            for n in range(batch, batch + 50):
                ids.add(
                    save_report(
                        session,
                        spool_id=f"c-{n:04d}",
                        envelope=replace(envelope("mallory@example.net"), received_at=T0),
                        raw=raw,
                        analysis=analysis,
                        flood=RATE,
                    )
                )
    assert len(ids) == 1
    (case_id,) = ids
    (row,) = store.cases()
    assert row["report_count"] == copies and row["flood"] == "original"
    case = store.show(case_id)
    flagged = [e for e in case["events"] if e["kind"] == "flood_detected"]
    assert len(flagged) == 1, "flagged once per window, not once per copy"
    assert flagged[0]["detail"]["report"] == "c-0005"  # the 6th copy is beyond 5
    assert store.count(Case) == 1
    with store.maker() as session:
        counted = session.scalars(select(FloodWindow.count).where(FloodWindow.kind == "original"))
        assert list(counted) == [copies]


def test_the_next_window_counts_afresh(store: Store) -> None:
    flooder = "mallory@example.net"
    first = [store.save(f"a-{n}", _distinct(n, flooder), flooder) for n in range(7)]
    later = T0 + timedelta(hours=1)
    second = [
        store.save(f"b-{n}", _distinct(100 + n, flooder), flooder, at=later) for n in range(7)
    ]
    assert len(set(first)) == 6 and len(set(second)) == 6
    assert first[-1] != second[-1]
    floods = [r for r in store.cases() if r["flood"] == "reporter"]
    assert sorted(r["id"] for r in floods) == sorted({first[-1], second[-1]})
    starts = {store.show(r["id"])["events"][0]["detail"]["window_start"] for r in floods}
    assert starts == {"2026-11-24T03:00:00Z", "2026-11-24T04:00:00Z"}


def test_replies_and_duplicates_from_a_flooder_still_join_their_case(store: Store) -> None:
    flooder = "mallory@example.net"
    ids = [store.save(f"f-{n}", _distinct(n, flooder), flooder) for n in range(8)]
    # the same original as case ids[0], beyond the rate: it joins that case, not the flood
    again = store.save("f-dup", _distinct(0, flooder), flooder)
    assert again == ids[0]


@pytest.mark.parametrize("flood", [None, IntakeSettings(flood_reports=0)])
def test_grouping_off(store: Store, flood: IntakeSettings | None) -> None:
    ids = [
        store.save(f"f-{n}", _distinct(n, "m@example.net"), "m@example.net", flood=flood)
        for n in range(8)
    ]
    assert len(set(ids)) == 8
    assert all(r["flood"] is None for r in store.cases())
    assert store.count(FloodWindow) == 0


def test_window_start_is_aligned_to_the_epoch() -> None:
    assert window_start(T0, 3600) == datetime(2026, 11, 24, 3, tzinfo=UTC)
    assert window_start(T0, 86400) == datetime(2026, 11, 24, tzinfo=UTC)
    assert window_start(T0, 0.5) == datetime(2026, 11, 24, 3, 2, 12, tzinfo=UTC)


NODES = 4
PER_NODE = 10


def test_nodes_racing_on_one_postgres_store_count_exactly_and_open_one_flood_case(
    pg_url: str,
) -> None:
    """NODES engines save one reporter's distinct reports at once: with limit 5, exactly 5
    ordinary cases, one flood case holding the rest, the count exact (no lost update)."""
    flooder = "mallory@example.net"
    work = [
        [(f"n{node}-{k}", _distinct(node * 100 + k, flooder)) for k in range(PER_NODE)]
        for node in range(NODES)
    ]
    prepared = [[(sid, raw, analysis_of(raw)) for sid, raw in items] for items in work]
    stores = [Store(pg_url) for _ in range(NODES)]
    barrier = threading.Barrier(NODES)
    saved: dict[str, int] = {}
    errors: list[BaseException] = []

    def node(i: int) -> None:
        try:
            barrier.wait(30)
            for sid, raw, analysis in prepared[i]:
                for _attempt in range(10):
                    try:
                        saved[sid] = stores[i].save(sid, raw, flooder, analysis=analysis)
                        break
                    except OperationalError:  # deadlock/serialisation: the worker retries
                        continue
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=node, args=(i,)) for i in range(NODES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    try:
        assert not errors, errors
        assert len(saved) == NODES * PER_NODE
        by_case: dict[int, int] = {}
        for case_id in saved.values():
            by_case[case_id] = by_case.get(case_id, 0) + 1
        rows = {r["id"]: r for r in stores[0].cases()}
        assert len(rows) == 6, rows.keys()
        floods = [r for r in rows.values() if r["flood"] == "reporter"]
        assert len(floods) == 1
        assert floods[0]["report_count"] == NODES * PER_NODE - 5
        assert sorted(by_case.values()) == [1, 1, 1, 1, 1, NODES * PER_NODE - 5]
        with stores[0].maker() as session:
            (window,) = session.scalars(select(FloodWindow).where(FloodWindow.kind == "reporter"))
            assert window.count == NODES * PER_NODE
            assert window.case_id == floods[0]["id"]
        assert stores[0].count(Report) == NODES * PER_NODE
    finally:
        for s in stores:
            s.close()


@pytest.mark.parametrize(
    ("table", "key"),
    [({"flood_reports": -1}, "intake.flood_reports"), ({"flood_window": 0}, "intake.flood_window")],
)
def test_config_names_a_bad_flood_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        config.parse({"intake": table}, None)


def test_config_defaults_group_beyond_30_an_hour() -> None:
    settings = config.parse({"intake": {"flood_reports": 7}}, None)
    assert settings.intake == IntakeSettings(flood_reports=7, flood_window=3600.0)
    assert config.parse({}, None).intake.flood_reports == 30


def test_a_closed_flood_case_can_be_purged(store: Store) -> None:
    flooder = "mallory@example.net"
    ids = [store.save(f"f-{n}", _distinct(n, flooder), flooder) for n in range(7)]
    flood_id = ids[-1]
    with store.maker() as session, session.begin():
        case = session.get(Case, flood_id)
        assert case is not None
        case.status, case.closed_at = "closed", T0
    with store.maker() as session, session.begin():
        gone = purge(session, 30, "tester", now=T0 + timedelta(days=31))
    assert gone.case_ids == [flood_id] and gone.report_count == 2
    assert flood_id not in {r["id"] for r in store.cases()}
