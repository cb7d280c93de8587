"""Replies to what stopitd sent thread back into the case; `cases route` mails the office."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from stopitd import config
from stopitd.cli import main
from stopitd.outbound import case_for_message_ids
from stopitd.outbound.safety import NoReply
from stopitd.store.outbox_schema import OutboxRow
from tests.outbound.conftest import file_report, fixture, sessions_for, write_settings

RITA = "reporter.rita@gmail.com"


def test_reply_to_the_acknowledgement_joins_the_case(store_url: str, tmp_path: Path) -> None:
    settings = write_settings(tmp_path, store_url, 2525)
    sessions = sessions_for(store_url)
    case_id, after = file_report(
        sessions,
        settings,
        fixture("gmail-attached-original.eml"),
        mail_from=RITA,
        spool_id="first",
    )
    with sessions() as session:
        ack = session.get(OutboxRow, after.ack)
        assert ack is not None
        assert case_for_message_ids(session, [f"<{ack.message_id}>"]) == case_id
    # the reporter answers the acknowledgement; their client dropped the tag from the subject
    reply = (
        "Received: from mail-lj1-f171.google.com (mail-lj1-f171.google.com [209.85.208.171])\r\n"
        "        by stopit.example.edu (Postfix) with ESMTPS id 9C0D1E2F3A\r\n"
        "        for <stopit@example.edu>; Tue, 24 Nov 2026 18:00:00 +0100 (CET)\r\n"
        f"From: Rita Reporter <{RITA}>\r\n"
        "To: stopit@example.edu\r\n"
        "Subject: one more thing\r\n"
        "Date: Tue, 24 Nov 2026 18:00:00 +0100\r\n"
        "Message-ID: <CAJx9vL2Qw7pTn3kR8sYb6mH4uE1oZc5dFgA0iNjK2lMpQrS3tX@mail.gmail.com>\r\n"
        f"In-Reply-To: <{ack.message_id}>\r\n"
        f"References: <{ack.message_id}>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="UTF-8"\r\n'
        "\r\n"
        "He wrote again last night.\r\n"
    ).encode()
    joined, again = file_report(sessions, settings, reply, mail_from=RITA, spool_id="second")
    assert joined == case_id
    assert again.ack == NoReply.ALREADY_ACKNOWLEDGED  # one acknowledgement per reporter


def test_cases_route_mails_the_office(sqlite_url: str, tmp_path: Path) -> None:
    write_settings(tmp_path, sqlite_url, 2525)
    path = tmp_path / "stopitd.toml"
    path.write_text(
        path.read_text()
        + '\n[offices.hr]\naddress = "hr@example.edu"\ndescription = "Human resources"\n'
    )
    settings = config.load(path)
    sessions = sessions_for(sqlite_url)
    case_id, _ = file_report(
        sessions, settings, fixture("gmail-attached-original.eml"), mail_from=RITA, spool_id="r"
    )
    runner = CliRunner()
    args = ["cases", "route", str(case_id), "hr", "--as", "alice", "--config", str(path)]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    again = runner.invoke(main, args)  # unchanged: no second mail
    assert again.exit_code == 0, again.output
    with sessions() as session:
        routes = list(session.scalars(select(OutboxRow).where(OutboxRow.kind == "route")))
    assert [(r.rcpt_to, r.actor) for r in routes] == [("hr@example.edu", "alice")]
