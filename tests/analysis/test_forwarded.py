"""What staff need to be true about the originals found in each kind of report."""

from __future__ import annotations

import base64
import hashlib
import html
from datetime import UTC, datetime

import pytest

from stopitd.analysis import analyze, forwarded
from stopitd.analysis.model import Envelope, Grade, How, Original, ReportInfo
from stopitd.analysis.policy import Limits, Policy

from .reports import fixture

TROLL_ID = "CAJx7Qm1R8Tq4pZ0vK2wN5sYt3uE9hB6dL1cF@mail.gmail.com"
TROLL = "troll.account77@gmail.com"
SENT = datetime(2026, 11, 23, 20, 14, 5, tzinfo=UTC)


def find(name: str) -> tuple[ReportInfo, tuple[Original, ...]]:
    return forwarded.find_originals(fixture(name), Limits())


def codes(o: Original | ReportInfo) -> list[str]:
    return [f.code for f in o.findings]


def attached_original_bytes() -> bytes:
    """The troll's message exactly as the Gmail attachment carries it (a slice)."""
    raw = fixture("gmail-forward-as-attachment.eml")
    start = raw.index(b"Return-Path: <troll")
    end = raw.index(b"\r\n--000000000000a1b2c3d4e5f60718--")
    return raw[start:end]


def test_gmail_attachment_is_the_original_byte_for_byte() -> None:
    report, originals = find("gmail-forward-as-attachment.eml")
    assert len(originals) == 1
    o = originals[0]
    assert (o.how, o.grade) == (How.ATTACHMENT, Grade.FULL_MESSAGE)
    assert o.fields.message_id == TROLL_ID
    assert o.fields.from_ is not None and o.fields.from_.address == TROLL
    assert o.fields.date == SENT
    assert o.raw == attached_original_bytes()
    assert o.sha256 == hashlib.sha256(o.raw).hexdigest()
    assert o.envelope_sender == TROLL
    assert o.filename == "you will regret this.eml"
    assert report.fields.subject == "Fwd: you will regret this"
    assert "no-original" not in codes(report)


@pytest.mark.parametrize(
    "name",
    [
        "outlook365-forward-as-attachment-base64.eml",
        "apple-eml-octet-stream.eml",
        "webmail-eml-text-plain.eml",
        "thunderbird-two-attachments.eml",
        "arf-feedback-report.eml",
    ],
)
def test_same_original_however_attached_has_the_same_bytes(name: str) -> None:
    _, originals = find(name)
    assert originals[0].raw == attached_original_bytes()
    assert originals[0].grade is Grade.FULL_MESSAGE


def test_base64_rfc822_part_is_decoded_and_said_so() -> None:
    _, (o,) = find("outlook365-forward-as-attachment-base64.eml")
    assert "encoded-rfc822" in codes(o)


def test_quoted_printable_rfc822_part_keeps_its_8bit_text() -> None:
    _, (o,) = find("gateway-forward-qp-rfc822.eml")
    assert "Schöne Grüße".encode() in o.raw
    assert o.fields.message_id == TROLL_ID
    assert "encoded-rfc822" in codes(o)


def test_eml_files_are_originals_and_kept_as_attachments() -> None:
    for name, ctype in [
        ("apple-eml-octet-stream.eml", "application/octet-stream"),
        ("webmail-eml-text-plain.eml", "text/plain"),
    ]:
        report, (o,) = find(name)
        assert o.how is How.ATTACHMENT and o.filename == "you will regret this.eml"
        (att,) = report.attachments
        assert att.content_type == ctype
        assert att.sha256 == hashlib.sha256(attached_original_bytes()).hexdigest()


def test_two_attachments_come_out_in_order() -> None:
    _, originals = find("thunderbird-two-attachments.eml")
    assert [o.fields.subject for o in originals] == ["you will regret this", "answer me"]
    assert [o.found_in for o in originals] == [None, None]


def test_forward_of_a_forward_keeps_both_in_order() -> None:
    _, (middle, troll) = find("nested-forward-of-forward.eml")
    assert middle.fields.from_ is not None
    assert middle.fields.from_.address == "sam.helper@example.edu"
    assert troll.fields.message_id == TROLL_ID
    assert troll.found_in == 0
    assert "nested-forward" in codes(troll)
    assert troll.raw in middle.raw  # the inner one is a slice inside the outer one


INLINE = [
    # fixture, client named in the finding, forwarded To, date (None: printed without zone)
    ("gmail-inline.eml", "Gmail", "vicky.tim@gmail.com", None),
    ("outlook365-inline.eml", "Outlook", "vicky.tim@example.edu", None),
    ("outlook-desktop-inline.eml", "Outlook", "vicky.tim@example.edu", None),
    ("apple-inline-quoted.eml", "Apple Mail", "vicky.tim@icloud.com", SENT),
    ("thunderbird-inline.eml", "Thunderbird", "victim@example.edu", SENT),
    ("yahoo-inline.eml", "Yahoo Mail", "vicky_tim@yahoo.com", SENT),
    ("outlook-fr-inline.eml", "Outlook", "victoire.tim@example.edu", None),
]


@pytest.mark.parametrize(("name", "client", "to", "date"), INLINE)
def test_inline_forwards_give_a_summary_without_trace(
    name: str, client: str, to: str, date: datetime | None
) -> None:
    _, (o,) = find(name)
    assert (o.how, o.grade) == (How.INLINE, Grade.INLINE_SUMMARY)
    assert o.fields.from_ is not None and o.fields.from_.address == TROLL
    assert [a.address for a in o.fields.to] == [to]
    assert o.fields.subject in ("you will regret this", "tu vas le regretter")
    assert o.fields.date == date
    trace = next(f for f in o.findings if f.code == "no-trace-headers")
    assert client in trace.text
    if date is None:
        assert "inline-date-no-zone" in codes(o)
    assert b"Received:" not in o.raw and o.hops == ()


def test_inline_original_has_no_hops_in_the_whole_analysis() -> None:
    result = analyze(fixture("gmail-inline.eml"), Envelope(), Policy())
    (o,) = result.originals
    assert o.hops == ()
    assert b"I know where you park." in o.raw


def test_inline_forward_of_a_forward_in_german_gmail() -> None:
    _, (outer, inner) = find("gmail-de-inline-nested.eml")
    assert outer.fields.from_ is not None
    assert outer.fields.from_.address == "sam.helfer@example.de"
    assert inner.fields.from_ is not None and inner.fields.from_.address == TROLL
    assert inner.fields.subject == "Drohung"
    assert inner.found_in == 0


def _hop_ips(o: Original) -> list[str]:
    return [h.ip for h in o.hops]


@pytest.mark.parametrize("name", ["pasted-headers-rewrapped.eml", "pasted-headers-quoted.eml"])
def test_pasted_headers_are_repaired_into_the_real_header_block(name: str) -> None:
    pasted = analyze(fixture(name), Envelope(), Policy()).originals
    attached = analyze(fixture("gmail-forward-as-attachment.eml"), Envelope(), Policy())
    (o,) = pasted
    assert (o.how, o.grade) == (How.PASTED_HEADERS, Grade.HEADERS_ONLY)
    assert o.fields == attached.originals[0].fields
    assert _hop_ips(o) == _hop_ips(attached.originals[0])
    assert o.raw.endswith(b"\r\n") and b"\r\n\r\n" not in o.raw
    assert "pasted-body-follows" in codes(o)


def test_pasted_repairs_are_each_a_finding() -> None:
    _, (wrapped,) = find("pasted-headers-rewrapped.eml")
    assert {"pasted-rewrapped", "pasted-blank-lines"} <= set(codes(wrapped))
    _, (quoted,) = find("pasted-headers-quoted.eml")
    assert {"pasted-unquoted", "pasted-nbsp"} <= set(codes(quoted))
    assert not any(line.startswith(b">") for line in quoted.raw.split(b"\r\n"))


def test_arf_keeps_the_feedback_fields() -> None:
    report, (o,) = find("arf-feedback-report.eml")
    assert (o.how, o.grade) == (How.ARF, Grade.FULL_MESSAGE)
    fb = dict(o.feedback)
    assert fb["Feedback-Type"] == "abuse"
    assert fb["Source-IP"] == "209.85.221.41"
    assert report.auto_submitted == "auto-generated"


def test_arf_with_headers_only() -> None:
    _, (o,) = find("arf-headers-only.eml")
    assert (o.how, o.grade) == (How.ARF, Grade.HEADERS_ONLY)
    assert dict(o.feedback)["Version"] == "1"
    assert o.fields.message_id == TROLL_ID


def test_rfc822_headers_in_a_bounce_are_headers_only() -> None:
    report, (o,) = find("postfix-dsn-rfc822-headers.eml")
    assert (o.how, o.grade) == (How.HEADERS_ONLY, Grade.HEADERS_ONLY)
    assert o.raw == attached_original_bytes().split(b"\r\n\r\n")[0] + b"\r\n"
    assert report.auto_submitted == "auto-replied"


def test_redirected_mail_is_itself_the_original() -> None:
    raw = fixture("resent-redirect.eml")
    _, (o,) = forwarded.find_originals(raw, Limits())
    assert (o.how, o.grade, o.raw) == (How.RESENT, Grade.FULL_MESSAGE, raw)
    assert o.fields.message_id == TROLL_ID
    assert "vicky.tim@example.edu" in next(f.text for f in o.findings if f.code == "resent")


def test_no_forwarded_material_is_still_a_report_with_its_evidence() -> None:
    report, originals = find("no-original-screenshot.eml")
    assert originals == ()
    assert "no-original" in codes(report)
    (shot,) = report.attachments
    assert (shot.filename, shot.content_type) == ("IMG_4711.png", "image/png")
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )
    assert (shot.size, shot.sha256) == (len(png), hashlib.sha256(png).hexdigest())


def test_report_threading_and_automatic_fields() -> None:
    report, _ = find("outlook365-forward-as-attachment-base64.eml")
    assert report.in_reply_to == (TROLL_ID,)
    raw = (
        b"From: a@example.org\r\nTo: stopit@example.edu\r\nSubject: out of office\r\n"
        b"Precedence: bulk\r\nIn-Reply-To: <x1@example.edu>\r\n"
        b"References: <x0@example.edu> <x1@example.edu>\r\n\r\nAway.\r\n"
    )
    report, _ = forwarded.find_originals(raw, Limits())
    assert report.auto_submitted == "bulk"
    assert report.in_reply_to == ("x1@example.edu", "x0@example.edu")


def test_as_original_treats_the_file_as_the_message() -> None:
    raw = attached_original_bytes()
    report, (o,) = forwarded.as_original(raw, Limits())
    assert (o.how, o.raw, o.fields.message_id) == (How.DIRECT, raw, TROLL_ID)
    assert report.sha256 == o.sha256


def test_a_redirected_report_keeps_the_messages_it_carries() -> None:
    raw = fixture("gmail-forward-as-attachment.eml")
    raw = (
        b"Resent-From: abuse-alias@example.edu\r\n"
        b"Resent-Date: Tue, 24 Nov 2026 08:06:00 +0000\r\n" + raw
    )
    report, (o,) = forwarded.find_originals(raw, Limits())
    assert o.how is How.ATTACHMENT and o.fields.message_id == TROLL_ID
    assert "resent-report" in codes(report)


REPLY_QUOTING_VICTIM = (
    b"From: Anon Troll <troll.account77@gmail.com>\r\nTo: victim@example.edu\r\n"
    b"Subject: RE: please stop\r\nMessage-ID: <reply-1@example.net>\r\n"
    b"Date: Mon, 23 Nov 2026 21:14:05 +0100\r\n\r\n"
    b"No.\r\n\r\n-----Original Message-----\r\nFrom: Vicky Tim <victim@example.edu>\r\n"
    b"Sent: Monday, November 23, 2026 8:00 PM\r\nTo: troll.account77@gmail.com\r\n"
    b"Subject: please stop\r\n\r\nPlease stop writing to me.\r\n"
)


def test_a_harassing_reply_quoting_the_victim_is_one_original() -> None:
    report = (
        b"From: Vicky Tim <victim@example.edu>\r\nTo: stopit@example.edu\r\n"
        b"Subject: FW: RE: please stop\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="r"\r\n\r\n--r\r\n'
        b"Content-Type: text/plain\r\n\r\nAttached.\r\n--r\r\nContent-Type: message/rfc822\r\n\r\n"
        + REPLY_QUOTING_VICTIM
        + b"\r\n--r--\r\n"
    )
    _, originals = forwarded.find_originals(report, Limits())
    assert [o.fields.message_id for o in originals] == ["reply-1@example.net"]


def test_a_reply_to_stopit_flags_its_quote() -> None:
    raw = REPLY_QUOTING_VICTIM.replace(b"RE: please stop", b"RE: your report to stopit")
    _, (o,) = forwarded.find_originals(raw, Limits())
    assert o.how is How.INLINE and "maybe-reply-quote" in codes(o)


def test_html_only_outlook_forward_is_found() -> None:
    raw = fixture("outlook-desktop-inline.eml")
    head, _, rest = raw.partition(b"\r\n\r\n")
    html = rest[rest.index(b"Content-Type: text/html") :].split(b"\r\n--_000_")[0]
    only_html = head.replace(b"multipart/alternative", b"text/plain").split(b"Content-Type:")[0]
    only_html += html + b"\r\n"
    _, (o,) = forwarded.find_originals(only_html, Limits())
    assert o.how is How.INLINE
    assert o.fields.from_ is not None and o.fields.from_.address == TROLL
    assert o.fields.subject == "you will regret this"


def _with_text_file(name: str, content: bytes) -> bytes:
    return (
        b"From: Vicky Tim <vicky.tim@example.edu>\r\nTo: stopit@example.edu\r\n"
        b"Subject: headers attached\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="t"\r\n\r\n--t\r\n'
        b"Content-Type: text/plain\r\n\r\nThe headers are in the file.\r\n--t\r\n"
        b'Content-Type: text/plain; name="' + name.encode() + b'"\r\n'
        b'Content-Disposition: attachment; filename="' + name.encode() + b'"\r\n\r\n'
        + content
        + b"\r\n--t--\r\n"
    )


def test_headers_saved_in_a_text_file() -> None:
    headers = attached_original_bytes().split(b"\r\n\r\n")[0] + b"\r\n"
    raw = _with_text_file("headers.txt", b"Full headers:\r\n\r\n" + headers)
    report, (o,) = forwarded.find_originals(raw, Limits())
    assert (o.how, o.filename, o.fields.message_id) == (How.PASTED_HEADERS, "headers.txt", TROLL_ID)
    assert "headers-file" in codes(o)
    assert report.attachments[0].filename == "headers.txt"


def test_message_source_saved_as_text() -> None:
    raw = _with_text_file("source.txt", attached_original_bytes())
    _, (o,) = forwarded.find_originals(raw, Limits())
    assert (o.how, o.grade) == (How.ATTACHMENT, Grade.FULL_MESSAGE)
    assert o.raw == attached_original_bytes()
    assert "source-attachment" in codes(o)


def test_a_plain_text_attachment_is_just_evidence() -> None:
    raw = _with_text_file("chat.txt", b"him: you will regret it\r\nme: stop\r\n")
    report, originals = forwarded.find_originals(raw, Limits())
    assert originals == () and "no-original" in codes(report)


def test_samsung_style_original_message_separator() -> None:
    raw = (
        b"From: v@example.edu\r\nTo: stopit@example.edu\r\nSubject: Fwd: threat\r\n\r\n"
        b"Sent from my Galaxy\r\n\r\n\r\n-------- Original message --------\r\n"
        b"From: Anon Troll <troll.account77@gmail.com> \r\n"
        b"Date: 11/23/26 9:14 PM (GMT+01:00) \r\nTo: v@example.edu \r\n"
        b"Subject: you will regret this \r\n\r\nI know where you park.\r\n"
    )
    _, (o,) = forwarded.find_originals(raw, Limits())
    assert o.fields.from_ is not None and o.fields.from_.address == TROLL
    assert o.fields.subject == "you will regret this"
    assert "Samsung" in next(f.text for f in o.findings if f.code == "no-trace-headers")


def test_winmail_dat_is_named_as_unreadable() -> None:
    raw = _with_text_file("x.txt", b"x").replace(
        b'Content-Type: text/plain; name="x.txt"',
        b'Content-Type: application/ms-tnef; name="winmail.dat"',
    )
    report, _ = forwarded.find_originals(raw, Limits())
    assert "opaque-part" in codes(report)


def test_japanese_outlook_labels_are_read() -> None:
    raw = (
        "From: v@example.jp\r\nTo: stopit@example.edu\r\n"
        "Subject: =?UTF-8?B?6Lui6YCBOiDohIXov6s=?=\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n確認してください。\r\n\r\n"
        + "_" * 32
        + "\r\n差出人: Anon Troll <troll.account77@gmail.com>\r\n"
        "送信日時: 2026年11月23日 21:14\r\n宛先: v@example.jp\r\n件名: 脅迫\r\n\r\n本文\r\n"
    ).encode()
    _, (o,) = forwarded.find_originals(raw, Limits())
    assert o.fields.from_ is not None and o.fields.from_.address == TROLL
    assert [a.address for a in o.fields.to] == ["v@example.jp"]
    assert o.fields.subject == "脅迫"


def test_a_message_id_line_in_a_forward_table_is_kept() -> None:
    raw = (
        b"From: v@example.edu\r\nSubject: Fwd: x\r\n\r\n-------- Forwarded Message --------\r\n"
        b"Subject: \tx\r\nDate: \tMon, 23 Nov 2026 21:14:05 +0100\r\n"
        b"From: \tAnon Troll <troll.account77@gmail.com>\r\nTo: \tv@example.edu\r\n"
        b"Message-ID: \t<" + TROLL_ID.encode() + b">\r\n\r\nbody\r\n"
    )
    _, (o,) = forwarded.find_originals(raw, Limits())
    assert (o.fields.message_id, o.fields.date) == (TROLL_ID, SENT)


def test_a_signature_rule_is_not_a_forward() -> None:
    raw = (
        b"From: v@example.edu\r\nTo: stopit@example.edu\r\nSubject: he follows me\r\n\r\n"
        b"He waits outside the lab every evening.\r\n\r\n" + b"_" * 32 + b"\r\n"
        b"Vicky Tim\r\nPhD student, Department of Physics\r\n"
    )
    report, originals = forwarded.find_originals(raw, Limits())
    assert originals == () and "no-original" in codes(report)


def test_yahoo_run_on_forward_of_a_forward() -> None:
    layer = (
        b"   ----- Forwarded Message ----- From: %s <%s>To: v@example.net"
        b"Sent: Monday, November 23, 2026 at 09:14:05 PM GMT+1Subject: %s\r\n"
    )
    raw = (
        b"From: v@yahoo.com\r\nSubject: Fw: Fw: x\r\n\r\n Look.\r\n\r\n"
        + layer % (b"Sam", b"sam@example.net", b"Fw: x")
        + b" see below\r\n"
        + layer % (b"Anon Troll", TROLL.encode(), b"x")
        + b" I know where you park.\r\n"
    )
    _, (outer, inner) = forwarded.find_originals(raw, Limits())
    assert outer.fields.from_ is not None and outer.fields.from_.address == "sam@example.net"
    assert inner.fields.from_ is not None and inner.fields.from_.address == TROLL
    assert (inner.found_in, inner.fields.date) == (0, SENT)


def test_headers_pasted_into_an_html_only_mail() -> None:
    """One <div> per line, tabs as &nbsp; (what pasting into an HTML editor gives)."""
    lines = attached_original_bytes().split(b"\r\n\r\n")[0].decode().split("\r\n")
    divs = "".join(
        "<div>" + html.escape(line).replace("\t", "&nbsp;" * 4) + "</div>" for line in lines
    )
    raw = (
        "From: v@example.org\r\nTo: stopit@example.edu\r\nSubject: headers\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n"
        f'<div dir="ltr">Here:<br>{divs}<div><br></div><div>thanks</div></div>\r\n'
    ).encode()
    result = analyze(raw, Envelope(), Policy())
    attached = analyze(fixture("gmail-forward-as-attachment.eml"), Envelope(), Policy())
    (o,) = result.originals
    assert o.how is How.PASTED_HEADERS
    assert o.fields == attached.originals[0].fields
    assert _hop_ips(o) == _hop_ips(attached.originals[0])
