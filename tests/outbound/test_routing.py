"""Routing: the rule table routes new cases; the office gets a summary and, if configured,
the evidence byte for byte."""

from __future__ import annotations

import email
import email.policy
import hashlib
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from stopitd import config
from stopitd.analysis import analyze
from stopitd.analysis.model import Analysis, Envelope, Mode, SourceEstimate
from stopitd.outbound import choose_office, queue_route_mail
from stopitd.outbound.routing import RoutingError
from stopitd.store.outbox_schema import OutboxRow
from stopitd.store.schema import Case, Event
from tests.outbound.conftest import file_report, fixture, sessions_for, write_settings

OFFICES = """
[offices.hr]
address = "hr@example.edu"
description = "Human resources"

[offices.security]
address = "security@example.edu"
description = "IT security"
attach_evidence = true

[offices.frontdesk]
address = "frontdesk@example.edu"

[routing]
rules = [
    { office = "hr", internal = true },
    { office = "security", origin_networks = ["198.51.100.0/24", "2001:db8::/32"] },
    { office = "security", from_domains = ["example.edu"], modes = ["submission"] },
    { office = "frontdesk", reporter_domains = ["students.example.edu"] },
]
"""


def analysis_with(**source: object) -> Analysis:
    raw = fixture("gmail-attached-original.eml")
    base = analyze(raw, Envelope(), config.Settings().policy())
    original = base.originals[0]
    return replace(base, originals=(replace(original, source=replace(SourceEstimate(), **source)),))


@pytest.mark.parametrize(
    ("source", "reporter", "office"),
    [
        ({"internal": True}, "a@example.org", "hr"),
        ({"relay_ip": "198.51.100.25"}, "a@example.org", "security"),
        ({"origin_ip": "2001:db8::25"}, "a@example.org", "security"),
        ({"relay_ip": "192.0.2.1"}, "b@students.example.edu", "frontdesk"),
        ({"relay_ip": "192.0.2.1"}, "b@example.org", None),
        (
            {"mode": Mode.SUBMISSION, "relay_ip": "192.0.2.1"},
            "b@example.org",
            None,
        ),  # From: freemail
    ],
)
def test_rules_first_match_wins(
    tmp_path: Path, source: dict[str, object], reporter: str, office: str | None
) -> None:
    settings = write_settings(tmp_path, "sqlite://", 25, extra="", outbound="")
    path = tmp_path / "stopitd.toml"
    path.write_text(path.read_text() + OFFICES)
    settings = config.load(path)
    assert choose_office(analysis_with(**source), Envelope(mail_from=reporter), settings) == office


def test_new_case_is_routed_and_the_office_gets_the_evidence(
    store_url: str, tmp_path: Path
) -> None:
    write_settings(tmp_path, store_url, 2525)
    path = tmp_path / "stopitd.toml"
    path.write_text(
        path.read_text()
        + OFFICES.replace(
            '{ office = "hr", internal = true },',
            '{ office = "security", from_domains = ["freemail.example"] },',
        )
    )
    settings = config.load(path)
    sessions = sessions_for(store_url)
    raw = fixture("gmail-attached-original.eml")
    raw_with_control = b"X-Stopitd-Case: 999\r\n" + raw  # an inbound copy: not trusted
    case_id, after = file_report(
        sessions, settings, raw_with_control, mail_from="reporter.rita@gmail.com", spool_id="s1"
    )
    assert after.office == "security"
    with sessions() as session:
        case = session.get(Case, case_id)
        assert case is not None and case.office == "security"
        routed = session.scalars(select(Event).where(Event.kind == "routed")).one()
        assert routed.detail == {"from": None, "to": "security", "by": "routing-rules"}
        route = session.scalars(select(OutboxRow).where(OutboxRow.kind == "route")).one()
    assert route.rcpt_to == "security@example.edu"
    msg = email.message_from_bytes(route.raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"] == f"[stopit #{case_id}] Case routed to security: you again"
    assert msg["Auto-Submitted"] == "auto-generated"
    text = str(msg.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert "IT security" in text and f"stopitd cases show {case_id}" in text
    attachments = list(msg.iter_attachments())
    assert len(attachments) == 1
    evidence = attachments[0].get_content()
    assert evidence == raw  # byte for byte, our control header stripped from the copy
    assert hashlib.sha256(raw_with_control).hexdigest() in text  # sha256 of the stored report


def test_route_mail_on_staff_request_and_unknown_office(sqlite_url: str, tmp_path: Path) -> None:
    write_settings(tmp_path, sqlite_url, 2525)
    path = tmp_path / "stopitd.toml"
    path.write_text(path.read_text() + OFFICES)
    settings = config.load(path)
    sessions = sessions_for(sqlite_url)
    case_id, after = file_report(
        sessions,
        settings,
        fixture("outlook-inline-forward.eml"),
        mail_from="oliver@contoso.example",
        spool_id="s1",
    )
    assert after.office is None
    with sessions.begin() as session:
        oid = queue_route_mail(session, case_id, "hr", settings, actor="alice")
        with pytest.raises(RoutingError, match=r"no office 'legal'.*frontdesk, hr, security"):
            queue_route_mail(session, case_id, "legal", settings)
    with sessions() as session:
        row = session.get(OutboxRow, oid)
        assert row is not None and row.rcpt_to == "hr@example.edu" and row.actor == "alice"
        msg = email.message_from_bytes(row.raw, policy=email.policy.default)
        assert not msg.is_multipart()  # hr has no attach_evidence
