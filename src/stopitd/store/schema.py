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
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
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


# The text-search index of `cases list --text` (migration 0120). It is dialect-specific
# (PostgreSQL: pg_trgm GIN indexes on subject and from_address; SQLite: the
# FTS5 trigram table `cases_text`, its shadow tables and triggers), so it lives in the
# migration only and `include_name` keeps it out of the models-vs-migrations comparison.
TEXT_SEARCH_INDEXES = ("ix_cases_subject_trgm", "ix_cases_from_address_trgm")
TEXT_SEARCH_TABLE = "cases_text"


def include_name(name: str | None, type_: str, _parent_names: object) -> bool:
    """alembic `include_name`: leave out the migration-only text-search objects."""
    if name is None:
        return True
    if type_ == "table":
        return not (name == TEXT_SEARCH_TABLE or name.startswith(TEXT_SEARCH_TABLE + "_"))
    if type_ == "index":
        return name not in TEXT_SEARCH_INDEXES
    return True


class Case(Base):
    """A case groups reports of one thing; its source columns are the first original's.

    Case ids are never reused (AUTOINCREMENT on SQLite, a sequence on PostgreSQL), so a
    tag like ``[stopit #123]`` in an old reply can never reach a newer case after a purge.
    """

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_status_created", "status", "created_at"),
        Index("ix_cases_office_created", "office", "created_at"),
        Index("ix_cases_assignee_created", "assignee", "created_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=CaseStatus.NEW.value)
    subject: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    office: Mapped[str | None] = mapped_column(String(64))
    assignee: Mapped[str | None] = mapped_column(String(128))
    relay_ip: Mapped[str] = mapped_column(String(45), default="", index=True)
    origin_ip: Mapped[str] = mapped_column(String(45), default="", index=True)
    source_mode: Mapped[str] = mapped_column(String(24), default="unknown", index=True)
    from_address: Mapped[str] = mapped_column(Text, default="")
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)

    reports: Mapped[list[Report]] = relationship(back_populates="case", order_by="Report.id")
    events: Mapped[list[Event]] = relationship(back_populates="case", order_by="Event.id")
    notes: Mapped[list[Note]] = relationship(back_populates="case", order_by="Note.id")


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
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str] = mapped_column(Text, default="")
    analyzer_version: Mapped[str] = mapped_column(String(32), default="")
    analysis: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the current one
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    joined_by: Mapped[str] = mapped_column(String(16), default="new")  # new|thread|duplicate|flood
    # last: a big raw is written as a trailing zeroblob, then in pieces (store/blobs.py)
    raw: Mapped[bytes] = mapped_column(LargeBinary)

    case: Mapped[Case] = relationship(back_populates="reports")
    originals: Mapped[list[OriginalRow]] = relationship(
        back_populates="report", order_by="OriginalRow.id"
    )
    analyses: Mapped[list[AnalysisRow]] = relationship(order_by="AnalysisRow.id")


class AnalysisRow(Base):
    """One run of the analyser over a report; re-analysis adds a row, never overwrites."""

    __tablename__ = "analyses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    analyzer_version: Mapped[str] = mapped_column(String(32))
    schema_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)  # DNS evidence was used
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class OriginalRow(Base):
    """One offending original found in a report: the evidence, with its analysis."""

    __tablename__ = "originals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analyses.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    how: Mapped[str] = mapped_column(String(24))
    grade: Mapped[str] = mapped_column(String(24))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    message_id: Mapped[str] = mapped_column(Text, default="", index=True)
    from_address: Mapped[str] = mapped_column(Text, default="", index=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    relay_ip: Mapped[str] = mapped_column(String(45), default="", index=True)
    origin_ip: Mapped[str] = mapped_column(String(45), default="", index=True)
    source_mode: Mapped[str] = mapped_column(String(24), default="unknown")
    analysis: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    raw: Mapped[bytes] = mapped_column(LargeBinary)  # last, as on `reports`

    report: Mapped[Report] = relationship(back_populates="originals")


class HopRow(Base):
    """One Received header of an original, as the walk labelled it."""

    __tablename__ = "hops"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    original_id: Mapped[int] = mapped_column(ForeignKey("originals.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # 0 = top
    status: Mapped[str] = mapped_column(String(16))
    ip: Mapped[str] = mapped_column(String(45), default="", index=True)
    rdns: Mapped[str] = mapped_column(Text, default="")
    helo: Mapped[str] = mapped_column(Text, default="")
    by_host: Mapped[str] = mapped_column(Text, default="")
    protocol: Mapped[str] = mapped_column(String(32), default="")
    trust: Mapped[str] = mapped_column(String(24), default="")
    date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    raw: Mapped[str] = mapped_column(Text, default="")


class AuthResultRow(Base):
    """One authentication result of an original (verified, recorded, or an untrusted claim)."""

    __tablename__ = "auth_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    original_id: Mapped[int] = mapped_column(ForeignKey("originals.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # verified | recorded | untrusted
    method: Mapped[str] = mapped_column(String(16))  # dkim, spf, dmarc, arc, ...
    domain: Mapped[str] = mapped_column(Text, default="", index=True)
    result: Mapped[str] = mapped_column(String(16), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class VerdictRow(Base):
    """The source verdict of one original: where it came from and how sure we are."""

    __tablename__ = "verdicts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    original_id: Mapped[int] = mapped_column(ForeignKey("originals.id"), unique=True)
    mode: Mapped[str] = mapped_column(String(24))
    relay_ip: Mapped[str] = mapped_column(String(45), default="")
    origin_ip: Mapped[str] = mapped_column(String(45), default="")
    provider: Mapped[str] = mapped_column(String(32), default="")
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    confidence: Mapped[str] = mapped_column(String(16))
    from_authenticated: Mapped[bool | None] = mapped_column(Boolean)
    authenticated_identity: Mapped[str] = mapped_column(Text, default="")
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)


class FindingRow(Base):
    """A finding of one analysis, on the report (original_id NULL) or on one original."""

    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    analysis_id: Mapped[int] = mapped_column(ForeignKey("analyses.id"), index=True)
    original_id: Mapped[int | None] = mapped_column(ForeignKey("originals.id"), index=True)
    code: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")


class Identity(Base):
    """Something that identifies a sender: an IP, a prefix, a domain, an address, a login.

    One row per distinct (kind, value); cases point at it through `case_identities`, so
    related cases are found by the identities they share (no link rows to keep in step).
    """

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_identities_kind_value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    value: Mapped[str] = mapped_column(String(320))
    ip_key: Mapped[str | None] = mapped_column(String(32), index=True)  # for CIDR filters


class CaseIdentity(Base):
    """An identity seen in a case. `links` is false for shared ones (a provider's relay,
    a private address, a free-mail domain), which never make two cases related."""

    __tablename__ = "case_identities"
    __table_args__ = (Index("ix_case_identities_identity", "identity_id", "links", "case_id"),)

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id"), primary_key=True)
    links: Mapped[bool] = mapped_column(Boolean, default=True)


class DedupeKey(Base):
    """A digest of a reported original (its Message-ID, or its header/body digest) that
    belongs to exactly one case: the unique key the concurrent de-duplication relies on."""

    __tablename__ = "dedupe_keys"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)


class ThreadId(Base):
    """A Message-ID that threads into a case: a report's own, or one stopitd sent."""

    __tablename__ = "thread_ids"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(Text, index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    origin: Mapped[str] = mapped_column(String(16))  # report | sent


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    author: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)

    case: Mapped[Case] = relationship(back_populates="notes")


class Purge(Base):
    """The summary a retention purge leaves behind (the purged cases themselves are gone)."""

    __tablename__ = "purges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    older_than_days: Mapped[int] = mapped_column(Integer)
    cutoff: Mapped[datetime] = mapped_column(UTCDateTime)
    case_count: Mapped[int] = mapped_column(Integer)
    report_count: Mapped[int] = mapped_column(Integer)
    case_ids: Mapped[list[int]] = mapped_column(JSON, default=list)


class Event(Base):
    """Append-only case history: who did what, when."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    case: Mapped[Case] = relationship(back_populates="events")

from stopitd.store import grouping as grouping  # noqa: E402  (registers "flood_windows")
from stopitd.store import outbox_schema as outbox_schema  # noqa: E402  (registers "outbox")
