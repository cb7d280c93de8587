"""Hostile structure hits the Limits: each hit is a finding, never an exception."""

from __future__ import annotations

import pytest

from stopitd.analysis import forwarded
from stopitd.analysis.model import How
from stopitd.analysis.policy import Limits

from .reports import b64_lines, fixture

ORIGINAL = (
    b"Received: from a.example.net (a.example.net [192.0.2.9]) by mx.example.edu;"
    b" Mon, 23 Nov 2026 20:14:06 +0000\r\n"
    b"From: x@example.net\r\nTo: v@example.edu\r\nSubject: deep\r\n"
    b"Message-ID: <deep@example.net>\r\nDate: Mon, 23 Nov 2026 20:14:05 +0000\r\n\r\nhi\r\n"
)


def nested_forwards(levels: int) -> bytes:
    """A forward of a forward ... ``levels`` deep, each wrapper a multipart with one part."""
    msg = ORIGINAL
    for n in range(levels):
        msg = (
            f"From: f{n}@example.edu\r\nTo: n@example.edu\r\nSubject: Fwd {n}\r\n"
            f"Message-ID: <fwd{n}@example.edu>\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed; boundary="b{n}"\r\n\r\n'
            f"--b{n}\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            f"--b{n}\r\nContent-Type: message/rfc822\r\n\r\n"
        ).encode() + msg + f"\r\n--b{n}--\r\n".encode()
    return msg


def codes(findings: tuple[object, ...]) -> set[str]:
    return {getattr(f, "code", "") for f in findings}


def test_nested_forwards_are_all_kept_in_order() -> None:
    report, originals = forwarded.find_originals(nested_forwards(5), Limits())
    assert [o.fields.subject for o in originals] == ["Fwd 3", "Fwd 2", "Fwd 1", "Fwd 0", "deep"]
    assert [o.found_in for o in originals] == [None, 0, 1, 2, 3]
    assert originals[-1].raw == ORIGINAL
    assert "forward-depth" not in codes(report.findings)


def test_forward_depth_limit() -> None:
    report, originals = forwarded.find_originals(nested_forwards(30), Limits())
    assert len(originals) == Limits().max_forward_depth
    assert "forward-depth" in codes(report.findings)


def test_mime_depth_limit() -> None:
    report, originals = forwarded.find_originals(
        nested_forwards(30), Limits(max_mime_depth=10, max_forward_depth=100)
    )
    assert "mime-too-deep" in codes(report.findings)
    assert 0 < len(originals) < 30


def test_deep_nesting_with_raised_limits_reaches_the_bottom() -> None:
    limits = Limits(max_mime_depth=1000, max_forward_depth=300)
    report, originals = forwarded.find_originals(nested_forwards(200), limits)
    assert len(originals) == 200
    assert originals[-1].fields.message_id == "deep@example.net"
    assert not codes(report.findings)


def many_attachments(n: int) -> bytes:
    parts = [
        b'From: v@example.edu\r\nTo: stopit@example.edu\r\nSubject: many\r\n'
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="m"\r\n\r\n'
        b"--m\r\nContent-Type: text/plain\r\n\r\nlots of screenshots\r\n"
    ]
    for i in range(n):
        parts.append(
            f'--m\r\nContent-Type: image/png; name="s{i}.png"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo{i:04d}\r\n".encode()
        )
    parts.append(b"--m--\r\n")
    return b"".join(parts)


def test_many_attachments_are_all_kept() -> None:
    report, originals = forwarded.find_originals(many_attachments(2000), Limits())
    assert originals == ()
    assert len(report.attachments) == 2000
    assert report.attachments[-1].filename == "s1999.png"


def test_part_count_limit() -> None:
    report, _ = forwarded.find_originals(many_attachments(50), Limits(max_parts=10))
    assert "too-many-parts" in codes(report.findings)
    assert len(report.attachments) <= 50


def test_part_size_and_decode_budget() -> None:
    raw = fixture("outlook365-forward-as-attachment-base64.eml")
    report, originals = forwarded.find_originals(raw, Limits(max_part_size=100))
    assert originals == ()
    assert "part-too-large" in codes(report.findings)
    report, originals = forwarded.find_originals(raw, Limits(max_total_decoded=100))
    assert "decode-budget-exceeded" in codes(report.findings)


def test_header_limits() -> None:
    many = b"".join(b"X-Filler-%d: x\r\n" % i for i in range(100)) + ORIGINAL
    report, (o,) = forwarded.as_original(many, Limits(max_headers=50))
    assert "too-many-headers" in codes(report.findings)
    report, _ = forwarded.as_original(many, Limits(max_header_length=500))
    assert "header-too-long" in codes(report.findings)
    assert o.how is How.DIRECT


def test_unterminated_multipart_and_bad_base64() -> None:
    raw = (
        b'From: v@example.edu\r\nSubject: cut\r\nMIME-Version: 1.0\r\n'
        b'Content-Type: multipart/mixed; boundary="z"\r\n\r\n'
        b"--z\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b64_lines(ORIGINAL).encode()[:-3]
        + b"\r\n"
    )
    report, originals = forwarded.find_originals(raw, Limits())
    assert "mime-unterminated" in codes(report.findings)
    assert "bad-base64" in codes(report.findings)
    assert originals and originals[0].fields.subject == "deep"


def test_a_part_without_an_empty_line_ends_at_the_next_delimiter() -> None:
    raw = (
        b'From: v@example.edu\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary="q"\r\n'
        b"\r\n--q\r\nContent-Type: text/plain\r\n--q\r\nContent-Type: message/rfc822\r\n\r\n"
        + ORIGINAL
        + b"\r\n--q--\r\n"
    )
    _, (o,) = forwarded.find_originals(raw, Limits())
    assert o.fields.message_id == "deep@example.net"


def test_nesting_deeper_than_the_stack_is_read_again_shallower() -> None:
    limits = Limits(max_mime_depth=100_000, max_forward_depth=100_000, max_parts=10**6)
    report, originals = forwarded.find_originals(nested_forwards(700), limits)
    assert "structure-too-deep" in codes(report.findings)
    assert len(originals) == 16
    report, (o,) = forwarded.as_original(nested_forwards(700), limits)
    assert o.fields.subject == "Fwd 699"


@pytest.mark.timeout(60)
def test_hostile_shapes_finish() -> None:
    """Guards against a return of quadratic or backtracking paths (speed is for bench/)."""
    head = b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n'
    shapes = [
        head + b"--y\r\n" * 2_000_000 + b"--x--\r\n",  # millions of non-delimiter lines
        head + b"--x\r\n" * 100_000,  # 100k empty parts, no close
        head + b"x" * 20_000_000,  # one 20 MB line
        b"Subject: Fwd: x\r\n\r\n" + (b"_" * 32 + b"\r\nFrom: " + b"a<" * 5000 + b"\r\n") * 50,
        b"Subject: x\r\n\r\n" + b"Received: " + b"x" * 1_000_000 + b"\r\n" * 10_000,
        b"Subject: x\r\n\r\n" + b"X-A: b\r\n" * 200_000,  # a pasted block without trace
    ]
    for raw in shapes:
        report, _ = forwarded.find_originals(raw, Limits())
        assert report.size == len(raw)


def test_many_pasted_header_blocks_are_all_kept() -> None:
    block = ORIGINAL.split(b"\r\n\r\n")[0] + b"\r\n"
    body = b"".join(b"Message %d:\r\n\r\n" % i + block + b"\r\n" for i in range(20))
    raw = b"From: v@example.edu\r\nSubject: twenty of them\r\n\r\n" + body
    report, originals = forwarded.find_originals(raw, Limits())
    assert len(originals) == 20
    assert all(o.how is How.PASTED_HEADERS and o.found_in is None for o in originals)
    assert "forward-depth" not in codes(report.findings)


def test_inline_forwards_nested_past_the_limit() -> None:
    layer = b"---------- Forwarded message ---------\r\nFrom: x <x@example.net>\r\n" \
        b"Subject: Fwd\r\nTo: <y@example.net>\r\n\r\n"
    raw = b"From: v@example.edu\r\nSubject: Fwd: deep\r\n\r\n" + layer * 20
    report, originals = forwarded.find_originals(raw, Limits(max_forward_depth=5))
    assert len(originals) == 5
    assert [o.found_in for o in originals] == [None, 0, 1, 2, 3]
    assert "forward-depth" in codes(report.findings)
