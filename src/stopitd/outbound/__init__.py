"""Talking back: acknowledgements, notices, routing mail, and their delivery.

Seams for the rest of stopitd (see docs/outbound.md):
- ``on_report_saved(session, ...)``: the worker calls it inside the transaction that saved
  a report (after ``store.save_report``); it queues the acknowledgement and applies the
  routing rules. It never commits.
- ``on_reports_saved(session, saved, settings=...)``: the same for a batch filed by
  ``store.batch.save_reports``, with one INSERT for the batch's plain refusals.
- ``queue_route_mail(session, case_id, office, settings)``: `stopitd cases route` calls it.
- ``run_sender(settings, stop_event)``: the daemon runs it as an asyncio task.
- ``case_for_message_ids(session, ids)``: the case a reply (In-Reply-To/References) answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from stopitd.analysis.model import Analysis, Envelope
from stopitd.config import Settings
from stopitd.outbound.acks import acknowledge, plain_refusal, reporter_address, skipped_event
from stopitd.outbound.outbox import case_for_message_ids
from stopitd.outbound.routing import auto_route, choose_office, queue_route_mail
from stopitd.outbound.safety import NoReply
from stopitd.outbound.sender import deliver_due, run_sender, run_sender_blocking
from stopitd.store.batch import Filed, Filing
from stopitd.store.cases import SYSTEM_ACTOR
from stopitd.store.schema import Event

log = structlog.get_logger(__name__)

__all__ = [
    "AfterSave",
    "case_for_message_ids",
    "choose_office",
    "deliver_due",
    "on_report_saved",
    "on_reports_saved",
    "queue_route_mail",
    "run_sender",
    "run_sender_blocking",
]


@dataclass(frozen=True, slots=True)
class Decided:
    """What a report calls for that needs no look-up in the store, decided once per report:
    the office the routing rules pick (None: no rule matched) and the plain refusal of an
    acknowledgement (None: the store decides)."""

    office: str | None
    refusal: NoReply | None


def decide(raw: bytes, analysis: Analysis, envelope: Envelope, settings: Settings) -> Decided:
    return Decided(
        office=choose_office(analysis, envelope, settings),
        refusal=plain_refusal(raw, reporter_address(envelope), settings),
    )


@dataclass(frozen=True, slots=True)
class AfterSave:
    """What ``on_report_saved`` queued: the acknowledgement's outbox id or why none."""

    ack: int | NoReply
    office: str | None


def on_report_saved(
    session: Session,
    *,
    case_id: int,
    spool_id: str,
    raw: bytes,
    analysis: Analysis,
    envelope: Envelope,
    settings: Settings,
    now: datetime | None = None,
    decided: Decided | None = None,
) -> AfterSave:
    """Queue what a newly saved report calls for, in the caller's transaction.

    Call it after ``save_report`` for every report, new case or not: it acknowledges each
    reporter once per case (RFC 3834 rules, daily cap), is idempotent on ``spool_id``,
    and routes a case that has no office yet by the ``[routing] rules``. ``decided`` is
    ``decide()`` of this report when the caller has it already.
    """
    now = now or datetime.now(UTC)
    try:
        with session.begin_nested():
            decided = decided or decide(raw, analysis, envelope, settings)
            office = auto_route(
                session,
                case_id=case_id,
                office=decided.office,
                settings=settings,
                now=now,
            )
            ack = acknowledge(
                session,
                case_id=case_id,
                spool_id=spool_id,
                raw=raw,
                analysis=analysis,
                envelope=envelope,
                plain=decided.refusal,
                settings=settings,
                now=now,
            )
    except SQLAlchemyError:
        raise  # the store's trouble: the worker keeps the report queued and retries
    except Exception as e:
        # A broken admin template (or any bug here) must never stop a report from being
        # saved: the outbound part is rolled back to its savepoint and the case says why.
        log.error("outbound_failed", case_id=case_id, error=f"{type(e).__name__}: {e}")
        session.add(
            Event(
                case_id=case_id,
                at=now,
                actor=SYSTEM_ACTOR,
                kind="ack_skipped",
                detail={"report": spool_id, "reason": NoReply.ERROR.value, "error": str(e)},
            )
        )
        return AfterSave(ack=NoReply.ERROR, office=None)
    return AfterSave(ack=ack, office=office)


def on_reports_saved(
    session: Session,
    saved: list[tuple[Filing, Filed]],
    *,
    settings: Settings,
    now: datetime | None = None,
) -> None:
    """``on_report_saved`` for a batch, in the caller's transaction.

    Most reports call for no look-up: a report filed just now (``fresh``) has no earlier
    decision, and when no routing rule matches it and the acknowledgement is refused
    without asking the store (outbound off, an automatic message, a list...), only its
    ``ack_skipped`` event is written: one INSERT for all of those. The others (an
    acknowledgement to queue, an office to route to, a spool id filed before) take
    ``on_report_saved`` as they would alone.
    """
    now = now or datetime.now(UTC)
    skipped = []
    for filing, filed in saved:
        decided = None
        if filed.fresh:  # filed before: on_report_saved finds its earlier decision
            decided = decide(filing.raw, filing.analysis, filing.envelope, settings)
            if decided.office is None and decided.refusal is not None:
                skipped.append(skipped_event(filed.case_id, filing.spool_id, decided.refusal, now))
                continue
        on_report_saved(
            session,
            case_id=filed.case_id,
            spool_id=filing.spool_id,
            raw=filing.raw,
            analysis=filing.analysis,
            envelope=filing.envelope,
            settings=settings,
            now=now,
            decided=decided,
        )
    if skipped:
        session.execute(insert(Event), skipped)
