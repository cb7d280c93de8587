"""Which mail client wrote a report, from its headers (pure): for the right instructions."""

from __future__ import annotations

import re
from enum import StrEnum

from stopitd.analysis.headers import parse_fields, split_message


class MailClient(StrEnum):
    GMAIL = "gmail"
    OUTLOOK = "outlook"
    APPLE_MAIL = "apple-mail"
    THUNDERBIRD = "thunderbird"
    UNKNOWN = "generic"


_GMAIL_ID = re.compile(r"@mail\.gmail\.com>?$", re.IGNORECASE)
_OUTLOOK_ID = re.compile(r"@[a-z0-9.-]*(?:outlook\.com|exchangelabs\.com)>?$", re.IGNORECASE)


def detect_client(raw: bytes) -> MailClient:
    """The reporter's client from User-Agent, X-Mailer, MIME-Version and Message-ID shapes."""
    fields = parse_fields(split_message(raw)[0])
    values: dict[str, str] = {}
    for f in fields:
        values.setdefault(f.key, f.value)
    agent = " ".join(values.get(k, "") for k in ("user-agent", "x-mailer")).lower()
    mime = values.get("mime-version", "").lower()
    mid = values.get("message-id", "").strip()
    if "thunderbird" in agent or "icedove" in agent:
        return MailClient.THUNDERBIRD
    if "outlook" in agent or "microsoft" in agent:
        return MailClient.OUTLOOK
    if "apple mail" in agent or "iphone mail" in agent or "ipad mail" in agent:
        return MailClient.APPLE_MAIL
    if "mac os x mail" in mime or "ios mail" in mime:
        return MailClient.APPLE_MAIL
    if _GMAIL_ID.search(mid):
        return MailClient.GMAIL
    if (
        _OUTLOOK_ID.search(mid)
        or "thread-index" in values
        or any(k.startswith("x-ms-exchange") for k in values)
    ):
        return MailClient.OUTLOOK
    return MailClient.UNKNOWN
