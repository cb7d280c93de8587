"""The outbox: every message stopitd sends, written in the same transaction as the case change.

A row is rendered once (``raw``, with its Message-ID) and sent as is, so a resend after a
crash repeats the same bytes and the same Message-ID (delivery is at-least-once).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stopitd.store.schema import Base, UTCDateTime, utcnow


class OutboxStatus(StrEnum):
    QUEUED = "queued"  # waiting for its next attempt (next_attempt_at)
    SENDING = "sending"  # claimed by a sender; leased until next_attempt_at
    SENT = "sent"  # the smarthost accepted it (or it was written to dry_run_dir)
    FAILED = "failed"  # refused with 5xx or undeliverable for too long: `outbox retry`


class OutboxKind(StrEnum):
    ACK = "ack"  # acknowledgement to the reporter
    RESEND = "resend"  # acknowledgement asking for the original with full headers
    STOP = "stop"  # stop notice to the sender (staff only)
    PROVIDER_ABUSE = "provider-abuse"  # notice to the responsible provider's abuse desk
    ROUTE = "route"  # the case, mailed to an office


class OutboxRow(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.QUEUED.value, index=True)
    message_id: Mapped[str] = mapped_column(Text, unique=True)  # without <>
    mail_from: Mapped[str] = mapped_column(Text, default="")  # envelope sender; "" is <>
    rcpt_to: Mapped[str] = mapped_column(Text, index=True)  # lower-cased, one per row
    report_spool_id: Mapped[str] = mapped_column(String(40), default="")  # what it answers
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    actor: Mapped[str] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
