"""The worker: spool entries -> analysis -> case store, in small batches, crash-safe.

Process layout (see also ``daemon.py``): the daemon's main process runs only the asyncio
SMTP listener (plus a thread pool for the spool's fsyncs); the worker runs in a *separate
process*, a fresh interpreter (``boot``, started by ``daemon.WorkerProcess``). Analysis is
CPU-bound pure Python and SQLAlchemy holds the GIL for much of a save; in the listener's
process either would steal the interpreter from the event loop and stretch every DATA ->
250 under load. With two cores and two processes the listener keeps its own interpreter
(issue 9: intake must stay near the bare fsync floor while the worker is busy), and the
worker runs niced (``WORKER_NICE``) so that when the cores are contended, taking mail in
wins over filing it.

The listener wakes the worker after each spooled message by writing a byte into a pipe
(non-blocking: a full pipe already means "wake up"); ``worker.poll_interval`` is the
fallback (entries put back by ``stopitd spool retry``). Closing the pipe asks the worker to
stop after its current batch. A pipe rather than a ``multiprocessing.Event``: an Event is
a shared lock, and a worker killed while holding it would block the listener's next
``set()`` forever. The spool is the only channel for data: nothing is handed over in
memory, so a crash of either process loses nothing.

Batches: the entries waiting in ``new/`` are claimed and analysed one after the other and
saved together, up to ``BATCH_MAX_ENTRIES`` (``BATCH_MAX_BYTES`` of raw mail,
``BATCH_MAX_SECONDS`` since the first claim) per transaction; they are unlinked only
after that transaction commits. A crash before the commit leaves all of them in
``cur/``, and the next start re-queues them (one attempt more each); an entry that
carries an attempt count is then filed alone, so an entry that kills the worker every
time reaches ``failed/`` by itself. See ``save_batch`` for errors.

Failure classes: a store that is down (``OperationalError``, ``InterfaceError``, or a
``DBAPIError`` whose connection was invalidated; or a schema that is behind) keeps the
entry queued without counting an attempt and backs off (``backoff_initial`` doubling up to
``backoff_max``), logging the outage once when it starts and once when it ends. Any other
exception is a fault of that entry: one attempt more, and ``failed/`` with a reason file
after ``max_attempts``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import pickle
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from stopitd import logs, verify
from stopitd.analysis import analyze, conclude
from stopitd.analysis.model import Analysis, Envelope, Evidence
from stopitd.config import Settings
from stopitd.errors import SchemaBehindError, SpoolError
from stopitd.spool import WORKER_LOCK, Entry, Spool, parse_name

if TYPE_CHECKING:  # the store is imported by the worker process only (see main)
    from stopitd.store.batch import Filed

log = structlog.get_logger("stopitd.worker")

# The worker runs at a lower CPU priority than the listener: during a flood the two cores
# go to taking mail in first (the spool absorbs the backlog), filing it second.
WORKER_NICE = 10

# Several entries share one transaction (one commit, one WAL fsync): at most this many,
# and no more raw bytes than this held in memory at once (one big report is a batch alone).
BATCH_MAX_ENTRIES = 32
BATCH_MAX_BYTES = 8 * 1024 * 1024
# ... and no longer than this between the first claim and the commit (DNS checks can make
# one entry slow: the entries already analysed should not wait for many of those).
BATCH_MAX_SECONDS = 1.0
# A trickle (fewer entries waiting than this) is given this long to gather before it is
# filed, so that a steady stream over one SMTP session costs one commit per gather rather
# than one WAL fsync per message competing with the listener's spool fsyncs.
GATHER_BELOW = 4
GATHER_SECONDS = 0.05


class Outcome(StrEnum):
    SAVED = "saved"
    GONE = "gone"  # claimed by someone else / retried away
    STORE_DOWN = "store_down"
    RETRY = "retry"  # failed, will be tried again
    FAILED = "failed"  # moved to failed/


class Signals(Protocol):
    """How the worker loop is woken and told to stop."""

    def stopping(self) -> bool: ...
    def clear_wake(self) -> None: ...
    def wait(self, timeout: float, *, wakeable: bool) -> None: ...


class EventSignals:
    """In-process signals (threads): ``wake``/``request_stop`` from another thread."""

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stop = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def stopping(self) -> bool:
        return self._stop.is_set()

    def clear_wake(self) -> None:
        self._wake.clear()

    def wait(self, timeout: float, *, wakeable: bool) -> None:
        (self._wake if wakeable else self._stop).wait(timeout)


class PipeSignals:
    """The worker process's side: the daemon's wake pipe, plus SIGTERM/SIGINT.

    A byte on the pipe wakes the loop; EOF (the daemon closed its end, or died) and the
    first SIGTERM/SIGINT ask it to stop after the current entry; a second signal exits now.
    """

    def __init__(self, wake: Connection) -> None:
        self._conn = wake  # keeps the descriptor open
        self._wake_fd = wake.fileno()
        os.set_blocking(self._wake_fd, False)
        self._self_r, self._self_w = os.pipe()
        os.set_blocking(self._self_r, False)
        os.set_blocking(self._self_w, False)
        self._stop = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self._stop:
            os._exit(128 + signum)
        self._stop = True
        with contextlib.suppress(OSError):
            os.write(self._self_w, b"s")

    def stopping(self) -> bool:
        return self._stop

    def clear_wake(self) -> None:
        while True:
            try:
                data = os.read(self._wake_fd, 4096)
            except BlockingIOError:
                return
            if not data:  # EOF: the daemon wants us to stop (or is gone)
                self._stop = True
                return

    def wait(self, timeout: float, *, wakeable: bool) -> None:
        deadline = time.monotonic() + timeout
        while not self._stop:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select([self._self_r, self._wake_fd], [], [], left)
            if self._wake_fd in ready:
                if wakeable:
                    return  # the bytes are drained by clear_wake at the loop's top
                self.clear_wake()  # backing off: only EOF (stop) may end the wait


SaveReport = Callable[..., int]
# store.batch.save_reports: a whole batch in a few statements (the worker's fast path)
SaveReports = Callable[..., "list[Filed]"]


def is_store_down(error: BaseException) -> bool:
    """Errors that mean "the store cannot be reached now" rather than "this entry is bad"."""
    if isinstance(error, SchemaBehindError):
        return True
    if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    return isinstance(error, sa_exc.DBAPIError) and bool(error.connection_invalidated)


# PostgreSQL's "deadlock detected" and "could not serialize": two nodes' transactions took
# the same rows (a reporter's flood count, a case) in opposite orders. Nothing is wrong
# with the store or the entries; the transaction is simply run again.
_CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})
_CONFLICT_RETRIES = 3


def is_lock_conflict(error: BaseException) -> bool:
    """A deadlock or serialization failure between concurrent writers (worth a retry)."""
    if not isinstance(error, sa_exc.DBAPIError):
        return False
    return getattr(error.orig, "sqlstate", None) in _CONFLICT_SQLSTATES


def describe(error: BaseException, limit: int = 300) -> str:
    """One short line about an error, safe to log: SQLAlchemy's own text carries the SQL
    parameters (reporter addresses, raw message bytes), so only the driver's message."""
    inner: BaseException = error
    if isinstance(error, sa_exc.StatementError) and error.orig is not None:
        inner = error.orig
    lines = str(inner).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def analyse(raw: bytes, envelope: Envelope, settings: Settings) -> Analysis:
    """The whole analysis of one report: analyze (pure), verify (DNS, if on), conclude."""
    policy = settings.policy()
    analysis = analyze(raw, envelope, policy)
    evidence = Evidence.none()
    if settings.dns.enabled:
        verifier = verify.default_verifier(settings.dns)
        if verifier.dns_down and verifier.down_for() >= settings.dns.retry_after:
            verifier.revive()  # the back-off is over: ask DNS again
            log.info("dns_revived", after_s=round(settings.dns.retry_after))
        evidence = verify.verify_analysis(analysis, settings.dns, verifier)
    return conclude(analysis, evidence, policy)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A claimed entry, read and analysed, waiting to be saved."""

    entry: Entry
    envelope: Envelope
    raw: bytes
    analysis: Analysis


@dataclass
class Outage:
    since: float
    wall_since: datetime
    delay: float
    retries: int = 0


class Worker:
    """Drains the spool into the store. ``run`` loops until ``stop`` is set."""

    def __init__(
        self,
        spool: Spool,
        sessionmaker: Callable[[], Session],
        settings: Settings,
        *,
        save_report: SaveReport,
        check_schema: Callable[[], None],
        after_save: Callable[..., object] | None = None,
        after_commit: Callable[[], None] | None = None,
        save_reports: SaveReports | None = None,
        after_saves: Callable[..., object] | None = None,
    ) -> None:
        self.spool = spool
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.save_report = save_report
        self.check_schema = check_schema
        self.after_save = after_save  # outbound.on_report_saved: same transaction
        self.after_commit = after_commit  # wakes the outbox sender
        # the batch path (None: save_report and after_save for each entry of a batch)
        self.save_reports = save_reports
        self.after_saves = after_saves  # outbound.on_reports_saved
        self.schema_ok = False
        self.outage: Outage | None = None

    # --- one entry -------------------------------------------------------------------------

    def process(self, name: str) -> Outcome:
        """Claim, analyse and save one entry in a transaction of its own."""
        prepared = self._prepare(name)
        if isinstance(prepared, Outcome):
            return prepared
        return self._save_alone(prepared)

    def _prepare(self, name: str) -> Prepared | Outcome:
        """Claim and read an entry and analyse it: everything before the store."""
        entry = self.spool.claim(name)
        if entry is None:
            return Outcome.GONE
        try:
            envelope, raw = self.spool.read(entry)
        except SpoolError as e:
            self.spool.quarantine(entry, f"unreadable spool entry: {e}")
            log.error("entry_quarantined", spool_id=entry.id, reason=str(e))
            return Outcome.FAILED
        try:
            analysis = analyse(raw, envelope, self.settings)
        except Exception as e:
            return self._failed(entry, "analysis failed", e)
        return Prepared(entry, envelope, raw, analysis)

    def _save(self, session: Session, item: Prepared) -> int:
        """The report and what it calls for (outbound), in the caller's transaction."""
        case_id = self.save_report(
            session,
            spool_id=item.entry.id,
            envelope=item.envelope,
            raw=item.raw,
            analysis=item.analysis,
            tag_prefix=self.settings.reply.tag_prefix,
            flood=self.settings.intake,
        )
        if self.after_save is not None:
            self.after_save(
                session,
                case_id=case_id,
                spool_id=item.entry.id,
                raw=item.raw,
                analysis=item.analysis,
                envelope=item.envelope,
                settings=self.settings,
            )
        return case_id

    def _check_schema(self) -> None:
        if not self.schema_ok:
            self.check_schema()
            self.schema_ok = True

    def _save_alone(self, item: Prepared, retries: int = _CONFLICT_RETRIES) -> Outcome:
        try:
            self._check_schema()
            with self.sessionmaker() as session, session.begin():
                case_id = self._save(session, item)
        except Exception as e:
            if is_lock_conflict(e) and retries > 0:
                log.info("save_conflict_retry", spool_id=item.entry.id, error=describe(e))
                return self._save_alone(item, retries - 1)
            if is_store_down(e):
                self.spool.release(item.entry)
                self._store_down(e)
                return Outcome.STORE_DOWN
            return self._failed(item.entry, "saving failed", e)
        self._saved([(item, case_id)])
        return Outcome.SAVED

    # --- a batch of entries ------------------------------------------------------------------

    def save_batch(self, batch: list[Prepared]) -> Outcome:
        """Save prepared entries in ONE transaction; unlink them only after its commit.

        One commit (one WAL fsync on SQLite) for the whole batch instead of one per
        report. A store that is down puts every entry back. Any other error rolls the
        whole batch back and saves its entries one by one, so that only the bad entry
        counts an attempt and its neighbours are filed as if it had never been there.
        With ``save_reports`` (the daemon's worker) a lone entry takes the batch path too
        (it needs fewer statements than ``save_report``); a unique-key race or a deadlock
        then files the entries one by one with ``save_report``.
        """
        if not batch:
            return Outcome.SAVED
        if len(batch) == 1 and self.save_reports is None:
            return self._save_alone(batch[0])
        try:
            self._check_schema()
            with self.sessionmaker() as session, session.begin():
                saved = self._save_all(session, batch)
        except Exception as e:
            if is_lock_conflict(e) or isinstance(e, sa_exc.IntegrityError):
                # another node holds rows we need, or won a race on a unique key: one by
                # one instead (save_report joins the winner's rows)
                log.info("batch_conflict", entries=len(batch), error=describe(e))
                return self._save_one_by_one(batch)
            if is_store_down(e):
                for item in batch:
                    self.spool.release(item.entry)
                self._store_down(e)
                return Outcome.STORE_DOWN
            if len(batch) > 1:
                log.warning("batch_split", entries=len(batch), error=describe(e))
            return self._save_one_by_one(batch)
        self._saved(saved)
        return Outcome.SAVED

    def _save_all(self, session: Session, batch: list[Prepared]) -> list[tuple[Prepared, int]]:
        """The entries of a batch, in the caller's transaction: with ``save_reports`` one
        multi-row INSERT per table for the whole batch, else report after report."""
        if self.save_reports is None:
            return [(item, self._save(session, item)) for item in batch]
        from stopitd.store.batch import Filing

        filings = [Filing(i.entry.id, i.envelope, i.raw, i.analysis) for i in batch]
        filed = self.save_reports(
            session,
            filings,
            tag_prefix=self.settings.reply.tag_prefix,
            flood=self.settings.intake,
        )
        if self.after_saves is not None:
            self.after_saves(
                session, list(zip(filings, filed, strict=True)), settings=self.settings
            )
        return [(item, f.case_id) for item, f in zip(batch, filed, strict=True)]

    def _save_one_by_one(self, batch: list[Prepared]) -> Outcome:
        for n, item in enumerate(batch):
            if self._save_alone(item) is Outcome.STORE_DOWN:
                for rest in batch[n + 1 :]:
                    self.spool.release(rest.entry)
                return Outcome.STORE_DOWN
        return Outcome.SAVED

    def _saved(self, saved: list[tuple[Prepared, int]]) -> None:
        """After the commit: the entries may go (a crash before this repeats an idempotent
        save of each, never loses one)."""
        for item, _case_id in saved:
            self.spool.finish(item.entry)
        if self.after_commit is not None:
            self.after_commit()
        self._store_up()
        for item, case_id in saved:
            log.info(
                "report_saved",
                spool_id=item.entry.id,
                case_id=case_id,
                originals=len(item.analysis.originals),
                size=len(item.raw),
            )

    def _failed(self, entry: Entry, what: str, error: Exception) -> Outcome:
        summary = f"{what}: {describe(error)}"
        trace = "".join(traceback.format_tb(error.__traceback__))
        reason = f"{summary}\n\nTraceback (most recent call last):\n{trace}"
        moved = self.spool.fail_attempt(entry, reason, self.settings.worker.max_attempts)
        log.error(
            "entry_failed" if moved else "entry_attempt_failed",
            spool_id=entry.id,
            attempt=entry.attempts + 1,
            max_attempts=self.settings.worker.max_attempts,
            error=summary,
        )
        return Outcome.FAILED if moved else Outcome.RETRY

    # --- store outages -------------------------------------------------------------------

    def _store_down(self, error: Exception) -> None:
        self.schema_ok = False  # check again once it is back (it may have been restored)
        text = describe(error)
        if self.outage is None:
            initial = self.settings.worker.backoff_initial
            self.outage = Outage(time.monotonic(), datetime.now(UTC), initial)
            log.warning("store_unavailable", error=text, retry_in=initial)
            with contextlib.suppress(OSError):
                self.spool.mark_store_down(self.outage.wall_since, text)
        else:
            self.outage.retries += 1
            self.outage.delay = min(self.outage.delay * 2, self.settings.worker.backoff_max)

    def _store_up(self) -> None:
        if self.outage is None:
            return
        log.info(
            "store_recovered",
            down_s=round(time.monotonic() - self.outage.since, 3),
            retries=self.outage.retries,
        )
        self.outage = None
        with contextlib.suppress(OSError):
            self.spool.clear_store_down()

    # --- the loop ----------------------------------------------------------------------------

    def run(self, signals: Signals) -> None:
        poll = self.settings.worker.poll_interval
        while not signals.stopping():
            signals.clear_wake()  # before listing: a put after the listing wakes us again
            if signals.stopping():
                return
            names = self.spool.pending()
            if not names:
                signals.wait(poll, wakeable=True)
                continue
            if len(names) < GATHER_BELOW:
                signals.wait(GATHER_SECONDS, wakeable=False)
                names = self.spool.pending()
            if self.drain(names, signals) is Outcome.STORE_DOWN:
                assert self.outage is not None
                # not woken by new mail while backing off: that is the point
                signals.wait(self.outage.delay, wakeable=False)

    def drain(self, names: list[str], signals: Signals) -> Outcome | None:
        """Process the listed entries in batches; stop early when the store is down.

        An entry that failed before (an attempt count in its name, also every entry that
        a crash interrupted) is filed alone: were it the cause of the crash, batching it
        again would count an attempt against its innocent neighbours each time.
        """
        batch: list[Prepared] = []
        size = 0
        opened = 0.0
        for name in names:
            if signals.stopping():
                break
            parsed = parse_name(name)
            if parsed is not None and parsed[1] > 0:
                if self.save_batch(batch) is Outcome.STORE_DOWN:
                    return Outcome.STORE_DOWN
                batch, size = [], 0
                if self.process(name) is Outcome.STORE_DOWN:
                    return Outcome.STORE_DOWN
                continue
            if not batch:
                opened = time.monotonic()
            prepared = self._prepare(name)
            if isinstance(prepared, Outcome):
                continue
            batch.append(prepared)
            size += len(prepared.raw)
            del prepared  # else it keeps a saved report alive while the next one is read
            if (
                len(batch) >= BATCH_MAX_ENTRIES
                or size >= BATCH_MAX_BYTES
                or time.monotonic() - opened >= BATCH_MAX_SECONDS
            ):
                if self.save_batch(batch) is Outcome.STORE_DOWN:
                    return Outcome.STORE_DOWN
                batch, size = [], 0
        return self.save_batch(batch)  # what is prepared is saved, even when stopping


# --- the worker process ------------------------------------------------------------------------


def _libc() -> ctypes.CDLL:
    """The C library, for the two Linux/glibc calls the worker makes at start."""
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL us when the daemon dies (Linux), so a killed daemon never
    leaves an orphan worker racing its successor."""
    with contextlib.suppress(Exception):
        pr_set_pdeathsig = 1
        _libc().prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


# glibc malloc: blocks from this size up are mmapped, so the buffers of a big report go
# back to the system once it is filed. By default the threshold rises to the largest block
# freed (up to 32 MiB): after one 25 MB report every later one would reuse and keep heap
# memory, and the worker's resident size would stay at its peak (issue 9's memory target).
MMAP_THRESHOLD = 1024 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


def _return_big_buffers() -> None:
    """Fix glibc's mmap threshold (a no-op with another C library)."""
    with contextlib.suppress(Exception):
        _libc().mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def _schema_check(engine: Engine, head: str) -> Callable[[], None]:
    from stopitd.store import db

    if head:
        return lambda: db.check_revision(engine, head)
    return lambda: db.check_current(engine)


def boot() -> None:
    """The worker process as the daemon starts it: ``python -c`` with two inherited pipes
    in argv, the wake pipe and one that carries the settings and the daemon's pid."""
    wake_fd, setup_fd = int(sys.argv[1]), int(sys.argv[2])
    with os.fdopen(setup_fd, "rb") as setup:
        settings, parent_pid, head = pickle.load(setup)
    main(settings, Connection(wake_fd, writable=False), parent_pid, head)


def main(settings: Settings, wake: Connection, parent_pid: int, head: str = "") -> None:
    """Entry point of the worker process (started by the daemon). With ``head`` (the
    schema head the daemon's start-up check found) the schema is checked without alembic."""
    _die_with_parent(parent_pid)
    _return_big_buffers()
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICE)
    signals = PipeSignals(wake)
    signals.install()
    logs.setup(settings.log, process="worker")
    from stopitd import outbound  # the outbox sender runs beside the worker, in this process
    from stopitd.store import batch, cases, db  # the store is only needed in this process

    spool = Spool(settings.spool.path)
    with spool.lock(WORKER_LOCK, wait=True):
        recovered = spool.recover(settings.worker.max_attempts)
        if recovered.requeued or recovered.failed:
            log.warning("spool_recovered", requeued=recovered.requeued, failed=recovered.failed)
        engine = db.make_engine(settings.database.url, writer=True)
        sessions = db.make_sessionmaker(engine)
        sender_wake, sender_stop = threading.Event(), threading.Event()
        sender = threading.Thread(
            target=outbound.run_sender_blocking,
            args=(settings, sender_stop),
            kwargs={"wake": sender_wake, "sessions": sessions},
            name="stopitd-outbox-sender",
            daemon=True,  # at-least-once delivery: a row in flight at exit is sent again
        )
        try:
            worker = Worker(
                spool,
                sessions,
                settings,
                save_report=cases.save_report,
                check_schema=_schema_check(engine, head),
                after_save=outbound.on_report_saved,
                after_commit=sender_wake.set,
                save_reports=batch.save_reports,
                after_saves=outbound.on_reports_saved,
            )
            sender.start()
            log.info("worker_started", pid=os.getpid())
            worker.run(signals)
        finally:
            sender_stop.set()
            sender_wake.set()
            if sender.is_alive():
                sender.join(settings.outbound.timeout * 2)
            engine.dispose()
    log.info("worker_stopped", pid=os.getpid())
