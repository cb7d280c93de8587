"""SQLAlchemy 2 tables. UTC timestamps everywhere; enums stored by value as short strings.

Every accepted message (every 250) is exactly one `reports` row keyed by its spool id; a
case groups reports. Raw bytes and their sha256 live on `reports` and `originals`, so a
case is self-contained evidence and can be re-analysed later.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class CaseStatus(StrEnum):
    NEW = "new"
    OPEN = "open"
    WAITING = "waiting"
    CLOSED = "closed"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, UTC out, on SQLite (which keeps no zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=CaseStatus.NEW.value, index=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    office: Mapped[str | None] = mapped_column(String(64), index=True)
    assignee: Mapped[str | None] = mapped_column(String(128), index=True)
    relay_ip: Mapped[str] = mapped_column(String(45), default="", index=True)
    origin_ip: Mapped[str] = mapped_column(String(45), default="", index=True)
    source_mode: Mapped[str] = mapped_column(String(24), default="unknown", index=True)

    reports: Mapped[list[Report]] = relationship(back_populates="case", order_by="Report.id")
    events: Mapped[list[Event]] = relationship(back_populates="case", order_by="Event.id")


class Report(Base):
    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    spool_id: Mapped[str] = mapped_column(String(40), unique=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reporter: Mapped[str] = mapped_column(Text, default="")  # MAIL FROM: confidential
    rcpt_tos: Mapped[list[str]] = mapped_column(JSON, default=list)
    peer: Mapped[str] = mapped_column(String(64), default="")
    helo: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str] = mapped_column(Text, default="")
    analyzer_version: Mapped[str] = mapped_column(String(32), default="")
    analysis: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    case: Mapped[Case] = relationship(back_populates="reports")
    originals: Mapped[list[OriginalRow]] = relationship(
        back_populates="report", order_by="OriginalRow.position"
    )


class OriginalRow(Base):
    """One offending original found in a report: the evidence, with its analysis."""

    __tablename__ = "originals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    how: Mapped[str] = mapped_column(String(24))
    grade: Mapped[str] = mapped_column(String(24))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    message_id: Mapped[str] = mapped_column(Text, default="", index=True)
    from_address: Mapped[str] = mapped_column(Text, default="", index=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    relay_ip: Mapped[str] = mapped_column(String(45), default="", index=True)
    origin_ip: Mapped[str] = mapped_column(String(45), default="", index=True)
    source_mode: Mapped[str] = mapped_column(String(24), default="unknown")
    analysis: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    report: Mapped[Report] = relationship(back_populates="originals")


class Event(Base):
    """Append-only case history: who did what, when."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    case: Mapped[Case] = relationship(back_populates="events")

from stopitd.store import outbox_schema as outbox_schema  # noqa: E402  (registers "outbox")
