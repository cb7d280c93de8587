"""The worker on a real spool folder and a real migrated store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs

from stopitd.analysis.model import Envelope
from stopitd.config import Settings, parse
from stopitd.spool import Spool
from stopitd.store import cases, db
from stopitd.store.schema import Report
from stopitd.worker import EventSignals, Outcome, PipeSignals, Worker, is_store_down
from stopitd.worker import main as worker_main
from tests.conftest import ROOT
from tests.daemon_helpers import report_message, wait_until
from tests.pg import PgServer
from tests.store import crashing_worker
from tests.store.crashing_worker import CRASH_EXIT

ENVELOPE = Envelope(
    mail_from="victim@example.edu",
    rcpt_tos=("stopit@example.edu",),
    peer="192.0.2.7",
    helo="laptop.example.edu",
    received_at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
)


def settings(**worker: Any) -> Settings:
    values = {"max_attempts": 3, "backoff_initial": 0.01, "backoff_max": 0.05}
    values.update(worker)
    return parse({"worker": values, "dns": {"enabled": False}}, None)


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    s = Spool(tmp_path / "spool")
    s.create()
    return s


def make_worker(spool: Spool, url: str, **kw: Any) -> Worker:
    engine = db.make_engine(url)
    return Worker(
        spool,
        db.make_sessionmaker(engine),
        kw.pop("settings", settings()),
        save_report=kw.pop("save_report", cases.save_report),
        check_schema=lambda: db.check_current(engine),
    )


def report_count(url: str) -> int:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(Report)) or 0)
    finally:
        engine.dispose()


def test_entry_becomes_a_case_and_leaves_the_spool(spool: Spool, store_url: str) -> None:
    spool_id = spool.put(report_message(1), ENVELOPE)
    worker = make_worker(spool, store_url)
    with capture_logs() as logs:
        assert worker.process(spool_id) is Outcome.SAVED
    assert os.listdir(spool.new) == [] and os.listdir(spool.cur) == []
    assert report_count(store_url) == 1
    assert [e["event"] for e in logs] == ["report_saved"]
    assert logs[0]["spool_id"] == spool_id


def test_crash_after_commit_before_unlink_saves_once(spool: Spool, sqlite_url: str) -> None:
    spool_id = spool.put(report_message(2), ENVELOPE)
    data = (spool.new / spool_id).read_bytes()
    worker = make_worker(spool, sqlite_url)
    assert worker.process(spool_id) is Outcome.SAVED
    # the same entry is back (as after a crash between commit and unlink)
    (spool.cur / f"{spool_id}").write_bytes(data)
    spool.recover(max_attempts=3)
    assert worker.process(f"{spool_id}.1") is Outcome.SAVED
    assert report_count(sqlite_url) == 1


def test_store_down_keeps_entries_queued_logs_once_and_backs_off(spool: Spool) -> None:
    down_url = "postgresql+psycopg://postgres@/stopitd?host=/nonexistent-socket-dir"
    for n in range(3):
        spool.put(report_message(n), ENVELOPE)
    worker = make_worker(spool, down_url)
    outcomes = []
    with capture_logs() as logs:
        for _ in range(3):
            outcomes.append(worker.process(spool.pending()[0]))
    assert outcomes == [Outcome.STORE_DOWN] * 3
    assert len(spool.pending()) == 3  # nothing lost, no attempt counted
    assert all("." not in name for name in spool.pending())
    assert [e["event"] for e in logs] == ["store_unavailable"]
    assert worker.outage is not None and worker.outage.delay == 0.04
    status = spool.status()
    assert status.store_down_since is not None and "OperationalError" in status.store_down_error


@pytest.mark.postgres
def test_store_outage_and_recovery_on_a_real_server(spool: Spool) -> None:
    pg = PgServer()
    try:
        pg.start()
        url = pg.url(pg.create_database())
        db.upgrade(url)
        worker = make_worker(spool, url)
        first = spool.put(report_message(10), ENVELOPE)
        assert worker.process(first) is Outcome.SAVED
        pg.stop()
        second = spool.put(report_message(11), ENVELOPE)
        with capture_logs() as logs:
            assert worker.process(second) is Outcome.STORE_DOWN
            pg.start()
            assert worker.process(second) is Outcome.SAVED
        events = [e["event"] for e in logs]
        assert events == ["store_unavailable", "store_recovered", "report_saved"]
        assert report_count(url) == 2
        assert spool.status().store_down_since is None
    finally:
        pg.destroy()


def test_a_bug_counts_attempts_then_fails_with_a_reason(spool: Spool, sqlite_url: str) -> None:
    def broken_save(*_args: Any, **_kwargs: Any) -> int:
        raise ValueError("a bug in saving")

    spool_id = spool.put(report_message(3), ENVELOPE)
    worker = make_worker(spool, sqlite_url, save_report=broken_save)
    outcomes = [worker.process(spool.pending()[0]) for _ in range(3)]
    assert outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.FAILED]
    status = spool.status()
    assert (status.new, status.cur, status.failed) == (0, 0, 1)
    assert status.failed_entries[0].id == spool_id
    assert "ValueError: a bug in saving" in status.failed_entries[0].reason
    # fixed: retry puts it back and it becomes a case
    spool.retry(spool_id)
    assert make_worker(spool, sqlite_url).process(spool_id) is Outcome.SAVED
    assert report_count(sqlite_url) == 1


def test_a_database_error_never_logs_the_report(spool: Spool, sqlite_url: str) -> None:
    """SQLAlchemy's error text carries the SQL parameters: none of it reaches the log."""
    from sqlalchemy import text

    def save_with_bad_sql(session: Any, **kw: Any) -> int:
        session.execute(  # violates NOT NULL on the other columns: IntegrityError
            text("INSERT INTO reports (spool_id, raw) VALUES (:reporter, :raw)"),
            {"reporter": kw["envelope"].mail_from, "raw": kw["raw"]},
        )
        return 0

    spool.put(report_message(6), ENVELOPE)
    worker = make_worker(spool, sqlite_url, save_report=save_with_bad_sql)
    worker.schema_ok = True
    with capture_logs() as logs:
        worker.process(spool.pending()[0])
    assert [e["event"] for e in logs] == ["entry_attempt_failed"]
    assert logs[0]["error"].startswith("saving failed: IntegrityError: NOT NULL")
    assert "victim@example.edu" not in repr(logs) and "you again" not in repr(logs)
    assert spool.pending()[0].endswith(".1")  # one attempt counted


def test_unreadable_entry_is_quarantined_at_once(spool: Spool, sqlite_url: str) -> None:
    spool_id = spool.put(report_message(4), ENVELOPE)
    (spool.new / spool_id).write_bytes(b"garbage without an envelope line")
    assert make_worker(spool, sqlite_url).process(spool_id) is Outcome.FAILED
    assert spool.status().failed_entries[0].reason.startswith("unreadable spool entry")


def test_schema_behind_is_treated_as_store_down(spool: Spool, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'never-migrated.db'}"
    spool_id = spool.put(report_message(5), ENVELOPE)
    with capture_logs() as logs:
        assert make_worker(spool, url).process(spool_id) is Outcome.STORE_DOWN
    assert "stopitd db upgrade" in logs[0]["error"]
    assert spool.pending() == [spool_id]


def test_run_loop_is_woken_per_message_and_stops(spool: Spool, sqlite_url: str) -> None:
    signals = EventSignals()
    # a long poll interval: only the wake-up can make this test pass in time
    worker = make_worker(spool, sqlite_url, settings=settings(poll_interval=3600.0))
    thread = threading.Thread(target=worker.run, args=(signals,))
    thread.start()
    try:
        for n in range(5):
            spool.put(report_message(20 + n), ENVELOPE)
            signals.wake()
        wait_until(lambda: report_count(sqlite_url) == 5, 60, "five cases")
    finally:
        signals.request_stop()
        thread.join(30)
    assert not thread.is_alive()


def test_pipe_signals_wake_and_stop_on_eof() -> None:
    reader, writer = multiprocessing.Pipe(duplex=False)
    signals = PipeSignals(reader)
    started = time.monotonic()
    os.write(writer.fileno(), b"w")
    signals.wait(30, wakeable=True)  # returns at once: a byte is waiting
    signals.clear_wake()
    assert not signals.stopping()
    writer.close()  # the daemon closes its end: stop
    signals.wait(30, wakeable=False)  # backing off, yet EOF ends the wait
    assert signals.stopping()
    assert time.monotonic() - started < 20


def test_store_down_classification() -> None:
    from sqlalchemy import exc

    assert is_store_down(exc.OperationalError("SELECT 1", {}, Exception("refused")))
    assert is_store_down(exc.InterfaceError("SELECT 1", {}, Exception("closed")))
    invalidated = exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
    assert is_store_down(invalidated)
    assert not is_store_down(exc.IntegrityError("INSERT", {}, Exception("dup")))
    assert not is_store_down(ValueError("bug"))


# --- batches --------------------------------------------------------------------------------


def spool_ids_in_store(url: str) -> list[str]:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(conn.scalars(select(Report.spool_id)))
    finally:
        engine.dispose()


def batch_worker(spool: Spool, url: str, **kw: Any) -> Worker:
    """A worker on the writer engine, as the daemon's worker process makes it."""
    engine = db.make_engine(url, writer=True)
    return Worker(
        spool,
        db.make_sessionmaker(engine),
        kw.pop("settings", settings()),
        save_report=kw.pop("save_report", cases.save_report),
        check_schema=lambda: db.check_current(engine),
        save_reports=kw.pop("save_reports", None),
        after_saves=kw.pop("after_saves", None),
    )


def saving_all_but(poisoned: str) -> Any:
    """``save_report`` with a bug that only the report of spool id `poisoned` triggers."""

    def save_unless_poisoned(session: Any, **kw: Any) -> int:
        if kw["spool_id"] == poisoned:
            raise ValueError("a bug this report triggers")
        return cases.save_report(session, **kw)

    return save_unless_poisoned


def commit_counter(worker: Worker) -> list[int]:
    """A one-item list counting the commits of the worker's engine from now on."""
    from sqlalchemy import event

    commits = [0]

    def count(_conn: Any) -> None:
        commits[0] += 1

    event.listen(worker.sessionmaker.kw["bind"], "commit", count)  # type: ignore[attr-defined]
    return commits


def test_a_batch_is_saved_in_one_transaction(spool: Spool, store_url: str) -> None:
    ids = [spool.put(report_message(30 + n), ENVELOPE) for n in range(6)]
    saved = drain_in_one_commit(batch_worker(spool, store_url), spool, store_url, ids)
    assert [e["spool_id"] for e in saved] == ids


def drain_in_one_commit(
    worker: Worker, spool: Spool, store_url: str, ids: list[str]
) -> list[dict[str, Any]]:
    """Drain the spool with WORKER; assert it took one commit, stored every entry of IDS and
    emptied the spool; return the report_saved log events."""
    commits = commit_counter(worker)
    with capture_logs() as logs:
        worker.drain(spool.pending(), EventSignals())
    assert commits == [1]
    assert spool_ids_in_store(store_url) == sorted(ids)
    assert os.listdir(spool.new) == [] and os.listdir(spool.cur) == []
    return [e for e in logs if e["event"] == "report_saved"]


def test_a_poisoned_entry_in_a_batch_fails_alone(spool: Spool, store_url: str) -> None:
    ids = [spool.put(report_message(40 + n), ENVELOPE) for n in range(5)]
    poisoned = ids[2]

    worker = batch_worker(spool, store_url, save_report=saving_all_but(poisoned))
    with capture_logs() as logs:
        worker.drain(spool.pending(), EventSignals())
    # the neighbours are filed, once each; only the bad entry counts an attempt
    assert spool_ids_in_store(store_url) == sorted(set(ids) - {poisoned})
    assert spool.pending() == [f"{poisoned}.1"]
    events = [e["event"] for e in logs]
    assert events.count("batch_split") == 1 and events.count("entry_attempt_failed") == 1
    assert events.count("report_saved") == 4
    # its retries are alone (never again in a batch) until the cap moves it to failed/
    for _ in range(2):
        worker.drain(spool.pending(), EventSignals())
    status = spool.status()
    assert (status.new, status.cur, status.failed) == (0, 0, 1)
    assert status.failed_entries[0].id == poisoned
    assert "ValueError: a bug this report triggers" in status.failed_entries[0].reason
    assert len(spool_ids_in_store(store_url)) == 4


def test_store_down_puts_the_whole_batch_back_without_attempts(spool: Spool) -> None:
    down_url = "postgresql+psycopg://postgres@/stopitd?host=/nonexistent-socket-dir"
    ids = [spool.put(report_message(50 + n), ENVELOPE) for n in range(4)]
    worker = batch_worker(spool, down_url)
    assert worker.drain(spool.pending(), EventSignals()) is Outcome.STORE_DOWN
    assert spool.pending() == sorted(ids)  # same names: no attempt counted
    assert os.listdir(spool.cur) == []


def test_a_big_report_closes_the_batch(
    spool: Spool, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stopitd import worker as worker_module

    monkeypatch.setattr(worker_module, "BATCH_MAX_BYTES", 3 * len(report_message(60)))
    for n in range(7):
        spool.put(report_message(60 + n), ENVELOPE)
    worker = batch_worker(spool, sqlite_url)
    commits = commit_counter(worker)
    worker.drain(spool.pending(), EventSignals())
    assert commits == [3]  # 3 + 3 + 1 entries
    assert len(spool_ids_in_store(sqlite_url)) == 7


def test_a_slow_batch_is_closed_after_its_time(
    spool: Spool, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stopitd import worker as worker_module

    monkeypatch.setattr(worker_module, "BATCH_MAX_SECONDS", 0.0)  # every entry is "slow"
    for n in range(3):
        spool.put(report_message(65 + n), ENVELOPE)
    worker = batch_worker(spool, sqlite_url)
    commits = commit_counter(worker)
    worker.drain(spool.pending(), EventSignals())
    assert commits == [3]
    assert len(spool_ids_in_store(sqlite_url)) == 3


def run_crashing_worker(spool: Spool, url: str, spec: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.store.crashing_worker", str(spool.root), url, spec],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_a_crash_mid_batch_requeues_every_uncommitted_entry(spool: Spool, store_url: str) -> None:
    ids = [spool.put(report_message(70 + n), ENVELOPE) for n in range(6)]
    crashed = run_crashing_worker(spool, store_url, "after:3")
    assert crashed.returncode == CRASH_EXIT, crashed.stderr
    # three reports were written into the open transaction: none of them is committed,
    # and every entry of the batch is still there (claimed, in cur/)
    assert spool_ids_in_store(store_url) == []
    assert sorted(os.listdir(spool.cur)) == sorted(ids)
    # the next worker re-queues them (one attempt each) and files each exactly once
    done = run_crashing_worker(spool, store_url, "after:1000")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"requeued": 6, "failed": 0}
    assert spool_ids_in_store(store_url) == sorted(ids)
    status = spool.status()
    assert (status.new, status.cur, status.failed) == (0, 0, 0)


def test_an_entry_that_kills_the_worker_reaches_failed_alone(spool: Spool, sqlite_url: str) -> None:
    ids = [spool.put(report_message(80 + n), ENVELOPE) for n in range(5)]
    killer = ids[1]
    runs = [run_crashing_worker(spool, sqlite_url, f"on:{killer}") for _ in range(4)]
    assert [r.returncode for r in runs[:3]] == [CRASH_EXIT] * 3, runs[-1].stderr
    # the first crash took the whole batch down; after that the interrupted entries are
    # filed alone, so only the killer keeps dying and reaches the cap
    assert runs[3].returncode == 0, runs[3].stderr
    assert spool_ids_in_store(sqlite_url) == sorted(set(ids) - {killer})
    status = spool.status()
    assert (status.new, status.cur, status.failed) == (0, 0, 1)
    assert status.failed_entries[0].id == killer
    assert status.failed_entries[0].attempts == crashing_worker.MAX_ATTEMPTS
    assert "interrupted 3 times" in status.failed_entries[0].reason


def test_the_worker_process_recovers_a_crashed_batch(spool: Spool, sqlite_url: str) -> None:
    """The daemon's worker process (``worker.main``) re-queues and files a crashed batch."""
    ids = [spool.put(report_message(90 + n), ENVELOPE) for n in range(4)]
    assert run_crashing_worker(spool, sqlite_url, "after:2").returncode == CRASH_EXIT
    cfg = parse(
        {
            "spool": {"path": str(spool.root)},
            "database": {"url": sqlite_url},
            "worker": {"max_attempts": 3, "poll_interval": 0.05},
            "dns": {"enabled": False},
            "log": {"level": "warning"},
        },
        None,
    )
    ctx = multiprocessing.get_context("spawn")
    reader, writer = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=worker_main, args=(cfg, reader, os.getpid()))
    proc.start()
    reader.close()
    try:
        wait_until(lambda: len(spool_ids_in_store(sqlite_url)) == 4, 120, "four reports")
    finally:
        writer.close()  # EOF: the worker stops after its current batch
        proc.join(60)
    assert proc.exitcode == 0
    assert spool_ids_in_store(sqlite_url) == sorted(ids)
    status = spool.status()
    assert (status.new, status.cur, status.failed) == (0, 0, 0)


def test_the_writer_engine_makes_a_batch_one_durable_transaction(tmp_path: Path) -> None:
    """pysqlite alone would commit at each savepoint's RELEASE; the writer engine must not,
    and its commits are fsynced (synchronous=FULL: the spool entries go after them)."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    url = f"sqlite:///{tmp_path / 'plain.db'}"
    engine = db.make_engine(url, writer=True)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (a INTEGER)")
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
            session.execute(text("SELECT count(*) FROM t"))
            with session.begin_nested():
                session.execute(text("INSERT INTO t VALUES (1)"))
            raise RuntimeError("the batch fails after the first report")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_deadlock_with_another_node_refiles_the_batch_one_by_one(
    spool: Spool, pg_url: str
) -> None:
    """Two nodes that take the same rows in opposite orders deadlock on PostgreSQL (a real
    one here, staged with a second connection): the batch is saved again one entry at a
    time, with no attempt counted and no store outage declared."""
    from sqlalchemy import text

    ids = [spool.put(report_message(70 + n), ENVELOPE) for n in range(4)]
    engine = db.make_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE lockpad (id int PRIMARY KEY, n int NOT NULL)"))
        conn.execute(text("INSERT INTO lockpad VALUES (1, 0), (2, 0)"))
    other_holds_2 = threading.Event()
    worker_holds_1 = threading.Event()
    other_done = threading.Event()

    def other_node() -> None:  # holds row 2, then wants row 1; waits long before detecting
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL deadlock_timeout = '20s'"))
            conn.execute(text("UPDATE lockpad SET n = n + 1 WHERE id = 2"))
            other_holds_2.set()
            assert worker_holds_1.wait(30)
            conn.execute(text("UPDATE lockpad SET n = n + 1 WHERE id = 1"))
        other_done.set()

    staged = False

    def save_across_the_other_node(session: Any, **kw: Any) -> int:
        nonlocal staged
        if not staged:  # the first save of the batch meets the other node's transaction
            staged = True
            session.execute(text("SET LOCAL deadlock_timeout = '200ms'"))
            session.execute(text("UPDATE lockpad SET n = n + 1 WHERE id = 1"))
            assert other_holds_2.wait(30)
            worker_holds_1.set()
            session.execute(text("UPDATE lockpad SET n = n + 1 WHERE id = 2"))
        return cases.save_report(session, **kw)

    thread = threading.Thread(target=other_node)
    thread.start()
    worker = batch_worker(spool, pg_url, save_report=save_across_the_other_node)
    try:
        with capture_logs() as logs:
            worker.drain(spool.pending(), EventSignals())
    finally:
        thread.join(60)
        engine.dispose()
    assert other_done.is_set(), "the other node's transaction did not finish"
    events = [e["event"] for e in logs]
    assert events.count("batch_conflict") == 1, events
    assert "store_down" not in " ".join(events) and "entry_attempt_failed" not in events
    assert spool_ids_in_store(pg_url) == sorted(ids)
    assert os.listdir(spool.new) == [] and os.listdir(spool.cur) == []


# --- the batch path (store.batch.save_reports, outbound.on_reports_saved) -------------------


def events_of_kind(url: str, kind: str) -> list[dict[str, Any]]:
    from stopitd.store.schema import Event

    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.scalars(select(Event.detail).where(Event.kind == kind)))
    finally:
        engine.dispose()


def test_the_batch_path_files_a_batch_in_one_transaction(spool: Spool, store_url: str) -> None:
    from stopitd import outbound
    from stopitd.store import batch

    ids = [spool.put(report_message(130 + n % 3), ENVELOPE) for n in range(6)]
    worker = batch_worker(
        spool,
        store_url,
        save_reports=batch.save_reports,
        after_saves=outbound.on_reports_saved,
    )
    saved = drain_in_one_commit(worker, spool, store_url, ids)
    assert [e["spool_id"] for e in saved] == ids
    # three originals, each reported twice: the copies join the case of the first
    assert len({e["case_id"] for e in saved}) == 3
    assert [e["case_id"] for e in saved[:3]] == [e["case_id"] for e in saved[3:]]
    # outbound is off: each report's acknowledgement is decided (skipped) once
    skipped = events_of_kind(store_url, "ack_skipped")
    assert sorted(d["report"] for d in skipped) == sorted(ids)
    assert {d["reason"] for d in skipped} == {"disabled"}


def test_a_poisoned_entry_fails_alone_on_the_batch_path(spool: Spool, sqlite_url: str) -> None:
    from stopitd.store import batch

    ids = [spool.put(report_message(140 + n), ENVELOPE) for n in range(4)]
    poisoned = ids[1]

    def save_all_unless_poisoned(session: Any, filings: Any, **kw: Any) -> Any:
        if any(f.spool_id == poisoned for f in filings):
            raise ValueError("a bug this report triggers")
        return batch.save_reports(session, filings, **kw)

    worker = batch_worker(
        spool,
        sqlite_url,
        save_report=saving_all_but(poisoned),
        save_reports=save_all_unless_poisoned,
    )
    with capture_logs() as logs:
        worker.drain(spool.pending(), EventSignals())
    assert spool_ids_in_store(sqlite_url) == sorted(set(ids) - {poisoned})
    assert spool.pending() == [f"{poisoned}.1"]
    events = [e["event"] for e in logs]
    assert events.count("batch_split") == 1 and events.count("entry_attempt_failed") == 1


def test_a_unique_key_conflict_refiles_the_batch_one_by_one(spool: Spool, sqlite_url: str) -> None:
    """A node that loses a race on a unique key gets an IntegrityError for the whole batch
    (here: the batch's own report row written twice); the worker files the entries again
    one by one, without counting an attempt."""
    from sqlalchemy import insert

    from stopitd.store import batch
    from stopitd.store.schema import Report as ReportRow

    ids = [spool.put(report_message(150 + n), ENVELOPE) for n in range(3)]

    def save_and_collide(session: Any, filings: Any, **kw: Any) -> Any:
        filed = batch.save_reports(session, filings, **kw)
        row = session.execute(select(ReportRow).where(ReportRow.spool_id == ids[0])).scalar_one()
        columns = {c.name: getattr(row, c.key) for c in ReportRow.__table__.columns}
        session.execute(insert(ReportRow), [columns | {"id": None}])
        return filed

    worker = batch_worker(spool, sqlite_url, save_reports=save_and_collide)
    with capture_logs() as logs:
        assert worker.drain(spool.pending(), EventSignals()) is Outcome.SAVED
    events = [e["event"] for e in logs]
    assert events.count("batch_conflict") == 1, events
    assert "entry_attempt_failed" not in events
    assert spool_ids_in_store(sqlite_url) == sorted(ids)
    assert os.listdir(spool.new) == [] and os.listdir(spool.cur) == []


class ArrivalsDuringGather(EventSignals):
    """Signals whose short non-wakeable wait (the worker's gather) sees more mail arrive,
    as a steady one-session stream would; the worker is stopped once it has filed them."""

    def __init__(self, spool: Spool, arrivals: int, url: str) -> None:
        super().__init__()
        self.spool, self.arrivals, self.url = spool, arrivals, url
        self.gathers = 0

    def wait(self, timeout: float, *, wakeable: bool) -> None:
        if not wakeable:
            self.gathers += 1
            for n in range(self.arrivals):
                self.spool.put(report_message(80 + n), ENVELOPE)
            self.arrivals = 0
            return
        if report_count(self.url) > 0:
            self.request_stop()


def test_a_trickle_gathers_into_one_commit(spool: Spool, sqlite_url: str) -> None:
    """One entry waiting, three more arriving while the worker gathers: one commit for all
    four, so a one-session stream does not cost a WAL fsync per message."""
    from stopitd import worker as worker_module

    spool.put(report_message(79), ENVELOPE)
    assert worker_module.GATHER_BELOW > 1
    worker = batch_worker(spool, sqlite_url)
    commits = commit_counter(worker)
    signals = ArrivalsDuringGather(spool, 3, sqlite_url)
    worker.run(signals)
    assert signals.gathers == 1
    assert commits == [1]
    assert len(spool_ids_in_store(sqlite_url)) == 4
    assert os.listdir(spool.new) == [] and os.listdir(spool.cur) == []
