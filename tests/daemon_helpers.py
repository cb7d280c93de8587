"""Run the REAL daemon (`stopitd serve`) on a free loopback port with a temp config.

Readiness is an event, not a sleep: the test binds a datagram socket, passes it as
$NOTIFY_SOCKET (as systemd does for Type=notify), and waits for ``READY=1``. The same
socket shows ``STOPPING=1`` at shutdown. Log lines are JSON (stderr is a file, not a tty)
and are read back as events.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select as sql_select

from stopitd.spool import Spool
from stopitd.store import db
from stopitd.store.schema import Report

STOPITD = str(Path(sys.executable).parent / "stopitd")
REPORT_ADDRESS = "stopit@example.edu"
MAX_SIZE = 64 * 1024


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a condition the daemon makes true (a store row, a spool count) until it holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def write_config(root: Path, port: int, url: str, **overrides: str) -> Path:
    sections = {
        "smtp": (
            f'listen = "127.0.0.1:{port}"\n'
            f'report_addresses = ["{REPORT_ADDRESS}", "Abuse-Reports@Example.EDU"]\n'
            f"max_message_size = {MAX_SIZE}\n"
            'hostname = "stopit.test"\n'
        ),
        "spool": 'path = "spool"\n',
        "database": f'url = "{url}"\n',
        "log": 'format = "json"\nlevel = "info"\n',
        "worker": (
            "max_attempts = 3\nbackoff_initial = 0.05\nbackoff_max = 0.3\npoll_interval = 0.2\n"
        ),
        "dns": "enabled = false\n",
    }
    sections.update(overrides)
    path = root / "stopitd.toml"
    path.write_text("".join(f"[{k}]\n{v}\n" for k, v in sections.items()))
    return path


@dataclass
class Daemon:
    root: Path
    url: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    extra_config: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=lambda: [STOPITD])  # how to run `stopitd`

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = write_config(self.root, self.port, self.url, **self.extra_config)
        self.spool = Spool(self.root / "spool")
        self.log_path = self.root / "daemon.log"
        self.notify_path = self.root / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.notifications: list[str] = []

    # --- lifecycle ---------------------------------------------------------------------------

    def spawn(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "INVOCATION_ID")}
        env["NOTIFY_SOCKET"] = str(self.notify_path)
        env.update(self.extra_env)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.command, "--config", str(self.config), "serve"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
            )
        self.starts += 1
        return self.proc

    def start(self, timeout: float = 60) -> None:
        """Spawn, wait for READY=1, then for this start's worker to be running."""
        workers_before = len(self.events("worker_started"))
        self.spawn()
        self.wait_notify("READY=1", timeout)
        wait_until(
            lambda: len(self.events("worker_started")) > workers_before,
            timeout,
            "the worker process to start",
        )

    def wait_notify(self, state: str, timeout: float = 60) -> str:
        """Wait for a datagram containing ``state`` (or fail if the daemon exits first)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            for message in self.notifications:
                if state in message.splitlines():
                    self.notifications.remove(message)
                    return message
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"stopitd exited ({self.proc.returncode}) before {state}:\n{self.log_text()}"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {state} within {timeout}s:\n{self.log_text()}")
            ready, _, _ = select.select([self.notify], [], [], min(left, 0.5))
            if ready:
                self.notifications.append(self.notify.recv(4096).decode())

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait for the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the daemon's main process only (its worker must die with it)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.notify.close()

    # --- what it did -----------------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict) and (name is None or item.get("event") == name):
                    out.append(item)
        return out

    def reports(self) -> dict[str, str]:
        """spool id -> sha256 of every report row in the store."""
        engine = db.make_engine(self.url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(sql_select(Report.spool_id, Report.sha256)).all()
        finally:
            engine.dispose()
        return {r[0]: r[1] for r in rows}

    def raw_report(self, spool_id: str) -> bytes:
        engine = db.make_engine(self.url)
        try:
            with engine.connect() as conn:
                raw = conn.execute(
                    sql_select(Report.raw).where(Report.spool_id == spool_id)
                ).scalar_one()
        finally:
            engine.dispose()
        return bytes(raw)

    def wait_drained(self, timeout: float = 120) -> None:
        """Until the worker has emptied the spool (nothing waiting, nothing in progress)."""

        def empty() -> bool:
            st = self.spool.status()
            return st.new == 0 and st.cur == 0

        wait_until(empty, timeout, "the worker to drain the spool")

    def smtp(self) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        client.ehlo("reporter-client.example.org")
        return client


@contextlib.contextmanager
def running_daemon(root: Path, url: str, **extra: str) -> Iterator[Daemon]:
    daemon = Daemon(root, url, extra_config=extra)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.close()


@pytest.fixture
def daemon(tmp_path: Path, sqlite_url: str) -> Iterator[Daemon]:
    """The real daemon on a free loopback port, a migrated SQLite file, a temp spool."""
    with running_daemon(tmp_path / "node", sqlite_url) as d:
        yield d


# --- reports shaped like what mail clients send ----------------------------------------------


def original_message(n: int) -> bytes:
    """An offending message as delivered to the victim by Postfix (CRLF, a few hops)."""
    date = format_datetime(time_for(n))
    return (
        f"Return-Path: <troll{n}@mailer.example.net>\r\n"
        "Delivered-To: victim@example.edu\r\n"
        "Received: from mx1.example.edu (mx1.example.edu [192.0.2.25])\r\n"
        f"\tby mailstore.example.edu (Postfix) with ESMTPS id 4X{n:05d}Q\r\n"
        f"\tfor <victim@example.edu>; {date}\r\n"
        "Received: from out.mailer.example.net "
        f"(out.mailer.example.net [198.51.100.{n % 250 + 1}])\r\n"
        f"\tby mx1.example.edu (Postfix) with ESMTPS id 4Y{n:05d}R\r\n"
        f"\tfor <victim@example.edu>; {date}\r\n"
        f"From: Someone <troll{n}@mailer.example.net>\r\n"
        "To: victim@example.edu\r\n"
        f"Subject: you again ({n})\r\n"
        f"Date: {date}\r\n"
        f"Message-ID: <orig-{n}@mailer.example.net>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"This is message number {n}. Stop writing to me? No.\r\n"
    ).encode()


def time_for(n: int) -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime(2026, 11, 20, 9, 0, tzinfo=UTC) + timedelta(minutes=n)


def report_message(n: int, reporter: str = "victim@example.edu") -> bytes:
    """A Thunderbird 'Forward as Attachment' of ``original_message(n)`` to stopit@."""
    boundary = f"------------tb{n:08d}boundary"
    date = format_datetime(time_for(n + 60))
    head = (
        f"Message-ID: <report-{n}@example.edu>\r\n"
        f"Date: {date}\r\n"
        "MIME-Version: 1.0\r\n"
        "User-Agent: Mozilla Thunderbird\r\n"
        "Content-Language: en-US\r\n"
        f"To: {REPORT_ADDRESS}\r\n"
        f"From: Victim <{reporter}>\r\n"
        f"Subject: Fwd: you again ({n})\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n'
        "\r\n"
        "This is a multi-part message in MIME format.\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
        "Please make this stop.\r\n"
        "\r\n"
        f"--{boundary}\r\n"
        'Content-Type: message/rfc822; name="you again.eml"\r\n'
        'Content-Disposition: attachment; filename="you again.eml"\r\n'
        "\r\n"
    ).encode()
    return head + original_message(n) + f"\r\n--{boundary}--\r\n".encode()


def send(daemon: Daemon, message: bytes, rcpt: str = REPORT_ADDRESS) -> tuple[int, str]:
    """One SMTP transaction; the reply to DATA (code, text)."""
    client = daemon.smtp()
    try:
        code, text = client.mail("victim@example.edu")
        assert code == 250, text
        code, text = client.rcpt(rcpt)
        if code != 250:
            return code, text.decode()
        code, reply = client.data(message)
        return code, reply.decode()
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()


def queued_id(reply: str) -> str:
    prefix = "2.0.0 queued as "
    assert reply.startswith(prefix), reply
    return reply[len(prefix) :].strip()


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "64k") -> Iterator[Path]:
    """A real, small filesystem to fill (disk-full tests). Needs root, as CI runs."""
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"cannot mount a tmpfs for the disk-full test ({result.stderr.strip()}): "
            "run the suite as root (as .ci/run does)"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
