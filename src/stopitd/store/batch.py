"""Filing a batch of accepted reports with a few statements: the worker's fast path.

`save_reports` takes for each report of the batch, in the batch's order, the decision
`save_report` would take (thread by tag or In-Reply-To, duplicate of a known original,
the reporter's flood case, else a new case), against batch-wide look-ups made once (the
spool ids already filed, the owners of every de-duplication key, the thread ids, the
flood counts) plus a memory of the batch itself: a report joins the case that an earlier
report of the same batch opened, as it would had that one been committed first. Then the
rows of the whole batch go in with one multi-row INSERT per table (cases, reports,
analyses, originals, hops, verdicts, auth results, findings, keys, thread ids,
identities and their links, events) and one UPDATE per kind of change: about twenty
statements for a batch instead of about twenty-five per report.

Concurrency (several nodes on one PostgreSQL store) rests on the same unique keys as
`save_report` (spool id, de-duplication key, identity) and the same lock order (the
reporters' flood rows, then the cases, in id order, then the originals' flood rows). A
node that loses a race here gets an ``IntegrityError`` (or a deadlock) for the whole
batch; the worker then rolls it back and files the entries one by one with
`save_report`, whose savepoints join the winner's rows.

What differs from filing the reports one by one: the ids of events interleave by batch
rather than by report (each report's own events keep their order; a ``flood_detected``
comes after the batch's other events). A report with a case tag starts a new part of the
batch (the tag may name a case the part before it opens).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from stopitd.analysis.model import Analysis, Envelope, analysis_to_json
from stopitd.config import IntakeSettings
from stopitd.store import grouping
from stopitd.store.evidence import NewAnalysis, insert_returning_ids, write_first_analyses
from stopitd.store.fingerprints import IdentitySeen, dedupe_keys, identities
from stopitd.store.intake import (
    SYSTEM_ACTOR,
    CaseState,
    case_values,
    insert_ignore,
    join_case,
    link_identities_of_cases,
    reply_ids,
    report_values,
    reporter_of,
    table_of,
    tag_pattern,
)
from stopitd.store.schema import Case, DedupeKey, Event, Report, ThreadId

CASES, REPORTS, EVENTS = table_of(Case), table_of(Report), table_of(Event)
DEDUPE_KEYS, THREAD_IDS = table_of(DedupeKey), table_of(ThreadId)


@dataclass(frozen=True, slots=True)
class Filing:
    """One accepted spool entry, analysed, to be filed."""

    spool_id: str
    envelope: Envelope
    raw: bytes
    analysis: Analysis


@dataclass(frozen=True, slots=True)
class Filed:
    """Where a filing went; ``fresh`` is false when its spool id was already filed."""

    case_id: int
    fresh: bool


# what a joining report may change (intake.join_case), and all a new case sets
_CHANGED = (
    "status",
    "updated_at",
    "relay_ip",
    "origin_ip",
    "source_mode",
    "from_address",
    "closed_at",
)
_CASE_COLUMNS = ("subject", "created_at", *_CHANGED)


@dataclass(eq=False)
class _Report:
    """One filing while the batch is decided."""

    filing: Filing
    data: dict[str, Any]
    keys: list[str]
    reporter: str
    when: datetime
    tags: list[int]
    replies: list[str]
    seen: list[IdentitySeen]
    flood_window: tuple[str, datetime] | None = None
    flood_count: int = 0
    case: CaseState | None = None
    joined_by: str = "new"

    @property
    def spool_id(self) -> str:
        return self.filing.spool_id

    @property
    def target(self) -> CaseState:
        assert self.case is not None, "decided"
        return self.case


def save_reports(
    session: Session,
    filings: list[Filing],
    *,
    tag_prefix: str = "stopit",
    flood: IntakeSettings | None = None,
) -> list[Filed]:
    """File the batch; return where each filing went, in order. Never commits.

    The same rows as `save_report` for each filing in turn (module docstring); idempotent
    on the spool id (a filing already in the store is left alone and says where it is).
    """
    now = datetime.now(UTC)
    done: dict[str, int] = {
        spool_id: case_id
        for spool_id, case_id in session.execute(
            select(Report.spool_id, Report.case_id).where(
                Report.spool_id.in_(sorted({f.spool_id for f in filings}))
            )
        )
    }
    todo: dict[str, _Report] = {}
    for filing in filings:
        if filing.spool_id not in done and filing.spool_id not in todo:
            todo[filing.spool_id] = _read(filing, tag_prefix, now)
    for part in _parts(list(todo.values())):
        _Batch(session, now, flood).file(part)
    out = []
    for f in filings:  # a spool id twice in one batch: the second is "already filed"
        if f.spool_id in done:
            out.append(Filed(done[f.spool_id], False))
        else:
            out.append(Filed(todo[f.spool_id].target.case_id, True))
            done[f.spool_id] = out[-1].case_id
    return out


def _parts(reports: list[_Report]) -> list[list[_Report]]:
    """The batch cut before each report with a case tag: a tag may name a case that an
    earlier report of the batch opens, whose id exists only once that part is written
    (tagged replies are rare, so this costs nothing in a flood)."""
    parts: list[list[_Report]] = []
    for report in reports:
        if not parts or (report.tags and parts[-1]):
            parts.append([])
        parts[-1].append(report)
    return parts


def _read(filing: Filing, tag_prefix: str, now: datetime) -> _Report:
    """What the decisions need from one filing (no store here)."""
    analysis = filing.analysis
    return _Report(
        filing=filing,
        data=analysis_to_json(analysis),
        keys=sorted({k for o in analysis.originals for k in dedupe_keys(o)}),
        reporter=reporter_of(filing.envelope, analysis),
        when=filing.envelope.received_at or now,
        tags=[
            int(m.group(1))
            for m in tag_pattern(tag_prefix).finditer(analysis.report.fields.subject)
        ],
        replies=reply_ids(analysis, filing.raw),
        seen=sorted({i for o in analysis.originals for i in identities(o)}),
    )


@dataclass(eq=False)
class _Batch:
    session: Session
    now: datetime
    flood: IntakeSettings | None
    cases: dict[int, CaseState] = field(default_factory=dict)  # existing, locked
    opened: list[CaseState] = field(default_factory=list)  # new cases, in order
    key_owners: dict[str, CaseState] = field(default_factory=dict)
    stored_threads: dict[str, tuple[int, int]] = field(default_factory=dict)  # mid: (id, case)
    batch_threads: dict[str, tuple[int, CaseState]] = field(default_factory=dict)
    tagged: set[int] = field(default_factory=set)
    reporter_windows: dict[tuple[str, datetime], grouping.Bumped] = field(default_factory=dict)
    flood_cases: dict[tuple[str, datetime], CaseState] = field(default_factory=dict)
    flooded_rows: list[tuple[int, CaseState]] = field(default_factory=list)
    events: list[tuple[CaseState, str, dict[str, Any]]] = field(default_factory=list)
    new_keys: list[tuple[str, CaseState]] = field(default_factory=list)
    joined_keys: list[tuple[str, CaseState]] = field(default_factory=list)

    def file(self, reports: list[_Report]) -> None:
        self._look_up(reports)
        for n, report in enumerate(reports):
            self._decide(n, report)
        self._write(reports)

    # --- look-ups: one statement each for the whole batch ---------------------------------

    def _look_up(self, reports: list[_Report]) -> None:
        session = self.session
        self._count_reporters(reports)  # first: the flood rows are locked before any case
        keys = sorted({k for r in reports for k in r.keys})
        owners: dict[str, int] = {}
        if keys:
            query = select(DedupeKey.key, DedupeKey.case_id).where(DedupeKey.key.in_(keys))
            owners = {key: case_id for key, case_id in session.execute(query)}
        replies = sorted({m for r in reports for m in r.replies})
        if replies:
            for row_id, message_id, case_id in session.execute(
                select(ThreadId.id, ThreadId.message_id, ThreadId.case_id).where(
                    ThreadId.message_id.in_(replies)
                )
            ):
                best = self.stored_threads.get(message_id)
                if best is None or row_id > best[0]:
                    self.stored_threads[message_id] = (row_id, case_id)
        tags = sorted({t for r in reports for t in r.tags})
        if tags:
            self.tagged = set(session.scalars(select(Case.id).where(Case.id.in_(tags))))
        wanted = (
            set(owners.values())
            | {case_id for _, case_id in self.stored_threads.values()}
            | self.tagged
            | {w.case_id for w in self.reporter_windows.values() if w.case_id is not None}
        )
        self._lock_cases(sorted(wanted))
        self.key_owners = {key: self.cases[case_id] for key, case_id in owners.items()}

    def _count_reporters(self, reports: list[_Report]) -> None:
        if self.flood is None or not grouping.enabled(self.flood):
            return
        counts: dict[tuple[str, datetime], int] = {}
        for r in reports:
            window = (
                grouping.reporter_key(r.reporter),
                grouping.window_start(r.when, self.flood.flood_window),
            )
            counts[window] = counts.get(window, 0) + 1
            r.flood_window, r.flood_count = window, counts[window]
        self.reporter_windows = grouping.bump_many(
            self.session, grouping.FloodKind.REPORTER, counts
        )
        for r in reports:  # the count each report had, as if they were counted in turn
            assert r.flood_window is not None
            bumped = self.reporter_windows[r.flood_window]
            r.flood_count += bumped.count - counts[r.flood_window]

    def _lock_cases(self, case_ids: list[int]) -> None:
        if not case_ids:
            return
        query = (
            select(
                Case.id,
                Case.status,
                Case.updated_at,
                Case.relay_ip,
                Case.origin_ip,
                Case.source_mode,
                Case.from_address,
                Case.closed_at,
            )
            .where(Case.id.in_(case_ids))
            .order_by(Case.id)
            .with_for_update()
        )
        for row in self.session.execute(query):
            self.cases[row[0]] = CaseState(*row)

    # --- the decisions, report after report ---------------------------------------------------

    def _decide(self, n: int, report: _Report) -> None:
        joined_by = "thread"
        case = self._thread_target(report)
        if case is None and report.keys:
            joined_by = "duplicate"
            case = self._duplicate_target(report.keys)
        if case is None:
            joined_by = "flood"
            case = self._flood_case(report)
        if case is None:
            joined_by = "new"
            case = CaseState(id=None, **case_values(report.filing.analysis, self.now))
            self.opened.append(case)
            detail = {"report": report.spool_id, "originals": len(report.filing.analysis.originals)}
            self.events.append((case, "created", detail))
        else:
            joined = join_case(case, report.filing.analysis, joined_by, report.spool_id, self.now)
            self.events.extend((case, kind, detail) for kind, detail in joined)
            case.changed = True
        report.case, report.joined_by = case, joined_by
        self._remember(n, report)

    def _thread_target(self, report: _Report) -> CaseState | None:
        for case_id in report.tags:
            if case_id in self.tagged:
                return self.cases[case_id]
        in_batch = [self.batch_threads[m] for m in report.replies if m in self.batch_threads]
        if in_batch:  # written after anything in the store: the newest wins, as there
            return max(in_batch, key=lambda t: t[0])[1]
        stored = [self.stored_threads[m] for m in report.replies if m in self.stored_threads]
        if stored:
            return self.cases[max(stored)[1]]
        return None

    def _duplicate_target(self, keys: list[str]) -> CaseState | None:
        owners = [(key, self.key_owners[key]) for key in keys if key in self.key_owners]
        if not owners:
            return None

        def rank(owner: tuple[str, CaseState]) -> tuple[bool, int, int]:
            # a Message-ID match beats a digest match; among equals, the oldest case
            key, case = owner
            if case.id is not None:
                return (not key.startswith("mid:"), 0, case.id)
            return (not key.startswith("mid:"), 1, self.opened.index(case))

        return min(owners, key=rank)[1]

    def _flood_case(self, report: _Report) -> CaseState | None:
        """The reporter's flood case when this report is beyond the limit (the first one
        beyond it opens the case, see store/grouping.py)."""
        rate, window = self.flood, report.flood_window
        if rate is None or window is None or report.flood_count <= rate.flood_reports:
            return None
        case = self.flood_cases.get(window)
        if case is not None:
            return case
        bumped = self.reporter_windows[window]
        if bumped.case_id is not None:
            case = self.cases[bumped.case_id]
        else:
            case = CaseState(id=None, **grouping.flood_case_values(rate, self.now))
            self.opened.append(case)
            self.flooded_rows.append((bumped.row_id, case))
            detail = grouping.flood_detail(
                grouping.FloodKind.REPORTER, rate, bumped, report.spool_id
            )
            self.events.append((case, "created", detail))
        self.flood_cases[window] = case
        return case

    def _remember(self, n: int, report: _Report) -> None:
        """What the next reports of the batch must see of this one."""
        case = report.target
        if report.joined_by == "new":
            self.new_keys.extend((key, case) for key in report.keys)
        elif report.joined_by != "flood":  # a flood's originals never pull others into it
            self.joined_keys.extend((key, case) for key in report.keys)
        if report.joined_by != "flood":
            for key in report.keys:
                self.key_owners.setdefault(key, case)
        message_id = report.filing.analysis.report.fields.message_id
        if message_id:
            self.batch_threads[message_id] = (n, case)

    # --- the writes: one statement per table ----------------------------------------------

    def _write(self, reports: list[_Report]) -> None:
        session = self.session
        ids = insert_returning_ids(session, CASES, [_case_row(c) for c in self.opened])
        for case, case_id in zip(self.opened, ids, strict=True):
            case.id = case_id
        for row_id, case in self.flooded_rows:
            grouping.mark_flooded(session, row_id, case.case_id, self.now)
        self._update_cases()
        report_ids = insert_returning_ids(
            session, REPORTS, [_report_row(r, self.now) for r in reports]
        )
        write_first_analyses(
            session,
            [
                NewAnalysis(report_id, r.target.case_id, r.filing.analysis, r.data)
                for r, report_id in zip(reports, report_ids, strict=True)
            ],
            now=self.now,
        )
        if self.new_keys:  # a plain INSERT: a racing node's key fails the batch
            session.execute(
                insert(DEDUPE_KEYS),
                [{"key": k, "case_id": c.case_id} for k, c in self.new_keys],
            )
        insert_ignore(
            session, DEDUPE_KEYS, [{"key": k, "case_id": c.case_id} for k, c in self.joined_keys]
        )
        threads = [
            {"message_id": mid, "case_id": r.target.case_id, "origin": "report"}
            for r in reports
            if (mid := r.filing.analysis.report.fields.message_id)
        ]
        if threads:
            session.execute(insert(THREAD_IDS), threads)
        link_identities_of_cases(session, [(r.target.case_id, r.seen) for r in reports])
        self._count_originals(reports)
        if self.events:
            session.execute(
                insert(EVENTS),
                [
                    {
                        "case_id": case.case_id,
                        "at": self.now,
                        "actor": SYSTEM_ACTOR,
                        "kind": kind,
                        "detail": detail,
                    }
                    for case, kind, detail in self.events
                ],
            )

    def _update_cases(self) -> None:
        changed = [c for c in self.cases.values() if c.changed]
        if not changed:
            return
        statement = (
            update(CASES)
            .where(CASES.c.id == bindparam("b_id"))
            .values({name: bindparam(f"b_{name}") for name in _CHANGED})
        )
        self.session.connection().execute(
            statement,
            [
                {"b_id": c.id} | {f"b_{name}": getattr(c, name) for name in _CHANGED}
                for c in changed
            ],
        )

    def _count_originals(self, reports: list[_Report]) -> None:
        """One more report of the original(s) of each new or duplicate-joined case; flag the
        case whose window goes beyond the limit (store/grouping.py), naming the report."""
        rate = self.flood
        if rate is None or not grouping.enabled(rate):
            return
        counted: dict[tuple[str, datetime], list[_Report]] = {}
        for r in reports:
            if r.joined_by in ("new", "duplicate"):
                window = (
                    f"case:{r.target.case_id}",
                    grouping.window_start(r.when, rate.flood_window),
                )
                counted.setdefault(window, []).append(r)
        bumped = grouping.bump_many(
            self.session,
            grouping.FloodKind.ORIGINAL,
            {window: len(rs) for window, rs in counted.items()},
        )
        for window, rs in counted.items():
            after = bumped[window]
            if after.count <= rate.flood_reports or after.case_id is not None:
                continue
            before = after.count - len(rs)
            first = rs[max(rate.flood_reports + 1 - before, 1) - 1]
            grouping.mark_flooded(self.session, after.row_id, first.target.case_id, self.now)
            detail = grouping.flood_detail(grouping.FloodKind.ORIGINAL, rate, after, first.spool_id)
            self.events.append((first.target, "flood_detected", detail))


def _case_row(case: CaseState) -> dict[str, Any]:
    return {name: getattr(case, name) for name in _CASE_COLUMNS}


def _report_row(report: _Report, now: datetime) -> dict[str, Any]:
    f = report.filing
    return report_values(
        f.spool_id,
        report.target.case_id,
        f.envelope,
        f.raw,
        f.analysis,
        report.data,
        now,
        report.joined_by,
    )
