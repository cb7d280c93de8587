"""Raw header block -> ordered fields. Never re-serialises: every field keeps its raw bytes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.header import decode_header, make_header

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(r"\r?\n[ \t]")


@dataclass(frozen=True, slots=True)
class HeaderField:
    name: str  # as written
    raw: bytes  # the whole field, name to end of its last line, line ends included
    value: str  # unfolded value (text after the colon), undecoded, stripped

    @property
    def key(self) -> str:
        return self.name.lower()


def split_message(raw: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line: (header block, body). No empty line: all header."""
    m = _BLANK_LINE.search(raw)
    if m is None:
        return raw, b""
    return raw[: m.start()] + raw[m.start() : m.end()].split(b"\n", 1)[0] + b"\n", raw[m.end() :]


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def parse_fields(block: bytes, max_fields: int | None = None) -> list[HeaderField]:
    """Ordered header fields of a header block. Lines before the first field and lines that
    are not `name: value` (nor continuations) are ignored; the caller decides if that is odd.
    """
    fields: list[HeaderField] = []
    lines = block.splitlines(keepends=True)
    start: int | None = None
    current: list[bytes] = []

    def flush() -> None:
        if not current:
            return
        raw = b"".join(current)
        name, _, value = raw.partition(b":")
        fields.append(
            HeaderField(
                name=_text(name).strip(),
                raw=raw,
                value=_FOLD.sub(" ", _text(value)).strip(),
            )
        )

    for line in lines:
        if line[:1] in (b" ", b"\t") and current:
            current.append(line)
            continue
        colon = line.find(b":")
        if colon > 0 and b" " not in line[:colon].strip(b" \t") and line[:1] not in (b" ", b"\t"):
            flush()
            current = [line]
            start = 0
            if max_fields is not None and len(fields) >= max_fields:
                current = []
                break
        else:
            flush()
            current = []
    flush()
    del start
    return fields


def get(fields: list[HeaderField], name: str) -> str | None:
    """The first field of that name's unfolded value, or None."""
    key = name.lower()
    for f in fields:
        if f.key == key:
            return f.value
    return None


def get_all(fields: list[HeaderField], name: str) -> list[HeaderField]:
    key = name.lower()
    return [f for f in fields if f.key == key]


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; leave undecodable text as written."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value
