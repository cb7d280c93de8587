"""The readable text of a text/plain or text/html part (for inline forwards, pasted headers).

Decodes the transfer encoding and charset, undoes format=flowed (RFC 3676) and turns
HTML into lines the way a mail client shows them. The result is for reading and searching
only; evidence stays the raw bytes.
"""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser

from stopitd.analysis.mime import Budget, Entity, decode_body

_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "tr", "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
     "table", "pre", "ul", "ol", "dl", "dt", "dd", "section", "article", "header", "footer"}
)
_SKIP_TAGS = frozenset({"style", "script", "head", "title"})
_SPACES = re.compile(r"[ \t]+")  # runs of plain white space; &nbsp; is kept


class _TextOfHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.pre = 0
        self.line_has_text = False

    def _break(self, always: bool) -> None:
        """A block edge ends the current line; <br> always makes one (maybe empty)."""
        if always or self.line_has_text:
            self.out.append("\n")
            self.line_has_text = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        del attrs
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag == "pre":
            self.pre += 1
        if tag in _BLOCK_TAGS:
            self._break(always=tag == "br")
        if tag == "blockquote":
            self.out.append("\x00q+")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and self.skip:
            self.skip -= 1
        elif tag == "pre" and self.pre:
            self.pre -= 1
        if tag == "blockquote":
            self.out.append("\x00q-")
        if tag in _BLOCK_TAGS and tag != "br":
            self._break(always=False)

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if not self.pre:
            data = data.replace("\r", " ").replace("\n", " ")
            if not self.line_has_text:
                data = data.lstrip(" \t")  # source indentation; &nbsp; stays
        if data:
            self.out.append(data)
            self.line_has_text = True


def html_to_text(html: str) -> str:
    """Lines of text as a client would show the HTML; blockquotes become ``>`` quoting.

    Leading non-breaking spaces are kept (as spaces): they are how an HTML mail keeps
    the indentation of pasted header continuations.
    """
    parser = _TextOfHtml()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient; anything else is not worth failing for
        pass
    lines: list[str] = []
    depth = 0
    for chunk in "".join(parser.out).split("\n"):
        while "\x00q" in chunk:
            i = chunk.index("\x00q")
            depth = max(0, depth + (1 if chunk[i + 2 : i + 3] == "+" else -1))
            chunk = chunk[:i] + chunk[i + 3 :]
        text = _SPACES.sub(" ", chunk).rstrip().replace("\u00a0", " ")
        lines.append(("> " * depth) + text if text else ">" * depth)
    return "\n".join(lines).strip("\n") + "\n"


def charset_text(data: bytes, charset: str) -> str:
    try:
        codecs.lookup(charset or "utf-8")
    except (LookupError, ValueError):  # ValueError: a NUL in the charset name (fuzz)
        charset = "utf-8"
    try:
        return data.decode(charset or "utf-8", "replace")
    except (LookupError, ValueError):
        return data.decode("utf-8", "replace")


def unflow(text: str, delsp: bool) -> str:
    """RFC 3676: join soft-broken lines (ending in a space), undo space-stuffing."""
    out: list[str] = []
    pending = ""
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if line.startswith(" "):
            line = line[1:]
        if line.endswith(" ") and line != "-- ":
            pending += line[:-1] if delsp else line
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        out.append(pending)
    return "\n".join(out)


def part_text(entity: Entity, budget: Budget) -> str | None:
    """The text of a text/* part as lines separated by ``\\n``; None over a limit."""
    data = decode_body(entity, budget)
    if data is None:
        return None
    text = charset_text(data, entity.params.get("charset", "utf-8"))
    if entity.content_type == "text/html":
        return html_to_text(text)
    text = text.replace("\r\n", "\n")
    if entity.params.get("format", "").lower() == "flowed":
        text = unflow(text, entity.params.get("delsp", "").lower() == "yes")
    return text
