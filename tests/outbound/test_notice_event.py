"""A delivered stop notice is what `cases related` reports as "asked to stop"."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from stopitd.outbound.outbox import mark_sent, queue
from stopitd.outbound.render import Outgoing
from stopitd.store.outbox_schema import OutboxKind
from stopitd.store.schema import Event
from tests.outbound.conftest import file_report, fixture, sessions_for, write_settings

WHEN = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _deliver(url: str, tmp_path: Path, kind: OutboxKind) -> list[str]:
    settings = write_settings(tmp_path, url, 2525)
    sessions = sessions_for(url)
    case_id, _ = file_report(
        sessions, settings, fixture("gmail-attached-original.eml"), mail_from="r@example.org",
        spool_id="n1",
    )  # fmt: skip
    message = Outgoing(
        to="sender@freemail.example", mail_from="stopit@example.edu",
        message_id="notice-1@example.edu", subject="About your e-mail", raw=b"Subject: x\r\n\r\n",
    )  # fmt: skip
    with sessions() as session, session.begin():
        row = queue(session, case_id=case_id, kind=kind, message=message, actor="staff", now=WHEN)
    with sessions() as session, session.begin():
        mark_sent(session, row.id, WHEN, {})
    with sessions() as session:
        return list(session.scalars(select(Event.kind).where(Event.case_id == case_id)))


def test_a_sent_stop_notice_is_a_notice_sent_event(sqlite_url: str, tmp_path: Path) -> None:
    assert "notice_sent" in _deliver(sqlite_url, tmp_path, OutboxKind.STOP)


def test_an_acknowledgement_is_not_a_notice(sqlite_url: str, tmp_path: Path) -> None:
    kinds = _deliver(sqlite_url, tmp_path, OutboxKind.ACK)
    assert "mail_sent" in kinds and "notice_sent" not in kinds
