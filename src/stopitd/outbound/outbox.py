"""Outbox operations. Each takes a Session and never commits: the caller owns the transaction,
so a message is queued if and only if the case change that caused it is saved.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from stopitd.analysis.model import to_jsonable
from stopitd.outbound.render import Outgoing
from stopitd.store.cases import record_sent_message
from stopitd.store.outbox_schema import OutboxKind, OutboxRow, OutboxStatus
from stopitd.store.schema import Event

AUTOMATIC_KINDS = (OutboxKind.ACK.value, OutboxKind.RESEND.value)
_ACTIVE = (OutboxStatus.QUEUED.value, OutboxStatus.SENDING.value, OutboxStatus.SENT.value)


def queue(
    session: Session,
    *,
    case_id: int,
    kind: OutboxKind,
    message: Outgoing,
    actor: str,
    now: datetime,
    report_spool_id: str = "",
) -> OutboxRow:
    """Add one message to the outbox and a ``mail_queued`` event (with its Message-ID)."""
    row = OutboxRow(
        case_id=case_id,
        kind=kind.value,
        status=OutboxStatus.QUEUED.value,
        message_id=message.message_id,
        mail_from=message.mail_from,
        rcpt_to=message.to.lower(),
        report_spool_id=report_spool_id,
        raw=message.raw,
        actor=actor,
        attempts=0,
        created_at=now,
        next_attempt_at=now,
        sent_at=None,
        last_error="",
    )
    session.add(row)
    session.flush()
    record_sent_message(session, case_id, message.message_id)  # replies thread back
    session.add(
        Event(
            case_id=case_id,
            at=now,
            actor=actor,
            kind="mail_queued",
            detail={
                "outbox_id": row.id,
                "mail": kind.value,
                "message_id": message.message_id,
                "to": _recipient_label(kind, message.to),
                "subject": message.subject,
            }
            | ({"report": report_spool_id} if report_spool_id else {}),
        )
    )
    return row


def _recipient_label(kind: OutboxKind, to: str) -> str:
    """Events name the reporter by role: the address is on the report, kept confidential."""
    return "reporter" if kind.value in AUTOMATIC_KINDS else to


def automatic_sent_since(session: Session, address: str, since: datetime) -> int:
    """Automatic messages (acknowledgements) queued to ``address`` since ``since``."""
    return int(
        session.scalar(
            select(func.count(OutboxRow.id)).where(
                OutboxRow.rcpt_to == address.lower(),
                OutboxRow.kind.in_(AUTOMATIC_KINDS),
                OutboxRow.created_at >= since,
            )
        )
        or 0
    )


def acknowledged(session: Session, case_id: int, address: str) -> bool:
    """Has this address already been acknowledged (or refused one) on this case?"""
    found = session.scalar(
        select(OutboxRow.id)
        .where(
            OutboxRow.case_id == case_id,
            OutboxRow.rcpt_to == address.lower(),
            OutboxRow.kind.in_(AUTOMATIC_KINDS),
        )
        .limit(1)
    )
    return found is not None


def already_answered(session: Session, case_id: int, spool_id: str) -> bool:
    """Was an automatic reply to this report already decided (saving is idempotent)?

    Looked up among the case's own events (indexed by case): every report leaves one such
    event, so a search over all of them would slow every save as the store grows.
    """
    found = session.scalar(
        select(Event.id).where(
            Event.case_id == case_id,
            Event.kind.in_(("mail_queued", "ack_skipped")),
            Event.detail["report"].as_string() == spool_id,
        )
    )
    return found is not None


def case_for_message_ids(session: Session, message_ids: Iterable[str]) -> int | None:
    """The case a reply belongs to, from its In-Reply-To/References (ids without <>)."""
    ids = [m.strip().strip("<>") for m in message_ids if m.strip()]
    if not ids:
        return None
    return session.scalar(
        select(OutboxRow.case_id).where(OutboxRow.message_id.in_(ids)).order_by(OutboxRow.id)
    )


def list_rows(
    session: Session, status: str | None = None, case_id: int | None = None, limit: int = 100
) -> list[OutboxRow]:
    query = select(OutboxRow).order_by(OutboxRow.id.desc()).limit(limit)
    if status:
        query = query.where(OutboxRow.status == status)
    if case_id is not None:
        query = query.where(OutboxRow.case_id == case_id)
    return list(session.scalars(query))


def row_json(row: OutboxRow) -> dict[str, Any]:
    """One outbox row as `stopitd outbox list --json` prints it (no message bytes)."""
    return {
        "id": row.id,
        "case_id": row.case_id,
        "kind": row.kind,
        "status": row.status,
        "to": row.rcpt_to,
        "message_id": row.message_id,
        "attempts": row.attempts,
        "created": to_jsonable(row.created_at),
        "next_attempt": to_jsonable(row.next_attempt_at),
        "sent": to_jsonable(row.sent_at) if row.sent_at else None,
        "last_error": row.last_error,
        "actor": row.actor,
    }


def retry(session: Session, ids: Sequence[int], now: datetime, actor: str) -> list[int]:
    """Put failed messages (all failed ones when ``ids`` is empty) back in the queue."""
    query = select(OutboxRow).where(OutboxRow.status == OutboxStatus.FAILED.value)
    if ids:
        query = query.where(OutboxRow.id.in_(ids))
    done = []
    for row in session.scalars(query):
        row.status = OutboxStatus.QUEUED.value
        row.next_attempt_at = now
        row.attempts = 0
        row.created_at = now  # give_up_after counts from the retry
        session.add(
            Event(
                case_id=row.case_id,
                at=now,
                actor=actor,
                kind="mail_retried",
                detail={"outbox_id": row.id, "message_id": row.message_id},
            )
        )
        done.append(row.id)
    session.flush()
    return done


def claim_due(session: Session, now: datetime, lease: timedelta, limit: int) -> list[OutboxRow]:
    """Mark due rows ``sending`` with a lease, so another sender (or node) leaves them alone.

    A ``sending`` row whose lease ran out was claimed by a sender that crashed before it
    recorded the outcome: it is claimed again and resent with the same bytes and
    Message-ID (at-least-once). On PostgreSQL rows are locked with SKIP LOCKED.
    """
    query = (
        select(OutboxRow)
        .where(
            or_(
                OutboxRow.status == OutboxStatus.QUEUED.value,
                OutboxRow.status == OutboxStatus.SENDING.value,
            ),
            OutboxRow.next_attempt_at <= now,
        )
        .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(session.scalars(query))
    for row in rows:
        row.status = OutboxStatus.SENDING.value
        row.attempts += 1
        row.next_attempt_at = now + lease
    session.flush()
    return rows


def mark_sent(session: Session, row_id: int, now: datetime, detail: dict[str, object]) -> None:
    row = session.get(OutboxRow, row_id)
    if row is None:
        return
    row.status = OutboxStatus.SENT.value
    row.sent_at = now
    row.last_error = ""
    session.add(
        Event(
            case_id=row.case_id,
            at=now,
            actor="stopitd",
            kind="mail_sent",
            detail={"outbox_id": row.id, "mail": row.kind, "message_id": row.message_id} | detail,
        )
    )
    if row.kind in (OutboxKind.STOP.value, OutboxKind.PROVIDER_ABUSE.value):
        # what `cases related` reads: when the sender (or its provider) was asked to stop
        session.add(
            Event(
                case_id=row.case_id,
                at=now,
                actor="stopitd",
                kind="notice_sent",
                detail={"mail": row.kind, "message_id": row.message_id},
            )
        )


def mark_deferred(
    session: Session, row_id: int, now: datetime, retry_at: datetime, why: str
) -> None:
    session.execute(
        update(OutboxRow)
        .where(OutboxRow.id == row_id)
        .values(status=OutboxStatus.QUEUED.value, next_attempt_at=retry_at, last_error=why)
    )


def mark_failed(session: Session, row_id: int, now: datetime, why: str) -> None:
    row = session.get(OutboxRow, row_id)
    if row is None:
        return
    row.status = OutboxStatus.FAILED.value
    row.last_error = why
    session.add(
        Event(
            case_id=row.case_id,
            at=now,
            actor="stopitd",
            kind="mail_failed",
            detail={
                "outbox_id": row.id,
                "mail": row.kind,
                "message_id": row.message_id,
                "reason": why,
            },
        )
    )
