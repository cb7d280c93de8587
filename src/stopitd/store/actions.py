"""What staff do to a case: assign, route, change status, note, close, reopen.

Each locks the case row, changes it, and appends an event naming who did it; none
commits. A change that changes nothing (assigning the current assignee) records nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stopitd.errors import StopitdError
from stopitd.store.schema import Case, CaseStatus, Event, Note


class CaseNotFoundError(StopitdError):
    pass


def _case(session: Session, case_id: int) -> Case:
    case = session.execute(select(Case).where(Case.id == case_id).with_for_update()).scalar()
    if case is None:
        raise CaseNotFoundError(f"no case {case_id}")
    return case


def record_event(
    session: Session, case_id: int, actor: str, kind: str, detail: dict[str, Any]
) -> None:
    """Append one event to a case's history (the log is never updated in place)."""
    session.add(Event(case_id=case_id, at=datetime.now(UTC), actor=actor, kind=kind, detail=detail))


def _touch(case: Case) -> datetime:
    now = datetime.now(UTC)
    case.updated_at = now
    return now


def assign(session: Session, case_id: int, assignee: str | None, actor: str) -> bool:
    case = _case(session, case_id)
    if case.assignee == assignee:
        return False
    before = case.assignee
    case.assignee = assignee
    _touch(case)
    record_event(session, case_id, actor, "assigned", {"from": before, "to": assignee})
    return True


def route(session: Session, case_id: int, office: str, actor: str) -> bool:
    case = _case(session, case_id)
    if case.office == office:
        return False
    before = case.office
    case.office = office
    _touch(case)
    record_event(session, case_id, actor, "routed", {"from": before, "to": office})
    return True


def set_status(
    session: Session, case_id: int, status: CaseStatus, actor: str, reason: str = ""
) -> bool:
    case = _case(session, case_id)
    if case.status == status.value:
        return False
    before = case.status
    now = _touch(case)
    case.status = status.value
    case.closed_at = now if status is CaseStatus.CLOSED else None
    kind = {CaseStatus.CLOSED: "closed"}.get(status, "status_changed")
    if before == CaseStatus.CLOSED.value and status is not CaseStatus.CLOSED:
        kind = "reopened"
    detail: dict[str, Any] = {"from": before, "to": status.value}
    if reason:
        detail["reason"] = reason
    record_event(session, case_id, actor, kind, detail)
    return True


def close(session: Session, case_id: int, actor: str, reason: str = "") -> bool:
    return set_status(session, case_id, CaseStatus.CLOSED, actor, reason)


def reopen(session: Session, case_id: int, actor: str, reason: str = "") -> bool:
    case = _case(session, case_id)
    if case.status != CaseStatus.CLOSED.value:
        return False
    return set_status(session, case_id, CaseStatus.OPEN, actor, reason)


def add_note(session: Session, case_id: int, text: str, actor: str) -> None:
    case = _case(session, case_id)
    now = _touch(case)
    session.add(Note(case_id=case_id, at=now, author=actor, text=text))
    # the note text lives in `notes`; the event only says one was added
    record_event(session, case_id, actor, "note_added", {"length": len(text)})
