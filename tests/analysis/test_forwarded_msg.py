"""Outlook .msg attachments: built here with aspose-email-foss, read as production does."""

from __future__ import annotations

from stopitd.analysis import analyze, forwarded
from stopitd.analysis.model import Envelope, Grade, How
from stopitd.analysis.policy import Limits, Policy

from .reports import embedded_message, msg_file, outlook_report_with

TROLL_ID = "CAJx7Qm1R8Tq4pZ0vK2wN5sYt3uE9hB6dL1cF@mail.gmail.com"


def test_msg_attachment_yields_its_transport_headers_and_body() -> None:
    raw = outlook_report_with("you will regret this.msg", msg_file())
    result = analyze(raw, Envelope(), Policy())
    (o,) = result.originals
    assert (o.how, o.grade) == (How.ATTACHMENT_MSG, Grade.FULL_MESSAGE)
    assert o.filename == "you will regret this.msg"
    assert o.fields.message_id == TROLL_ID
    assert o.fields.from_ is not None and o.fields.from_.address == "troll.account77@gmail.com"
    assert [h.ip for h in o.hops] == ["209.85.221.41"]
    assert o.raw.startswith(b"Received: from mail-wr1-f41.google.com")
    assert o.raw.endswith(b"\r\n\r\nI know where you park. You will regret reporting me.\r\n")
    assert o.envelope_sender == "troll.account77@gmail.com"
    (att,) = result.report.attachments
    assert att.content_type == "application/vnd.ms-outlook"


def test_msg_found_by_its_name_when_sent_as_octet_stream() -> None:
    raw = outlook_report_with("saved.msg", msg_file(), "application/octet-stream")
    _, (o,) = forwarded.find_originals(raw, Limits())
    assert o.how is How.ATTACHMENT_MSG


def test_msg_without_transport_headers_is_a_summary() -> None:
    raw = outlook_report_with("draft.msg", msg_file(headers=None))
    _, (o,) = forwarded.find_originals(raw, Limits())
    assert o.grade is Grade.INLINE_SUMMARY
    assert o.fields.message_id == TROLL_ID  # from PR_INTERNET_MESSAGE_ID
    assert o.fields.subject == "you will regret this"
    assert "msg-no-transport-headers" in [f.code for f in o.findings]


def test_msg_inside_msg_is_a_forward_of_a_forward() -> None:
    raw = outlook_report_with("fw.msg", msg_file(embedded=embedded_message()))
    _, (outer, inner) = forwarded.find_originals(raw, Limits())
    assert outer.fields.message_id == TROLL_ID
    assert inner.fields.message_id == "first-warning-1@mail.gmail.com"
    assert inner.found_in == 0 and inner.how is How.ATTACHMENT_MSG
    assert any("earlier.msg" in f.text for f in outer.findings)


def test_damaged_msg_is_a_finding_and_kept() -> None:
    data = msg_file()
    raw = outlook_report_with("broken.msg", data[: len(data) // 3])
    report, originals = forwarded.find_originals(raw, Limits())
    assert originals == ()
    assert {"msg-unreadable", "no-original"} <= {f.code for f in report.findings}
    assert report.attachments[0].filename == "broken.msg"


def test_msg_attachment_limit() -> None:
    raw = outlook_report_with("a.msg", msg_file())
    report, originals = forwarded.find_originals(raw, Limits(max_msg_attachments=0))
    assert originals == ()
    assert "too-many-msg" in [f.code for f in report.findings]


def test_a_saved_msg_file_analysed_as_the_original() -> None:
    data = msg_file()
    report, (o,) = forwarded.as_original(data, Limits())
    assert (o.how, o.grade, o.fields.message_id) == (How.DIRECT, Grade.FULL_MESSAGE, TROLL_ID)
    assert report.size == len(data)
    result = analyze(msg_file(), Envelope(), Policy(), as_original=True)
    assert [h.ip for h in result.originals[0].hops] == ["209.85.221.41"]


def test_a_damaged_saved_msg_file_is_a_finding() -> None:
    report, originals = forwarded.as_original(msg_file()[:2048], Limits())
    assert originals == ()
    assert [f.code for f in report.findings] == ["msg-unreadable"]
