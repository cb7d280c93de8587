"""Key fields (Message-ID, Date, From, To, Subject) from parsed header fields."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import getaddresses, parsedate_to_datetime

from stopitd.analysis.headers import HeaderField, decode_words, get
from stopitd.analysis.model import Address, KeyFields


def parse_date(value: str | None) -> datetime | None:
    """An RFC 5322 date as UTC, or None when it cannot be read."""
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def parse_addresses(value: str | None) -> tuple[Address, ...]:
    if not value:
        return ()
    out = []
    for name, addr in getaddresses([value]):
        if addr or name:
            out.append(Address(decode_words(name), addr))
    return tuple(out)


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
