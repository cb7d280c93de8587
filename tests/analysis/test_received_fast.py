"""The one-match reader of ``from helo (rdns [ip]) by ...`` agrees with the general one.

``parse_received`` reads that common shape with one regex and the general dialect rules
only for the rest; ``parse_received(value, fast=False)`` reads everything the general
way. Both must give the same Hop for the table's rows, every Received field of the
fixtures, and generated lines of that shape and its near misses.
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stopitd.analysis.received import parse_received

ROOT = Path(__file__).resolve().parents[2]
FIELD = re.compile(rb"^Received:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.MULTILINE | re.IGNORECASE)


def _table_values() -> list[str]:
    values = []
    tsv = ROOT / "fixtures" / "received" / "received.tsv"
    for line in tsv.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", "dialect\t")):
            values.append(line.split("\t", 10)[10])
    return values


def _fixture_values() -> list[str]:
    values = []
    for eml in sorted(ROOT.glob("fixtures/**/*.eml")):
        for m in FIELD.finditer(eml.read_bytes()):
            unfolded = re.sub(rb"\r?\n(?=[ \t])", b"", m.group(1)).strip()
            values.append(unfolded.decode("utf-8", "surrogateescape"))
    return values


def _same(value: str) -> None:
    assert parse_received(value) == parse_received(value, fast=False), value


def test_table_rows_and_fixture_fields_read_alike() -> None:
    values = _table_values() + _fixture_values()
    common = [v for v in values if re.match(r"from \S+ \(\S+ \[[^\]\s]+\]\) by\s", v)]
    assert len(values) > 300 and len(common) > 50  # the fast path is really exercised
    for value in values:
        _same(value)


WORD = st.sampled_from([
    "mail.example.com", "by", "BY", "HELO", "EHLO", "unknown", "UNKNOWN", "[192.0.2.7]",
    "user@host.example", "IDENT:root@host", "localhost", "host.", "<odd>", "x", "with",
])
LITERAL = st.sampled_from([
    "192.0.2.1", "203.0.113.9", "127.0.0.1", "10.1.2.3", "IPv6:2001:db8::1", "2001:db8::2",
    "::ffff:198.51.100.4", "198.51.100.4:25", "198.51.100.4.2525", "300.1.2.3", "abc", "",
    "IPv6:fe80::1%eth0",
])
AFTER_BY = st.sampled_from([
    "by mx.example.net (Postfix) with ESMTPS id 4Qx1 for <a@example.org>",
    "by mx.example.net (8.15.2/8.15.2) with ESMTP id 1AB2 for <a@example.org>",
    "by mx.example.net with esmtp (Exim 4.96) (envelope-from <b@x.example>) id 1q2w-3e",
    "by mx.example.net with local-smtp (Exim 4.96) id 1q",
    "by mx.example.net with local for b@x",
    "by mx.example.net with ESMTPSA id 9 (Authenticated sender: s@x.example)",
    "by mx.example.net with POP3 id 7", "by with SMTP id 1", "by (comment) with x",
    "by h.example (Postfix) with HTTP id 2", "by mx.example.net with SMTP id q7",
    "by mx.example.net with Microsoft SMTP Server id 15.1",
    "by mx.example.net id 5; Wed, 25 Nov 2026 10:00:00 +0100", "by",
])
COMMENTS = st.sampled_from([
    "", " (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))",
    " (No client certificate requested)", " (Authenticated sender: s@x.example)",
    " (by x) (for y)", " ()", " (a (b) (c))", " (a (b (c)))", " (unbalanced", " (x) by",
    " (x)(y)", " (Exim) (envelope-from <b@x.example>)",
])
DATE = st.sampled_from(["; Wed, 25 Nov 2026 10:00:00 +0000", "", ";", "; 2026-11-25T10:00:00Z"])


@settings(deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(WORD, WORD, LITERAL, COMMENTS, AFTER_BY, DATE, st.sampled_from(["from", "FROM", "From"]))
def test_generated_common_shapes_read_alike(
    helo: str, rdns: str, literal: str, more: str, after_by: str, date: str, from_: str
) -> None:
    _same(f"{from_} {helo} ({rdns} [{literal}]){more} {after_by}{date}")
    _same(f"{from_} {helo} ({rdns} [{literal}]){more}{after_by}{date}")
    _same(f"{from_} {helo}  ({rdns}\t[{literal}]){more}\r\n\t{after_by}{date}")


@settings(deadline=None, max_examples=300)
@given(st.text(alphabet="from by()[]. 0123456789abcHELOunknow:@;", max_size=120))
def test_generated_text_reads_alike(tail: str) -> None:
    _same("from " + tail)
    _same("from a (b [192.0.2.1]) " + tail)


def _general_date(text: str) -> object:
    """What _parse_date gave before its _COMMON_DATE shortcut (the _RFC_DATE reading)."""
    from stopitd.analysis import received

    m = received._RFC_DATE.match(text)
    assert m is not None
    day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
    month = received._MONTHS.get(mon.lower())
    if month is None:
        return "general"
    return received._rfc_datetime(year, month, day, hh, mm, ss, sign, oh, om)


@settings(deadline=None, max_examples=400)
@given(
    st.sampled_from(["", "Tue, ", "Xyz, "]), st.sampled_from(["1", "09", "24", "31", "00", "32"]),
    st.sampled_from(["Nov", "NOV", "nov", "nOv", "Feb", "Foo"]),
    st.sampled_from(["1999", "2026", "2000", "1900", "2099"]),
    st.sampled_from(["08:05:41", "23:59:59", "24:00:00", "00:00:60", "12:60:00"]),
    st.sampled_from(["+0000", "-0000", "-0800", "+0530", "+9959", "-2359"]),
    st.sampled_from(["", " (PST)", " (UTC)", " ()"]), st.sampled_from(["", " "]),
)
def test_common_dates_read_as_the_general_rule_reads_them(
    weekday: str, day: str, month: str, year: str, hms: str, offset: str, zone: str, lead: str
) -> None:
    from stopitd.analysis import received

    text = f"{lead}{weekday}{day} {month} {year} {hms} {offset}{zone}"
    if received._COMMON_DATE.fullmatch(text) is not None and month.lower() in received._MONTHS:
        assert received._parse_date(text) == _general_date(text), text


BARE_LITERAL = st.sampled_from([
    "192.0.2.10", "10.1.2.3", "2603:10b6:5:100::48", "fe80::1", "198.51.100.4:25", "abc",
    "1.2.3.4.5", "::ffff:1.2.3.4", "300.1.2.3", "2001:db8::1", "::1", "dead", ":",
])
BARE_AFTER_BY = st.sampled_from([
    "by ex2.example (10.1.2.4) with Microsoft SMTP Server (version=TLS1_2) id 15.1.2375.31",
    "by ex1.example ([fe80::1%12]) with mapi id 15.01.2375.031", "by h with mapi",
    "by h with SMTP (Scalix SMTP Relay 11.0) id 1", "by h with POP3 id 2",
    "by h ([XMail 1.27 ESMTP Server]) with ESMTP id 3", "by", "by with x", "by h with HTTPS",
])
BRACKET_AFTER_BY = st.sampled_from([
    "by mx.example with esmtp (Exim 4.96) (envelope-from <a@b.example>) id 1tA-0001",
    "by mx.example with SMTP; 25 Nov 2026", "by mx.example with QMQP",
    "by mx.example with SMTP id 7", "by ex1.example ([fe80::1%12]) with mapi id 15.01",
    "by h with mapi", "by h with POP3 id 2", "by h (CommuniGate Pro SMTP 6.3) with ESMTP",
    "by", "by with x", "by h with ESMTPS id 4 (Exim)",
])


@settings(deadline=None, max_examples=400)
@given(WORD, BARE_LITERAL, BARE_AFTER_BY, LITERAL, BRACKET_AFTER_BY, DATE)
def test_generated_one_comment_shapes_read_alike(
    host: str, bare: str, bare_after: str, literal: str, bracket_after: str, date: str
) -> None:
    """Exchange's "host (ip)" and Exim's / qmail's "host ([ip])", and near misses."""
    for comment, after_by in (
        (f"({bare})", bare_after),
        (f"([{literal}])", bracket_after),
        (f"([{literal}] verified)", bracket_after),
    ):
        _same(f"from {host} {comment} {after_by}{date}")
        _same(f"from {host} {comment} (x) {after_by}{date}")
        _same(f"from {host} {comment}{after_by}{date}")
