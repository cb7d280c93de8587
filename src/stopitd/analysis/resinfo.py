"""A small tokenizer for authentication result headers, for what authres cannot read.

authres (used first, see ``authres.py``) raises on Microsoft's ``Authentication-Results``
without an authserv-id, on ARC's ``i=N;`` prefix, on ``dmarc=pass(p=NONE ...)`` and drops
comments. This reads the same RFC 8601 grammar leniently: comments are kept per result,
quoted strings are honoured, ``key = value`` spacing is tolerated, and anything left over
is kept as written rather than guessed at.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_METHOD = re.compile(r"^([A-Za-z0-9_.-]+)(?:/\d+)?\s*=\s*(\S*)$")
_INSTANCE = re.compile(r"^\s*i\s*=\s*(\d+)\s*$", re.IGNORECASE)
_SPACED_EQUALS = re.compile(r"\s*=\s*")


class ResinfoError(ValueError):
    """The value does not follow the result-header grammar well enough to read."""


# The readers' results are NamedTuples: immutable like frozen dataclasses, and several times
# cheaper to build (a few are built for every stamp of every message).
class Segment(NamedTuple):
    """One ``;``-separated piece of a header value: its text without comments, and them."""

    text: str
    comments: tuple[str, ...]


class ParsedResult(NamedTuple):
    method: str
    result: str
    reason: str = ""
    properties: tuple[tuple[str, str], ...] = ()
    comment: str = ""


class ParsedHeader(NamedTuple):
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


# The general reader's runs: at the top level, text up to a quote, "(" or ";", or a quoted
# string (its backslash pairs and any "(" or ";" in it kept as written; unclosed: to the
# end); inside a comment, text up to a parenthesis or backslash.
_TOP_RUN = re.compile(r'[^"(;]+|"(?:[^"\\]+|\\.)*"?', re.DOTALL)
_COMMENT_RUN = re.compile(r"[^()\\]+")


def _segments(value: str) -> list[Segment]:
    """``segments``' general reader: quoted strings, backslash pairs, nested comments."""
    out: list[Segment] = []
    text: list[str] = []
    comments: list[str] = []
    pos, end = 0, len(value)
    while pos < end:
        ch = value[pos]
        if ch == ";":
            out.append(Segment(" ".join("".join(text).split()), tuple(comments)))
            text, comments = [], []
            pos += 1
        elif ch == "(":
            comment, pos, closed = _comment(value, pos + 1)
            comments.append(" ".join(comment.split()))
            if closed:
                text.append(" ")
        else:
            m = _TOP_RUN.match(value, pos)
            assert m is not None  # value[pos] is neither ";" nor "("
            text.append(m.group())
            pos = m.end()
    out.append(Segment(" ".join("".join(text).split()), tuple(comments)))
    return out


def _comment(value: str, pos: int) -> tuple[str, int, bool]:
    """The comment whose "(" is just before ``pos``: its text (nested parentheses kept,
    backslashes dropped from their pairs), the position after it, and whether it closed."""
    parts: list[str] = []
    depth = 1
    end = len(value)
    while pos < end:
        ch = value[pos]
        if ch == "\\":
            parts.append(value[pos + 1 : pos + 2])  # "" for a backslash at the very end
            pos += 2
        elif ch == "(":
            depth += 1
            parts.append(ch)
            pos += 1
        elif ch == ")":
            depth -= 1
            pos += 1
            if depth == 0:
                return "".join(parts), pos, True
            parts.append(ch)
        else:
            m = _COMMENT_RUN.match(value, pos)
            assert m is not None  # value[pos] is no parenthesis or backslash
            parts.append(m.group())
            pos = m.end()
    return "".join(parts), end, False


def tokens(text: str) -> list[str]:
    """Whitespace-separated tokens, ``a = b`` joined to ``a=b``, quoted strings kept whole."""
    joined = _joined_equals(text)
    if '"' not in joined:
        return joined.split()  # str.split splits where str.isspace says, as below
    return _quoted_tokens(joined)


# A token: runs of non-space, non-quote characters and quoted strings (an unclosed one runs
# to the end, spaces and all).
_QUOTED_TOKEN = re.compile(r'(?:[^\s"]+|"[^"]*"?)+')


def _joined_equals(text: str) -> str:
    """``text`` with ``a = b`` joined to ``a=b``."""
    # _SPACED_EQUALS.sub matches (and rewrites) every "=", spaced or not, slower than
    # looking beside each "=" for the few values that have a spaced one.
    pos = text.find("=")
    while pos >= 0:
        if text[pos - 1 : pos].isspace() or text[pos + 1 : pos + 2].isspace():
            return _SPACED_EQUALS.sub("=", text)
        pos = text.find("=", pos + 1)
    return text


def _quoted_tokens(text: str) -> list[str]:
    """The general reader: whitespace-separated tokens with quoted strings kept whole."""
    return _QUOTED_TOKEN.findall(text)


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


def _head(texts: list[str], arc: bool) -> tuple[int | None, str, str, int]:
    """The ARC instance, authserv-id and version a header's ``;``-pieces start with, and
    the index of the first piece after them (the results)."""
    instance: int | None = None
    start = 0
    if arc or (texts and _INSTANCE.match(texts[0])):
        im = _INSTANCE.match(texts[0]) if texts else None
        if im is None:
            raise ResinfoError("ARC-Authentication-Results without i=")
        instance = int(im.group(1))
        start = 1
    if start == len(texts):
        raise ResinfoError("empty header")
    head = tokens(texts[start])
    authserv_id = ""
    version = ""
    if head and "=" not in head[0]:
        authserv_id = unquote(head[0]).lower()
        if len(head) > 1 and head[1].isdigit():
            version = head[1]
        start += 1
    return instance, authserv_id, version, start


def parse_results_header(value: str, *, arc: bool = False) -> ParsedHeader:
    """Authentication-Results / ARC-Authentication-Results value -> ParsedHeader.

    The authserv-id is missing when the first piece already reads ``method=result``
    (Microsoft writes it so); it is then "".
    """
    segs = segments(value)
    instance, authserv_id, version, start = _head([s.text for s in segs], arc)
    results = []
    for seg in segs[start:]:
        if not seg.text:
            continue  # a trailing ";"
        if seg.text.lower() == "none":
            continue
        results.append(_result(seg))
    return ParsedHeader(authserv_id, tuple(results), instance, version)


def _bare(value: str) -> str | None:
    """A value without quotes, backslashes, nested or unclosed comments with each comment
    blanked to a space (its ``;``-pieces are its ``segments`` texts before the whitespace
    is joined); None for any other value."""
    if '"' in value or "\\" in value:
        return None
    bare = _FLAT_COMMENT.sub(" ", value) if "(" in value else value
    return None if "(" in bare else bare


def _bare_pieces(value: str) -> list[str] | None:
    bare = _bare(value)
    return None if bare is None else bare.split(";")


# For text without quotes (whitespace as written): does it start as ``_result`` reads a
# method=result? It does exactly when the first token, once ``a = b`` is joined, matches
# _METHOD: the method (and version) has no space or "=", and any rest of the token fits \S*.
_RESULT_START = re.compile(r"\s*[A-Za-z0-9_.-]+(?:/\d+)?\s*=")


def _check_result(text: str) -> None:
    """Raise the ResinfoError ``parse_results_header`` raises for this result piece."""
    if '"' not in text:
        if _RESULT_START.match(text):
            return
    else:
        toks = tokens(text)
        if toks and _METHOD.match(toks[0]):
            return
    text = " ".join(text.split())
    if text and text.lower() != "none":  # an empty piece (a trailing ";") and "none" pass
        raise ResinfoError(f"expected method=result, got {text!r}")


def read_authserv_id(value: str, *, arc: bool = False) -> tuple[str, int | None]:
    """The authserv-id and ARC instance ``parse_results_header`` reads, raising the same
    ResinfoError, without building the results: enough to decide whether a stamp is kept.
    """
    texts = _bare_pieces(value)
    if texts is None:
        texts = [s.text for s in _segments(value)]
    instance, authserv_id, _, start = _head(texts, arc)
    for text in texts[start:]:
        if '"' in text or _RESULT_START.match(text) is None:  # else surely a result
            _check_result(text)
    return authserv_id, instance


class ReceivedSpf(NamedTuple):
    result: str
    comment: str
    pairs: tuple[tuple[str, str], ...]

    @property
    def receiver(self) -> str:
        """The receiver= value, else the host that starts the comment (``google.com: ...``)."""
        for key, val in self.pairs:
            if key == "receiver" and val and not val.startswith("<"):
                return val.lower()
        m = _COMMENT_HOST.match(self.comment)
        return m.group(1).lower() if m else ""


_COMMENT_HOST = re.compile(r"([A-Za-z0-9.-]+\.[A-Za-z]{2,}):")


def _spf_words(value: str) -> tuple[list[str], list[str], list[str]]:
    """The tokens of a Received-SPF value's first ``;``-piece, those of the other pieces,
    and its comments."""
    bare = _bare(value)
    if bare is None:
        segs = _segments(value)
        rest = [t for s in segs[1:] for t in tokens(s.text)]
        return tokens(segs[0].text), rest, [c for s in segs for c in s.comments]
    comments = [" ".join(c.split()) for c in _FLAT_COMMENT.findall(value)] if "(" in value else []
    # No quotes: tokens are split at whitespace alone, and no "a = b" joins across a ";"
    joined = _joined_equals(bare)
    head, _, tail = joined.partition(";")
    return head.split(), tail.replace(";", " ").split(), comments


def parse_received_spf(value: str) -> ReceivedSpf:
    """Received-SPF (RFC 7208 §9.1): ``result (comment) key=value; key=value``."""
    first, rest, comments = _spf_words(value)
    if not first:
        raise ResinfoError("no SPF result")
    result = first[0].lower()
    if "=" in result:
        raise ResinfoError(f"expected an SPF result, got {first[0]!r}")
    pairs: list[tuple[str, str]] = []
    for tok in first[1:] + rest:
        name, eq, val = tok.partition("=")
        if eq:
            pairs.append((name.lower(), unquote(val) if '"' in val else val))
    return ReceivedSpf(result, "; ".join(comments), tuple(pairs))


def parse_forefront(value: str) -> tuple[tuple[str, str], ...]:
    """X-Forefront-Antispam-Report: ``CIP:1.2.3.4;CTRY:US;...;SFV:NSPM;`` -> pairs."""
    out: list[tuple[str, str]] = []
    for part in value.split(";"):
        name, colon, val = part.strip().partition(":")
        if colon and name.strip():
            out.append((name.strip().upper(), val.strip()))
    return tuple(out)
