"""A real SMTP smarthost on loopback (aiosmtpd), settings from a real TOML file, and a
helper that files a report the way the worker does (analyze, save, outbound, one commit).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy.orm import Session, sessionmaker

from stopitd import config
from stopitd.analysis import analyze
from stopitd.analysis.model import Envelope
from stopitd.config import Settings
from stopitd.outbound import AfterSave, on_report_saved
from stopitd.store import db
from stopitd.store.cases import save_report

FIXTURES = Path(__file__).parent / "fixtures"
REPORT_ADDRESS = "stopit@example.edu"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Captured:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes


@dataclass
class Capture:
    """aiosmtpd handler: records what it accepts; replies per recipient can be set."""

    messages: list[Captured] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str = "250 2.0.0 Ok: queued"
    data_gate: threading.Event | None = None  # DATA waits for it (a slow smarthost)
    data_started: threading.Event = field(default_factory=threading.Event)
    received: threading.Event = field(default_factory=threading.Event)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        reply = self.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_started.set()
        if self.data_gate is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.data_gate.wait)
        if not self.data_reply.startswith("250"):
            return self.data_reply
        self.messages.append(
            Captured(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.original_content)
        )
        self.received.set()
        return self.data_reply


class Smarthost:
    """An aiosmtpd server on 127.0.0.1 standing in for the institution's relay."""

    def __init__(self, port: int | None = None, **smtp_kwargs: Any) -> None:
        self.port = port or free_port()
        self.handler = Capture()
        self._kwargs = smtp_kwargs
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[Captured]:
        return self.handler.messages

    def start(self) -> Smarthost:
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, **self._kwargs
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smarthost() -> Iterator[Smarthost]:
    host = Smarthost().start()
    yield host
    host.stop()


def write_settings(
    tmp_path: Path, url: str, port: int, extra: str = "", outbound: str = ""
) -> Settings:
    """Settings from a real config file, as the daemon reads them."""
    path = tmp_path / "stopitd.toml"
    path.write_text(
        f"""
[smtp]
report_addresses = ["{REPORT_ADDRESS}"]

[database]
url = "{url}"

[outbound]
enabled = true
smarthost = "127.0.0.1:{port}"
retry_initial = 60.0
retry_max = 600.0
{outbound}

[reply]
organisation = "Example University"
emergency_text = "If you are in danger now, call campus security on +1 555 0100 or 911."
{extra}
"""
    )
    return config.load(path)


def sessions_for(url: str) -> sessionmaker[Session]:
    return db.make_sessionmaker(db.make_engine(url))


def file_report(
    sessions: sessionmaker[Session],
    settings: Settings,
    raw: bytes,
    *,
    mail_from: str,
    spool_id: str,
    now: datetime | None = None,
) -> tuple[int, AfterSave]:
    """What the worker does with one spooled report: analyse, save, outbound, commit."""
    envelope = Envelope(
        mail_from=mail_from,
        rcpt_tos=(REPORT_ADDRESS,),
        peer="127.0.0.1",
        helo="client.example",
        received_at=now or datetime.now(UTC),
    )
    analysis = analyze(raw, envelope, settings.policy())
    with sessions.begin() as session:
        case_id = save_report(
            session, spool_id=spool_id, envelope=envelope, raw=raw, analysis=analysis
        )
        after = on_report_saved(
            session,
            case_id=case_id,
            spool_id=spool_id,
            raw=raw,
            analysis=analysis,
            envelope=envelope,
            settings=settings,
            now=now,
        )
    return case_id, after


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the smarthost's STARTTLS)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the STARTTLS tests need the openssl command: apt-get install openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def password_authenticator(user: str, password: str) -> Any:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            user.encode(),
            password.encode(),
        )
        return AuthResult(success=ok, handled=False)

    return check
