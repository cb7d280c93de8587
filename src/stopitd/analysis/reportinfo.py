"""The report's own key facts: key fields, threading ids, automatic-mail markers."""

from __future__ import annotations

import hashlib
import re

from stopitd.analysis.fields import key_fields_of
from stopitd.analysis.headers import HeaderField, first_values, get_all
from stopitd.analysis.model import Attachment, Finding, KeyFields, ReportInfo

_ID = re.compile(r"<([^<>\s]+)>")


def in_reply_to(fields: list[HeaderField]) -> tuple[str, ...]:
    """Ids from In-Reply-To then References, without <>, each once, in order."""
    return _in_reply_to(fields, first_values(fields))


def _in_reply_to(fields: list[HeaderField], first: dict[str, str]) -> tuple[str, ...]:
    if "in-reply-to" not in first and "references" not in first:
        return ()  # the usual case: no pass over the fields
    ids: dict[str, None] = {}  # ordered, and linear however long References is
    for name in ("in-reply-to", "references"):
        for f in get_all(fields, name):
            for found in _ID.findall(f.value) or f.value.split():
                found = found.strip("<>")
                if found:
                    ids.setdefault(found)
    return tuple(ids)


def auto_submitted(fields: list[HeaderField]) -> str:
    """Auto-Submitted (other than ``no``), else Precedence bulk/list/junk; lower-case."""
    return _auto_submitted(first_values(fields))


def _auto_submitted(first: dict[str, str]) -> str:
    value = (first.get("auto-submitted") or "").strip().lower()
    if value and value != "no":
        return value.split(";")[0].strip()
    precedence = (first.get("precedence") or "").strip().lower()
    return precedence if precedence in ("bulk", "list", "junk") else ""


def report_info(
    fields: list[HeaderField],
    raw: bytes,
    findings: list[Finding],
    attachments: list[Attachment],
    key: KeyFields | None = None,
    sha256: str = "",
    first: dict[str, str] | None = None,
) -> ReportInfo:
    """The report's facts; ``key`` when its key fields were already read from ``fields``,
    ``sha256`` when the digest of ``raw`` was already taken, ``first`` when the fields'
    ``first_values`` were."""
    if first is None:
        first = first_values(fields)
    return ReportInfo(  # by position, in the fields' order (test_positional checks it)
        key if key is not None else key_fields_of(first),  # fields
        tuple(findings),
        tuple(attachments),
        _auto_submitted(first),  # auto_submitted
        _in_reply_to(fields, first),  # in_reply_to
        sha256 or hashlib.sha256(raw).hexdigest(),
        len(raw),  # size
    )
