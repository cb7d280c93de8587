"""Key fields (Message-ID, Date, From, To, Subject) from parsed header fields."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache

from stopitd.analysis.headers import HeaderField, decode_words, get
from stopitd.analysis.model import Address, KeyFields

# Values that repeat (a flood's From, a campaign's Date) are read once; long ones are not
# kept, so the caches stay small.
_CACHED_VALUE_MAX = 1024


def parse_date(value: str | None) -> datetime | None:
    """An RFC 5322 date as UTC, or None when it cannot be read."""
    if not value:
        return None
    return _parse_date(value) if len(value) <= _CACHED_VALUE_MAX else _parse_date.__wrapped__(value)


@lru_cache(maxsize=1024)
def _parse_date(value: str) -> datetime | None:
    try:
        dt = parsedate_to_datetime(value)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):  # e.g. a zone of -0505…05
        return None


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR = rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
# The common shapes: ``addr``, ``<addr>``, ``Name Words <addr>``, ``"Quoted" <addr>``.
# Anything else (comments, groups, lists, escapes, non-ASCII) goes to the stdlib.
_SIMPLE_ADDRESS = re.compile(
    rf'[ \t]*(?:({_ATOM}(?:[ \t]+{_ATOM})*)|"([^"\\\r\n]*)")?[ \t]*<({_ADDR})>[ \t]*'
    rf"|[ \t]*({_ADDR})[ \t]*"
)


def _simple_address(value: str) -> tuple[str, str] | None:
    """(name, address) as ``getaddresses`` reads the common shapes; None for the rest."""
    m = _SIMPLE_ADDRESS.fullmatch(value)
    if m is None:
        return None
    atoms, quoted, bracketed, bare = m.groups()
    if bare is not None:
        return "", bare
    if atoms is not None:
        return " ".join(atoms.split()), bracketed
    return quoted or "", bracketed


def parse_addresses(value: str | None) -> tuple[Address, ...]:
    if not value:
        return ()
    if len(value) <= _CACHED_VALUE_MAX:
        return _parse_addresses(value)
    return _parse_addresses.__wrapped__(value)


@lru_cache(maxsize=1024)
def _parse_addresses(value: str) -> tuple[Address, ...]:
    simple = _simple_address(value)
    pairs = [simple] if simple is not None else _getaddresses(value)
    out = []
    for name, addr in pairs:
        if addr or name:
            out.append(Address(decode_words(name), addr))
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
    m = _BRACKETED.search(value)
    if m is not None:
        return m.group(1)
    words = value.strip().strip("<>").split()
    return words[0] if words else ""


def key_fields(fields: list[HeaderField]) -> KeyFields:
    sender = parse_addresses(get(fields, "from"))
    return KeyFields(
        message_id=message_id(get(fields, "message-id")),
        date=parse_date(get(fields, "date")),
        from_=sender[0] if sender else None,
        to=parse_addresses(get(fields, "to")),
        subject=decode_words(get(fields, "subject") or ""),
    )
