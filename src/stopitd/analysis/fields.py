"""Key fields (Message-ID, Date, From, To, Subject) from parsed header fields."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses, parsedate_to_datetime

from stopitd.analysis.headers import HeaderField, decode_words, first_values
from stopitd.analysis.model import Address, KeyFields

_MONTH_NUMBERS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
# The date every client writes: ``Tue, 24 Nov 2026 09:59:58 +0000`` (comment allowed).
_PLAIN_DATE = re.compile(
    r"[ \t]*(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),[ \t]*)?(\d{1,2})[ \t]+"
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[ \t]+([1-9]\d{3})[ \t]+"
    r"(\d\d):(\d\d):(\d\d)[ \t]+([+-])(\d\d)(\d\d)(?:[ \t]+\([^()]*\))?[ \t]*"
)


# ``_PLAIN_DATE`` with a zone of five or more significant digits (hostile: "-0505…05"):
# an offset of 100 hours or more, on which the stdlib fails, after converting every digit
# (~400 K instructions for 2000 of them).
_LONG_ZONE_DATE = re.compile(
    _PLAIN_DATE.pattern.replace(r"([+-])(\d\d)(\d\d)", r"[+-](0*[1-9]\d{4,})")
)


def _long_zone(value: str) -> bool:
    """``value`` is a ``_LONG_ZONE_DATE`` that ``parsedate_to_datetime`` fails on: its
    zone within ``int``'s digit limit (longer ones it drops and reads the date naive)."""
    m = _LONG_ZONE_DATE.fullmatch(value)
    if m is None:
        return False
    limit = sys.get_int_max_str_digits()
    return limit == 0 or len(m.group(7)) <= limit


def _plain_date(m: re.Match[str]) -> datetime:
    """What ``parsedate_to_datetime(...).astimezone(UTC)`` makes of a ``_PLAIN_DATE``
    (raises as it does): built in UTC and shifted by the offset, without a timezone
    object and a conversion (a third of the time)."""
    day, month, year, hh, mm, ss, sign, oh, om = m.groups()
    dt = datetime(int(year), _MONTH_NUMBERS[month], int(day), int(hh), int(mm), int(ss), 0, UTC)
    if oh == "00" and om == "00":
        return dt  # -0000 and +0000 alike: read as UTC
    offset = int(oh) * 3600 + int(om) * 60
    if offset >= 86400:
        raise ValueError("offset must be less than a day")  # as datetime.timezone says
    # Overflow at year 9999 raises OverflowError, as astimezone does.
    return dt - timedelta(0, offset) if sign == "+" else dt + timedelta(0, offset)


def parse_date(value: str | None) -> datetime | None:
    """An RFC 5322 date as UTC, or None when it cannot be read."""
    if not value:
        return None
    plain = _PLAIN_DATE.fullmatch(value)
    try:
        if plain is not None:
            return _plain_date(plain)
        if _long_zone(value):
            return None
        dt = parsedate_to_datetime(value)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):  # e.g. a zone of -0505…05
        return None


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR = rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
# The common shapes: ``addr``, ``<addr>``, ``Name Words <addr>``, ``"Quoted" <addr>``.
# Anything else (comments, groups, lists, escapes, non-ASCII) goes to the stdlib. The bare
# shape has a pattern of its own: it is tried alone on values without "<" (the other
# shapes need one), which skips the failing tries of the name alternatives.
_BRACKETED_ADDRESS = re.compile(
    rf'[ \t]*(?:({_ATOM}(?:[ \t]+{_ATOM})*)|"([^"\\\r\n]*)")?[ \t]*<({_ADDR})>[ \t]*'
)
_BARE_ADDRESS_ONLY = re.compile(rf"[ \t]*({_ADDR})[ \t]*")


def _simple_address(value: str) -> tuple[str, str] | None:
    """(name, address) as ``getaddresses`` reads the common shapes; None for the rest."""
    if "<" not in value:
        bare = _BARE_ADDRESS_ONLY.fullmatch(value)
        return None if bare is None else ("", bare.group(1))
    m = _BRACKETED_ADDRESS.fullmatch(value)
    if m is None:
        return None
    atoms, quoted, bracketed = m.groups()
    if atoms is not None:
        return " ".join(atoms.split()), bracketed
    return quoted or "", bracketed


# Group openers before one address: ``name: addr``, ``::: <addr>``. The stdlib reads each
# ":" as a nested group (recursion, quadratic time on hundreds of them) and returns the one
# address inside, without the group's name.
_GROUP_OPENERS = re.compile(rf"[ \t]*(?:{_ATOM}(?:[ \t]+{_ATOM})*)?[ \t]*(?::[ \t]*)+")


def _grouped_address(value: str) -> tuple[str, str] | None:
    """(name, address) of ``groups: one-simple-address`` as ``getaddresses`` reads it."""
    m = _GROUP_OPENERS.match(value)
    if m is None:
        return None
    return _simple_address(value[m.end() :])


def parse_addresses(value: str | None) -> tuple[Address, ...]:
    if not value:
        return ()
    simple = _simple_address(value)
    if simple is None and ":" in value:
        simple = _grouped_address(value)
    if simple is not None:  # one address, the usual case: no list to build and walk
        name, addr = simple
        if not (addr or name):
            return ()
        return (Address(decode_words(name) if "=?" in name else name, addr),)
    pairs = _getaddresses(value)
    out = []
    for name, addr in pairs:
        if addr or name:  # "=?" checked here: most names have no encoded word, a call saved
            out.append(Address(decode_words(name) if "=?" in name else name, addr))
    return tuple(out)


_BARE_ADDRESS = re.compile(r"[^\s<>,;:()\"]+@[^\s<>,;:()\"]+")


def _getaddresses(value: str) -> list[tuple[str, str]]:
    """The stdlib parser; on values that make it recurse too deep (hostile groups of
    hundreds of ":"), the bare addresses found in the text, without names."""
    try:
        return getaddresses([value])
    except RecursionError:
        return [("", m.group(0)) for m in _BARE_ADDRESS.finditer(value)]


_BRACKETED = re.compile(r"<\s*([^<>\s]+)\s*>")


def message_id(value: str | None) -> str:
    """The id without <> (and without comments or junk around it)."""
    if not value:
        return ""
    if value[0] == "<" and value[-1] == ">":  # the usual "<id>": what the search finds
        inner = value[1:-1]
        # printable: no whitespace but " " (checked in C, not char by char by the regex)
        if inner and inner.isprintable() and " " not in inner and "<" not in inner and (
            ">" not in inner
        ):
            return inner
    m = _BRACKETED.search(value)
    if m is not None:
        return m.group(1)
    words = value.strip().strip("<>").split()
    return words[0] if words else ""


def key_fields(fields: list[HeaderField]) -> KeyFields:
    return key_fields_of(first_values(fields))


def key_fields_of(first: dict[str, str]) -> KeyFields:
    """``key_fields`` from the fields' ``first_values``."""
    sender = parse_addresses(first.get("from"))
    subject = first.get("subject") or ""
    return KeyFields(  # positional (message_id, date, from_, to, subject): no keyword parsing
        message_id(first.get("message-id")),
        parse_date(first.get("date")),
        sender[0] if sender else None,
        parse_addresses(first.get("to")),
        decode_words(subject) if "=?" in subject else subject,
    )
