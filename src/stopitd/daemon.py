"""`stopitd serve`: wires logs, the store check, the spool, the worker process and SMTP.

Start order: umask 077 -> logs -> bind the SMTP socket (port 25 needs root) and load the
TLS certificate -> drop to ``[daemon] user`` -> schema check (refuse a database that is
behind) -> spool folders and lock -> clear ``tmp/`` -> worker process (it re-queues
``cur/`` leftovers itself, under its own lock, so a restarted worker never races a dying
one) -> SMTP listener served -> ``READY=1``. First SIGTERM/SIGINT: ``STOPPING=1``, stop
accepting, let messages in hand finish, ask the worker to stop after its current entry,
exit 0. A second signal exits at once (nothing is lost: every acknowledged message is
already in the spool). SIGHUP re-reads the TLS certificate and key (new sessions use
them; a bad pair keeps the old one).

Layout: this process runs the asyncio listener and a thread pool for spool writes; the
worker is a child process, a fresh interpreter (see ``worker.py`` for why). The listener
never imports SQLAlchemy, alembic or the analysis (issue 9's memory target: they would
stay in its memory for its whole life): the schema check runs in a short-lived child
process, and the worker's modules are imported in the worker process only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import pickle
import signal
import socket
import ssl
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Literal

import structlog

from stopitd import logs, privileges
from stopitd.config import Settings
from stopitd.errors import SchemaBehindError, SpoolError, StopitdError
from stopitd.smtp import ConnectionLimits, Handler, Listener, bind_socket, load_tls_context
from stopitd.spool import DAEMON_LOCK, Spool

log = structlog.get_logger("stopitd.daemon")

DRAIN_TIMEOUT = 30.0  # seconds a message in hand may take to finish at shutdown
WORKER_STOP_TIMEOUT = 60.0  # seconds the worker may take to finish its current entry
SPOOL_THREADS = 32  # concurrent spool writes (each waits on fsync, not on the CPU)


# --- systemd notification ---------------------------------------------------------------------


def sd_notify(state: str) -> bool:
    """Send ``state`` to systemd's $NOTIFY_SOCKET (a datagram socket); False if none."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # never block the event loop on a receiver that does not read (a full queue)
            sock.setblocking(False)
            sock.connect(address)
            sock.send(state.encode("utf-8"))
    except BlockingIOError:
        log.debug("sd_notify_dropped", state=state.split("\n", 1)[0])
        return False
    except OSError as e:
        log.warning("sd_notify_failed", error=str(e))
        return False
    return True


def watchdog_interval() -> float | None:
    """Half of $WATCHDOG_USEC in seconds when the watchdog is meant for us, else None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 2_000_000


# --- the worker process -----------------------------------------------------------------------

# The worker is a fresh interpreter (as multiprocessing's spawn would start it) launched
# with subprocess: multiprocessing's spawn also starts its resource tracker, a third Python
# process (~12 MB) that stopitd has no use for (it tracks named semaphores and shared
# memory). The settings go to the worker over a pipe, the wake pipe is inherited.
_WORKER_BOOT = "from stopitd.worker import boot; boot()"


def _wait(process: subprocess.Popen[bytes], timeout: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)


class WorkerProcess:
    """Starts the worker, restarts it if it dies, stops it gracefully."""

    def __init__(self, settings: Settings, head: str = "") -> None:
        self.settings = settings
        self.head = head  # the schema head found at start: the worker checks against it
        self.process: subprocess.Popen[bytes] | None = None
        self._wake_w: int | None = None
        self.stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start a worker with a fresh wake pipe (a dead worker's pipe is never reused)."""
        self._close_pipe()
        wake_r, wake_w = os.pipe()
        setup_r, setup_w = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _WORKER_BOOT, str(wake_r), str(setup_r)],
                stdin=subprocess.DEVNULL,
                pass_fds=(wake_r, setup_r),
            )
        finally:
            os.close(wake_r)
            os.close(setup_r)
        with os.fdopen(setup_w, "wb") as setup:
            pickle.dump((self.settings, os.getpid(), self.head), setup)
        os.set_blocking(wake_w, False)
        self._wake_w = wake_w

    def poke(self, _spool_id: str = "") -> None:
        """Wake the worker: never blocks (a full pipe already says "wake up")."""
        if self._wake_w is None:
            return
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(self._wake_w, b"w")

    def _close_pipe(self) -> None:
        if self._wake_w is not None:
            os.close(self._wake_w)  # EOF: the worker stops after its current entry
            self._wake_w = None

    def supervise(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._supervise())

    async def _exited(self) -> None:
        assert self.process is not None
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        pidfd = os.pidfd_open(self.process.pid)  # readable once the process has exited

        def exited() -> None:
            if not done.done():
                done.set_result(None)

        loop.add_reader(pidfd, exited)
        try:
            await done
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
        self.process.wait()

    async def _supervise(self) -> None:
        delay = 1.0
        while True:
            await self._exited()
            if self.stopping:
                return
            assert self.process is not None
            log.error("worker_died", exitcode=self.process.returncode, restart_in=delay)
            await asyncio.sleep(delay)
            if self.stopping:
                return
            delay = min(delay * 2, 60.0)
            self.start()

    async def stop(self, timeout: float) -> int | None:
        """Ask the worker to stop after its current entry; kill it after ``timeout``."""
        self.stopping = True
        self._close_pipe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        proc = self.process
        if proc is None:
            return None
        await asyncio.to_thread(_wait, proc, timeout)
        if proc.poll() is None:
            log.error("worker_stop_timed_out", timeout_s=timeout)
            proc.kill()
            await asyncio.to_thread(_wait, proc, 5)
        return proc.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()


# --- the daemon -------------------------------------------------------------------------------


CheckOutcome = Literal["ok", "behind", "down", "error"]


@dataclass(frozen=True, slots=True)
class StoreCheck:
    """What the schema check found, the store's URL without its password, and the
    schema head this stopitd needs (the worker checks against it without alembic)."""

    outcome: CheckOutcome
    detail: str
    label: str
    head: str = ""


def check_store(url: str) -> StoreCheck:
    """The schema check, in a short-lived child process (forked: this process has no
    threads yet), so that SQLAlchemy and alembic (~25 MB) never load in the listener."""
    ctx = multiprocessing.get_context("fork")
    sys.stderr.flush()  # nothing buffered here may be written twice by the child
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_check_store_child, args=(url, send), name="stopitd-check")
    child.start()
    send.close()
    try:
        fields = json.loads(receive.recv_bytes())
        return StoreCheck(fields[0], fields[1], fields[2], fields[3])
    except (EOFError, OSError, ValueError, IndexError):
        child.join()
        return StoreCheck("error", f"the schema check exited with {child.exitcode}", url)
    finally:
        receive.close()
        child.join()


def _check_store_child(url: str, send: Connection) -> None:
    result = _check_store(url)
    fields = [result.outcome, result.detail, result.label, result.head]
    send.send_bytes(json.dumps(fields).encode())
    send.close()


def _check_store(url: str) -> StoreCheck:
    """Refuse a schema that is behind; start anyway (and say so) if the store is down."""
    from sqlalchemy.engine import make_url

    from stopitd import worker
    from stopitd.store import db

    try:
        label = make_url(url).render_as_string(hide_password=True)
    except Exception:
        label = "(unparseable url)"
    try:
        head = db.head_revision()
        engine = db.make_engine(url)
    except StopitdError as e:
        return StoreCheck("error", str(e), label)
    except Exception as e:  # e.g. a database URL SQLAlchemy cannot use
        return StoreCheck("error", f"{type(e).__name__}: {e}", label)
    try:
        db.check_revision(engine, head)
    except SchemaBehindError as e:
        return StoreCheck("behind", str(e), label, head)
    except StopitdError as e:
        return StoreCheck("error", str(e), label, head)
    except Exception as e:
        if worker.is_store_down(e):
            return StoreCheck("down", worker.describe(e), label, head)
        return StoreCheck("error", f"{type(e).__name__}: {e}", label, head)
    finally:
        engine.dispose()
    return StoreCheck("ok", "", label, head)


def _tls_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.smtp.tls_cert:
        return None
    return load_tls_context(settings.smtp.tls_cert, settings.smtp.tls_key)


def run(settings: Settings) -> int:
    """Run the daemon until a signal; the process exit code."""
    privileges.restrict_umask()
    logs.setup(settings.log, process="daemon")
    try:
        sock = bind_socket(settings.smtp.host, settings.smtp.port)
    except OSError as e:
        log.error("listen_failed", listen=settings.smtp.listen, error=e.strerror or str(e))
        return 1
    try:
        tls = _tls_context(settings)
    except (OSError, ssl.SSLError) as e:
        sock.close()
        log.error("startup_failed", error=f"smtp.tls_cert/tls_key: {e}")
        return 1
    try:
        if settings.daemon.user:
            uid, gid = privileges.drop_to(settings.daemon.user)
            log.info("privileges_dropped", user=settings.daemon.user, uid=uid, gid=gid)
    except (StopitdError, OSError) as e:
        sock.close()
        log.error("startup_failed", error=str(e))
        return 1
    try:
        return _run_bound(settings, sock, tls)
    finally:
        sock.close()


def _run_bound(settings: Settings, sock: socket.socket, tls: ssl.SSLContext | None) -> int:
    check = check_store(settings.database.url)
    if check.outcome == "behind":
        log.error("schema_behind", error=check.detail)
        return 2
    if check.outcome == "error":
        log.error("startup_failed", error=check.detail)
        return 1
    if check.outcome == "down":
        log.warning(
            "store_unavailable_at_start",
            error=check.detail,
            note="accepting reports; they become cases once the store is back",
        )
    spool = Spool(settings.spool.path)
    try:
        spool.create()
        with spool.lock(DAEMON_LOCK, wait=False):
            removed = spool.clean_tmp()
            if removed:
                log.info("spool_tmp_cleared", removed=removed)
            return asyncio.run(_serve(settings, spool, sock, tls, check))
    except SpoolError as e:
        log.error("startup_failed", error=str(e))
        return 1


async def _serve(
    settings: Settings,
    spool: Spool,
    sock: socket.socket,
    tls: ssl.SSLContext | None,
    check: StoreCheck,
) -> int:
    loop = asyncio.get_running_loop()
    workers = WorkerProcess(settings, check.head)
    workers.start()
    workers.supervise()
    executor = ThreadPoolExecutor(max_workers=SPOOL_THREADS, thread_name_prefix="spool")
    handler = Handler(
        spool, settings.smtp.report_addresses, executor=executor, on_spooled=workers.poke
    )
    listener = Listener(
        handler,
        settings.smtp.host,
        settings.smtp.port,
        max_message_size=settings.smtp.max_message_size,
        hostname=settings.smtp.hostname,
        limits=ConnectionLimits(
            max_connections=settings.smtp.max_connections,
            max_connections_per_ip=settings.smtp.max_connections_per_ip,
            max_messages_per_connection=settings.smtp.max_messages_per_connection,
            command_timeout=settings.smtp.command_timeout,
            data_timeout=settings.smtp.data_timeout,
        ),
        tls_context=tls,
        require_tls=settings.smtp.require_tls,
        sock=sock,
    )
    try:
        await listener.start()
    except OSError as e:
        log.error("listen_failed", listen=settings.smtp.listen, error=e.strerror or str(e))
        await workers.stop(WORKER_STOP_TIMEOUT)
        executor.shutdown()
        return 1

    stop_requested = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if received:  # second signal: out now (every 250 is already durable)
            workers.kill()
            sys.stderr.flush()
            os._exit(128 + signum)
        received.append(signum)
        stop_requested.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

    def on_reload() -> None:
        try:
            listener.tls_context = _tls_context(settings)
        except (OSError, ssl.SSLError) as e:
            log.error("tls_reload_failed", error=str(e), note="keeping the previous certificate")
            return
        log.info("tls_reloaded", tls=listener.tls_context is not None)

    loop.add_signal_handler(signal.SIGHUP, on_reload)

    accepts = ", ".join(settings.smtp.report_addresses)
    listen = settings.smtp.listen
    sd_notify(f"READY=1\nSTATUS=accepting reports for {accepts} on {listen}")
    log.info(
        "daemon_ready",
        summary=(
            f"listening on {listen} for reports to {accepts} "
            f"(up to {settings.smtp.max_message_size} bytes); spool {settings.spool.path}, "
            f"store {check.label}"
        ),
        listen=listen,
        report_addresses=list(settings.smtp.report_addresses),
        max_message_size=settings.smtp.max_message_size,
        tls=tls is not None,
        require_tls=settings.smtp.require_tls,
        worker_pid=workers.process.pid if workers.process else None,
        pid=os.getpid(),
    )

    watchdog: asyncio.Task[None] | None = None
    interval = watchdog_interval()
    if interval is not None:
        watchdog = loop.create_task(_watchdog(interval))

    await stop_requested.wait()
    listener.stop_accepting()
    sd_notify("STOPPING=1")
    log.info("daemon_stopping", signal=signal.Signals(received[0]).name)
    drained = await listener.drain(DRAIN_TIMEOUT)
    exitcode = await workers.stop(WORKER_STOP_TIMEOUT)
    executor.shutdown(wait=True)
    if watchdog is not None:
        watchdog.cancel()
    log.info(
        "daemon_stopped",
        drained=drained,
        worker_exitcode=exitcode,
        messages_spooled=spool.puts,
        dir_fsyncs=spool.dir_fsyncs,
    )
    return 0


async def _watchdog(interval: float) -> None:
    while True:
        sd_notify("WATCHDOG=1")
        await asyncio.sleep(interval)
