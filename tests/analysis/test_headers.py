"""Header blocks: ordered fields that keep their raw bytes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stopitd.analysis.headers import (
    HeaderField,
    _read_lines,
    _regular_fields,
    decode_words,
    first_values,
    get,
    get_all,
    header_end,
    parse_block,
    parse_fields,
    split_message,
)

BLOCK = (
    b"Received: from a.example.net (a.example.net [192.0.2.9])\r\n"
    b"\tby mx.example.edu with ESMTPS id 1;\r\n"
    b"\tMon, 23 Nov 2026 20:14:06 +0000\r\n"
    b"Received: from b by a; Mon, 23 Nov 2026 20:14:05 +0000\r\n"
    b"Subject: =?UTF-8?B?RHJvaHVuZzogw6TDtsO8?=\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.net;\r\n"
    b"  h=From:To:Subject; bh=abc=;\r\n"
)


def test_fields_keep_order_raw_bytes_and_unfolded_values() -> None:
    fields = parse_fields(BLOCK)
    assert [f.name for f in fields] == ["Received", "Received", "Subject", "DKIM-Signature"]
    assert b"".join(f.raw for f in fields) == BLOCK
    assert fields[0].value == (
        "from a.example.net (a.example.net [192.0.2.9]) by mx.example.edu with ESMTPS id 1;"
        " Mon, 23 Nov 2026 20:14:06 +0000"
    )
    assert fields[2].decoded == "Drohung: äöü"
    assert "h=From:To:Subject" in fields[3].value  # a folded `h=From:` is not a field
    assert len(get_all(fields, "received")) == 2
    assert get(fields, "SUBJECT") == "=?UTF-8?B?RHJvaHVuZzogw6TDtsO8?="


def test_split_message_variants() -> None:
    assert split_message(b"A: 1\r\nB: 2\r\n\r\nbody\r\n") == (b"A: 1\r\nB: 2\r\n", b"body\r\n")
    assert split_message(b"A: 1\nB: 2\n\nbody\n") == (b"A: 1\nB: 2\n", b"body\n")
    assert split_message(b"\r\nonly body") == (b"", b"only body")
    assert split_message(b"A: 1\r\nB: 2") == (b"A: 1\r\nB: 2", b"")
    assert header_end(b"X: 1\r\n\r\n", 0) == (6, 8)


def test_odd_lines_are_counted_not_fatal() -> None:
    block = parse_block(
        b"From someone@example.net Mon Nov 23 20:14:05 2026\r\n"
        b"  stray continuation\r\n"
        b"Subject: hi\r\n"
        b"this is not a field\r\n"
        b"To: v@example.edu\r\n"
    )
    assert [f.name for f in block.fields] == ["Subject", "To"]
    assert block.junk_lines == 2


def test_limits_on_fields_and_length() -> None:
    many = b"".join(b"X-%d: v\r\n" % i for i in range(10))
    block = parse_block(many, max_fields=4)
    assert len(block.fields) == 4 and block.truncated_fields
    block = parse_block(many, max_length=20)
    assert block.truncated_length and len(block.fields) == 2


def test_undecodable_words_stay_as_written() -> None:
    assert decode_words("=?x-unknown?Q?abc?=") == "=?x-unknown?Q?abc?="
    assert decode_words("plain") == "plain"


def test_key_fields_of_a_header_block() -> None:
    from datetime import UTC, datetime

    from stopitd.analysis.fields import key_fields, message_id

    fields = parse_fields(
        b"From: =?UTF-8?Q?J=C3=BCrgen_T?= <jt@example.net>, other@example.net\r\n"
        b"To: a@example.edu, \"B, C\" <bc@example.edu>\r\n"
        b"Subject: =?ISO-8859-1?Q?Dr=F6hung?=\r\n"
        b"Date: Mon, 23 Nov 2026 21:14:05 +0100 (CET)\r\n"
        b"Message-ID: <abc@example.net> (added by relay)\r\n"
    )
    kf = key_fields(fields)
    assert kf.from_ is not None
    assert (kf.from_.name, kf.from_.address) == ("Jürgen T", "jt@example.net")
    assert [a.address for a in kf.to] == ["a@example.edu", "bc@example.edu"]
    assert kf.subject == "Dröhung"
    assert kf.date == datetime(2026, 11, 23, 20, 14, 5, tzinfo=UTC)
    assert kf.message_id == "abc@example.net"
    assert message_id("bare-id@example.net") == "bare-id@example.net"
    assert message_id("") == ""


# Lines of header blocks, mostly regular: the regex reader must give what the line reader
# gives whenever it takes a block, and leave every other block to it.
_NAMES = [b"Received:", b"X-A.b_c-9:", b"Subject:"]
_TEXT = [b" from a by b;", b"", b" h=From:To", b" =?utf-8?q?x?=", " Ünï".encode(), b"\x0c", b" \t"]
_STARTS = [*_NAMES, b"Subject :", b" ", b"\t", b"Bad line", b"From someone Mon", b"", b"\xff:"]
_VALUES = [*_TEXT, b" \xfe", b"\x85", b"\r"]
_ENDS = [b"\r\n", b"\n", b"\r", b""]


@settings(deadline=None, max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(_STARTS), st.sampled_from(_VALUES),
                          st.sampled_from(_ENDS)), max_size=12))
def test_regex_reader_agrees_with_the_line_reader(lines: list[tuple[bytes, bytes, bytes]]) -> None:
    block = b"".join(a + b + end for a, b, end in lines)
    fast = _regular_fields(block)
    fields, junk, truncated = _read_lines(block, None)
    if fast is not None:
        assert (fast[0], junk, truncated) == (fields, 0, False)
        assert all(type(f) is HeaderField for f in fast[0])
        assert fast[1] == first_values(fields)


@settings(deadline=None, max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(_NAMES), st.sampled_from(_TEXT),
                          st.lists(st.tuples(st.sampled_from([b"\t", b" ", b"  ", b" \t"]),
                                             st.sampled_from(_TEXT)), max_size=3),
                          st.sampled_from(_ENDS[:2])), max_size=12))
def test_regex_reader_takes_regular_blocks(
    fields: list[tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]],
) -> None:
    """UTF-8 names, values and continuation lines only: the regex reader takes the block."""
    block = b"".join(
        name + value + b"".join(end + blank + more for blank, more in folds) + end
        for name, value, folds, end in fields
    )
    fields_read = _read_lines(block, None)[0]
    assert _regular_fields(block) == (fields_read, first_values(fields_read))


def test_regex_reader_takes_the_common_blocks() -> None:
    fields = _read_lines(BLOCK, None)[0]
    assert _regular_fields(BLOCK) == (fields, first_values(fields))
    assert _regular_fields(BLOCK.replace(b"\r\n", b"\n")) is not None
    assert _regular_fields(b"") == ([], {})
    assert _regular_fields(b"A: 1\r\nB: 2") is not None  # no line end at the end
    # a field that is not UTF-8 (its value read as Latin-1) does not stop the regex reader
    latin = b"Subject: caf\xe9\r\n\tau lait\xa0\r\nTo: a\xc3\xa9\r\n"
    fields = _read_lines(latin, None)[0]
    assert fields[0].value == "caf\xe9 au lait" and fields[1].value == "a\xe9"
    assert _regular_fields(latin) == (fields, first_values(fields))
    for odd in (b"A: 1\rB: 2\r\n", b"A : 1\r\n", b"A: 1\r\n\r\n", b" x\r\nA: 1\r\n", b"\xff: 1"):
        assert _regular_fields(odd) is None
        assert parse_block(odd).fields == _read_lines(odd, None)[0]


@settings(deadline=None, max_examples=200)
@given(st.lists(st.tuples(st.sampled_from(_STARTS), st.sampled_from(_VALUES),
                          st.sampled_from(_ENDS)), max_size=12))
def test_first_values_are_what_get_gives(lines: list[tuple[bytes, bytes, bytes]]) -> None:
    fields = parse_fields(b"".join(a + b + end for a, b, end in lines))
    first = first_values(fields)
    assert set(first) == {f.key for f in fields}
    for key in ("received", "subject", "x-a.b_c-9", "absent"):
        assert first.get(key) == get(fields, key)
