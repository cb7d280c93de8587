"""The MIME walker: parameters, offsets, limits on odd structure."""

from __future__ import annotations

from stopitd.analysis.headers import parse_fields
from stopitd.analysis.mime import content_params, parse, walk
from stopitd.analysis.policy import Limits

from .reports import fixture


def test_filenames_in_rfc2047_and_rfc2231_are_decoded() -> None:
    encoded = parse_fields(
        b'Content-Type: application/octet-stream; name="=?utf-8?B?RHJvaHVuZy5lbWw=?="\r\n'
    )
    assert content_params(encoded)[3] == "Drohung.eml"
    continued = parse_fields(
        b"Content-Type: message/rfc822\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''Dr%C3%B6hung.eml\r\n"
    )
    assert content_params(continued)[2:] == ("attachment", "Dröhung.eml")
    assert content_params(parse_fields(b"Content-Type: garbage\r\n"))[0] == "text/plain"


def test_parts_are_offsets_into_the_report() -> None:
    raw = fixture("thunderbird-two-attachments.eml")
    root, budget = parse(raw, Limits())
    assert not budget.findings
    parts = walk(root)
    assert [p.content_type for p in parts] == [
        "multipart/mixed", "text/plain", "message/rfc822", "message/rfc822",
    ]
    for part in parts[2:]:
        (child,) = part.children
        assert child.buf is raw  # not a copy: offsets into the report itself
        assert raw[child.start : child.end] == child.raw
        assert child.raw.startswith(b"Return-Path: <troll.account77@gmail.com>")
    assert parts[1].params == {"charset": "UTF-8", "format": "flowed"}


def test_lf_only_reports_work_too() -> None:
    raw = fixture("gmail-forward-as-attachment.eml").replace(b"\r\n", b"\n")
    root, _ = parse(raw, Limits())
    rfc822 = [p for p in walk(root) if p.content_type == "message/rfc822"]
    assert rfc822[0].children[0].raw.endswith(b"reporting me.\n")
