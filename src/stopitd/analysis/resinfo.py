"""A small tokenizer for authentication result headers, for what authres cannot read.

authres (used first, see ``authres.py``) raises on Microsoft's ``Authentication-Results``
without an authserv-id, on ARC's ``i=N;`` prefix, on ``dmarc=pass(p=NONE ...)`` and drops
comments. This reads the same RFC 8601 grammar leniently: comments are kept per result,
quoted strings are honoured, ``key = value`` spacing is tolerated, and anything left over
is kept as written rather than guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_METHOD = re.compile(r"^([A-Za-z0-9_.-]+)(?:/\d+)?\s*=\s*(\S*)$")
_INSTANCE = re.compile(r"^\s*i\s*=\s*(\d+)\s*$", re.IGNORECASE)
_SPACED_EQUALS = re.compile(r"\s*=\s*")


class ResinfoError(ValueError):
    """The value does not follow the result-header grammar well enough to read."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One ``;``-separated piece of a header value: its text without comments, and them."""

    text: str
    comments: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ParsedResult:
    method: str
    result: str
    reason: str = ""
    properties: tuple[tuple[str, str], ...] = ()
    comment: str = ""


@dataclass(frozen=True, slots=True)
class ParsedHeader:
    authserv_id: str
    results: tuple[ParsedResult, ...]
    instance: int | None = None  # ARC-Authentication-Results i=
    version: str = ""


_FLAT_COMMENT = re.compile(r"\(([^()]*)\)")


def _flat_segments(value: str) -> list[Segment] | None:
    """``segments`` of a value without quotes, backslashes, nested or unclosed comments
    (what stamps look like), read with str methods; None for any other value."""
    if '"' in value or "\\" in value:
        return None
    out: list[Segment] = []
    text: list[str] = []
    comments: list[str] = []
    pos = 0
    for m in _FLAT_COMMENT.finditer(value):
        before = value[pos : m.start()]
        if "(" in before:
            return None
        first, *others = before.split(";")
        text.append(first)
        for piece in others:
            out.append(Segment(" ".join("".join(text).split()), tuple(comments)))
            text, comments = [piece], []
        comments.append(" ".join(m.group(1).split()))
        text.append(" ")
        pos = m.end()
    rest = value[pos:]
    if "(" in rest:
        return None
    first, *others = rest.split(";")
    text.append(first)
    for piece in others:
        out.append(Segment(" ".join("".join(text).split()), tuple(comments)))
        text, comments = [piece], []
    out.append(Segment(" ".join("".join(text).split()), tuple(comments)))
    return out


def segments(value: str) -> list[Segment]:
    """Split at top-level ``;`` and lift comments out (nested comments kept whole)."""
    flat = _flat_segments(value)
    if flat is not None:
        return flat
    return _segments(value)


def _segments(value: str) -> list[Segment]:
    """``segments``' general reader: one character at a time."""
    out: list[Segment] = []
    text: list[str] = []
    comments: list[str] = []
    comment: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for ch in value:
        if escaped:
            (comment if depth else text).append(ch)
            escaped = False
            continue
        if ch == "\\" and (quoted or depth):
            escaped = True
            if not depth:
                text.append(ch)
            continue
        if depth:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    comments.append(" ".join("".join(comment).split()))
                    comment = []
                    text.append(" ")
                    continue
            comment.append(ch)
            continue
        if quoted:
            text.append(ch)
            if ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
            text.append(ch)
        elif ch == "(":
            depth = 1
        elif ch == ";":
            out.append(Segment(" ".join("".join(text).split()), tuple(comments)))
            text, comments = [], []
        else:
            text.append(ch)
    if depth:
        comments.append(" ".join("".join(comment).split()))
    out.append(Segment(" ".join("".join(text).split()), tuple(comments)))
    return out


def tokens(text: str) -> list[str]:
    """Whitespace-separated tokens, ``a = b`` joined to ``a=b``, quoted strings kept whole."""
    joined = _SPACED_EQUALS.sub("=", text)
    if '"' not in joined:
        return joined.split()  # str.split splits where str.isspace says, as below
    return _quoted_tokens(joined)


def _quoted_tokens(text: str) -> list[str]:
    """The general reader: a character loop that keeps quoted strings whole."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
            current.append(ch)
        elif ch.isspace() and not quoted:
            if current:
                out.append("".join(current))
                current = []
        else:
            current.append(ch)
    if current:
        out.append("".join(current))
    return out


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _result(segment: Segment) -> ParsedResult:
    toks = tokens(segment.text)
    m = _METHOD.match(toks[0]) if toks else None
    if m is None:
        raise ResinfoError(f"expected method=result, got {segment.text!r}")
    reason = ""
    props: list[tuple[str, str]] = []
    for tok in toks[1:]:
        name, eq, val = tok.partition("=")
        if not eq:
            props.append(("", unquote(tok)))  # stray word, kept as written
        elif name.lower() == "reason":
            reason = unquote(val)
        else:
            props.append((name.lower(), unquote(val)))
    return ParsedResult(
        method=m.group(1).lower(),
        result=unquote(m.group(2)).lower(),
        reason=reason,
        properties=tuple(props),
        comment="; ".join(segment.comments),
    )


def parse_results_header(value: str, *, arc: bool = False) -> ParsedHeader:
    """Authentication-Results / ARC-Authentication-Results value -> ParsedHeader.

    The authserv-id is missing when the first piece already reads ``method=result``
    (Microsoft writes it so); it is then "".
    """
    segs = segments(value)
    instance: int | None = None
    if arc or (segs and _INSTANCE.match(segs[0].text)):
        im = _INSTANCE.match(segs[0].text) if segs else None
        if im is None:
            raise ResinfoError("ARC-Authentication-Results without i=")
        instance = int(im.group(1))
        segs = segs[1:]
    if not segs:
        raise ResinfoError("empty header")
    head = tokens(segs[0].text)
    authserv_id = ""
    version = ""
    rest = segs
    if head and "=" not in head[0]:
        authserv_id = unquote(head[0]).lower()
        if len(head) > 1 and head[1].isdigit():
            version = head[1]
        rest = segs[1:]
    results = []
    for seg in rest:
        if not seg.text:
            continue  # a trailing ";"
        if seg.text.lower() == "none":
            continue
        results.append(_result(seg))
    return ParsedHeader(authserv_id, tuple(results), instance, version)


@dataclass(frozen=True, slots=True)
class ReceivedSpf:
    result: str
    comment: str
    pairs: tuple[tuple[str, str], ...]

    @property
    def receiver(self) -> str:
        """The receiver= value, else the host that starts the comment (``google.com: ...``)."""
        for key, val in self.pairs:
            if key == "receiver" and val and not val.startswith("<"):
                return val.lower()
        m = re.match(r"^([A-Za-z0-9.-]+\.[A-Za-z]{2,}):", self.comment)
        return m.group(1).lower() if m else ""


def parse_received_spf(value: str) -> ReceivedSpf:
    """Received-SPF (RFC 7208 §9.1): ``result (comment) key=value; key=value``."""
    segs = segments(value)
    first = tokens(segs[0].text) if segs else []
    if not first:
        raise ResinfoError("no SPF result")
    result = first[0].lower()
    if "=" in result:
        raise ResinfoError(f"expected an SPF result, got {first[0]!r}")
    pairs: list[tuple[str, str]] = []
    for tok in first[1:] + [t for s in segs[1:] for t in tokens(s.text)]:
        name, eq, val = tok.partition("=")
        if eq:
            pairs.append((name.lower(), unquote(val)))
    comment = "; ".join(c for s in segs for c in s.comments)
    return ReceivedSpf(result, comment, tuple(pairs))


def parse_forefront(value: str) -> tuple[tuple[str, str], ...]:
    """X-Forefront-Antispam-Report: ``CIP:1.2.3.4;CTRY:US;...;SFV:NSPM;`` -> pairs."""
    out: list[tuple[str, str]] = []
    for part in value.split(";"):
        name, colon, val = part.strip().partition(":")
        if colon and name.strip():
            out.append((name.strip().upper(), val.strip()))
    return tuple(out)
