"""Staff notices: the stop notice names nothing of the reporter or the victim, is refused
for an unauthenticated From, and the provider's abuse desk is offered instead."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from stopitd.analysis import analyze
from stopitd.analysis.model import Analysis, Envelope
from stopitd.cli import main
from stopitd.config import Settings
from stopitd.outbound.notices import NoticeRefused, prepare, readable_text
from stopitd.store.cases import save_report
from stopitd.store.outbox_schema import OutboxRow
from stopitd.store.schema import Event
from tests.outbound.conftest import fixture, sessions_for, write_settings

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
# Everything in the report that points at the reporter, the victim, or the evidence.
IDENTIFYING = (
    "reporter.rita@gmail.com",
    "Rita",
    "Reporter",
    "jane.victim@example.edu",
    "Jane",
    "colleague",
    "you again",  # the original's subject: evidence
    "I know where you park",  # the original's body: evidence
    "a1b2c3d4-5e6f-7a8b-9c0d-e1f2a3b4c5d6",  # the original's Message-ID
    "CAJx9vL2Qw7pTn3kR8sYb6mH4uE1oZc5dFgA0iNjK2lMpQrS3tU",  # the report's Message-ID
    "203.0.113.77",
)


def save_case(
    sessions: sessionmaker[Session], settings: Settings, authenticated: bool | None
) -> int:
    raw = fixture("gmail-attached-original.eml")
    envelope = Envelope(mail_from="reporter.rita@gmail.com", rcpt_tos=("stopit@example.edu",))
    analysis = analyze(raw, envelope, settings.policy())
    original = analysis.originals[0]
    source = replace(
        original.source,
        from_authenticated=authenticated,
        responsible_domains=("freemail.example",),
        relay_ip="198.51.100.25",
    )
    analysis = Analysis(report=analysis.report, originals=(replace(original, source=source),))
    with sessions.begin() as session:
        return save_report(session, spool_id="s1", envelope=envelope, raw=raw, analysis=analysis)


@pytest.fixture
def setup(store_url: str, tmp_path: Path) -> tuple[Settings, sessionmaker[Session]]:
    return write_settings(tmp_path, store_url, 2525), sessions_for(store_url)


def test_stop_notice_names_behaviour_and_policy_and_nothing_of_the_reporter(
    setup: tuple[Settings, sessionmaker[Session]],
) -> None:
    settings, sessions = setup
    case_id = save_case(sessions, settings, authenticated=True)
    with sessions() as session:
        notice = prepare(
            session, case_id, "stop", settings, now=NOW, behaviour="sending threatening messages"
        )
    msg = email.message_from_bytes(notice.message.raw, policy=email.policy.default)
    assert msg["To"] == "mallory.harasser@freemail.example"
    assert msg["Subject"] == f"[stopit #{case_id}] Please stop: sending threatening messages"
    assert msg["Auto-Submitted"] is None  # a person decided to send it (RFC 3834 §5)
    assert msg["In-Reply-To"] is None and msg["References"] is None
    assert not msg.is_multipart()  # no evidence attached
    text = readable_text(notice.message.raw)
    assert "the acceptable use policy for e-mail" in text
    assert "2026-11-23" in text  # the date of the message, so the sender knows which
    for needle in IDENTIFYING:
        assert needle.lower() not in text.lower(), needle
        assert needle.encode().lower() not in notice.message.raw.lower(), needle


@pytest.mark.parametrize("authenticated", [None, False])
def test_stop_notice_refused_when_from_is_not_authenticated(
    setup: tuple[Settings, sessionmaker[Session]], authenticated: bool | None
) -> None:
    settings, sessions = setup
    case_id = save_case(sessions, settings, authenticated=authenticated)
    with sessions() as session, pytest.raises(NoticeRefused) as refused:
        prepare(session, case_id, "stop", settings, now=NOW)
    why = str(refused.value)
    assert "not authenticated" in why and "may be forged" in why
    assert f"source.from_authenticated is {'unknown' if authenticated is None else 'false'}" in why
    assert "--template provider-abuse" in why and "abuse@freemail.example" in why


def test_provider_abuse_notice_carries_trace_headers_without_the_victim(
    setup: tuple[Settings, sessionmaker[Session]],
) -> None:
    settings, sessions = setup
    case_id = save_case(sessions, settings, authenticated=False)
    with sessions() as session:
        notice = prepare(session, case_id, "provider-abuse", settings, now=NOW)
    assert notice.message.to == "abuse@freemail.example"
    text = readable_text(notice.message.raw)
    assert "from [203.0.113.77] (dyn-77.isp.example [203.0.113.77])" in text
    assert "for <recipient redacted>" in text
    assert "DKIM-Signature: v=1; a=rsa-sha256" in text
    assert "not authenticated: it may be forged" in text
    for needle in ("jane.victim", "reporter.rita", "Rita", "I know where you park"):
        assert needle not in text


def test_an_admin_template_that_leaks_the_reporter_is_refused(
    store_url: str, tmp_path: Path
) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "stop.txt.j2").write_text(
        "Subject: {{ tag }} stop\n\nReported by reporter.rita@gmail.com\n"
    )
    settings = write_settings(tmp_path, store_url, 2525, outbound='templates_dir = "templates"')
    sessions = sessions_for(store_url)
    case_id = save_case(sessions, settings, authenticated=True)
    with sessions() as session, pytest.raises(NoticeRefused, match="fix the template"):
        prepare(session, case_id, "stop", settings, now=NOW)


def test_cli_notify_dry_run_queue_and_refusal(sqlite_url: str, tmp_path: Path) -> None:
    settings = write_settings(tmp_path, sqlite_url, 2525)
    sessions = sessions_for(sqlite_url)
    case_id = save_case(sessions, settings, authenticated=True)
    cfg = ["--config", str(tmp_path / "stopitd.toml")]
    runner = CliRunner()
    dry = runner.invoke(
        main, ["cases", "notify", str(case_id), "--template", "stop", "--dry-run", *cfg]
    )
    assert dry.exit_code == 0, dry.output
    assert "To: mallory.harasser@freemail.example" in dry.output
    with sessions() as session:
        assert session.scalars(select(OutboxRow)).first() is None  # dry run queued nothing
    sent = runner.invoke(
        main, ["cases", "notify", str(case_id), "--template", "stop", "--as", "alice", *cfg]
    )
    assert sent.exit_code == 0, sent.output
    with sessions() as session:
        out = session.scalars(select(OutboxRow)).one()
        assert (out.kind, out.actor, out.mail_from) == ("stop", "alice", "stopit@example.edu")
        event = session.scalars(select(Event).where(Event.kind == "mail_queued")).one()
        assert event.actor == "alice" and event.detail["message_id"] == out.message_id
        assert event.detail["to"] == "mallory.harasser@freemail.example"
    assert f"<{out.message_id}>" in sent.output
    # a case whose sender is not authenticated: refused, with the alternative
    with sessions.begin() as session:
        from stopitd.store.schema import OriginalRow

        original = session.scalars(select(OriginalRow)).one()
        original.analysis = {
            **original.analysis,
            "source": {**original.analysis["source"], "from_authenticated": False},
        }
    refused = runner.invoke(main, ["cases", "notify", str(case_id), "--template", "stop", *cfg])
    assert refused.exit_code == 1
    assert "not authenticated" in refused.output and "provider-abuse" in refused.output


def test_case_without_original_has_no_one_to_notify(sqlite_url: str, tmp_path: Path) -> None:
    settings = write_settings(tmp_path, sqlite_url, 2525)
    sessions = sessions_for(sqlite_url)
    raw = fixture("gmail-description-only.eml")
    envelope = Envelope(mail_from="dora.d@gmail.com")
    with sessions.begin() as session:
        case_id = save_report(
            session,
            spool_id="x",
            envelope=envelope,
            raw=raw,
            analysis=analyze(raw, envelope, settings.policy()),
        )
    with sessions() as session, pytest.raises(NoticeRefused, match="no reported original"):
        prepare(session, case_id, "stop", settings, now=NOW)


def test_an_inline_forward_cannot_prove_its_sender(sqlite_url: str, tmp_path: Path) -> None:
    settings = write_settings(tmp_path, sqlite_url, 2525)
    sessions = sessions_for(sqlite_url)
    raw = fixture("outlook-inline-forward.eml")
    envelope = Envelope(mail_from="oliver@contoso.example")
    with sessions.begin() as session:
        case_id = save_report(
            session,
            spool_id="x",
            envelope=envelope,
            raw=raw,
            analysis=analyze(raw, envelope, settings.policy()),
        )
    with sessions() as session, pytest.raises(NoticeRefused, match="not authenticated"):
        prepare(session, case_id, "stop", settings, now=NOW)
