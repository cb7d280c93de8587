"""Acknowledgements queued in the transaction that saves a report, on SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from stopitd.outbound.safety import NoReply
from stopitd.store.outbox_schema import OutboxKind, OutboxRow, OutboxStatus
from stopitd.store.schema import Event
from tests.outbound.conftest import file_report, fixture, sessions_for, write_settings

RITA = "reporter.rita@gmail.com"


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def body(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def test_ack_for_a_report_with_its_original(store_url: str, tmp_path: Path) -> None:
    settings = write_settings(tmp_path, store_url, 2525)
    sessions = sessions_for(store_url)
    case_id, after = file_report(
        sessions, settings, fixture("gmail-attached-original.eml"), mail_from=RITA, spool_id="s1"
    )
    assert isinstance(after.ack, int)
    with sessions() as session:
        row = session.get(OutboxRow, after.ack)
        assert row is not None
        assert (row.kind, row.status, row.case_id) == ("ack", "queued", case_id)
        assert row.rcpt_to == RITA and row.mail_from == ""  # RFC 3834: null envelope sender
        events = list(session.scalars(select(Event).where(Event.case_id == case_id)))
    msg = parse(row.raw)
    assert msg["Subject"].startswith(f"[stopit #{case_id}] ")
    assert msg["To"] == RITA
    assert msg["From"] == "Example University <stopit@example.edu>"
    assert msg["Auto-Submitted"] == "auto-replied"
    report_id = "CAJx9vL2Qw7pTn3kR8sYb6mH4uE1oZc5dFgA0iNjK2lMpQrS3tU@mail.gmail.com"
    assert msg["In-Reply-To"].strip() == f"<{report_id}>"  # folded: legal, and common
    assert f"<{report_id}>" in msg["References"]
    assert msg["Message-ID"] == f"<{row.message_id}>"
    assert msg["X-Stopitd-Loop"] == "stopit@example.edu"
    assert msg["Date"]
    text = body(msg)
    assert "What happens next" in text
    assert "call campus security on +1 555 0100" in text  # [reply] emergency_text
    assert "forward" not in text.lower()  # no resend instructions: the original was there
    assert b"\r\n" in row.raw and b"\n" not in row.raw.replace(b"\r\n", b"")
    queued = [e for e in events if e.kind == "mail_queued"]
    assert len(queued) == 1 and queued[0].detail["message_id"] == row.message_id
    assert queued[0].detail["to"] == "reporter"  # the case history names roles, not addresses


@pytest.mark.parametrize(
    ("name", "reporter", "instruction"),
    [
        ("outlook-inline-forward.eml", "oliver@contoso.example", "Forward as attachment"),
        ("gmail-inline-forward.eml", "gina.gmail@gmail.com", "Show original"),
        ("applemail-inline-forward.eml", "anna@example.org", 'Message > "Forward as Attachment"'),
        ("thunderbird-inline-forward.eml", "theo@example.net", 'Forward As > "Attachment"'),
        ("gmail-description-only.eml", "dora.d@gmail.com", "Show original"),
    ],
)
def test_inline_forward_asks_to_resend_with_headers_for_the_client(
    sqlite_url: str, tmp_path: Path, name: str, reporter: str, instruction: str
) -> None:
    settings = write_settings(tmp_path, sqlite_url, 2525)
    sessions = sessions_for(sqlite_url)
    case_id, after = file_report(
        sessions, settings, fixture(name), mail_from=reporter, spool_id="s"
    )
    with sessions() as session:
        row = session.get(OutboxRow, after.ack)
        assert row is not None and row.kind == OutboxKind.RESEND.value
    text = body(parse(row.raw))
    assert "full headers" in text
    assert instruction in text
    assert f"[stopit #{case_id}]" in text
    assert "call campus security" in text
    others = {"Thunderbird", "Apple Mail", "Outlook", "Gmail"} - {
        {
            "outlook": "Outlook",
            "gmail": "Gmail",
            "applemail": "Apple Mail",
            "thunderbird": "Thunderbird",
        }[name.split("-")[0]]
    }
    assert not any(f"In {o}" in text for o in others)  # only this client's instructions


def test_saving_the_same_report_again_queues_nothing_more(store_url: str, tmp_path: Path) -> None:
    settings = write_settings(tmp_path, store_url, 2525)
    sessions = sessions_for(store_url)
    raw = fixture("gmail-attached-original.eml")
    first, a1 = file_report(sessions, settings, raw, mail_from=RITA, spool_id="same")
    second, a2 = file_report(sessions, settings, raw, mail_from=RITA, spool_id="same")
    assert first == second and isinstance(a1.ack, int)
    assert a2.ack == NoReply.ALREADY_DECIDED
    with sessions() as session:
        assert len(list(session.scalars(select(OutboxRow)))) == 1


def test_auto_submitted_report_gets_no_ack_and_the_case_says_why(
    store_url: str, tmp_path: Path
) -> None:
    settings = write_settings(tmp_path, store_url, 2525)
    sessions = sessions_for(store_url)
    case_id, after = file_report(
        sessions,
        settings,
        fixture("exchange-out-of-office.eml"),
        mail_from="paul@contoso.example",
        spool_id="oof",
    )
    assert after.ack == NoReply.AUTO_SUBMITTED
    with sessions() as session:
        assert list(session.scalars(select(OutboxRow))) == []
        skipped = session.scalars(
            select(Event).where(Event.case_id == case_id, Event.kind == "ack_skipped")
        ).one()
        assert skipped.detail == {"report": "oof", "reason": "auto-submitted"}


@pytest.mark.parametrize(
    ("name", "mail_from", "why"),
    [
        ("postfix-bounce.eml", "", NoReply.NULL_SENDER),
        ("mailman-list-post.eml", "someone@example.org", NoReply.PRECEDENCE),
        ("gmail-attached-original.eml", "stopit@example.edu", NoReply.OUR_ADDRESS),
    ],
)
def test_robots_lists_and_ourselves_get_no_ack(
    sqlite_url: str, tmp_path: Path, name: str, mail_from: str, why: NoReply
) -> None:
    settings = write_settings(tmp_path, sqlite_url, 2525)
    sessions = sessions_for(sqlite_url)
    _, after = file_report(sessions, settings, fixture(name), mail_from=mail_from, spool_id="x")
    assert after.ack == why


def test_daily_cap_per_address(sqlite_url: str, tmp_path: Path) -> None:
    settings = write_settings(tmp_path, sqlite_url, 2525, extra="daily_cap_per_address = 2")
    sessions = sessions_for(sqlite_url)
    template = fixture("gmail-attached-original.eml")

    def distinct(n: int) -> bytes:
        """The same shape of report about a different original (not a duplicate case)."""
        return template.replace(b"a1b2c3d4-5e6f", f"a1b2c3d4-{n:04d}".encode()).replace(
            b"Subject: you again", f"Subject: you again ({n})".encode()
        )

    t0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    acks = [
        file_report(
            sessions,
            settings,
            distinct(i),
            mail_from=RITA,
            spool_id=f"r{i}",
            now=t0 + timedelta(hours=i),
        )[1].ack
        for i in range(3)
    ]
    assert isinstance(acks[0], int) and isinstance(acks[1], int)
    assert acks[2] == NoReply.DAILY_CAP
    # a day after the first two, the reporter is acknowledged again
    _, later = file_report(
        sessions,
        settings,
        distinct(9),
        mail_from=RITA.upper(),
        spool_id="r9",
        now=t0 + timedelta(hours=25, minutes=1),
    )
    assert isinstance(later.ack, int)


def test_one_ack_per_reporter_and_case(sqlite_url: str, tmp_path: Path) -> None:
    from stopitd.analysis import analyze
    from stopitd.analysis.model import Envelope
    from stopitd.outbound import on_report_saved

    settings = write_settings(tmp_path, sqlite_url, 2525)
    sessions = sessions_for(sqlite_url)
    raw = fixture("gmail-attached-original.eml")
    case_id, first = file_report(sessions, settings, raw, mail_from=RITA, spool_id="a")
    # a second report joins the same case (as the case base does for a follow-up)
    envelope = Envelope(mail_from=RITA, rcpt_tos=("stopit@example.edu",))
    analysis = analyze(raw, envelope, settings.policy())
    with sessions.begin() as session:
        again = on_report_saved(
            session,
            case_id=case_id,
            spool_id="b",
            raw=raw,
            analysis=analysis,
            envelope=envelope,
            settings=settings,
        )
        other = on_report_saved(
            session,
            case_id=case_id,
            spool_id="c",
            raw=raw,
            analysis=analysis,
            envelope=Envelope(mail_from="second@example.org"),
            settings=settings,
        )
    assert isinstance(first.ack, int)
    assert again.ack == NoReply.ALREADY_ACKNOWLEDGED
    assert isinstance(other.ack, int)  # another reporter of the same thing hears from us


def test_disabled_outbound_queues_nothing(sqlite_url: str, tmp_path: Path) -> None:
    settings = write_settings(tmp_path, sqlite_url, 2525, outbound="")
    path = tmp_path / "stopitd.toml"
    path.write_text(path.read_text().replace("enabled = true", "enabled = false"))
    from stopitd import config

    settings = config.load(path)
    sessions = sessions_for(sqlite_url)
    _, after = file_report(
        sessions, settings, fixture("gmail-attached-original.eml"), mail_from=RITA, spool_id="d"
    )
    assert after.ack == NoReply.DISABLED
    with sessions() as session:
        assert session.scalars(select(OutboxRow)).first() is None
        assert OutboxStatus.QUEUED.value == "queued"


def test_a_broken_admin_template_never_loses_the_report(sqlite_url: str, tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "ack.txt.j2").write_text("Subject: {{ tag }\n\n{{ nonsense }}\n")
    settings = write_settings(tmp_path, sqlite_url, 2525, outbound='templates_dir = "templates"')
    sessions = sessions_for(sqlite_url)
    case_id, after = file_report(
        sessions, settings, fixture("gmail-attached-original.eml"), mail_from=RITA, spool_id="t"
    )
    assert after.ack == NoReply.ERROR
    with sessions() as session:
        from stopitd.store.schema import Report

        assert session.scalars(select(Report)).one().case_id == case_id  # saved all the same
        assert session.scalars(select(OutboxRow)).first() is None
        why = session.scalars(select(Event).where(Event.kind == "ack_skipped")).one()
        assert why.detail["reason"] == "error" and "ack.txt.j2" in why.detail["error"]
