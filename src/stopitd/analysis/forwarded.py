"""Find every reported original inside a report, however it was forwarded (pure).

Shapes: message/rfc822 parts (any transfer encoding, nested forwards followed), .eml and
Outlook .msg attachments, ARF feedback reports (RFC 5965), text/rfc822-headers
(RFC 6522), inline forwards of the common clients, full headers pasted into the text, and
redirected mail (Resent-*: the report is the original). Originals are slices of the
report's bytes (or of a decoded part); nothing goes through ``email.message`` before the
analysis. Originals come out in document order, a forward before what it forwards.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from stopitd.analysis import bodytext, inline, msgfile, pasted
from stopitd.analysis.fields import key_fields, key_fields_of, parse_addresses
from stopitd.analysis.headers import HeaderField, get, header_end, parse_block
from stopitd.analysis.mime import Budget, Entity, decode_body, parse, parse_buffer, walk
from stopitd.analysis.model import (
    Address,
    Attachment,
    Finding,
    Grade,
    How,
    KeyFields,
    Original,
    ReportInfo,
    Severity,
)
from stopitd.analysis.policy import Limits
from stopitd.analysis.reportinfo import report_info

_RESENT = ("resent-from", "resent-sender", "resent-to", "resent-date", "resent-message-id")
_MESSAGE_FIELDS = frozenset(
    {"received", "from", "to", "subject", "date", "message-id", "return-path", "mime-version",
     "dkim-signature", "authentication-results", "delivered-to", "reply-to", "cc", "sender"}
)
_HEADER_TYPES = frozenset({"text/rfc822-headers", "message/rfc822-headers"})
# Containers that may hold the original but are not read here.
_OPAQUE = {
    "application/pkcs7-mime": "S/MIME encrypted or opaque-signed",
    "application/x-pkcs7-mime": "S/MIME encrypted or opaque-signed",
    "multipart/encrypted": "PGP/MIME encrypted",
    "application/ms-tnef": "Outlook TNEF (winmail.dat)",
    "application/vnd.ms-tnef": "Outlook TNEF (winmail.dat)",
}
_MSG_TYPES = frozenset({"application/vnd.ms-outlook", "application/x-msg"})
# Ways of carrying an original that a redirected harassing message would not have.
_CARRIED = frozenset(
    {How.ATTACHMENT, How.ATTACHMENT_MSG, How.ARF, How.HEADERS_ONLY, How.PASTED_HEADERS}
)
def _sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _header_findings(ent: Entity) -> tuple[Finding, ...]:
    if ent.junk_lines:
        return (
            Finding(
                "header-junk",
                Severity.INFO,
                f"{ent.junk_lines} line(s) in the header block are neither fields nor "
                "continuations; they were skipped.",
            ),
        )
    return ()


def _looks_like_message(fields: list[HeaderField]) -> bool:
    return sum(1 for f in fields if f.key in _MESSAGE_FIELDS) >= 2


def _nested_finding(parent: int | None) -> tuple[Finding, ...]:
    if parent is None:
        return ()
    return (
        Finding(
            "nested-forward",
            Severity.INFO,
            f"Found inside original {parent + 1} (a forward of a forward).",
        ),
    )


def _full_original(
    ent: Entity,
    how: How,
    parent: int | None,
    findings: tuple[Finding, ...] = (),
    filename: str = "",
    feedback: tuple[tuple[str, str], ...] = (),
) -> Original:
    """A whole message as an original: ``ent``, found inside original ``parent``."""
    raw = ent.raw
    first = ent.first
    grade = Grade.FULL_MESSAGE
    if not ent.fields:
        grade = Grade.NONE
        findings += (
            Finding("empty-original", Severity.WARNING, "The attached message has no headers."),
        )
    elif "received" not in first:
        findings += (
            Finding(
                "no-received",
                Severity.WARNING,
                "The original has no Received headers (saved before it was sent, or "
                "stripped); there is nothing to trace.",
            ),
        )
    if not first.keys().isdisjoint(_RESENT) and how is not How.RESENT:
        findings += (Finding("resent", Severity.INFO, "The original carries Resent-* fields."),)
    if parent is not None:
        findings = _nested_finding(parent) + findings
    if ent.junk_lines:
        findings += _header_findings(ent)
    return Original(
        how=how,
        grade=grade,
        raw=raw,
        fields=key_fields_of(first),
        findings=findings,
        envelope_sender=(first.get("return-path") or "").strip().strip("<>"),
        sha256=_sha(raw),
        found_in=parent,
        filename=filename,
        feedback=feedback,
        header_fields=tuple(ent.fields) if ent.fields_exact else None,
    )


@dataclass(slots=True)
class _Finder:
    limits: Limits
    budget: Budget
    originals: list[Original] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    msg_files: int = 0

    # --- one message: its parts in document order -----------------------------------

    def message(self, msg: Entity, parent: int | None, level: int) -> None:
        """Look for originals in ``msg`` (the report at level 0, an original below)."""
        parts = walk(msg)
        handled: set[int] = set()
        texts = [p for p in parts if self._is_body_text(p, "text/plain")]
        if not texts:
            texts = [p for p in parts if self._is_body_text(p, "text/html")]
        text_ids = {id(p) for p in texts}
        for part in parts:
            if id(part) in handled:
                continue
            if part.content_type in _OPAQUE:
                self.budget.hit(
                    "opaque-part",
                    f"A part is {_OPAQUE[part.content_type]}; it may hold the original but "
                    "cannot be read here. It is kept as an attachment.",
                )
            if part.is_multipart:
                if part.content_type == "multipart/report" and (
                    part.params.get("report-type", "").lower() == "feedback-report"
                ):
                    handled.update(self._arf(part, parent, level))
                continue
            if part is msg and not (msg.is_message or id(msg) in text_ids):
                continue  # the message's own header block, not a part of it
            if id(part) in text_ids:
                self._text(part, parent, level, self._inline_mode(msg, level))
                continue
            if self._is_body_text(part, "text/plain") or self._is_body_text(part, "text/html"):
                continue
            if level == 0:
                self._keep_attachment(part)
            if part.is_message:
                self._rfc822(part, parent, level)
            elif part.content_type in _HEADER_TYPES:
                self._headers_only(part, How.HEADERS_ONLY, parent, ())
            elif self._is_msg_file(part):
                self._msg(part, parent, level)
            elif part.filename.lower().endswith(".eml"):
                self._eml(part, parent, level)
            elif part.content_type == "text/plain":
                self._text_file(part, parent, level)

    @staticmethod
    def _inline_mode(msg: Entity, level: int) -> str:
        """Look for inline forwards in this message's text? ``yes``, ``reply`` or ``no``.

        The report is always searched (a reply to stopit's acknowledgement gets its quote
        flagged). Inside an original only when its subject says it is a forward, so a
        harassing reply quoting the victim's own mail does not become an "original".
        """
        subject = get(msg.fields, "subject") or ""
        if level == 0:
            return "reply" if inline.is_reply_subject(subject) else "yes"
        return "yes" if inline.is_forward_subject(subject) else "no"

    @staticmethod
    def _is_body_text(part: Entity, ctype: str) -> bool:
        return (
            part.content_type == ctype
            and part.disposition != "attachment"
            and not part.filename
        )

    def _add(self, original: Original) -> int:
        self.originals.append(original)
        return len(self.originals) - 1

    def _follow(self, level: int) -> bool:
        """May we look inside an original found at ``level``?"""
        if level < self.limits.max_forward_depth:
            return True
        self.budget.hit(
            "forward-depth",
            f"Forwards nested deeper than {self.limits.max_forward_depth} levels were kept "
            "but not looked into.",
        )
        return False

    def _full(
        self,
        ent: Entity,
        how: How,
        parent: int | None,
        findings: tuple[Finding, ...] = (),
        filename: str = "",
        feedback: tuple[tuple[str, str], ...] = (),
    ) -> int:
        return self._add(_full_original(ent, how, parent, findings, filename, feedback))

    # --- the shapes -----------------------------------------------------------------------

    def _rfc822(self, part: Entity, parent: int | None, level: int) -> None:
        if not part.children:
            return  # over a limit: the budget said so
        child = part.children[0]
        findings: tuple[Finding, ...] = ()
        if part.encoded_message:
            findings = (
                Finding(
                    "encoded-rfc822",
                    Severity.INFO,
                    f"The attached message was {part.cte}-encoded; the decoded bytes are "
                    "the original.",
                ),
            )
        index = self._full(child, How.ATTACHMENT, parent, findings, part.filename)
        if self._follow(level + 1):
            self.message(child, index, level + 1)

    def _eml(self, part: Entity, parent: int | None, level: int) -> None:
        data = decode_body(part, self.budget)
        if data is None:
            return
        child = parse_buffer(data, self.budget, part.depth + 1)
        if not _looks_like_message(child.fields):
            self.budget.hit(
                "eml-not-a-message",
                f"The attachment {part.filename!r} is named .eml but is not a message; it "
                "was kept as an attachment.",
            )
            return
        note = Finding(
            "eml-attachment",
            Severity.INFO,
            f"Attached as a file {part.filename!r} ({part.content_type}); its decoded bytes "
            "are the original.",
        )
        index = self._full(child, How.ATTACHMENT, parent, (note,), part.filename)
        if self._follow(level + 1):
            self.message(child, index, level + 1)

    def _text_file(self, part: Entity, parent: int | None, level: int) -> None:
        """A text file attached: saved message source, or full headers saved as text."""
        data = decode_body(part, self.budget)
        if data is None:
            return
        child = parse_buffer(data, self.budget, part.depth + 1)
        if get(child.fields, "received") is not None and _looks_like_message(child.fields):
            note = Finding(
                "source-attachment",
                Severity.INFO,
                f"The text file {part.filename!r} holds the message source; its decoded "
                "bytes are the original.",
            )
            index = self._full(child, How.ATTACHMENT, parent, (note,), part.filename)
            if self._follow(level + 1):
                self.message(child, index, level + 1)
            return
        self._text(part, parent, level, "no", part.filename)

    def _headers_only(
        self,
        part: Entity,
        how: How,
        parent: int | None,
        feedback: tuple[tuple[str, str], ...],
    ) -> None:
        data = decode_body(part, self.budget)
        if data is None:
            return
        end, _ = header_end(data)
        raw = data[:end]
        fields = parse_block(raw, self.limits.max_headers, self.limits.max_header_length).fields
        findings = [
            Finding(
                "headers-only",
                Severity.INFO,
                "Only the header block of the original was included (text/rfc822-headers, "
                "RFC 6522); there is no body.",
            )
        ]
        if part.content_type != "text/rfc822-headers":
            findings.append(
                Finding(
                    "nonstandard-type",
                    Severity.INFO,
                    f"The headers came as {part.content_type}; the standard type is "
                    "text/rfc822-headers.",
                )
            )
        self._add(
            Original(
                how=how,
                grade=Grade.HEADERS_ONLY,
                raw=raw,
                fields=key_fields(fields),
                findings=_nested_finding(parent) + tuple(findings),
                envelope_sender=(get(fields, "return-path") or "").strip().strip("<>"),
                sha256=_sha(raw),
                found_in=parent,
                feedback=feedback,
            )
        )

    def _arf(self, report: Entity, parent: int | None, level: int) -> set[int]:
        """RFC 5965: the feedback fields, and the message (or its headers) they are about."""
        handled: set[int] = set()
        feedback: tuple[tuple[str, str], ...] = ()
        for child in report.children:
            if level == 0 and not child.content_type.startswith("text/plain"):
                self._keep_attachment(child)
            if child.content_type == "message/feedback-report":
                data = decode_body(child, self.budget) or b""
                block = parse_block(data, self.limits.max_headers, self.limits.max_header_length)
                feedback = tuple((f.name, f.decoded) for f in block.fields)
                handled.add(id(child))
        kind = next((v for k, v in feedback if k.lower() == "feedback-type"), "")
        note = Finding(
            "arf-report",
            Severity.INFO,
            f"An ARF feedback report (RFC 5965){f', feedback type {kind}' if kind else ''}; "
            "its feedback fields are kept.",
        )
        for child in report.children:
            if child.is_message and child.children:
                handled.add(id(child))
                index = self._full(child.children[0], How.ARF, parent, (note,), "", feedback)
                if self._follow(level + 1):
                    self.message(child.children[0], index, level + 1)
            elif child.content_type in _HEADER_TYPES:
                handled.add(id(child))
                before = len(self.originals)
                self._headers_only(child, How.ARF, parent, feedback)
                if len(self.originals) > before:
                    o = self.originals[-1]
                    self.originals[-1] = _with_findings(o, (note,))
        return handled

    @staticmethod
    def _is_msg_file(part: Entity) -> bool:
        return part.content_type in _MSG_TYPES or part.filename.lower().endswith(".msg")

    def _msg(self, part: Entity, parent: int | None, level: int) -> None:
        self.msg_files += 1
        if self.msg_files > self.limits.max_msg_attachments:
            self.budget.hit(
                "too-many-msg",
                f"More than {self.limits.max_msg_attachments} .msg attachments; the rest "
                "were kept but not read.",
            )
            return
        data = decode_body(part, self.budget)
        if data is None:
            return
        depth_left = max(1, self.limits.max_forward_depth - level)
        read = msgfile.read_msg(data, depth_left)
        if isinstance(read, str):
            self.budget.hit(
                "msg-unreadable",
                f"The Outlook attachment {part.filename!r} could not be read ({read}); it "
                "was kept as an attachment.",
            )
            return
        self._msg_original(read, part.filename, parent, level + 1)

    def _msg_original(
        self,
        m: msgfile.MsgMessage,
        filename: str,
        parent: int | None,
        level: int,
        how: How = How.ATTACHMENT_MSG,
    ) -> None:
        raw = msgfile.as_bytes(m)
        named = f" {filename!r}" if filename else ""
        findings: list[Finding] = []
        if m.headers:
            block = parse_block(raw[: header_end(raw)[0]], self.limits.max_headers)
            fields = key_fields(block.fields)
            fields = _fill(fields, m)
            grade = Grade.FULL_MESSAGE
            envelope = (get(block.fields, "return-path") or "").strip().strip("<>")
            inner = ", ".join(repr(a) for a in m.attachment_names)
            findings.append(
                Finding(
                    "msg-attachment",
                    Severity.INFO,
                    f"Outlook .msg{named}: the transport headers it stored, then its "
                    "plain-text body (its own attachments are not part of these bytes"
                    + (f": {inner}" if inner else "")
                    + ").",
                )
            )
        else:
            fields = _fill(KeyFields(), m)
            grade = Grade.INLINE_SUMMARY
            envelope = ""
            findings.append(
                Finding(
                    "msg-no-transport-headers",
                    Severity.WARNING,
                    f"Outlook .msg{named} carries no transport headers (a draft or a "
                    "sent item?): only its subject, sender and body, nothing to trace.",
                )
            )
        if m.error:
            findings.append(Finding("msg-partly-read", Severity.INFO, m.error))
        index = self._add(
            Original(
                how=how,
                grade=grade,
                raw=raw,
                fields=fields,
                findings=_nested_finding(parent) + tuple(findings),
                envelope_sender=envelope,
                sha256=_sha(raw),
                found_in=parent,
                filename=filename,
            )
        )
        for embedded in m.embedded:
            self._msg_original(embedded, f"{filename} (embedded)", index, level + 1)

    def _text(
        self, part: Entity, parent: int | None, level: int, inline_mode: str, filename: str = ""
    ) -> None:
        """Pasted header blocks and inline forwards in a text part, in the order written."""
        text = bodytext.part_text(part, self.budget)
        if not text:
            return
        lines = text.split("\n")
        found: list[tuple[int, Original, bool]] = []  # (first line, original, is inline)
        skip: set[int] = set()
        for block in pasted.find_blocks(lines, self.limits.max_headers):
            skip.update(range(block.first_line, block.last_line))
            found.append((block.first_line, self._pasted(block, filename), False))
        if inline_mode != "no":
            room = max(1, self.limits.max_forward_depth - level)
            blocks = inline.find_blocks(lines, skip, room + 1)
            if len(blocks) > room:
                self._follow(self.limits.max_forward_depth)  # says so, once
                blocks = blocks[:room]
            for iblock in blocks:
                found.append((iblock.first_line, self._inline(iblock, lines, inline_mode), True))
        found.sort(key=lambda item: item[0])
        last_inline = parent  # inline forwards in one text nest: each inside the one before
        for _, original, is_inline in found:
            if len(self.originals) >= self.limits.max_parts:
                self.budget.hit(
                    "too-many-originals",
                    f"More than {self.limits.max_parts} originals; the rest were not kept.",
                )
                break
            owner = last_inline if is_inline else parent
            index = self._add(
                _with_findings(original, _nested_finding(owner), owner, first=True)
            )
            if is_inline:
                last_inline = index

    def _pasted(self, block: pasted.PastedBlock, filename: str) -> Original:
        fields = parse_block(block.raw, self.limits.max_headers).fields
        findings = block.findings
        if filename:
            findings += (
                Finding(
                    "headers-file",
                    Severity.INFO,
                    f"The headers were in the attached text file {filename!r}.",
                ),
            )
        return Original(
            how=How.PASTED_HEADERS,
            grade=Grade.HEADERS_ONLY,
            raw=block.raw,
            fields=key_fields(fields),
            findings=findings,
            filename=filename,
            envelope_sender=(get(fields, "return-path") or "").strip().strip("<>"),
            sha256=_sha(block.raw),
        )

    @staticmethod
    def _inline(block: inline.InlineBlock, lines: list[str], mode: str) -> Original:
        raw = "\r\n".join(lines[block.first_line :]).encode("utf-8")
        findings = block.findings
        if mode == "reply" and block.client.startswith("Outlook"):
            findings += (
                Finding(
                    "maybe-reply-quote",
                    Severity.WARNING,
                    "The report is a reply (its subject says so); this quoted message may "
                    "be the quote of the mail it answers rather than a forward.",
                ),
            )
        return Original(
            how=How.INLINE,
            grade=Grade.INLINE_SUMMARY,
            raw=raw,
            fields=block.fields,
            findings=findings,
            sha256=_sha(raw),
        )

    def _keep_attachment(self, part: Entity) -> None:
        if part.is_multipart:
            return
        data = decode_body(part, self.budget)
        if data is None:
            data = part.body
        self.attachments.append(
            Attachment(
                filename=part.filename,
                content_type=part.content_type,
                size=len(data),
                sha256=_sha(data),
            )
        )


def _fill(fields: KeyFields, m: msgfile.MsgMessage) -> KeyFields:
    """Key fields from the .msg properties where the transport headers had none."""
    name, address = msgfile.sender_address(m.sender)
    return KeyFields(
        message_id=fields.message_id or m.message_id,
        date=fields.date or m.date,
        from_=fields.from_ or (Address(name, address) if name or address else None),
        to=fields.to or parse_addresses(m.to),
        subject=fields.subject or m.subject,
    )


def _with_findings(
    o: Original, findings: tuple[Finding, ...], found_in: int | None = None, first: bool = False
) -> Original:
    return Original(
        how=o.how,
        grade=o.grade,
        raw=o.raw,
        fields=o.fields,
        findings=findings + o.findings if first else o.findings + findings,
        hops=o.hops,
        source=o.source,
        auth=o.auth,
        envelope_sender=o.envelope_sender,
        sha256=o.sha256,
        found_in=found_in if first else o.found_in,
        filename=o.filename,
        feedback=o.feedback,
    )


# Limits used again when a report nests deeper than Python's stack allows (raised limits).
_SHALLOW = {"max_mime_depth": 64, "max_forward_depth": 16}


def _within_stack(
    find: Callable[[bytes, Limits], tuple[ReportInfo, tuple[Original, ...]]],
    raw: bytes,
    limits: Limits,
) -> tuple[ReportInfo, tuple[Original, ...]]:
    """Run ``find``; nesting deeper than the interpreter's stack is read again shallower."""
    try:
        return find(raw, limits)
    except RecursionError:
        shallow = replace(
            limits,
            max_mime_depth=min(limits.max_mime_depth, _SHALLOW["max_mime_depth"]),
            max_forward_depth=min(limits.max_forward_depth, _SHALLOW["max_forward_depth"]),
        )
        report, originals = find(raw, shallow)
        note = Finding(
            "structure-too-deep",
            Severity.WARNING,
            "The report nests deeper than can be followed here; it was read again down to "
            f"{shallow.max_mime_depth} MIME levels and {shallow.max_forward_depth} forwards.",
        )
        return replace(report, findings=(note, *report.findings)), originals


def as_original(raw: bytes, limits: Limits) -> tuple[ReportInfo, tuple[Original, ...]]:
    """The file is the offending message itself (`stopitd analyze --original`)."""
    return _within_stack(_as_original, raw, limits)


def find_originals(raw: bytes, limits: Limits) -> tuple[ReportInfo, tuple[Original, ...]]:
    """Every original in the report, in document order (a forward before what it holds)."""
    return _within_stack(_find_originals, raw, limits)


def _as_original(raw: bytes, limits: Limits) -> tuple[ReportInfo, tuple[Original, ...]]:
    if raw.startswith(msgfile.OLE2_MAGIC):  # an Outlook .msg saved by staff or reporter
        budget = Budget(limits)
        finder = _Finder(limits, budget)
        read = msgfile.read_msg(raw, limits.max_forward_depth)
        if isinstance(read, str):
            budget.hit("msg-unreadable", f"The Outlook .msg file could not be read ({read}).")
            return report_info([], raw, budget.findings, []), ()
        finder._msg_original(read, "", None, 0, How.DIRECT)
        return report_info([], raw, budget.findings, []), tuple(finder.originals)
    root, budget = parse(raw, limits, lean=True)  # the parts matter for their findings only
    original = _full_original(root, How.DIRECT, None)
    # The report is the original (the same bytes): its key fields and digest were just taken.
    info = report_info(
        root.fields, raw, budget.findings, [], original.fields, original.sha256, root.first
    )
    return info, (original,)


def _find_originals(raw: bytes, limits: Limits) -> tuple[ReportInfo, tuple[Original, ...]]:
    root, budget = parse(raw, limits)
    finder = _Finder(limits, budget)
    finder.message(root, None, 0)
    findings = list(budget.findings)
    if any(f.key in _RESENT for f in root.fields):
        by = get(root.fields, "resent-from") or get(root.fields, "resent-sender") or "?"
        when = get(root.fields, "resent-date") or "?"
        if any(o.how in _CARRIED for o in finder.originals):
            # A report that was itself redirected to us (an alias, a colleague's redirect).
            findings.append(
                Finding(
                    "resent-report",
                    Severity.INFO,
                    f"The report was redirected to stopit (Resent-From {by}, Resent-Date "
                    f"{when}); the originals are the messages it carries.",
                )
            )
        else:
            note = Finding(
                "resent",
                Severity.INFO,
                f"Redirected (Resent-From {by}, Resent-Date {when}): the report is the "
                "original message itself.",
            )
            finder = _Finder(limits, budget)
            finder._full(root, How.RESENT, None, (note,))
            key = finder.originals[0].fields
            info = report_info(root.fields, raw, findings, [], key, first=root.first)
            return info, tuple(finder.originals)
    if not finder.originals:
        kept = len(finder.attachments)
        findings.append(
            Finding(
                "no-original",
                Severity.WARNING,
                "No forwarded original was found (no attached message, inline forward or "
                f"pasted headers); the report is kept as it is with {kept} attachment(s) "
                "as evidence.",
            )
        )
    info = report_info(root.fields, raw, findings, finder.attachments, first=root.first)
    return info, tuple(finder.originals)


__all__ = ["as_original", "find_originals"]
