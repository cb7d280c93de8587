"""The delivery loop: outbox rows -> the smarthost (or .eml files in dry-run mode).

Delivery is at-least-once. A row is claimed (``sending``, with a lease) and committed
before the SMTP conversation; the outcome is committed after it. A crash in between
leaves the row ``sending``; when the lease runs out it is sent again with the same bytes
and Message-ID, so a recipient may in rare cases see a duplicate, never a loss.
4xx answers and an unreachable smarthost defer the row with a doubling wait; 5xx answers
fail it with the smarthost's reason (`stopitd outbox retry` queues it again).
"""

from __future__ import annotations

import asyncio
import os
import re
import smtplib
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Protocol

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from stopitd.config import OutboundSettings, Settings
from stopitd.outbound import outbox
from stopitd.store import db
from stopitd.store.outbox_schema import OutboxRow

log = structlog.get_logger(__name__)

BATCH = 50
_ADDRESS = re.compile(r"[^\s<>\"',;:]+@[^\s<>\"',;:]+")


def redact(text: str) -> str:
    """Smarthost replies often quote the recipient: logs above debug never name one."""
    return _ADDRESS.sub("<address>", text)


class TemporaryFailure(Exception):
    """Try again later: 4xx, smarthost unreachable, TLS or login trouble (our side)."""


class SmarthostUnavailable(TemporaryFailure):
    """The smarthost cannot be used at all right now: defer the whole round."""


class PermanentFailure(Exception):
    """The smarthost refused this message for good (5xx): the reason is kept on the row."""


@dataclass(frozen=True, slots=True)
class Round:
    """What one pass over the due rows did."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed row, detached from its session."""

    id: int
    kind: str
    mail_from: str
    rcpt_to: str
    message_id: str
    raw: bytes
    attempts: int
    created_at: datetime


def _reply_text(code: int, text: bytes | str) -> str:
    body = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(body.split())}"


class SmtpTransport:
    """One connection to the smarthost for a round, opened on first use."""

    def __init__(self, settings: OutboundSettings) -> None:
        self._settings = settings
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

    def _connect(self) -> smtplib.SMTP:
        s = self._settings
        try:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        except (OSError, smtplib.SMTPException) as e:
            raise SmarthostUnavailable(f"smarthost {s.smarthost} unreachable: {e}") from None
        try:
            smtp.ehlo()
            if s.starttls:
                if not smtp.has_extn("starttls"):
                    raise SmarthostUnavailable(
                        f"smarthost {s.smarthost} offers no STARTTLS (outbound.starttls = true)"
                    )
                context = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
                smtp.starttls(context=context)
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, _password(s))
        except TemporaryFailure:
            smtp.close()
            raise
        except smtplib.SMTPAuthenticationError as e:
            smtp.close()
            raise SmarthostUnavailable(
                f"smarthost refused our login ({_reply_text(e.smtp_code, e.smtp_error)}): "
                "check outbound.username and outbound.password_file"
            ) from None
        except (smtplib.SMTPException, OSError, ssl.SSLError) as e:
            smtp.close()
            raise SmarthostUnavailable(f"smarthost {s.smarthost}: {e}") from None
        return smtp

    def send(self, job: Job) -> str:
        if self._smtp is None:
            self._smtp = self._connect()
        try:
            self._smtp.sendmail(job.mail_from, [job.rcpt_to], job.raw)
        except smtplib.SMTPRecipientsRefused as e:
            code, text = next(iter(e.recipients.values()))
            _raise_for(code, text)
        except smtplib.SMTPResponseException as e:
            if isinstance(e, smtplib.SMTPServerDisconnected):
                self._smtp = None
            _raise_for(e.smtp_code, e.smtp_error)
        except (smtplib.SMTPException, OSError) as e:
            self._smtp.close()
            self._smtp = None
            raise SmarthostUnavailable(f"smarthost connection lost: {e}") from None
        return self._settings.smarthost


def _raise_for(code: int, text: bytes | str) -> None:
    reply = _reply_text(code, text)
    if 500 <= code < 600:
        raise PermanentFailure(reply)
    raise TemporaryFailure(reply)


def _password(s: OutboundSettings) -> str:
    if s.password_file is None:
        return ""
    try:
        return s.password_file.read_text().strip("\r\n")
    except OSError as e:
        raise SmarthostUnavailable(
            f"outbound.password_file {s.password_file}: {e.strerror}"
        ) from None


class DryRunTransport:
    """Writes each message to ``dry_run_dir`` as an .eml file instead of sending it."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def __enter__(self) -> DryRunTransport:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def send(self, job: Job) -> str:
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            final = self._folder / f"{job.id:08d}-{job.kind}.eml"
            tmp = self._folder / f".{final.name}.tmp"
            with tmp.open("wb") as fh:
                fh.write(job.raw)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(final)
        except OSError as e:
            raise SmarthostUnavailable(f"dry_run_dir {self._folder}: {e.strerror}") from None
        return str(final)


def _job(row: OutboxRow) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        mail_from=row.mail_from,
        rcpt_to=row.rcpt_to,
        message_id=row.message_id,
        raw=row.raw,
        attempts=row.attempts,
        created_at=row.created_at,
    )


def retry_delay(settings: OutboundSettings, attempts: int) -> timedelta:
    """Doubling wait after the n-th failed attempt, capped at retry_max."""
    seconds = settings.retry_initial * 2 ** max(0, attempts - 1)
    return timedelta(seconds=min(seconds, settings.retry_max))


def deliver_due(
    sessions: sessionmaker[Session], settings: Settings, now: datetime | None = None
) -> Round:
    """Claim the due rows (committed), deliver each, commit each outcome."""
    out = settings.outbound
    now = now or datetime.now(UTC)
    with sessions.begin() as session:
        jobs = [
            _job(r)
            for r in outbox.claim_due(session, now, timedelta(seconds=out.send_lease), BATCH)
        ]
    if not jobs:
        return Round()
    sent = deferred = failed = 0
    transport: SmtpTransport | DryRunTransport = (
        DryRunTransport(out.dry_run_dir) if out.dry_run_dir else SmtpTransport(out)
    )
    with transport:
        down: str | None = None
        for job in jobs:
            outcome: str | None = down
            where = ""
            if outcome is None:
                try:
                    where = transport.send(job)
                except SmarthostUnavailable as e:
                    outcome = down = str(e)  # not this message's fault: defer the rest too
                except TemporaryFailure as e:
                    outcome = str(e)
                except PermanentFailure as e:
                    with sessions.begin() as session:
                        outbox.mark_failed(session, job.id, now, str(e))
                    log.warning(
                        "mail_failed", outbox_id=job.id, mail=job.kind, reply=redact(str(e))
                    )
                    failed += 1
                    continue
            with sessions.begin() as session:
                if outcome is None:
                    detail: dict[str, object] = (
                        {"via": where} if out.dry_run_dir is None else {"dry_run": where}
                    )
                    outbox.mark_sent(session, job.id, now, detail)
                    sent += 1
                    log.info("mail_sent", outbox_id=job.id, mail=job.kind, attempt=job.attempts)
                elif now - job.created_at >= timedelta(seconds=out.give_up_after):
                    why = f"undeliverable for {out.give_up_after / 3600:g} h: {outcome}"
                    outbox.mark_failed(session, job.id, now, why)
                    failed += 1
                    log.warning("mail_failed", outbox_id=job.id, mail=job.kind, reply=redact(why))
                else:
                    retry_at = now + retry_delay(out, job.attempts)
                    outbox.mark_deferred(session, job.id, now, retry_at, outcome)
                    deferred += 1
                    log.info(
                        "mail_deferred",
                        outbox_id=job.id,
                        mail=job.kind,
                        reason=redact(outcome),
                        retry_at=retry_at.isoformat(),
                    )
    return Round(claimed=len(jobs), sent=sent, deferred=deferred, failed=failed)


async def run_sender(
    settings: Settings,
    stop_event: asyncio.Event,
    *,
    sessions: sessionmaker[Session] | None = None,
    wake: asyncio.Event | None = None,
) -> None:
    """The daemon's outbox task: deliver due mail until ``stop_event`` is set.

    ``wake`` (optional) is set by whoever queued mail, to send it without waiting for the
    next poll. The database work runs in a thread (sync SQLAlchemy, smtplib).
    """
    if not settings.outbound.enabled:
        log.info("outbox_sender_disabled")
        return
    engine = None
    if sessions is None:
        engine = db.make_engine(settings.database.url)
        sessions = db.make_sessionmaker(engine)
    pause = settings.outbound.poll_interval
    log.info(
        "outbox_sender_started",
        smarthost=settings.outbound.smarthost,
        dry_run=str(settings.outbound.dry_run_dir or ""),
    )
    try:
        while not stop_event.is_set():
            try:
                done = await asyncio.to_thread(deliver_due, sessions, settings)
                pause = settings.outbound.poll_interval
            except SQLAlchemyError as e:
                log.warning("outbox_store_unavailable", error=str(e).splitlines()[0])
                done = Round()
                pause = min(pause * 2, settings.outbound.retry_max)
            if done.claimed >= BATCH:
                continue  # more may be due
            await _wait(stop_event, wake, pause)
    finally:
        if engine is not None:
            engine.dispose()
        log.info("outbox_sender_stopped")


class StopFlag(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


def run_sender_blocking(
    settings: Settings,
    stop: StopFlag,
    *,
    wake: threading.Event | None = None,
    sessions: sessionmaker[Session] | None = None,
) -> None:
    """The same loop for a thread (the worker process runs it beside the worker).

    It sleeps on ``wake`` (set it when mail was queued, and when ``stop`` is set) or, with
    no ``wake``, on ``stop``; ``poll_interval`` bounds every sleep.
    """
    if not settings.outbound.enabled:
        log.info("outbox_sender_disabled")
        return
    engine = None
    if sessions is None:
        engine = db.make_engine(settings.database.url)
        sessions = db.make_sessionmaker(engine)
    pause = settings.outbound.poll_interval
    log.info("outbox_sender_started", smarthost=settings.outbound.smarthost)
    try:
        while not stop.is_set():
            try:
                done = deliver_due(sessions, settings)
                pause = settings.outbound.poll_interval
            except SQLAlchemyError as e:
                log.warning("outbox_store_unavailable", error=str(e).splitlines()[0])
                done = Round()
                pause = min(pause * 2, settings.outbound.retry_max)
            if done.claimed >= BATCH or stop.is_set():
                continue
            if wake is not None:
                wake.wait(pause)
                wake.clear()
            else:
                stop.wait(pause)
    finally:
        if engine is not None:
            engine.dispose()
        log.info("outbox_sender_stopped")


async def _wait(stop_event: asyncio.Event, wake: asyncio.Event | None, timeout: float) -> None:
    waiters = [asyncio.ensure_future(stop_event.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
    if wake is not None:
        wake.clear()
