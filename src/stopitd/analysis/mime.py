"""A single-pass MIME walker over raw bytes that keeps offsets, never re-serialises.

``parse(raw, limits)`` returns the message as a tree of ``Entity`` objects. Every entity
knows the buffer and the offsets of its header block and body, so the bytes of an
attached message are a slice of the report (or, for a base64/QP-encoded message/rfc822
part, of the decoded part). Boundary lines are found with one scan over the buffer and a
cursor that only moves forward, so deep nesting and many parts cost linear time.
Hostile structure (depth, part count, sizes, bad encodings) becomes findings.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field
from email.message import Message

from stopitd.analysis.headers import (
    HeaderField,
    decode_words,
    field_value,
    first_values,
    parse_block,
    parse_block_first,
)
from stopitd.analysis.model import Finding, Severity
from stopitd.analysis.policy import Limits

_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
_IDENTITY = ("", "7bit", "8bit", "binary")  # transfer encodings that leave a body as it is
# Up to this many open boundaries each is searched for on its own; beyond it (only with
# raised depth limits) checking each "--" line costs less.
_ALTERNATION_MAX = 16
_ANY_DASH_LINE = re.compile(rb"^--([^\r\n]*)", re.M)
# A line end, then an empty line or a line starting with "--".
_BLANK_OR_DASHES = re.compile(rb"\n(?:\r?\n|--)")


@dataclass(slots=True)
class Entity:
    """One MIME entity: a message or a body part."""

    buf: bytes
    start: int  # first byte of the header block
    body_start: int
    end: int  # one past the last byte (the CRLF before a delimiter is not ours)
    fields: list[HeaderField]
    first: dict[str, str]  # ``first_values(fields)``: each name's first value
    content_type: str  # lower-case type/subtype; text/plain when absent
    params: dict[str, str]
    cte: str  # lower-case Content-Transfer-Encoding, "" when absent
    disposition: str  # lower-case, "" when absent
    filename: str
    depth: int
    children: list[Entity] = field(default_factory=list)
    encoded_message: bool = False  # a message/rfc822 whose body was base64/QP-decoded
    junk_lines: int = 0  # header lines that were neither fields nor continuations
    # ``fields`` are exactly what parsing ``raw``'s header block alone gives: it ended at
    # an empty line (or is all of ``raw``), nothing was cut for length.
    fields_exact: bool = False

    @property
    def raw(self) -> bytes:
        return self.buf[self.start : self.end]

    @property
    def body(self) -> bytes:
        return self.buf[self.body_start : self.end]

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    @property
    def is_message(self) -> bool:
        return self.content_type in _MESSAGE_TYPES


@dataclass(slots=True)
class Budget:
    """What is left of the limits while walking one report (shared by nested buffers)."""

    limits: Limits
    parts: int = 0
    decoded: int = 0
    findings: list[Finding] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)

    def hit(self, code: str, text: str, severity: Severity = Severity.WARNING) -> None:
        if code not in self._seen:  # one finding per kind of hit is enough for staff
            self._seen.add(code)
            self.findings.append(Finding(code, severity, text))

    def allow_decode(self, size: int) -> bool:
        if size > self.limits.max_part_size:
            self.hit(
                "part-too-large",
                f"A part of {size} bytes is over the {self.limits.max_part_size}-byte limit; "
                "it was kept but not decoded.",
            )
            return False
        if self.decoded + size > self.limits.max_total_decoded:
            self.hit(
                "decode-budget-exceeded",
                f"Decoding stopped at {self.limits.max_total_decoded} bytes in total; later "
                "encoded parts were kept but not decoded.",
            )
            return False
        self.decoded += size
        return True


# A quoted value is ``"(?:[^"\\]|\\.)*"`` unrolled: the same strings, several times
# faster to match (no branch per character).
_PARAM = re.compile(r';\s*([^\s=;"]+)\s*=\s*("[^"\\]*(?:\\.[^"\\]*)*"|[^;]*)')
_TYPE = re.compile(r"\s*([^\s;/]+)\s*/\s*([^\s;]+)")


def _plain_type(value: str) -> re.Match[str] | None:
    """The type/subtype match of a value without RFC 2231/2047 parameters; None for any
    other value (the stdlib reads those)."""
    if "*" in value or "=?" in value:
        return None
    return _TYPE.match(value)


def _plain_params(value: str) -> tuple[str, dict[str, str]] | None:
    """The common case without RFC 2231/2047 parameters, read without the stdlib's cost."""
    m = _plain_type(value)
    if m is None:
        return None
    params: dict[str, str] = {}
    for key, raw in _PARAM.findall(value, m.end()):
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = raw[1:-1]
            if "\\" in raw:
                raw = re.sub(r"\\(.)", r"\1", raw)
        params.setdefault(key.lower(), raw)
    return "/".join(m.groups()).lower(), params


def content_params(fields: list[HeaderField]) -> tuple[str, dict[str, str], str, str]:
    """(content type, its parameters, disposition, filename) as the stdlib reads them."""
    return content_params_of(first_values(fields))


def content_params_of(first: dict[str, str]) -> tuple[str, dict[str, str], str, str]:
    """``content_params`` from the fields' ``first_values``."""
    ctype_value = first.get("content-type")
    disp_value = first.get("content-disposition")
    fast_type = _plain_params(ctype_value) if ctype_value else ("text/plain", {})
    fast_disp = _plain_params("x/" + disp_value) if disp_value else ("x/", {})
    if fast_type is not None and fast_disp is not None:
        ctype, params = fast_type
        disposition = fast_disp[0][2:] if disp_value else ""
        filename = fast_disp[1].get("filename") or params.get("name", "")
        return ctype, params, disposition, decode_words(filename) if filename else ""
    return _stdlib_params(ctype_value, disp_value)


def _walk_type(first: dict[str, str]) -> tuple[str, str]:
    """(content type, boundary; "" when none) as ``content_params_of`` reads them, without
    the work that cannot change them: the parameters of a type that is not a multipart,
    the disposition's parameters and its filename. (A type or disposition that is not
    plain sends both to the stdlib, which may read the type otherwise.)"""
    ctype_value = first.get("content-type")
    disp_value = first.get("content-disposition")
    if not disp_value or _plain_type("x/" + disp_value) is not None:
        if not ctype_value:
            return "text/plain", ""
        m = _plain_type(ctype_value)
        if m is not None:
            ctype = "/".join(m.groups()).lower()
            if not ctype.startswith("multipart/"):
                return ctype, ""
    ctype, params, _, _ = content_params_of(first)
    return ctype, params.get("boundary", "")


def _stdlib_params(
    ctype_value: str | None, disp_value: str | None
) -> tuple[str, dict[str, str], str, str]:
    """RFC 2231 continuations and charsets, as the stdlib reads them."""
    holder = Message()
    try:
        if ctype_value is not None:
            holder["Content-Type"] = ctype_value
        if disp_value is not None:
            holder["Content-Disposition"] = disp_value
        ctype = holder.get_content_type() if ctype_value else "text/plain"
        params: dict[str, str] = {}
        for key, value in holder.get_params(header="content-type", failobj=[])[1:]:
            params[key.lower()] = _param_text(value)
        disposition = (holder.get_content_disposition() or "") if disp_value else ""
        filename = holder.get_filename() or ""
        if not filename and "name" in params:
            filename = params["name"]
    except Exception:  # a header value the stdlib chokes on: read it as untyped text
        return "text/plain", {}, "", ""
    return ctype.lower(), params, disposition.lower(), decode_words(str(filename))


def _param_text(value: object) -> str:
    if isinstance(value, tuple):  # RFC 2231 (charset, language, value)
        charset, _, text = value
        try:
            return str(text).encode("latin-1", "replace").decode(charset or "utf-8", "replace")
        except LookupError:
            return str(text)
    return str(value)


def decode_body(entity: Entity, budget: Budget) -> bytes | None:
    """The body with its Content-Transfer-Encoding undone, or None when over a limit."""
    return _decoded(entity.buf, entity.body_start, entity.end, entity.cte, budget)


def _decoded(buf: bytes, start: int, end: int, cte: str, budget: Budget) -> bytes | None:
    """``decode_body`` of the body ``buf[start:end]``."""
    if cte not in ("base64", "quoted-printable"):
        return buf[start:end]
    # decoded from the buffer in place: a slice would copy the encoded body first (25 MB
    # more at the worker's peak for a report at the size limit)
    body = memoryview(buf)[start:end]
    if not budget.allow_decode(len(body)):
        return None
    if cte == "quoted-printable":
        return binascii.a2b_qp(body)
    try:
        return binascii.a2b_base64(body)
    except binascii.Error:
        budget.hit(
            "bad-base64",
            "A base64 part was damaged (bad padding); the readable part was decoded.",
        )
        clean = re.sub(rb"[^A-Za-z0-9+/]", b"", bytes(body))
        clean = clean[: len(clean) - len(clean) % 4]
        try:
            return binascii.a2b_base64(clean)
        except binascii.Error:
            return b""


# A Content-* field that steers the walk (groups: name, value after the colon), matched
# at a line start of a block without lone CRs: its line and continuation lines.
_STEERING_FIELD = re.compile(
    rb"(content-(?:type|disposition|transfer-encoding))[ \t]*:(.*(?:\n[ \t].*)*)\n?", re.I
)
_LONE_CR = re.compile(rb"\r(?!\n)")
# The three names differ in length: a match's name length tells which it is.
_STEERING_KEYS = {
    len(key): key for key in ("content-type", "content-disposition", "content-transfer-encoding")
}


def steering_values(block: bytes, limits: Limits) -> tuple[dict[str, str], bool, bool]:
    """The first values of the fields of a part's header block that steer the walk (what
    ``first_values`` of ``parse_block``'s fields gives for them; all first values when
    that reader is used), and its limit flags (too many fields, cut for length): the lean
    walk's reader (it skips the other fields, which cost most in an attached message's
    header block).

    Only in a block that cannot be cut and has no lone CR (``splitlines`` ends a line
    there): then every line that starts with ``content-type:`` (any case, blanks before
    the colon) starts a field, continued by the lines that start with a blank.
    """
    if (
        len(block) > limits.max_header_length
        or (len(block) >= limits.max_headers and block.count(b"\n") >= limits.max_headers)
        or _LONE_CR.search(block) is not None
    ):
        head = parse_block(block, limits.max_headers, limits.max_header_length)
        return first_values(head.fields), head.truncated_fields, head.truncated_length
    low = b"\n" + block.lower()  # a LF before every line start: low[i + 1] is block[i]
    first: dict[str, str] = {}
    nl = low.find(b"\ncontent-")
    while nl >= 0:
        m = _STEERING_FIELD.match(block, nl)
        if m is not None:
            key = _STEERING_KEYS[m.end(1) - nl]
            if key not in first:
                first[key] = field_value(m.group(2))
        nl = low.find(b"\ncontent-", nl + 1)
    return first, False, False


# A delimiter line: (line start, line end, boundary, is close).
_Term = tuple[int, int, bytes, bool]


class _Walker:
    """One buffer's walk: the open multipart boundaries and how to find their lines."""

    def __init__(self, buf: bytes, budget: Budget, lean: bool = False) -> None:
        self.buf = buf
        self.budget = budget
        self.lean = lean  # parts below the top: walked for their findings only (see parse)
        self.active: dict[bytes, int] = {}  # boundary -> how many open multiparts use it
        # boundary -> (searched from, its next delimiter line from there): each boundary's
        # lines are found once, however many parts ask
        self._next: dict[bytes, tuple[int, _Term | None]] = {}

    def _set_active(self, boundary: bytes, change: int) -> None:
        count = self.active.get(boundary, 0) + change
        if count > 0:
            self.active[boundary] = count
        else:
            self.active.pop(boundary, None)

    def _match(self, text: bytes) -> tuple[bytes, bool] | None:
        """Is this line (after its ``--``) a delimiter of an open multipart?"""
        text = text.rstrip(b" \t\r")
        if text in self.active:
            return text, False
        if text.endswith(b"--") and text[:-2] in self.active:
            return text[:-2], True
        return None

    def next_delimiter(self, pos: int) -> _Term | None:
        """(line start, line end, boundary, is close) of the next open delimiter line.

        A delimiter line is ``--boundary``, maybe ``--``, blanks, maybe CR, then the line
        end (what ``^--(b)(--)?[ \t]*\r?$`` finds with re.M; where two boundaries match one
        line, the longer wins). Each boundary is searched with ``bytes.find``, in C: no
        pattern is compiled per message (a boundary is new in every message, and compiling
        costs more than reading a whole small message).
        """
        if not self.active:
            return None
        if len(self.active) > _ALTERNATION_MAX:  # deep nesting: check each "--" line
            for m in _ANY_DASH_LINE.finditer(self.buf, pos):
                found = self._match(m.group(1))
                if found is not None:
                    return m.start(), m.end(), found[0], found[1]
            return None
        best: _Term | None = None
        for boundary in self.active:
            hit = self._next_line_of(boundary, pos)
            if hit is not None and (
                best is None
                or hit[0] < best[0]
                or (hit[0] == best[0] and len(hit[2]) > len(best[2]))
            ):
                best = hit
        return best

    def _next_line_of(self, boundary: bytes, pos: int) -> _Term | None:
        known = self._next.get(boundary)
        if known is not None and known[0] <= pos and (known[1] is None or known[1][0] >= pos):
            return known[1]
        buf = self.buf
        n = len(buf)
        needle = b"--" + boundary
        line_needle = b"\n" + needle  # only line starts: text that merely holds it is skipped
        found: _Term | None = None
        if pos == 0 and buf.startswith(needle):
            i = 0
        else:
            j = buf.find(line_needle, pos - 1 if pos > 0 else 0)
            i = j + 1 if j >= 0 else -1
        while i >= 0:
            k = i + len(needle)
            close = buf.startswith(b"--", k)
            if close:
                k += 2
            while k < n and buf[k] in (0x20, 0x09):
                k += 1
            if k < n and buf[k] == 0x0D:
                k += 1
            if k == n or buf[k] == 0x0A:
                found = (i, k, boundary, close)
                break
            j = buf.find(line_needle, i)
            i = j + 1 if j >= 0 else -1
        self._next[boundary] = (pos, found)
        return found

    def end_before(self, line_start: int, floor: int) -> int:
        """The end of a part's content: the CRLF before a delimiter belongs to it."""
        end = line_start
        if end > floor and self.buf[end - 1 : end] == b"\n":
            end -= 1
            if end > floor and self.buf[end - 1 : end] == b"\r":
                end -= 1
        return end

    def header_block_end(self, pos: int) -> tuple[int, int]:
        """Header end and body start. A delimiter line of an open multipart ends the block
        (a part without an empty line); so does the length limit (the rest is body)."""
        buf = self.buf
        limit = pos + self.budget.limits.max_header_length
        if not buf.startswith((b"\n", b"\r\n", b"--"), pos):
            # The usual block: an empty line within the limit and no "--" line before it,
            # found in C (the search stops at the first of either, so many parts cost
            # linear time). Anything else takes the line loop below.
            stop = _BLANK_OR_DASHES.search(buf, pos, limit + 2)
            if stop is not None:
                start, end = stop.span()
                if start < limit and buf[start + 1] != 0x2D:  # not a "--" line
                    return start + 1, end
        return self._header_lines_end(pos, limit)

    def _header_lines_end(self, pos: int, limit: int) -> tuple[int, int]:
        """``header_block_end``'s general reader: line by line."""
        buf = self.buf
        n = len(buf)
        p = pos
        while p < n:
            if buf.startswith(b"\r\n", p):
                return p, p + 2
            if buf.startswith(b"\n", p):
                return p, p + 1
            nl = buf.find(b"\n", p)
            if self.active and buf.startswith(b"--", p):
                text = buf[p + 2 : n if nl < 0 else nl]
                if self._match(text) is not None:
                    return p, p
            if nl < 0 or nl + 1 > limit:
                end = n if nl < 0 else nl + 1
                return end, end
            p = nl + 1
        return n, n

    # The walk recurses entity -> (_multipart ->) entity, as few frames a level as can be:
    # a report nested deeper than Python's stack is read again shallower (forwarded).

    def entity(self, pos: int, depth: int) -> tuple[Entity, _Term | None]:
        """Parse the entity at ``pos``; returns it and the delimiter that ended it."""
        hend, bstart = self.header_block_end(pos)
        limits = self.budget.limits
        block, first = parse_block_first(
            self.buf[pos:hend], limits.max_headers, limits.max_header_length
        )
        if block.truncated_fields or block.truncated_length:
            self._header_hits(block.truncated_fields, block.truncated_length)
        ctype, params, disp, filename = content_params_of(first)
        cte = (first.get("content-transfer-encoding") or "").strip().lower()
        ent = Entity(
            buf=self.buf,
            start=pos,
            body_start=bstart,
            end=len(self.buf),
            fields=block.fields,
            first=first,
            content_type=ctype,
            params=params,
            cte=cte,
            disposition=disp,
            filename=filename,
            depth=depth,
            junk_lines=block.junk_lines,
            # a header block that ends at an empty line, or the whole buffer (a message
            # without a body: split_message reads all of it as header too)
            fields_exact=(bstart > hend or (pos == 0 and hend == len(self.buf)))
            and not block.truncated_length,
        )
        children = None if self.lean else ent.children  # None: parts for findings only
        self.budget.parts += 1
        is_multipart = ctype.startswith("multipart/")  # ent.is_multipart, without a call
        is_message = ctype in _MESSAGE_TYPES
        too_deep = depth >= limits.max_mime_depth
        if too_deep and (is_multipart or is_message):
            self._too_deep_hit()
        if self.budget.parts > limits.max_parts:
            self._too_many_parts_hit()
            too_deep = True
        if not too_deep and is_multipart and params.get("boundary"):
            term = self._multipart(children, bstart, params["boundary"], depth)
        elif not too_deep and is_message and cte in _IDENTITY:
            if children is None:
                term = self._lean_part(bstart, depth + 1)
            else:
                child, term = self.entity(bstart, depth + 1)
                children.append(child)
        else:
            term = self.next_delimiter(bstart)
            if not too_deep and is_message:
                ent.encoded_message = self._encoded_message(children, bstart, cte, term, depth)
        if term is not None:
            ent.end = self.end_before(term[0], bstart)
        return ent, term

    def _lean_part(self, pos: int, depth: int) -> _Term | None:
        """``entity`` for a part below the top of a lean walk: the same walk and findings,
        but nothing is kept; returns the delimiter that ended it."""
        hend, bstart = self.header_block_end(pos)
        limits = self.budget.limits
        block = self.buf[pos:hend]
        low = block.lower()
        if (
            b"multipart" not in low
            and b"message" not in low
            and len(block) < limits.max_headers  # (so fewer fields than that)
            and len(block) <= limits.max_header_length
        ):
            # A leaf within the limits: whatever its fields say, its type (read plainly
            # or by the stdlib) is neither multipart/* nor message/*, so only its count
            # and its end matter.
            self.budget.parts += 1
            if self.budget.parts > limits.max_parts:
                self._too_many_parts_hit()
            return self.next_delimiter(bstart)
        first, too_many, too_long = steering_values(block, limits)
        if too_many or too_long:
            self._header_hits(too_many, too_long)
        ctype, boundary = _walk_type(first)
        cte = (first.get("content-transfer-encoding") or "").strip().lower()
        self.budget.parts += 1
        is_multipart = ctype.startswith("multipart/")
        is_message = ctype in _MESSAGE_TYPES
        too_deep = depth >= limits.max_mime_depth
        if too_deep and (is_multipart or is_message):
            self._too_deep_hit()
        if self.budget.parts > limits.max_parts:
            self._too_many_parts_hit()
            too_deep = True
        if not too_deep and is_multipart and boundary:
            return self._multipart(None, bstart, boundary, depth)
        if not too_deep and is_message and cte in _IDENTITY:
            return self._lean_part(bstart, depth + 1)
        term = self.next_delimiter(bstart)
        if not too_deep and is_message:
            self._encoded_message(None, bstart, cte, term, depth)
        return term

    def _header_hits(self, too_many: bool, too_long: bool) -> None:
        limits = self.budget.limits
        if too_many:
            self.budget.hit(
                "too-many-headers",
                f"A header block has more than {limits.max_headers} fields; the rest were "
                "not read.",
            )
        if too_long:
            self.budget.hit(
                "header-too-long",
                f"A header block is longer than {limits.max_header_length} bytes; the rest "
                "was not read.",
            )

    def _too_deep_hit(self) -> None:
        self.budget.hit(
            "mime-too-deep",
            f"MIME nesting deeper than {self.budget.limits.max_mime_depth} levels was not "
            "followed.",
        )

    def _too_many_parts_hit(self) -> None:
        self.budget.hit(
            "too-many-parts",
            f"The report has more than {self.budget.limits.max_parts} MIME parts; the rest "
            "were kept but not looked into.",
        )

    def _encoded_message(
        self, children: list[Entity] | None, bstart: int, cte: str, term: _Term | None, depth: int
    ) -> bool:
        """A base64/QP-encoded message/rfc822 body, decoded and walked into ``children``
        (None: for its findings only); False when it was not decoded (over a limit)."""
        end = len(self.buf) if term is None else self.end_before(term[0], bstart)
        decoded = _decoded(self.buf, bstart, end, cte, self.budget)
        if decoded is None:
            return False
        if children is None:
            _Walker(decoded, self.budget, True)._lean_part(0, depth + 1)
        else:
            children.append(parse_buffer(decoded, self.budget, depth + 1))
        return True

    def _multipart(
        self, children: list[Entity] | None, body_start: int, boundary: str, depth: int
    ) -> _Term | None:
        """Walk a multipart's parts into ``children`` (None: for their findings only)."""
        delimiter = boundary.encode("utf-8", "replace")
        self._set_active(delimiter, +1)
        try:
            term = self.next_delimiter(body_start)  # the end of the preamble
            while term is not None and term[2] == delimiter and not term[3]:
                start = term[1] + _eol_len(self.buf, term[1])
                if self.budget.parts >= self.budget.limits.max_parts:
                    self._too_many_parts_hit()
                    term = self.next_delimiter(start)
                elif children is None:
                    term = self._lean_part(start, depth + 1)
                else:
                    child, term = self.entity(start, depth + 1)
                    children.append(child)
            if term is None or term[2] != delimiter:
                self.budget.hit(
                    "mime-unterminated",
                    "A multipart has no closing delimiter; its parts were read to the end "
                    "of what was there.",
                    Severity.INFO,
                )
                return term
            after = term[1] + _eol_len(self.buf, term[1])  # the epilogue follows
        finally:
            self._set_active(delimiter, -1)
        return self.next_delimiter(after)


def _eol_len(buf: bytes, pos: int) -> int:
    if buf.startswith(b"\r\n", pos):
        return 2
    if buf.startswith(b"\n", pos):
        return 1
    return 0


def parse_buffer(buf: bytes, budget: Budget, depth: int = 0, lean: bool = False) -> Entity:
    """Parse one whole buffer as a message entity."""
    walker = _Walker(buf, budget, lean)
    ent, _ = walker.entity(0, depth)
    ent.end = len(buf)
    return ent


def parse(raw: bytes, limits: Limits, lean: bool = False) -> tuple[Entity, Budget]:
    """The message tree of ``raw`` and the budget (with its findings) used to walk it.

    ``lean``: only the top is wanted; the parts below are walked for the findings alone,
    reading only the fields that steer the walk, and are not kept (the top has no
    children).
    """
    budget = Budget(limits)
    return parse_buffer(raw, budget, 0, lean), budget


def walk(entity: Entity) -> list[Entity]:
    """Every entity below ``entity`` (itself first) in document order, not into messages."""
    out: list[Entity] = []
    stack = [entity]
    while stack:
        ent = stack.pop()
        out.append(ent)
        if not ent.is_message:
            stack.extend(reversed(ent.children))
    return out
