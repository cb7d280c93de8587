"""Full headers pasted into a report's text, repaired as far as they can be.

Reporters are asked to paste "full headers" (MIT's guidance, among others). What arrives
has been through a mail client: lines re-wrapped at 72-78 columns, ``>`` quoting, blank
lines between fields, non-breaking spaces from an HTML view, the body pasted below. Each
repair is recorded so staff can judge the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stopitd.analysis.model import Finding, Severity

_QUOTE = re.compile(r"^((?:[ \t]*>)+)[ \t]?")
_FIELD = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*):(?:[ \t]|$)")

# Fields a mail client's inline forward never shows: one of them makes a block "full headers".
TRACE = frozenset(
    {
        "received", "x-received", "return-path", "authentication-results",
        "arc-authentication-results", "arc-seal", "arc-message-signature", "dkim-signature",
        "received-spf", "delivered-to", "x-originating-ip", "x-google-smtp-source",
        "x-ms-exchange-organization-authas", "x-ms-exchange-organization-network-message-id",
        "x-forefront-antispam-report", "x-ms-exchange-crosstenant-id", "envelope-to",
        "x-envelope-from", "x-yahoo-smtp", "x-ymail-osg", "x-apple-action",
        "x-spam-status", "x-spam-checker-version",
    }
)
_COMMON = frozenset(
    {
        "from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version",
        "content-type", "content-transfer-encoding", "reply-to", "sender", "user-agent",
        "references", "in-reply-to", "list-unsubscribe", "list-unsubscribe-post",
        "feedback-id", "thread-topic", "thread-index", "importance", "priority",
        "content-language", "accept-language", "organization", "precedence",
        "auto-submitted", "errors-to", "resent-from", "resent-date", "resent-to",
        "resent-message-id", "resent-sender", "x-mailer", "x-priority",
    }
)


def _strong(name: str) -> bool:
    key = name.lower()
    return key in TRACE or key in _COMMON or key.startswith(("x-", "arc-", "list-"))


@dataclass(frozen=True, slots=True)
class PastedBlock:
    first_line: int  # index of the block's first line in the text
    last_line: int  # index one past its last line (body that follows not included)
    raw: bytes  # the repaired header block, CRLF line ends
    findings: tuple[Finding, ...]


@dataclass(slots=True)
class _Line:
    text: str  # unquoted, nbsp replaced
    quoted: bool
    nbsp: bool
    spaces_only: bool  # not empty, but only white space (what a re-wrap leaves behind)


def _lines(text_lines: list[str]) -> list[_Line]:
    out = []
    for line in text_lines:
        line = line.rstrip("\r")
        m = _QUOTE.match(line)
        quoted = m is not None
        if m is not None:
            line = line[m.end() :]
        nbsp = "\u00a0" in line
        spaces_only = bool(line) and not line.strip()
        out.append(_Line(line.replace("\u00a0", " ").rstrip(), quoted, nbsp, spaces_only))
    return out


def _field_name(text: str, allow_indent: bool) -> str | None:
    candidate = text.lstrip(" \t") if allow_indent else text
    m = _FIELD.match(candidate)
    if m is None:
        return None
    if candidate is not text and not _strong(m.group(1)):
        return None
    return m.group(1)


def find_blocks(text_lines: list[str], max_lines: int = 20000) -> list[PastedBlock]:
    """Every pasted header block (with at least one trace field and three fields)."""
    lines = _lines(text_lines[:max_lines])
    blocks: list[PastedBlock] = []
    i = 0
    n = len(lines)
    while i < n:
        name = _field_name(lines[i].text, allow_indent=True)
        if name is None or not _strong(name):
            i += 1
            continue
        block, last = _read_block(lines, i)
        if block is not None:
            blocks.append(block)
        i = max(last, i + 1)
    return blocks


def _read_block(lines: list[_Line], first: int) -> tuple[PastedBlock | None, int]:
    out: list[str] = []
    names: list[str] = []
    rewrapped = blanks = indented = 0
    quoted = nbsp = False
    i = first
    n = len(lines)
    last = first
    while i < n:
        line = lines[i]
        text = line.text
        if line.spaces_only and i + 1 < n and lines[i + 1].text.strip():
            blanks += 1  # white space left by a re-wrap, inside a field
            i += 1
            continue
        if not text.strip():
            # A blank line: inside the block if a field follows, else the end of it.
            j = i
            while j < n and not lines[j].text.strip():
                j += 1
            following = _field_name(lines[j].text, allow_indent=True) if j < n else None
            if following is not None and _strong(following):
                blanks += j - i
                i = j
                continue
            break
        name = _field_name(text, allow_indent=False)
        if name is None and text[:1] in (" ", "\t"):
            strong = _field_name(text, allow_indent=True)
            if strong is not None:
                indented += 1
                text = text.lstrip(" \t")
                name = strong
        if name is not None:
            out.append(text)
            names.append(name.lower())
        elif text[:1] in (" ", "\t"):
            out.append(text)
        else:
            out.append(" " + text)  # a fold the client turned into a hard line break
            rewrapped += 1
        quoted = quoted or line.quoted
        nbsp = nbsp or line.nbsp
        i += 1
        last = i
    if len(names) < 3 or not any(nm in TRACE for nm in names):
        return None, last
    body_follows = any(lines[k].text.strip() for k in range(last, min(n, last + 3)))
    findings = [
        Finding(
            "pasted-headers",
            Severity.INFO,
            f"Full headers pasted into the report's text ({len(names)} fields); repaired "
            "as listed, and the result analysed as the original's header block.",
        )
    ]
    if quoted:
        findings.append(
            Finding("pasted-unquoted", Severity.INFO, "Removed '>' quoting from the pasted lines.")
        )
    if rewrapped:
        findings.append(
            Finding(
                "pasted-rewrapped",
                Severity.WARNING,
                f"Rejoined {rewrapped} line(s) the mail client had wrapped: each was "
                "folded back into the field above it.",
            )
        )
    if indented:
        findings.append(
            Finding(
                "pasted-indented",
                Severity.INFO,
                f"Removed the indentation of {indented} field line(s).",
            )
        )
    if blanks:
        findings.append(
            Finding(
                "pasted-blank-lines",
                Severity.INFO,
                f"Removed {blanks} blank line(s) between the pasted fields.",
            )
        )
    if nbsp:
        findings.append(
            Finding(
                "pasted-nbsp",
                Severity.INFO,
                "Replaced non-breaking spaces (from an HTML view) with spaces.",
            )
        )
    if body_follows:
        findings.append(
            Finding(
                "pasted-body-follows",
                Severity.INFO,
                "Text follows the pasted header block (probably the message body); it is "
                "kept in the report, not in this header block.",
            )
        )
    raw = ("\r\n".join(out) + "\r\n").encode("utf-8", "replace")  # UTF-7 lone surrogates
    return PastedBlock(first, last, raw, tuple(findings)), last
