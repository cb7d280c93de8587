"""Outlook .msg attachments (OLE2 compound files), read with extract-msg.

A .msg keeps the transport headers the message arrived with (PR_TRANSPORT_MESSAGE_HEADERS,
``__substg1.0_007D``) when it was received mail; a draft or sent item has none. The body
is the plain-text body property. Embedded .msg attachments (a forward of a forward in
Outlook) are read too, up to the caller's depth.

extract-msg (and what it loads: ~14 MB) is imported at the first .msg, not with the
analysis: most workers never see one (issue 9's memory target).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from stopitd.analysis.fields import message_id, parse_addresses

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # compound file header (.msg)


@dataclass(frozen=True, slots=True)
class MsgMessage:
    headers: str  # the transport header block as stored ("" when the file has none)
    body: str
    subject: str
    sender: str
    to: str
    message_id: str
    date: datetime | None
    attachment_names: tuple[str, ...]
    embedded: tuple[MsgMessage, ...]
    error: str = ""  # why (part of) the file could not be read


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _date(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return None


def _read(msg: object, depth: int, max_depth: int) -> MsgMessage:
    headers = _text(getattr(msg, "headerText", None))
    if headers.startswith("Microsoft Mail Internet Headers Version 2.0"):
        headers = headers[len("Microsoft Mail Internet Headers Version 2.0") :].lstrip()
    names: list[str] = []
    embedded: list[MsgMessage] = []
    errors: list[str] = []
    for att in getattr(msg, "attachments", None) or []:
        names.append(_text(getattr(att, "getFilename", lambda: "")() or ""))
        inner = getattr(att, "data", None)
        if getattr(att, "type", None) is not None and hasattr(inner, "headerText"):
            if depth + 1 < max_depth:
                embedded.append(_read(inner, depth + 1, max_depth))
            else:
                errors.append("embedded messages deeper than the forward limit not read")
    return MsgMessage(
        headers=headers,
        body=_text(getattr(msg, "body", None)),
        subject=_text(getattr(msg, "subject", None)),
        sender=_text(getattr(msg, "sender", None)),
        to=_text(getattr(msg, "to", None)),
        message_id=message_id(_text(getattr(msg, "messageId", None))),
        date=_date(getattr(msg, "date", None)),
        attachment_names=tuple(names),
        embedded=tuple(embedded),
        error="; ".join(errors),
    )


def read_msg(data: bytes, max_depth: int) -> MsgMessage | str:
    """The message in a .msg file, or a line saying why it could not be read."""
    import extract_msg

    try:
        msg = extract_msg.openMsg(data, strict=False, delayAttachments=False)
    except Exception as e:  # extract-msg raises many kinds on damaged files
        return f"{type(e).__name__}: {e}"[:300]
    try:
        return _read(msg, 0, max_depth)
    except Exception as e:
        return f"{type(e).__name__}: {e}"[:300]
    finally:
        with contextlib.suppress(Exception):
            msg.close()


def sender_address(value: str) -> tuple[str, str]:
    found = parse_addresses(value)
    if not found:
        return "", ""
    return found[0].name, found[0].address


def as_bytes(m: MsgMessage) -> bytes:
    """The original as stopitd keeps it: transport headers, an empty line, the body."""
    head = m.headers.replace("\r\n", "\n").rstrip("\n").replace("\n", "\r\n")
    body = m.body.replace("\r\n", "\n").replace("\n", "\r\n")
    if not head:
        return body.encode("utf-8")
    return (head + "\r\n\r\n" + body).encode("utf-8")
