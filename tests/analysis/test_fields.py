"""Key fields: the fast address reader agrees with the stdlib on every shape it takes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from email.utils import getaddresses, parsedate_to_datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from stopitd.analysis.fields import (
    _PLAIN_DATE,
    _grouped_address,
    _simple_address,
    parse_addresses,
    parse_date,
)
from stopitd.analysis.model import Address

_ATOM_CHARS = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
atoms = st.text(alphabet=_ATOM_CHARS, min_size=1, max_size=6)
pieces = st.sampled_from(
    [" ", "  ", "\t", ".", "@", "<", ">", '"', "\\", ",", "(", ")", ":", ";", "[", "]", "é", ""]
)
labels = st.text(alphabet="abz09-", min_size=1, max_size=6)
values = st.lists(st.one_of(atoms, pieces), max_size=14).map("".join)


def _stdlib(value: str) -> list[tuple[str, str]]:
    return [(n, a) for n, a in getaddresses([value]) if n or a]


@settings(max_examples=1500, deadline=None)
@given(values)
def test_fast_path_reads_what_the_stdlib_reads(value: str) -> None:
    simple = _simple_address(value)
    if simple is not None:
        assert [simple] == _stdlib(value) or (not simple[0] and not simple[1])


group_values = st.tuples(
    st.lists(st.one_of(atoms, st.sampled_from([" ", "\t", ":", ": ", ":", ";", ","])), max_size=8),
    st.one_of(values, st.sampled_from(["<x@example.net>", "jo@example.org", "N <a@b.example>"])),
).map(lambda t: "".join(t[0]) + t[1])


@settings(max_examples=1500, deadline=None)
@given(group_values)
def test_group_fast_path_reads_what_the_stdlib_reads(value: str) -> None:
    grouped = _grouped_address(value)
    if grouped is not None:
        assert [grouped] == _stdlib(value)


def test_hundreds_of_group_colons_take_the_fast_path() -> None:
    for value in ("group" + ":" * 600 + " <x@example.net>", ":" * 600 + "jdoe@example.edu"):
        assert _grouped_address(value) is not None
        assert [_grouped_address(value)] == _stdlib(value)
    assert parse_addresses("g: a@example.org") == (Address("", "a@example.org"),)


@settings(max_examples=500, deadline=None)
@given(st.lists(atoms, min_size=1, max_size=3), atoms, labels, st.booleans())
def test_common_shapes_take_the_fast_path(
    words: list[str], local: str, domain: str, quoted: bool
) -> None:
    addr = f"{local}@{domain}.example"
    name = " ".join(words)
    value = f'"{name}" <{addr}>' if quoted else f"{name} <{addr}>"
    assert _simple_address(value) is not None
    assert _simple_address(addr) is not None
    assert _simple_address(value) == _stdlib(value)[0]


def test_shapes_real_clients_write() -> None:
    cases = {
        "Jane Doe <jane@example.org>": (Address("Jane Doe", "jane@example.org"),),
        '"Doe, Jane" <jane@example.org>': (Address("Doe, Jane", "jane@example.org"),),
        "jane@example.org": (Address("", "jane@example.org"),),
        "<jane@example.org>": (Address("", "jane@example.org"),),
        "=?utf-8?q?J=C3=BCrgen?= <j@example.org>": (Address("Jürgen", "j@example.org"),),
        "a@example.org, B <b@example.org>": (
            Address("", "a@example.org"),
            Address("B", "b@example.org"),
        ),
        "jane@example.org (Jane)": (Address("Jane", "jane@example.org"),),
    }
    for value, expected in cases.items():
        assert parse_addresses(value) == expected, value


# --- the date fast path ------------------------------------------------------------------------

_DATE_PIECES = st.sampled_from(
    ["Tue,", "Tue, ", "Mon", " ", "  ", "\t", "1", "24", "31", "30", "Feb", "Nov", "nov", "2026",
     "0099", "1999", "99", "10:00:00", "23:59:60", "24:00:00", "09:59", "+0000", "-0000",
     "+0530", "-0800", "+2400", "+0099", "(UTC)", "(CET)", "GMT", ","]
)
_DATES = st.one_of(
    st.lists(_DATE_PIECES, max_size=8).map("".join),
    st.lists(_DATE_PIECES, max_size=8).map(" ".join),
    st.builds(
        lambda dn, d, mon, y, t, z, c: f"{dn}{d} {mon} {y} {t} {z}{c}",
        st.sampled_from(["", "Tue, ", "Sun,", "Fri,  "]),
        st.integers(min_value=0, max_value=32),
        st.sampled_from(["Jan", "Feb", "Jun", "Dec"]),
        st.integers(min_value=999, max_value=10000),
        st.sampled_from(["00:00:00", "23:59:59", "12:30:61", "25:00:00"]),
        st.sampled_from(["+0000", "-0000", "+0100", "-1130", "+2359", "+2400", "-9999"]),
        st.sampled_from(["", " (UTC)", " (a b)", "  "]),
    ),
)


def _stdlib_date(value: str) -> object:
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).astimezone(UTC)


@settings(max_examples=1500, deadline=None)
@given(_DATES)
def test_date_fast_path_reads_what_the_stdlib_reads(value: str) -> None:
    assert parse_date(value) == _stdlib_date(value)
    if _PLAIN_DATE.fullmatch(value) is not None:
        got = parse_date(value)
        assert got is None or got.tzinfo is UTC


def test_client_dates_take_the_fast_path() -> None:
    for value in ("Tue, 24 Nov 2026 09:59:58 +0000", "Tue, 24 Nov 2026 09:59:58 -0800 (PST)",
                  "4 Nov 2026 09:59:58 +0100"):
        assert _PLAIN_DATE.fullmatch(value) is not None
        assert parse_date(value) == _stdlib_date(value)


def test_plain_dates_read_as_the_stdlib_reads_them() -> None:
    """The fast reader of the common date shape against parsedate_to_datetime, edges too:
    bad days and times, zones of 24 hours and more, the ends of the datetime range."""
    def stdlib(value: str) -> datetime | None:
        try:
            return parsedate_to_datetime(value).astimezone(UTC)
        except (ValueError, OverflowError):
            return None

    for day, month, year, time, zone in itertools.product(
        ["1", "31", "29", "0"], ["Feb", "Dec", "Jan"], ["1000", "2024", "9999"],
        ["00:00:00", "23:59:59", "12:60:00", "24:00:00"],
        ["+0000", "-0000", "-0200", "+2359", "-2359", "+9999", "-2400", "+0130"],
    ):
        value = f"Tue, {day} {month} {year} {time} {zone}"
        assert _PLAIN_DATE.fullmatch(value)
        got, want = parse_date(value), stdlib(value)
        assert got == want and (got is None or got.isoformat() == want.isoformat()), value


def test_long_zones_read_as_the_stdlib_reads_them() -> None:
    """Zones of five and more significant digits are refused without the stdlib; zones
    past ``int``'s digit limit still take its way (it drops them: a naive date)."""
    def stdlib(value: str) -> datetime | None:
        try:
            dt = parsedate_to_datetime(value)
        except (ValueError, OverflowError):
            return None
        return (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).astimezone(UTC)

    for head, zone, tail in itertools.product(
        ["Tue, 24 Nov 2026 09:41:37 ", "24 Nov 2026 09:41:37\t", "Tue, 31 Feb 2026 09:41:37 "],
        ["-" + "05" * 1000, "+12345", "-0000012345", "+00000", "+10000", "-" + "1" * 4300,
         "+" + "1" * 4301, "+" + "0" * 4299 + "12345"],
        ["", " (comment)", " "],
    ):
        value = head + zone + tail
        assert parse_date(value) == stdlib(value), value[:40]
