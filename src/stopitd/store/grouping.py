"""Flood grouping: many reports from one reporter, or of one original, stay one case.

Reports are counted per fixed window (aligned to multiples of ``[intake] flood_window``
seconds since the epoch) in `flood_windows`, one row per (key, window). The key is the
reporter's digest (``reporter:<sha256>``, never the address itself) or the original's
case (``case:<id>``). Each report bumps its row with one ``INSERT … ON CONFLICT DO
UPDATE``, which holds that row's lock until the transaction ends: two nodes on one
PostgreSQL store count without a lost update, and the first report beyond the limit
creates the reporter's flood case while it holds the lock, so there is never a second
flood case for one window. A rolled-back savepoint (the intake's retry) takes its
increment with it.

The reporter's row is bumped first, before any case is locked, and the original's row
only while its case is locked, so these locks never wait on each other in a cycle.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from stopitd.config import IntakeSettings
from stopitd.store.schema import Base, Case, CaseStatus, Event, UTCDateTime


class FloodKind(StrEnum):
    REPORTER = "reporter"  # one reporter beyond the rate: its reports share one flood case
    ORIGINAL = "original"  # one original beyond the rate: its case is flagged


class FloodWindow(Base):
    """Reports counted for one reporter or one original within one window.

    `case_id` is set once the window went beyond the limit: the reporter's flood case, or
    the original's (flagged) case; NULL while below it.
    """

    __tablename__ = "flood_windows"
    __table_args__ = (
        UniqueConstraint("key", "window_start", name="uq_flood_windows_key_window_start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(80))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    flooded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


@dataclass(frozen=True, slots=True)
class Bumped:
    """A window's row after one more report was counted in it."""

    row_id: int
    count: int
    case_id: int | None
    window_start: datetime


def enabled(rate: IntakeSettings | None) -> bool:
    return rate is not None and rate.flood_reports > 0


def window_start(when: datetime, seconds: float) -> datetime:
    """The start of the fixed window holding `when`."""
    return datetime.fromtimestamp(math.floor(when.timestamp() / seconds) * seconds, UTC)


def reporter_key(reporter: str) -> str:
    digest = hashlib.sha256(reporter.strip().lower().encode("utf-8", "surrogatepass"))
    return "reporter:" + digest.hexdigest()


def count_reporter(
    session: Session, rate: IntakeSettings | None, reporter: str, when: datetime
) -> Bumped | None:
    """Count one report from `reporter`; its window if this report is beyond the limit."""
    if rate is None or not enabled(rate):
        return None
    bumped = _bump(
        session, FloodKind.REPORTER, reporter_key(reporter), window_start(when, rate.flood_window)
    )
    return bumped if bumped.count > rate.flood_reports else None


def flood_case(
    session: Session,
    rate: IntakeSettings,
    window: Bumped,
    *,
    spool_id: str,
    now: datetime,
    actor: str,
) -> int:
    """The reporter's flood case for this window; the first report beyond the limit opens it
    (under the window row's lock, see the module docstring)."""
    if window.case_id is not None:
        return window.case_id
    case = Case(**flood_case_values(rate, now))
    session.add(case)
    session.flush()
    mark_flooded(session, window.row_id, case.id, now)
    session.add(
        Event(
            case_id=case.id,
            at=now,
            actor=actor,
            kind="created",
            detail=flood_detail(FloodKind.REPORTER, rate, window, spool_id),
        )
    )
    return case.id


def count_original(
    session: Session,
    rate: IntakeSettings | None,
    case_id: int,
    when: datetime,
    *,
    spool_id: str,
    now: datetime,
    actor: str,
) -> None:
    """Count one report of the original(s) of `case_id` (whose row the caller holds
    locked); flag the case once its window goes beyond the limit."""
    if rate is None or not enabled(rate):
        return
    bumped = _bump(
        session, FloodKind.ORIGINAL, f"case:{case_id}", window_start(when, rate.flood_window)
    )
    if bumped.count <= rate.flood_reports or bumped.case_id is not None:
        return
    mark_flooded(session, bumped.row_id, case_id, now)
    session.add(
        Event(
            case_id=case_id,
            at=now,
            actor=actor,
            kind="flood_detected",
            detail=flood_detail(FloodKind.ORIGINAL, rate, bumped, spool_id),
        )
    )


def flood_kinds(session: Session, case_ids: list[int]) -> dict[int, str]:
    """case id -> "reporter" (a reporter's flood case) or "original" (one original
    reported beyond the rate), for the cases that are floods."""
    out: dict[int, str] = {}
    for start in range(0, len(case_ids), 500):
        chunk = case_ids[start : start + 500]
        rows = session.execute(
            select(FloodWindow.case_id, FloodWindow.kind).where(FloodWindow.case_id.in_(chunk))
        )
        for case_id, kind in rows:
            if case_id is not None:
                out[case_id] = kind
    return out


def flood_case_values(rate: IntakeSettings, now: datetime) -> dict[str, Any]:
    """The columns of a reporter's flood case (no source: it groups many originals)."""
    return {
        "status": CaseStatus.NEW.value,
        "subject": (
            f"Flood: more than {rate.flood_reports} reports from one reporter within "
            f"{rate.flood_window:g} s"
        ),
        "created_at": now,
        "updated_at": now,
        "relay_ip": "",
        "origin_ip": "",
        "source_mode": "unknown",
        "from_address": "",
    }


def flood_detail(
    kind: FloodKind, rate: IntakeSettings, window: Bumped, spool_id: str
) -> dict[str, object]:
    return {
        "flood": kind.value,
        "report": spool_id,
        "limit": rate.flood_reports,
        "window_s": rate.flood_window,
        "window_start": window.window_start.isoformat().replace("+00:00", "Z"),
    }


def _bump(session: Session, kind: FloodKind, key: str, start: datetime) -> Bumped:
    """One more report in (key, window): an upsert that locks the row until commit."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(FloodWindow)
        .values(kind=kind.value, key=key, window_start=start, count=1)
        .on_conflict_do_update(
            index_elements=["key", "window_start"], set_={"count": FloodWindow.count + 1}
        )
        .returning(FloodWindow.id, FloodWindow.count, FloodWindow.case_id)
    )
    row_id, count, case_id = session.execute(stmt).one()
    return Bumped(row_id=row_id, count=count, case_id=case_id, window_start=start)


def mark_flooded(session: Session, row_id: int, case_id: int, now: datetime) -> None:
    """The window went beyond the limit: its case (the flood case, or the flagged one)."""
    session.execute(
        update(FloodWindow).where(FloodWindow.id == row_id).values(case_id=case_id, flooded_at=now)
    )


def bump_many(
    session: Session, kind: FloodKind, counts: dict[tuple[str, datetime], int]
) -> dict[tuple[str, datetime], Bumped]:
    """Count several reports per (key, window) in ONE upsert (a batch of reports).

    The rows are written in key order, so two nodes lock them in the same order. Each
    ``Bumped`` carries the count *after* the batch's reports; the n-th of the k reports
    counted in a window had ``count - k + n``.
    """
    if not counts:
        return {}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = insert(FloodWindow).values(
        [
            {"kind": kind.value, "key": key, "window_start": start, "count": n}
            for (key, start), n in sorted(counts.items())
        ]
    )
    stmt = rows.on_conflict_do_update(
        index_elements=["key", "window_start"],
        set_={"count": FloodWindow.count + rows.excluded["count"]},
    ).returning(
        FloodWindow.id,
        FloodWindow.key,
        FloodWindow.window_start,
        FloodWindow.count,
        FloodWindow.case_id,
    )
    out = {}
    for row_id, key, start, count, case_id in session.execute(stmt):
        out[(key, start)] = Bumped(row_id=row_id, count=count, case_id=case_id, window_start=start)
    return out
