"""Delivery through a real SMTP smarthost on loopback (aiosmtpd): retries, failures,
STARTTLS + AUTH, dry run, the asyncio loop, and a resend after a crash."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from structlog.testing import capture_logs

from stopitd.cli import main
from stopitd.config import Settings
from stopitd.outbound import run_sender
from stopitd.outbound.outbox import claim_due
from stopitd.outbound.sender import deliver_due, retry_delay
from stopitd.store.outbox_schema import OutboxRow
from stopitd.store.schema import Event
from tests.outbound.conftest import (
    Smarthost,
    file_report,
    fixture,
    free_port,
    password_authenticator,
    server_tls_context,
    sessions_for,
    write_settings,
)

RITA = "reporter.rita@gmail.com"
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def queue_ack(url: str, tmp_path: Path, port: int, outbound: str = "") -> tuple[Settings, int]:
    settings = write_settings(tmp_path, url, port, outbound=outbound)
    sessions = sessions_for(url)
    _, after = file_report(
        sessions,
        settings,
        fixture("gmail-attached-original.eml"),
        mail_from=RITA,
        spool_id="s1",
        now=T0,
    )
    assert isinstance(after.ack, int)
    return settings, after.ack


def row(url: str, outbox_id: int) -> OutboxRow:
    with sessions_for(url)() as session:
        found = session.get(OutboxRow, outbox_id)
        assert found is not None
        return found


def test_ack_reaches_the_smarthost_once_with_its_bytes(
    store_url: str, tmp_path: Path, smarthost: Smarthost
) -> None:
    settings, oid = queue_ack(store_url, tmp_path, smarthost.port)
    sessions = sessions_for(store_url)
    done = deliver_due(sessions, settings, now=T0)
    assert (done.sent, done.deferred, done.failed) == (1, 0, 0)
    assert deliver_due(sessions, settings, now=T0 + timedelta(days=1)).claimed == 0
    assert len(smarthost.messages) == 1
    got = smarthost.messages[0]
    stored = row(store_url, oid)
    assert got.mail_from == "<>" or got.mail_from == ""
    assert got.rcpt_tos == (RITA,)
    assert got.data.rstrip(b"\r\n") == stored.raw.rstrip(b"\r\n")
    assert stored.status == "sent" and stored.sent_at is not None
    with sessions() as session:
        sent = session.scalars(select(Event).where(Event.kind == "mail_sent")).one()
    assert sent.detail["message_id"] == stored.message_id


def test_smarthost_down_delays_mail_and_loses_none(store_url: str, tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet
    settings, oid = queue_ack(store_url, tmp_path, port)
    sessions = sessions_for(store_url)
    done = deliver_due(sessions, settings, now=T0)
    assert (done.sent, done.deferred) == (0, 1)
    waiting = row(store_url, oid)
    assert waiting.status == "queued" and "unreachable" in waiting.last_error
    assert waiting.next_attempt_at == T0 + timedelta(seconds=60)
    # second failure doubles the wait
    deliver_due(sessions, settings, now=T0 + timedelta(seconds=60))
    assert row(store_url, oid).next_attempt_at == T0 + timedelta(seconds=60 + 120)
    host = Smarthost(port=port).start()
    try:
        assert deliver_due(sessions, settings, now=T0 + timedelta(seconds=100)).claimed == 0
        assert host.messages == []  # not due yet: the back-off holds
        done = deliver_due(sessions, settings, now=T0 + timedelta(seconds=180))
        assert done.sent == 1
        assert len(host.messages) == 1
        assert row(store_url, oid).status == "sent"
    finally:
        host.stop()


def test_5xx_fails_with_the_reason_and_outbox_retry_sends_it(
    sqlite_url: str, tmp_path: Path, smarthost: Smarthost
) -> None:
    smarthost.handler.rcpt_replies[RITA] = "550 5.1.1 <reporter.rita@gmail.com>: no such user"
    settings, oid = queue_ack(sqlite_url, tmp_path, smarthost.port)
    sessions = sessions_for(sqlite_url)
    with capture_logs() as logs:
        assert deliver_due(sessions, settings, now=T0).failed == 1
    assert [e["event"] for e in logs] == ["mail_failed"]
    assert RITA not in repr(logs) and "<address>" in logs[0]["reply"]  # privacy in logs
    failed = row(sqlite_url, oid)
    assert failed.status == "failed"
    assert failed.last_error.startswith("550 5.1.1") and "no such user" in failed.last_error
    assert deliver_due(sessions, settings, now=T0 + timedelta(days=1)).claimed == 0
    runner = CliRunner()
    config_file = str(tmp_path / "stopitd.toml")
    listed = runner.invoke(
        main, ["outbox", "list", "--status", "failed", "--json", "--config", config_file]
    )
    assert listed.exit_code == 0, listed.output
    assert f'"id": {oid}' in listed.output and "no such user" in listed.output
    smarthost.handler.rcpt_replies.clear()
    retried = runner.invoke(
        main, ["outbox", "retry", str(oid), "--config", config_file, "--as", "alice"]
    )
    assert retried.exit_code == 0, retried.output
    assert deliver_due(sessions, settings).sent == 1
    assert len(smarthost.messages) == 1
    again = runner.invoke(main, ["outbox", "retry", str(oid), "--config", config_file])
    assert again.exit_code == 1 and "not failed" in again.output


def test_4xx_is_retried_and_a_message_too_old_gives_up(
    sqlite_url: str, tmp_path: Path, smarthost: Smarthost
) -> None:
    smarthost.handler.rcpt_replies[RITA] = "451 4.7.1 greylisted, try again later"
    settings, oid = queue_ack(
        sqlite_url, tmp_path, smarthost.port, outbound="give_up_after = 3600.0"
    )
    sessions = sessions_for(sqlite_url)
    assert deliver_due(sessions, settings, now=T0).deferred == 1
    deferred = row(sqlite_url, oid)
    assert deferred.status == "queued" and deferred.last_error.startswith("451 4.7.1")
    assert deferred.attempts == 1
    done = deliver_due(sessions, settings, now=T0 + timedelta(hours=2))
    assert done.failed == 1
    gone = row(sqlite_url, oid)
    assert gone.status == "failed" and "undeliverable for 1 h" in gone.last_error
    assert smarthost.messages == []


def test_retry_delay_doubles_up_to_the_cap(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, "sqlite://", 25)
    delays = [retry_delay(settings.outbound, n).total_seconds() for n in range(1, 7)]
    assert delays == [60, 120, 240, 480, 600, 600]


def test_crash_while_sending_resends_with_the_same_message_id(
    store_url: str, tmp_path: Path, smarthost: Smarthost
) -> None:
    settings, oid = queue_ack(store_url, tmp_path, smarthost.port)
    sessions = sessions_for(store_url)
    with sessions.begin() as session:  # a sender claims the row, then dies before sending
        assert [r.id for r in claim_due(session, T0, timedelta(seconds=600), 10)] == [oid]
    assert row(store_url, oid).status == "sending"
    assert deliver_due(sessions, settings, now=T0 + timedelta(seconds=599)).claimed == 0
    done = deliver_due(sessions, settings, now=T0 + timedelta(seconds=600))
    assert done.sent == 1
    sent = row(store_url, oid)
    assert sent.attempts == 2
    assert f"Message-ID: <{sent.message_id}>".encode() in smarthost.messages[0].data


def test_starttls_and_auth_with_password_file(
    sqlite_url: str, tmp_path: Path, tls_cert: tuple[Path, Path]
) -> None:
    cert, key = tls_cert
    host = Smarthost(
        tls_context=server_tls_context(cert, key),
        require_starttls=True,
        auth_required=True,
        authenticator=password_authenticator("stopitd", "s3cret pass"),
    ).start()
    try:
        (tmp_path / "password").write_text("s3cret pass\n")
        settings, oid = queue_ack(
            sqlite_url,
            tmp_path,
            host.port,
            outbound=f'starttls = true\nca_file = "{cert}"\nusername = "stopitd"\n'
            'password_file = "password"',
        )
        assert settings.outbound.password_file == tmp_path / "password"
        assert deliver_due(sessions_for(sqlite_url), settings, now=T0).sent == 1
        assert len(host.messages) == 1
        assert row(sqlite_url, oid).status == "sent"
    finally:
        host.stop()


def test_wrong_password_defers_instead_of_failing(
    sqlite_url: str, tmp_path: Path, tls_cert: tuple[Path, Path]
) -> None:
    cert, key = tls_cert
    host = Smarthost(
        tls_context=server_tls_context(cert, key),
        require_starttls=True,
        auth_required=True,
        authenticator=password_authenticator("stopitd", "right"),
    ).start()
    try:
        (tmp_path / "password").write_text("wrong\n")
        settings, oid = queue_ack(
            sqlite_url,
            tmp_path,
            host.port,
            outbound=f'starttls = true\nca_file = "{cert}"\nusername = "stopitd"\n'
            'password_file = "password"',
        )
        assert deliver_due(sessions_for(sqlite_url), settings, now=T0).deferred == 1
        waiting = row(sqlite_url, oid)
        assert waiting.status == "queued" and "outbound.password_file" in waiting.last_error
        assert host.messages == []
    finally:
        host.stop()


def test_starttls_required_but_not_offered_sends_nothing_in_clear(
    sqlite_url: str, tmp_path: Path, smarthost: Smarthost
) -> None:
    settings, oid = queue_ack(sqlite_url, tmp_path, smarthost.port, outbound="starttls = true")
    assert deliver_due(sessions_for(sqlite_url), settings, now=T0).deferred == 1
    assert "offers no STARTTLS" in row(sqlite_url, oid).last_error
    assert smarthost.messages == []


def test_dry_run_writes_eml_files_and_sends_nothing(
    sqlite_url: str, tmp_path: Path, smarthost: Smarthost
) -> None:
    settings, oid = queue_ack(
        sqlite_url, tmp_path, smarthost.port, outbound='dry_run_dir = "dry-run"'
    )
    assert deliver_due(sessions_for(sqlite_url), settings, now=T0).sent == 1
    files = sorted((tmp_path / "dry-run").glob("*.eml"))
    assert [f.name for f in files] == [f"{oid:08d}-ack.eml"]
    assert files[0].read_bytes() == row(sqlite_url, oid).raw
    assert smarthost.messages == []


def test_run_sender_delivers_when_woken_and_stops_on_request(
    sqlite_url: str, tmp_path: Path, smarthost: Smarthost
) -> None:
    settings, oid = queue_ack(
        sqlite_url, tmp_path, smarthost.port, outbound="poll_interval = 300.0"
    )

    async def scenario() -> None:
        stop, wake = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(run_sender(settings, stop, wake=wake))
        wake.set()
        delivered = await asyncio.to_thread(smarthost.handler.received.wait, 30)
        assert delivered
        stop.set()
        await asyncio.wait_for(task, 30)

    asyncio.run(scenario())
    assert len(smarthost.messages) == 1
    assert row(sqlite_url, oid).status == "sent"


def test_slow_smarthost_holds_the_lease(
    sqlite_url: str, tmp_path: Path, smarthost: Smarthost
) -> None:
    """A second sender (another node) does not pick up a row that is being sent."""
    gate = threading.Event()
    smarthost.handler.data_gate = gate
    settings, oid = queue_ack(sqlite_url, tmp_path, smarthost.port)
    sessions = sessions_for(sqlite_url)
    first = threading.Thread(target=deliver_due, args=(sessions, settings))
    first.start()
    try:
        assert smarthost.handler.data_started.wait(30)
        assert deliver_due(sessions, settings).claimed == 0
    finally:
        gate.set()
        first.join(30)
    assert len(smarthost.messages) == 1
    assert row(sqlite_url, oid).status == "sent"


@pytest.mark.parametrize("status", ["failed", "sent"])
def test_only_due_rows_are_claimed(sqlite_url: str, tmp_path: Path, status: str) -> None:
    settings, oid = queue_ack(sqlite_url, tmp_path, free_port())
    sessions = sessions_for(sqlite_url)
    with sessions.begin() as session:
        found = session.get(OutboxRow, oid)
        assert found is not None
        found.status = status
    assert deliver_due(sessions, settings, now=T0 + timedelta(days=30)).claimed == 0


def test_blocking_sender_thread_delivers_when_woken_and_stops(
    sqlite_url: str, tmp_path: Path, smarthost: Smarthost
) -> None:
    from stopitd.outbound import run_sender_blocking

    settings, oid = queue_ack(
        sqlite_url, tmp_path, smarthost.port, outbound="poll_interval = 300.0"
    )
    stop, wake = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=run_sender_blocking, args=(settings, stop), kwargs={"wake": wake}
    )
    thread.start()
    try:
        wake.set()
        assert smarthost.handler.received.wait(30)
    finally:
        stop.set()
        wake.set()
        thread.join(30)
    assert not thread.is_alive()
    assert len(smarthost.messages) == 1 and row(sqlite_url, oid).status == "sent"


def test_sigkill_mid_delivery_resends_the_same_message_never_loses_it(
    store_url: str, tmp_path: Path, smarthost: Smarthost
) -> None:
    """A real sender process is SIGKILLed after the smarthost got the data but before the
    outcome was committed: the row stays `sending`, and after the lease it goes out again
    with the same Message-ID (at-least-once: a duplicate, never a loss)."""
    import subprocess
    import sys

    gate = threading.Event()
    smarthost.handler.data_gate = gate
    settings, oid = queue_ack(store_url, tmp_path, smarthost.port, outbound="send_lease = 5.0")
    script = (
        "import sys; from pathlib import Path; from stopitd import config; "
        "from stopitd.outbound.sender import deliver_due; from stopitd.store import db; "
        "s = config.load(Path(sys.argv[1])); "
        "deliver_due(db.make_sessionmaker(db.make_engine(s.database.url)), s)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "stopitd.toml")])
    try:
        assert smarthost.handler.data_started.wait(60)
        proc.kill()
        proc.wait(30)
    finally:
        gate.set()
    # aiosmtpd drops a transaction whose client vanished before the reply; a real MTA may
    # already have queued it. Either way the row is still `sending`: nothing is lost.
    in_flight = row(store_url, oid)
    assert in_flight.status == "sending" and in_flight.sent_at is None
    sessions = sessions_for(store_url)
    assert deliver_due(sessions, settings).claimed == 0  # the lease still holds
    later = datetime.now(UTC) + timedelta(seconds=6)
    assert deliver_due(sessions, settings, now=later).sent == 1
    assert 1 <= len(smarthost.messages) <= 2
    copies = {m.data for m in smarthost.messages}
    assert len(copies) == 1  # any duplicate is the same bytes and Message-ID
    assert f"Message-ID: <{in_flight.message_id}>".encode() in copies.pop()
    sent = row(store_url, oid)
    assert sent.status == "sent" and sent.attempts == 2
