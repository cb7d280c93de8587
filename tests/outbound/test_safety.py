"""RFC 3834: who never gets an automatic reply (pure rules, real-shaped messages)."""

from __future__ import annotations

import pytest

from stopitd.outbound.clients import MailClient, detect_client
from stopitd.outbound.safety import (
    LOOP_HEADER,
    NoReply,
    is_daemon_address,
    reply_refusal,
    strip_control_headers,
)
from tests.outbound.conftest import REPORT_ADDRESS, fixture

OURS = (REPORT_ADDRESS, "noreply-stopit@example.edu")


def with_header(raw: bytes, line: bytes) -> bytes:
    return line + b"\r\n" + raw


@pytest.mark.parametrize(
    ("name", "mail_from", "expected"),
    [
        ("gmail-attached-original.eml", "reporter.rita@gmail.com", None),
        ("outlook-inline-forward.eml", "oliver@contoso.example", None),
        ("thunderbird-inline-forward.eml", "theo@example.net", None),
        ("exchange-out-of-office.eml", "paul@contoso.example", NoReply.AUTO_SUBMITTED),
        ("mailman-list-post.eml", "announce-bounces@lists.example.org", NoReply.DAEMON_SENDER),
        ("mailman-list-post.eml", "someone@example.org", NoReply.PRECEDENCE),
        ("postfix-bounce.eml", "", NoReply.NULL_SENDER),
        ("postfix-bounce.eml", "<>", NoReply.NULL_SENDER),
        ("postfix-bounce.eml", "MAILER-DAEMON@stopit-relay.example.edu", NoReply.DAEMON_SENDER),
        ("gmail-attached-original.eml", "STOPIT@example.edu", NoReply.OUR_ADDRESS),
        ("gmail-attached-original.eml", "not an address", NoReply.BAD_ADDRESS),
    ],
)
def test_reply_refusal_on_real_shapes(name: str, mail_from: str, expected: NoReply | None) -> None:
    assert reply_refusal(fixture(name), mail_from, OURS) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"Auto-Submitted: auto-replied", NoReply.AUTO_SUBMITTED),
        (b"Auto-Submitted: auto-generated; owner-email=x@example.org", NoReply.AUTO_SUBMITTED),
        (b"Auto-Submitted: no", None),
        (b"Precedence: bulk", NoReply.PRECEDENCE),
        (b"Precedence: junk", NoReply.PRECEDENCE),
        (b"Precedence: first-class", None),
        (b"List-Id: <friends.example.org>", NoReply.LIST_MAIL),
        (b"List-Unsubscribe: <mailto:leave@example.org>", NoReply.LIST_MAIL),
        (b"X-Auto-Response-Suppress: OOF, AutoReply", NoReply.SUPPRESS_REQUESTED),
        (b"X-Autoreply: yes", NoReply.AUTO_SUBMITTED),
        (LOOP_HEADER.encode() + b": stopit@elsewhere.example", NoReply.LOOP),
        (b"x-stopitd-loop: " + REPORT_ADDRESS.encode(), NoReply.LOOP),
    ],
)
def test_reply_refusal_headers(header: bytes, expected: NoReply | None) -> None:
    raw = with_header(fixture("gmail-attached-original.eml"), header)
    assert reply_refusal(raw, "reporter.rita@gmail.com", OURS) == expected


def test_only_the_report_headers_count_not_the_forwarded_original() -> None:
    # A reported original may well be list mail or an auto-reply: the reporter is a person.
    raw = fixture("gmail-attached-original.eml").replace(
        b"Subject: you again", b"Subject: you again\r\nPrecedence: bulk\r\nList-Id: <x.example>"
    )
    assert b"Precedence: bulk" in raw
    assert reply_refusal(raw, "reporter.rita@gmail.com", OURS) is None


@pytest.mark.parametrize(
    ("address", "daemon"),
    [
        ("MAILER-DAEMON@mx.example.org", True),
        ("postmaster@example.org", True),
        ("owner-staff@lists.example.org", True),
        ("staff-request@lists.example.org", True),
        ("staff-bounces@lists.example.org", True),
        ("no-reply@accounts.example.com", True),
        ("rita@example.org", False),
        ("requester@example.org", False),
    ],
)
def test_daemon_addresses(address: str, daemon: bool) -> None:
    assert is_daemon_address(address) is daemon


def test_inbound_control_headers_are_stripped_from_copies() -> None:
    raw = with_header(
        with_header(fixture("gmail-attached-original.eml"), b"X-Stopitd-Case: 1"),
        b"X-Stopitd-Kind: stop",
    )
    stripped = strip_control_headers(raw)
    assert b"X-Stopitd" not in stripped
    assert stripped == fixture("gmail-attached-original.eml")
    untouched = fixture("outlook-inline-forward.eml")
    assert strip_control_headers(untouched) is untouched


@pytest.mark.parametrize(
    ("name", "client"),
    [
        ("gmail-inline-forward.eml", MailClient.GMAIL),
        ("gmail-attached-original.eml", MailClient.GMAIL),
        ("outlook-inline-forward.eml", MailClient.OUTLOOK),
        ("applemail-inline-forward.eml", MailClient.APPLE_MAIL),
        ("thunderbird-inline-forward.eml", MailClient.THUNDERBIRD),
        ("mailman-list-post.eml", MailClient.UNKNOWN),
    ],
)
def test_client_detection(name: str, client: MailClient) -> None:
    assert detect_client(fixture(name)) == client
