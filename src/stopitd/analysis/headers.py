"""Raw header block -> ordered fields. Never re-serialises: every field keeps its raw bytes."""

from __future__ import annotations

import re
from email.errors import MessageError
from email.header import decode_header, make_header
from typing import NamedTuple

_FOLD = re.compile(r"\r?\n[ \t]")
# A field name as real mail writes it (RFC 5322 allows more, but `h=From:To` inside a
# re-wrapped DKIM-Signature must not read as a field).
_NAME = re.compile(rb"[A-Za-z0-9][A-Za-z0-9_.-]*[ \t]*:")


class HeaderField(NamedTuple):
    """One header field. A NamedTuple (immutable like the frozen dataclasses, and made
    several times faster: every message has dozens); build it with ``header_field``."""

    name: str  # as written
    raw: bytes  # the whole field, name to end of its last line, line ends included
    value: str  # unfolded value (text after the colon), undecoded, stripped
    key: str  # the lower-case name, computed once: every lookup compares it

    @property
    def decoded(self) -> str:
        """The value with RFC 2047 encoded words decoded."""
        return decode_words(self.value)


def header_field(name: str, raw: bytes, value: str) -> HeaderField:
    return HeaderField(name, raw, value, name.lower())


class HeaderBlock(NamedTuple):
    """A parsed header block and what was odd about it (codes only; callers word them).
    A NamedTuple, like ``HeaderField``: built for every header block read."""

    fields: list[HeaderField]
    junk_lines: int = 0  # lines that were neither a field nor a continuation
    truncated_fields: bool = False  # more fields than the limit allowed
    truncated_length: bool = False  # block longer than the limit allowed


def header_end(raw: bytes, start: int = 0) -> tuple[int, int]:
    """(end of the header block, start of the body) from ``start``.

    The block ends at the first empty line; the body starts after it. A message that
    starts with an empty line has an empty header block. No empty line: all header.
    """
    if raw.startswith(b"\r\n", start):
        return start, start + 2
    if raw.startswith(b"\n", start):
        return start, start + 1
    pos = start
    n = len(raw)
    while pos < n:
        nl = raw.find(b"\n", pos)
        if nl < 0:
            return n, n
        nxt = nl + 1
        if raw.startswith(b"\r\n", nxt):
            return nxt, nxt + 2
        if raw.startswith(b"\n", nxt):
            return nxt, nxt + 1
        pos = nxt
    return n, n


def split_message(raw: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line: (header block, body). No empty line: all header."""
    end, body = header_end(raw)
    return raw[:end], raw[body:]


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def field_value(after_colon: bytes) -> str:
    """A field's value from its bytes after the colon: decoded, unfolded, stripped (what
    ``parse_block`` gives)."""
    text = _text(after_colon)
    return (_FOLD.sub(" ", text) if "\n" in text else text).strip()


def parse_block(
    block: bytes, max_fields: int | None = None, max_length: int | None = None
) -> HeaderBlock:
    """Ordered header fields of a header block, with counts of what did not fit.

    A leading mbox ``From `` line and lines that are neither ``name: value`` nor
    continuations are skipped (and counted).
    """
    return parse_block_first(block, max_fields, max_length)[0]


def parse_block_first(
    block: bytes, max_fields: int | None = None, max_length: int | None = None
) -> tuple[HeaderBlock, dict[str, str]]:
    """``parse_block`` and the ``first_values`` of its fields (for the usual block, read in
    the same pass)."""
    truncated_length = False
    if max_length is not None and len(block) > max_length:
        cut = block.rfind(b"\n", 0, max_length)
        block = block[: cut + 1] if cut >= 0 else block[:max_length]
        truncated_length = True
    regular = _regular_fields(block)
    if regular is not None and (max_fields is None or len(regular[0]) <= max_fields):
        return HeaderBlock(regular[0], 0, False, truncated_length), regular[1]
    fields, junk, truncated = _read_lines(block, max_fields)
    return HeaderBlock(fields, junk, truncated, truncated_length), first_values(fields)


# A regular block, one match per field (groups: the whole field, its name, its value
# without the line end): a name, a colon right after it, the rest of the line, its
# continuation lines (those that start with a blank), its line end. Any other line (junk,
# an empty line, a blank before the colon) is one match of group 4. ``.`` stops only at
# LF, so a block with a lone CR (a line end to ``splitlines``) is not read here.
_REGULAR_FIELD = re.compile(
    r"(([A-Za-z0-9][A-Za-z0-9_.-]*):(.*(?:\n[ \t].*)*)(?:\n|\Z))|(.+\n?|\n)"
)
_new_tuple = tuple.__new__  # builds a HeaderField in C (its __new__ is Python code)
_LONE_CR = re.compile(rb"\r(?!\n)")


def _regular_fields(block: bytes) -> tuple[list[HeaderField], dict[str, str]] | None:
    """The fields of a block that is nothing but fields (no junk, no lone CR, no empty
    line, no blank before a colon), found by one regex in C, and their ``first_values``;
    None for any other block (``_read_lines`` reads those).

    For such a block this is what ``_read_lines`` gives. The block is read as UTF-8 with
    its other bytes as surrogate escapes: encoding a match gives back its raw bytes, and a
    field whose text has escapes (not UTF-8: field boundaries are ASCII) has its value
    read as Latin-1, as ``_read_lines`` reads it.
    """
    if _LONE_CR.search(block) is not None:
        return None
    text = block.decode("utf-8", "surrogateescape")
    fields: list[HeaderField] = []
    first: dict[str, str] = {}
    append = fields.append
    for whole, name, value, other in _REGULAR_FIELD.findall(text):
        if other:
            return None
        try:
            raw = whole.encode()
        except UnicodeEncodeError:  # escapes: in the value (a name is ASCII)
            raw = whole.encode("utf-8", "surrogateescape")
            value = value.encode("utf-8", "surrogateescape").decode("latin-1")
        if "\n" in value:  # folded
            # ``_FOLD.sub`` by plain replaces (a regex scan of a long DKIM value costs
            # several times more): here every CR is before a LF and every LF before a
            # blank, so without tabs unfolding only drops the CRs and LFs.
            if "\t" in value:
                value = value.replace("\r\n", "\n").replace("\n ", " ").replace("\n\t", " ")
            else:
                value = value.replace("\r\n", "").replace("\n", "")
        value = value.strip()
        key = name.lower()
        if key not in first:
            first[key] = value
        append(_new_tuple(HeaderField, (name, raw, value, key)))
    return fields, first


def _read_lines(
    block: bytes, max_fields: int | None
) -> tuple[list[HeaderField], int, bool]:
    """``parse_block``'s general reader, line by line: (fields, junk lines, truncated)."""
    fields: list[HeaderField] = []
    current: list[bytes] = []  # the lines of the field being read
    colon = 0  # where its name ends (the name matched ``_NAME``: ASCII, colon after it)
    junk = 0
    truncated = False
    append = fields.append
    match = _NAME.match

    for n, line in enumerate(block.splitlines(keepends=True)):
        first = line[:1]
        if first == b" " or first == b"\t":
            if current:
                current.append(line)
            elif line.strip():
                junk += 1
            continue
        m = match(line)
        if current:  # flush: the field read so far is complete
            if len(current) == 1:  # a single line has no fold to undo
                raw = current[0]
                value = _text(raw[colon + 1 :]).strip()
            else:
                raw = b"".join(current)
                value = _FOLD.sub(" ", _text(raw[colon + 1 :])).strip()
            name = raw[:colon].decode("ascii").strip()
            append(HeaderField(name, raw, value, name.lower()))
            current = []
        if m is not None:
            if max_fields is not None and len(fields) >= max_fields:
                truncated = True
                break
            current = [line]
            colon = m.end() - 1
            continue
        if not (n == 0 and line.startswith(b"From ")) and line.strip():
            junk += 1
    if current:
        raw = b"".join(current)
        value = _text(raw[colon + 1 :])
        if len(current) > 1:
            value = _FOLD.sub(" ", value)
        append(header_field(raw[:colon].decode("ascii").strip(), raw, value.strip()))
    return fields, junk, truncated


def parse_fields(block: bytes, max_fields: int | None = None) -> list[HeaderField]:
    """Ordered header fields of a header block (see ``parse_block``)."""
    return parse_block(block, max_fields).fields


def get(fields: list[HeaderField], name: str) -> str | None:
    """The first field of that name's unfolded value, or None."""
    key = name.lower()
    for f in fields:
        if f.key == key:
            return f.value
    return None


def first_values(fields: list[HeaderField]) -> dict[str, str]:
    """Each lower-case name's first value (what ``get`` gives): one pass over the fields
    for a caller that asks for many names (each ``get`` is a pass of its own)."""
    return {f.key: f.value for f in reversed(fields)}


def get_all(fields: list[HeaderField], name: str) -> list[HeaderField]:
    key = name.lower()
    return [f for f in fields if f.key == key]


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; leave undecodable text as written."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError, AssertionError, MessageError):
        return value
