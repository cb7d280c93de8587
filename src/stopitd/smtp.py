"""SMTP intake (aiosmtpd): only the reporting addresses, size limit, DATA -> durable spool.

The handler object is the seam: ``Handler.handle_RCPT`` / ``handle_DATA`` are called by
aiosmtpd and can be called directly in tests. ``ReportSMTP`` fills aiosmtpd's gaps: its
own size-error texts become ``552 5.3.4`` and every session is tracked so a shutdown can
stop accepting, wait for the messages in hand, then close the rest with ``421``.

Floods and slow clients (see docs/security.md): connections beyond ``max_connections`` (all)
or ``max_connections_per_ip`` get ``421 4.7.0`` at once and are closed; so does a session
past ``max_messages_per_connection``, a command line that takes longer than
``command_timeout`` (aiosmtpd's timer is reset only by a complete valid command, so a client
trickling one byte a second is cut off), and a DATA phase longer than ``data_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, AnyStr

import structlog
from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from stopitd.analysis.model import Envelope
from stopitd.smtp_data import DataState, DataStream
from stopitd.spool import Spool, SpoolWriteError, SpoolWriter

log = structlog.get_logger("stopitd.smtp")

# Replies (named constants, RFC 3463 enhanced codes).
OK_RCPT = "250 2.1.5 OK"
NO_SUCH_USER = "550 5.1.1 No such recipient here: this server only takes abuse reports"
TOO_BIG = "552 5.3.4 Message too big for this system"
LINE_TOO_LONG = "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6)"
TRY_LATER = "451 4.3.0 Temporary local problem, please try again later"
DISK_FULL = "452 4.3.1 Insufficient system storage, please try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, please try again later"
QUEUED = "250 2.0.0 queued as {id}"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, please try again later"
TOO_MANY_FROM_IP = "421 4.7.0 Too many connections from your address, please try again later"
TOO_MANY_MESSAGES = "421 4.7.0 Too many messages in one connection, please reconnect"
TIMED_OUT = "421 4.7.0 Timeout, closing connection"
TLS_FIRST = "530 5.7.0 Must issue a STARTTLS command first"

_AIOSMTPD_TLS_FIRST = b"530 Must issue a STARTTLS command first"
LISTEN_BACKLOG = 1024
# Times one connection may send the same command (MAIL is bounded by
# max_messages_per_connection): a client looping on NOOP cannot hold a slot forever.
COMMAND_CALL_LIMIT = 100
REFUSAL_LOG_EVERY = 10.0  # seconds between summaries of refused connections
# DATA held in memory up to this, then streamed to a spool file: max_connections x this
# bounds what the listener holds (200 x 128 KiB = 25 MiB), whatever max_message_size is.
SPILL_BYTES = 128 * 1024
# Bytes read from a client's socket at a time (asyncio reads 256 KiB). Each read is copied
# a few times on its way to the spool (end-marker search, unstuffing), so with 50 clients
# sending at once the reads are most of the listener's memory: 64 KiB cut them by ~30 MB.
READ_BYTES = 64 * 1024
PARSED_ADDRESSES_MAX = 1024  # MAIL/RCPT arguments remembered (each at most 512 bytes)
_PARSED_ADDRESSES: dict[str, tuple[str | None, str | None]] = {}

_AIOSMTPD_SIZE_ERRORS = (b"552 Error: Too much mail data", b"552 Error: message size exceeds")


def normalise_address(address: str) -> str:
    return address.strip().strip("<>").lower()


_HOOK_NAMES: dict[type, tuple[str, ...]] = {}
_HOOK_PREFIXES = ("auth_", "handle_", "smtp_")  # what aiosmtpd 1.4 looks up with dir()


class HookNames:
    """``dir()`` answers with the hook names only (``auth_*``, ``handle_*``, ``smtp_*``).

    aiosmtpd's ``SMTP.__init__`` finds its commands and hooks with ``dir()`` and runs
    ``inspect.getmembers`` over the session and its handler for every connection: about
    1 ms of the event loop each time, the largest per-message cost measured with one
    connection per message. The classes never change, so the names are listed once per
    class.
    """

    def __dir__(self) -> tuple[str, ...]:
        cls = type(self)
        names = _HOOK_NAMES.get(cls)
        if names is None:
            hooks = (n for n in dir(cls) if n.startswith(_HOOK_PREFIXES))
            names = _HOOK_NAMES[cls] = tuple(sorted(hooks))
        return names


class Handler(HookNames):
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

    def report_envelope(self, session: Session, envelope: SmtpEnvelope) -> Envelope:
        """The spool's envelope for the message now starting (received at: now)."""
        return Envelope(
            mail_from=_reverse_path(envelope.mail_from),
            rcpt_tos=tuple(envelope.rcpt_tos),
            peer=_peer_ip(session),
            helo=session.host_name or "",
            received_at=datetime.now(UTC),
        )

    async def put(self, raw: bytes, report_envelope: Envelope) -> str:
        """A message held whole: open, write, fsync and rename all in the pool (one hop)."""
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            spool_id = await loop.run_in_executor(
                self.executor, self.spool.put, raw, report_envelope
            )
        except SpoolWriteError as e:
            return self.failed(e)
        return self._spooled(spool_id, len(raw), report_envelope, started)

    async def finish(self, writer: SpoolWriter, report_envelope: Envelope) -> str:
        """Make a message streamed into ``writer`` durable (in the pool: fsync blocks).

        If the session is cancelled meanwhile (connection lost), the pool's thread owns the
        writer and commits to the end: the entry may be stored without its 250 (at least
        once, as after a crash), never half-written.
        """
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            spool_id = await loop.run_in_executor(self.executor, writer.commit)
        except SpoolWriteError as e:
            return self.failed(e)
        return self._spooled(spool_id, writer.size, report_envelope, started)

    def _spooled(self, spool_id: str, size: int, report_envelope: Envelope, started: float) -> str:
        ms = round((time.perf_counter() - started) * 1000, 2)  # the durable write, 250 waits
        log.info("message_spooled", spool_id=spool_id, size=size, peer=report_envelope.peer, ms=ms)
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

    def failed(self, error: SpoolWriteError) -> str:
        """The reply for a message that could not be spooled (nothing of it is left)."""
        log.error("spool_write_failed", error=str(error), errno=error.errno)
        return DISK_FULL if error.disk_full else TRY_LATER

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        """A whole message in ``envelope.original_content`` (``ReportSMTP`` streams instead)."""
        raw = envelope.original_content
        if not isinstance(raw, bytes | bytearray):
            log.error("message_without_content")
            return TRY_LATER
        return await self.put(bytes(raw), self.report_envelope(session, envelope))

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


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int = 200
    max_connections_per_ip: int = 10
    max_messages_per_connection: int = 20
    command_timeout: float = 60.0
    data_timeout: float = 600.0


class Sessions:
    """Every accepted session (and per address), and how many are inside DATA."""

    def __init__(self) -> None:
        self.open: set[ReportSMTP] = set()
        self.per_ip: Counter[str] = Counter()
        self.in_data = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.draining = False
        self.refused: Counter[str] = Counter()  # reason -> count since the last summary
        self.refused_total = 0
        self._refusal_logged = 0.0

    def refusal(self, ip: str, limits: ConnectionLimits) -> str | None:
        """The 421 reply a new connection from ``ip`` gets, or None to take it in."""
        if len(self.open) >= limits.max_connections:
            return self._refuse("max_connections", TOO_MANY_CONNECTIONS)
        if self.per_ip[ip] >= limits.max_connections_per_ip:
            return self._refuse("max_connections_per_ip", TOO_MANY_FROM_IP)
        return None

    def add(self, session: ReportSMTP, ip: str) -> None:
        self.open.add(session)
        self.per_ip[ip] += 1

    def release(self, session: ReportSMTP, ip: str) -> None:
        if session in self.open:
            self.open.discard(session)
            self.per_ip[ip] -= 1
            if self.per_ip[ip] <= 0:
                del self.per_ip[ip]  # the table never outgrows the open connections

    def _refuse(self, reason: str, reply: str) -> str:
        self.refused[reason] += 1
        self.refused_total += 1
        now = time.monotonic()
        if now - self._refusal_logged >= REFUSAL_LOG_EVERY:  # one line per burst, not per hit
            log.warning("connections_refused", **dict(self.refused), open=len(self.open))
            self.refused.clear()
            self._refusal_logged = now
        return reply

    def enter_data(self) -> None:
        self.in_data += 1
        self.idle.clear()

    def leave_data(self) -> None:
        self.in_data -= 1
        if self.in_data == 0:
            self.idle.set()


class ReportSMTP(HookNames, SMTP):
    """aiosmtpd's SMTP with our replies, connection limits and session tracking."""

    def __init__(
        self,
        handler: Handler,
        sessions: Sessions,
        limits: ConnectionLimits | None = None,
        **kwargs: Any,
    ) -> None:
        self._limits = limits or ConnectionLimits()
        super().__init__(
            handler,
            decode_data=False,
            timeout=self._limits.command_timeout,
            command_call_limit=COMMAND_CALL_LIMIT,
            **kwargs,
        )
        self._sessions = sessions
        self._ip = ""
        self._messages = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # aiosmtpd calls this again after STARTTLS, with the TLS transport: count once.
        if getattr(self, "_original_transport", None) is None:
            self._ip = _transport_ip(transport)
            self._sessions.add(self, self._ip)
            if hasattr(transport, "max_size"):  # asyncio's socket transport
                transport.max_size = READ_BYTES
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.release(self, self._ip)
        super().connection_lost(error)

    def _timeout_cb(self) -> None:
        """aiosmtpd just hangs up on a timeout; say why first (421 4.7.0)."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            log.info("connection_timed_out", peer=self._ip)
            with contextlib.suppress(Exception):
                transport.write(TIMED_OUT.encode("ascii") + b"\r\n")  # type: ignore[attr-defined]
        super()._timeout_cb()  # type: ignore[no-untyped-call]

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's MAIL/RCPT address parse, remembered per argument.

        It defines a ``typing.Protocol`` class on every call before parsing with the email
        package (~0.1 ms of the event loop per command); the recipients are always the few
        report addresses, and the parse depends on nothing but the text.
        """
        parsed = _PARSED_ADDRESSES.get(arg)
        if parsed is None:
            parsed = super()._getaddr(arg)
            if len(_PARSED_ADDRESSES) >= PARSED_ADDRESSES_MAX:
                _PARSED_ADDRESSES.clear()
            _PARSED_ADDRESSES[arg] = parsed
        return parsed

    async def smtp_MAIL(self, arg: str | None) -> None:
        if self._sessions.draining:  # no new transaction once a shutdown began
            await self._hang_up(SHUTTING_DOWN)
            return
        if self._messages >= self._limits.max_messages_per_connection:
            log.info("connection_message_limit", peer=self._ip, messages=self._messages)
            await self._hang_up(TOO_MANY_MESSAGES)
            return
        await super().smtp_MAIL(arg)

    async def _hang_up(self, reply: str) -> None:
        await super().push(reply)
        if self.transport is not None:
            self.transport.close()

    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, but streamed to the spool as it arrives (see ``smtp_data``)."""
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        envelope = self.envelope
        assert envelope is not None
        if not envelope.rcpt_tos:
            await super().push("503 Error: need RCPT command")
            return
        if arg:
            await super().push("501 Syntax: DATA")
            return
        self._messages += 1
        self._sessions.enter_data()
        self._reset_timeout(self._limits.data_timeout)  # one budget for the whole DATA phase
        try:
            reply = await self._receive(envelope)
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            await super().push(reply)
        finally:
            self._sessions.leave_data()
            if self.transport is not None:
                self._reset_timeout()

    async def _receive(self, envelope: SmtpEnvelope) -> str:
        """Read DATA; the reply (250 only once the spool entry is durable).

        Up to ``SPILL_BYTES`` the message is held in memory and written in one pool hop at
        the end (no file system call on the event loop for a typical report); past that it
        is streamed into a ``tmp/`` entry as it arrives.
        """
        handler: Handler = self.event_handler
        assert self.session is not None
        report_envelope = handler.report_envelope(self.session, envelope)
        stream = DataStream(
            self._reader, max_size=self.data_size_limit, max_line=self.line_length_limit
        )
        held: list[bytes] = []
        held_size = 0
        writer: SpoolWriter | None = None
        failure: SpoolWriteError | None = None
        try:
            await super().push("354 End data with <CR><LF>.<CR><LF>")
            async for chunk in stream.chunks():
                if failure is not None:
                    continue  # read to the end; the reply says 4xx
                if writer is None:
                    held.append(chunk)
                    held_size += len(chunk)
                    if held_size <= SPILL_BYTES:
                        continue
                    chunk = b"".join(held)
                    held.clear()
                    try:
                        writer = handler.spool.begin(report_envelope)
                    except SpoolWriteError as e:
                        failure = e
                        continue
                try:
                    writer.write(chunk)
                except SpoolWriteError as e:  # the partial file is already gone
                    writer, failure = None, e
        except BaseException:  # connection lost mid-DATA, or a bug: leave nothing behind
            if writer is not None:
                writer.abort()
            raise
        if stream.state is not DataState.OK:
            if writer is not None:
                writer.abort()
            return TOO_BIG if stream.state is DataState.TOO_BIG else LINE_TOO_LONG
        if failure is not None:
            return handler.failed(failure)
        if writer is None:
            return await handler.put(b"".join(held), report_envelope)
        return await handler.finish(writer, report_envelope)

    async def push(self, status: AnyStr) -> None:
        raw = status.encode("ascii", "replace") if isinstance(status, str) else status
        if raw.startswith(_AIOSMTPD_SIZE_ERRORS):
            await super().push(TOO_BIG)
            return
        if raw.startswith(_AIOSMTPD_TLS_FIRST):
            await super().push(TLS_FIRST)
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


def _transport_ip(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple | list) and peer else ""


class Gate(asyncio.Protocol):
    """Admission before aiosmtpd: a refused connection costs one write and a close.

    Building an aiosmtpd session takes 0.1-0.3 ms of the event loop (with ``HookNames``;
    0.7-1 ms without); a flood of them would delay every other client, so only admitted
    connections get one (the transport is handed over with ``set_protocol``).
    """

    def __init__(
        self, sessions: Sessions, limits: ConnectionLimits, make: Callable[[], ReportSMTP]
    ):
        self._sessions = sessions
        self._limits = limits
        self._make = make

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        refusal = self._sessions.refusal(_transport_ip(transport), self._limits)
        if refusal is not None:
            with contextlib.suppress(Exception):
                transport.write(refusal.encode("ascii") + b"\r\n")  # type: ignore[attr-defined]
            transport.close()
            return
        session = self._make()
        transport.set_protocol(session)
        session.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        """Only a refused connection's leftovers reach the gate: ignored."""


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
        limits: ConnectionLimits | None = None,
        tls_context: ssl.SSLContext | None = None,
        require_tls: bool = False,
        sock: socket.socket | None = None,
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.max_message_size = max_message_size
        # aiosmtpd would call socket.getfqdn() (a blocking DNS look-up) for every session
        self.hostname = hostname or socket.getfqdn()
        self.limits = limits or ConnectionLimits()
        self.tls_context = tls_context  # replaced on SIGHUP; new sessions take the new one
        self.require_tls = require_tls
        self.sessions = Sessions()
        self._server: asyncio.Server | None = None
        self._socket = sock  # bound before privileges were dropped, or bound by start()

    def _protocol(self) -> ReportSMTP:
        return ReportSMTP(
            self.handler,
            self.sessions,
            self.limits,
            data_size_limit=self.max_message_size,
            hostname=self.hostname,
            ident="stopitd ESMTP",
            tls_context=self.tls_context,
            require_starttls=self.require_tls,
        )

    async def start(self) -> None:
        if self._socket is None:
            self._socket = bind_socket(self.host, self.port)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Gate(self.sessions, self.limits, self._protocol),
            sock=self._socket,
            backlog=LISTEN_BACKLOG,
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


def load_tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context for STARTTLS from PEM files (TLS 1.2 or later)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen now, so a daemon started as root can drop privileges right after."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
