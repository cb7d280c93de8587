"""SMTP intake (aiosmtpd): only the reporting addresses, size limit, DATA -> durable spool.

The handler object is the seam: ``Handler.handle_RCPT`` / ``handle_DATA`` are called by
aiosmtpd and can be called directly in tests. ``ReportSMTP`` fills aiosmtpd's gaps: its
own size-error texts become ``552 5.3.4`` and every session is tracked so a shutdown can
stop accepting, wait for the messages in hand, then close the rest with ``421``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, AnyStr

import structlog
from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from stopitd.analysis.model import Envelope
from stopitd.spool import Spool, SpoolWriteError

log = structlog.get_logger("stopitd.smtp")

# Replies (named constants, RFC 3463 enhanced codes).
OK_RCPT = "250 2.1.5 OK"
NO_SUCH_USER = "550 5.1.1 No such recipient here: this server only takes abuse reports"
TOO_BIG = "552 5.3.4 Message too big for this system"
TRY_LATER = "451 4.3.0 Temporary local problem, please try again later"
DISK_FULL = "452 4.3.1 Insufficient system storage, please try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, please try again later"
QUEUED = "250 2.0.0 queued as {id}"

_AIOSMTPD_SIZE_ERRORS = (b"552 Error: Too much mail data", b"552 Error: message size exceeds")


def normalise_address(address: str) -> str:
    return address.strip().strip("<>").lower()


class Handler:
    """aiosmtpd hooks: RCPT policy, DATA to the spool, errors to 451."""

    def __init__(
        self,
        spool: Spool,
        report_addresses: Iterable[str],
        *,
        executor: ThreadPoolExecutor | None = None,
        on_spooled: Callable[[str], None] | None = None,
    ) -> None:
        self.spool = spool
        self.report_addresses = frozenset(normalise_address(a) for a in report_addresses)
        # A pool of its own: many sessions may wait on fsync at once, and the loop's
        # default executor is small (cores + 4) and shared.
        self.executor = executor
        self.on_spooled = on_spooled

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: SmtpEnvelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if normalise_address(address) not in self.report_addresses:
            log.info("recipient_refused", peer=_peer_ip(session))
            log.debug("recipient_refused_detail", address=address)
            return NO_SUCH_USER
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return OK_RCPT

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        raw = envelope.original_content
        if not isinstance(raw, bytes | bytearray):
            log.error("message_without_content")
            return TRY_LATER
        report_envelope = Envelope(
            mail_from=_reverse_path(envelope.mail_from),
            rcpt_tos=tuple(envelope.rcpt_tos),
            peer=_peer_ip(session),
            helo=session.host_name or "",
            received_at=datetime.now(UTC),
        )
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            spool_id = await loop.run_in_executor(
                self.executor, self.spool.put, bytes(raw), report_envelope
            )
        except SpoolWriteError as e:
            log.error("spool_write_failed", error=str(e), errno=e.errno)
            return DISK_FULL if e.disk_full else TRY_LATER
        log.info(
            "message_spooled",
            spool_id=spool_id,
            size=len(raw),
            peer=report_envelope.peer,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        log.debug(
            "message_spooled_detail",
            spool_id=spool_id,
            mail_from=report_envelope.mail_from,
            rcpt_tos=report_envelope.rcpt_tos,
        )
        if self.on_spooled is not None:
            try:
                self.on_spooled(spool_id)
            except Exception:  # the message is safe; the worker's poll will find it
                log.exception("worker_wakeup_failed", spool_id=spool_id)
        return QUEUED.format(id=spool_id)

    async def handle_exception(self, error: Exception) -> str:
        """aiosmtpd calls this for any exception in a command: never a 5xx, never a trace."""
        log.error("smtp_command_failed", error=f"{type(error).__name__}: {error}")
        return TRY_LATER


def _reverse_path(mail_from: str | None) -> str:
    """MAIL FROM as an address; the null sender (bounces, feedback loops) is ""."""
    value = (mail_from or "").strip()
    return "" if value == "<>" else value


def _peer_ip(session: Session) -> str:
    peer: Any = session.peer
    if isinstance(peer, tuple | list) and peer:
        return str(peer[0])
    return str(peer or "")


class Sessions:
    """Every open session, and how many are inside DATA (from 354 to the reply)."""

    def __init__(self) -> None:
        self.open: set[ReportSMTP] = set()
        self.in_data = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.draining = False

    def enter_data(self) -> None:
        self.in_data += 1
        self.idle.clear()

    def leave_data(self) -> None:
        self.in_data -= 1
        if self.in_data == 0:
            self.idle.set()


class ReportSMTP(SMTP):
    """aiosmtpd's SMTP with our size reply and session tracking for a graceful drain."""

    def __init__(self, handler: Handler, sessions: Sessions, **kwargs: Any) -> None:
        super().__init__(handler, decode_data=False, **kwargs)
        self._sessions = sessions

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._sessions.open.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.open.discard(self)
        super().connection_lost(error)

    async def smtp_MAIL(self, arg: str | None) -> None:
        if self._sessions.draining:  # no new transaction once a shutdown began
            await super().push(SHUTTING_DOWN)
            if self.transport is not None:
                self.transport.close()
            return
        await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg: str) -> None:
        self._sessions.enter_data()
        try:
            await super().smtp_DATA(arg)
        finally:
            self._sessions.leave_data()

    async def push(self, status: AnyStr) -> None:
        raw = status.encode("ascii", "replace") if isinstance(status, str) else status
        if raw.startswith(_AIOSMTPD_SIZE_ERRORS):
            await super().push(TOO_BIG)
            return
        await super().push(status)

    def close_for_shutdown(self) -> None:
        """Say 421 and hang up (used only once no message of this session is in hand)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        try:
            transport.write(SHUTTING_DOWN.encode("ascii") + b"\r\n")  # type: ignore[attr-defined]
        finally:
            transport.close()


class Listener:
    """The listening socket plus everything a drain needs."""

    def __init__(
        self,
        handler: Handler,
        host: str,
        port: int,
        *,
        max_message_size: int,
        hostname: str = "",
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.max_message_size = max_message_size
        self.hostname = hostname or None
        self.sessions = Sessions()
        self._server: asyncio.Server | None = None

    def _protocol(self) -> ReportSMTP:
        return ReportSMTP(
            self.handler,
            self.sessions,
            data_size_limit=self.max_message_size,
            hostname=self.hostname,
            ident="stopitd ESMTP",
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, host=self.host, port=self.port, reuse_address=True
        )

    @property
    def bound(self) -> list[tuple[str, int]]:
        if self._server is None:
            return []
        return [s.getsockname()[:2] for s in self._server.sockets]

    def stop_accepting(self) -> None:
        """Close the listening socket; open sessions may finish their current message."""
        self.sessions.draining = True
        if self._server is not None:
            self._server.close()

    async def drain(self, timeout: float) -> bool:
        """Stop accepting, let messages in hand (inside DATA) finish, close the rest with 421.

        True when no message was still in hand after ``timeout`` seconds.
        """
        self.stop_accepting()
        try:
            await asyncio.wait_for(self.sessions.idle.wait(), timeout)
            drained = True
        except TimeoutError:
            drained = False
        for session in list(self.sessions.open):
            session.close_for_shutdown()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        return drained
