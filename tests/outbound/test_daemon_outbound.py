"""End to end: the real daemon process, reports over real loopback SMTP, and a real SMTP
smarthost on loopback (aiosmtpd) that receives what stopitd sends."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from stopitd.store import db
from stopitd.store.outbox_schema import OutboxRow
from stopitd.store.schema import Event, Report
from tests.daemon_helpers import (
    REPORT_ADDRESS,
    Daemon,
    queued_id,
    report_message,
    running_daemon,
    wait_until,
)
from tests.outbound.conftest import Smarthost, fixture, free_port

REPORTER = "victim@example.edu"


def outbound_config(port: int) -> dict[str, str]:
    return {
        "outbound": (
            f'enabled = true\nsmarthost = "127.0.0.1:{port}"\n'
            "poll_interval = 0.2\nretry_initial = 0.2\nretry_max = 0.5\ntimeout = 10.0\n"
        ),
        "reply": 'organisation = "Example University"\n'
        'emergency_text = "In danger? Call campus security: +1 555 0100."\n',
    }


@pytest.fixture
def smarthost_daemon(tmp_path: Path, store_url: str) -> Iterator[tuple[Daemon, Smarthost]]:
    host = Smarthost().start()
    try:
        with running_daemon(tmp_path / "node", store_url, **outbound_config(host.port)) as d:
            yield d, host
    finally:
        host.stop()


def submit(daemon: Daemon, message: bytes, mail_from: str) -> str:
    client = daemon.smtp()
    try:
        client.mail(mail_from)
        code, text = client.rcpt(REPORT_ADDRESS)
        assert code == 250, text
        code, reply = client.data(message)
        assert code == 250, reply
        return queued_id(reply.decode())
    finally:
        client.quit()


def rows(url: str, model: type, *where: object) -> list:  # type: ignore[type-arg]
    engine = db.make_engine(url)
    try:
        with db.make_sessionmaker(engine)() as session:
            return list(session.scalars(select(model).where(*where)))  # type: ignore[arg-type]
    finally:
        engine.dispose()


def case_of(url: str, spool_id: str) -> int:
    found = rows(url, Report, Report.spool_id == spool_id)
    return int(found[0].case_id) if found else 0


def settled(url: str, spool_id: str) -> bool:
    """The report is saved and its acknowledgement decided (queued and sent, or skipped)."""
    case_id = case_of(url, spool_id)
    if not case_id:
        return False
    events = rows(url, Event, Event.case_id == case_id)
    decided = [
        e
        for e in events
        if e.detail.get("report") == spool_id and e.kind in ("mail_queued", "ack_skipped")
    ]
    unsent = rows(url, OutboxRow, OutboxRow.status != "sent")
    return bool(decided) and not unsent


def test_a_report_gets_exactly_one_acknowledgement(
    smarthost_daemon: tuple[Daemon, Smarthost], store_url: str
) -> None:
    daemon, host = smarthost_daemon
    spool_id = submit(daemon, report_message(1, reporter=REPORTER), REPORTER)
    assert host.handler.received.wait(60), daemon.log_text()
    wait_until(lambda: settled(store_url, spool_id), 60, "the ack to be sent")
    case_id = case_of(store_url, spool_id)
    assert len(host.messages) == 1
    got = host.messages[0]
    assert got.mail_from in ("", "<>") and got.rcpt_tos == (REPORTER,)
    msg = email.message_from_bytes(got.data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"] == f"[stopit #{case_id}] We have received your report: Fwd: you again (1)"
    assert msg["To"] == REPORTER
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["In-Reply-To"].strip() == "<report-1@example.edu>"
    text = str(msg.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert "What happens next" in text and "Call campus security: +1 555 0100" in text
    sent = rows(store_url, Event, Event.case_id == case_id, Event.kind == "mail_sent")
    assert len(sent) == 1 and f"<{sent[0].detail['message_id']}>" == msg["Message-ID"]
    # the daemon's own log never names the reporter above debug level
    assert REPORTER not in daemon.log_text()


def test_auto_submitted_report_and_our_ack_fed_back_get_no_answer(
    smarthost_daemon: tuple[Daemon, Smarthost], store_url: str
) -> None:
    daemon, host = smarthost_daemon
    oof = submit(daemon, fixture("exchange-out-of-office.eml"), "paul@contoso.example")
    wait_until(lambda: settled(store_url, oof), 60, "the out-of-office report")
    first = submit(daemon, report_message(2, reporter=REPORTER), REPORTER)
    assert host.handler.received.wait(60), daemon.log_text()
    wait_until(lambda: settled(store_url, first), 60, "the ack")
    assert [m.rcpt_tos for m in host.messages] == [(REPORTER,)]
    # our acknowledgement arrives at stopit@ (an alias, a forwarder): three times, as the
    # smarthost would have delivered it and as two rewriting forwarders would
    ack = host.messages[0].data
    for n, sender in enumerate(("", REPORTER, REPORT_ADDRESS)):
        back = submit(daemon, ack, sender)
        wait_until(lambda back=back: settled(store_url, back), 60, f"fed-back ack {n}")
    skipped = rows(store_url, Event, Event.kind == "ack_skipped")
    assert sorted(e.detail["reason"] for e in skipped) == [
        "auto-submitted",
        "loop",
        "null-sender",
        "our-address",
    ]
    assert len(host.messages) == 1  # still only the one acknowledgement
    assert len(rows(store_url, OutboxRow)) == 1


def test_smarthost_down_delays_mail_and_loses_none(tmp_path: Path, sqlite_url: str) -> None:
    port = free_port()  # the smarthost is down: nothing listens here
    with running_daemon(tmp_path / "node", sqlite_url, **outbound_config(port)) as daemon:
        ids = [
            submit(daemon, report_message(n, reporter=f"r{n}@example.edu"), f"r{n}@example.edu")
            for n in range(3)
        ]

        def deferred() -> bool:
            found = rows(sqlite_url, OutboxRow)
            return len(found) == 3 and all(
                r.status in ("queued", "sending") and r.last_error for r in found
            )

        wait_until(deferred, 60, "three acks deferred while the smarthost is down")
        assert "unreachable" in rows(sqlite_url, OutboxRow)[0].last_error
        host = Smarthost(port=port).start()
        try:
            wait_until(lambda: len(host.messages) >= 3, 60, "the acks once the smarthost is up")
            wait_until(lambda: all(settled(sqlite_url, i) for i in ids), 60, "all sent")
            assert sorted(m.rcpt_tos[0] for m in host.messages) == [
                "r0@example.edu",
                "r1@example.edu",
                "r2@example.edu",
            ]
            assert len({m.data for m in host.messages}) == 3
        finally:
            host.stop()


def test_stop_notice_through_the_cli_is_refused_for_unverified_sender(
    smarthost_daemon: tuple[Daemon, Smarthost], store_url: str
) -> None:
    import subprocess

    from tests.daemon_helpers import STOPITD

    daemon, host = smarthost_daemon
    spool_id = submit(daemon, report_message(3, reporter=REPORTER), REPORTER)
    wait_until(lambda: settled(store_url, spool_id), 60, "the report")
    case_id = case_of(store_url, spool_id)
    out = subprocess.run(
        [
            STOPITD,
            "--config",
            str(daemon.config),
            "cases",
            "notify",
            str(case_id),
            "--template",
            "stop",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1
    assert "not authenticated" in out.stderr and "provider-abuse" in out.stderr
    assert len(host.messages) == 1  # only the acknowledgement
