"""One Received header value -> one Hop (pure). One hop per header, always.

The value is read in three parts: the *from* part (up to the first ``by`` outside
parentheses), the rest (``by``, ``with``, ``id``, ``for`` and comments), and the date after
the last ``;``. The from part is split into its first word and its top-level comments
(``(...)``) and bare words; what each comment holds (``rdns [ip]``, ``[ip] helo=x``,
``HELO x``, a bare ``ip``...) and which MTA wrote the line (Exim, qmail, Exchange, ...)
decide which name is the HELO and which the reverse DNS. The ``ip`` only ever comes from
the connection part of the from part, never from the HELO, ``by``, ``id`` or date.

Status follows the convention of SpamAssassin's relay parser: ``parsed`` for a network
hand-over with an IP (a relay), ``skipped`` for lines that are deliberately no relay
(``by``-only lines, local hand-overs, fetchmail/getmail, ``from userid``), and
``unparseable`` for the rest. Skipped hops still carry whatever fields could be read.

Only the first ``_MAX_PARSED`` characters are parsed (the date is read from the end), so a
hostile 1 MB header costs no more than a normal one; every regex is linear.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from stopitd.analysis import ipaddr
from stopitd.analysis.fields import parse_date
from stopitd.analysis.model import Hop, HopStatus, IpClass

_MAX_PARSED = 4096
_DATE_TAIL = 400

_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_PAREN = re.compile(r"[()]")
_FLAT_ITEM = re.compile(r"\(([^()]*)\)|([^\s()]+)")
_NESTED = re.compile(r"\([^()]*\(|\)[^()]*\)")
_FIRST_BY = re.compile(r"(?<![^\s)])by(?=\s)", re.IGNORECASE)
_TOP_BY = re.compile(r"\(|\)|(?<![^\s)])by(?=\s)", re.IGNORECASE)
_WITH = re.compile(r"(?<!\S)with\s+([^\s;()]+)(?:\s+([^\s;()]+))?", re.IGNORECASE)
_ID = re.compile(r"(?<!\S)id\s+<?([^\s<>;]{3,})", re.IGNORECASE)
# The same three keywords as read in ``after_by``, which starts with "by" and is collapsed
# (one space between words): there "(?<!\S)" is a space before the word, and a literal
# space lets the regex engine skip ahead to the spaces instead of trying every position.
# The letter classes are what re.IGNORECASE matches (it also takes "İ" and "ı" for "i").
_WITH_AFTER_BY = re.compile(r" [wW][iIİı][tT][hH]\s+([^\s;()]+)(?:\s+([^\s;()]+))?")
_ID_AFTER_BY = re.compile(r" [iIİı][dD]\s+<?([^\s<>;]{3,})")
_FOR = re.compile(r" [fF][oO][rR]\s+<?([^\s<>;()]+@[^\s<>;()]+|[^\s<>;()]+)>?")
_ENV_FROM = re.compile(
    r"(?:envelope-(?:from|sender)|return-path)[:= ]\s*<?([^\s<>;()]*)>?", re.IGNORECASE
)
_FRACTION = re.compile(r"(\d\d:\d\d:\d\d)\.\d+")
_ISO_TAIL = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.\d+)?\s*(?:([+-])(\d\d):?(\d\d)|Z)?"
    r"(?:\s+UTC)?\s*$"
)
_DATE_NO_SEMI = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),?\s+)?\d{1,2}\s+"
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+\d{2,4}\s+\d{1,2}:\d\d(?::\d\d)?"
    r"(?:\.\d+)?(?:\s+[+-]?\w{1,5})?(?:\s+\([^()]{0,20}\))?\s*$",
    re.IGNORECASE,
)
_MONTHS = {
    m: i for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
# The month as usually written ("Nov", "NOV", "nov") -> its number, without a lower() call.
_MONTHS_AS_WRITTEN = {w: i for m, i in _MONTHS.items() for w in (m, m.title(), m.upper())}
_MONTH_DIGITS = {w: f"{i:02d}" for w, i in _MONTHS_AS_WRITTEN.items()}
# The date as MTAs almost always write it ("Tue, 24 Nov 2026 08:05:41 +0000 (UTC)"): a
# narrower form of _RFC_DATE (same fields, no ambiguity), read by datetime.fromisoformat
# in C instead of five int() calls and the constructor.
_COMMON_DATE = re.compile(
    r" ?(?:[A-Za-z]{3}, )?(\d\d?) ([A-Za-z]{3}) ((?:19|20)\d\d) (\d\d:\d\d:\d\d) ([+-])(\d\d)(\d\d)"
    r"(?: \([^()]{0,40}\))?"
)
# leading \s*: the text after the ';' is matched without a strip() first
_RFC_DATE = re.compile(
    r"\s*(?:[A-Za-z]{3},?\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{2,4})\s+(\d{1,2}):(\d\d)(?::(\d\d))?"
    r"(?:\.\d+)?\s*(?:([+-])(\d\d)(\d\d)|GMT|UTC|UT|Z)(?:\s*\([^()]{0,40}\))?\s*$"
)
_AUTH_WITH = re.compile(r"^(?:(?:ES|L|UTF8S|UTF8L)MTPS?A|ASMTP|HTTP[SU]?)$", re.IGNORECASE)
_AUTH_SENDER = re.compile(r"\(Authenticated sender: ([^\s)]+)\)", re.IGNORECASE)
_AUTHENTICATED = re.compile(r"\((authenticated[^()]{0,80})\)", re.IGNORECASE)
_AUTH_COURIER = re.compile(r"\(AUTH: (LOGIN|PLAIN|DIGEST-MD5|CRAM-MD5)\b", re.IGNORECASE)
_VIA_HTTP = re.compile(r"\(via (HTTP\S?)\)", re.IGNORECASE)
_QMAIL_WITH = re.compile(r"^(?:\S+ )*?(?:SMTP|QMQP)(?! id )")
_HELO_EQ = re.compile(r"(?:^|\s)helo=([^\s()]+)", re.IGNORECASE)
_HELO_WORD = re.compile(r"(?:^|\s)(?:HELO|EHLO)\s+([^\s()]*)")
# The common connection part, "from helo (rdns [ip]) by ...", read in one match (Postfix,
# Sendmail, Exim's host-lookup form, Gmail, ...): what _connection decides for it, ready.
# Further comments may follow before "by" (Postfix's "(using TLSv1.3 with cipher ...
# (256/256 bits))", "(No client certificate requested)", "(Authenticated sender: x)"),
# each balanced and nested at most once: the first comment alone decides the connection.
_COMMON_FROM = re.compile(
    r"([^\s()]+) \(([^\s()\[\]]+) \[([^\s()\[\]]+)\]\)((?: \((?:[^()]|\([^()]*\))*\))*) (?=by\s)"
)
# The common after-by part, "by host (mta) with proto id ident for <rcpt>", read in one
# match: what _by_host, _protocol and _common's first searches find, as each takes the
# first keyword there and none can sit earlier: a host named like a keyword, a "Microsoft"
# or "for" protocol word and a "for" id do not match (the general reading decides them).
# "id" and "for" may be missing (or written otherwise): then they are searched for.
_TAIL = re.compile(
    r"by (?!(?i:with|via|id|for|uid) )([0-9A-Za-z._:-]+)( \([^\s()]+\))?"
    r" with (?!(?i:microsoft|for)(?![^\s;()]))([^\s;()]+)"
    r"(?: id (?!(?i:for)(?![^\s<>;]))([^\s<>;]{3,}))?(?: for <([^\s<>;()]+)>)?"
)
# Exchange's "from host (ip) by ...": a bare address alone in the one comment.
_BARE_FROM = re.compile(r"([^\s()\[]+) \(([0-9A-Fa-f:.]+)\) (?=by\s)")
# Exim's and qmail's "from host ([ip]) by ...": a bracketed address alone in the comment.
_BRACKET_FROM = re.compile(r"([^\s()\[]+) \(\[([^\s()\[\]]+)\]\) (?=by\s)")
_FETCH = re.compile(r"^(?:POP3|IMAP)", re.IGNORECASE)
_NO_IP_SKIPS = (
    "localhost",
    "unknown",
    "unverified",
    "[local]",
    "[unix socket]",
    "AUTH:",
    "(Content Technologies",
    "(LSMTP for",
    "(Jetsend",
    " with Thrift",
    " with MailEnable",
    "UNIX:",
    "(AVG SMTP",
    "Unknown/Local",
)


# _Item and _Conn are NamedTuples rather than frozen dataclasses: several are made per
# header, and a tuple is made several times faster (they never leave this module).
class _Item(NamedTuple):
    """A top-level piece of the from part: a bare word, or the inside of a (comment)."""

    group: bool
    text: str
    attached: bool = False  # a comment glued to the word before it: host(1.2.3.4)


class _Conn(NamedTuple):
    """What the from part says about the connection."""

    ip: str = ""
    rdns: str = ""
    helo: str = ""
    form: str = ""  # which shape gave the ip, for the dialect rules (and fetch handling)


_NONE = _Conn()


class HopParts(NamedTuple):
    """A Hop's fields as its header gives them, before the trust walk labels it: the walk
    builds each (frozen, slotted) Hop once, with its trust and delay, from these."""

    raw: str
    status: HopStatus
    ip: str = ""
    ip_class: IpClass = IpClass.NONE
    rdns: str = ""
    helo: str = ""
    by: str = ""
    with_: str = ""
    id: str = ""
    for_: str = ""
    envelope_from: str = ""
    date: datetime | None = None
    auth: str = ""


def _collapse(text: str) -> str:
    # Most lines are collapsed already: ASCII, no space at either end, no run of spaces
    # and none of the other separators str.split() knows in ASCII. Each searched for in C
    # costs half of splitting every word off and joining them again.
    if (
        text.isascii() and text[:1] != " " and text[-1:] != " " and "  " not in text
        and "\t" not in text and "\n" not in text and "\r" not in text
        and "\x0b" not in text and "\x0c" not in text and "\x1c" not in text
        and "\x1d" not in text and "\x1e" not in text and "\x1f" not in text
    ):
        return text
    return " ".join(text.split())


def _split_date(value: str) -> tuple[str, datetime | None]:
    """(text without the date, date in UTC). The date follows the last ';' (or ends the line)."""
    long = len(value) > _MAX_PARSED
    text = _collapse(value[:_MAX_PARSED] if long else value).rstrip(" ;")
    tail = _collapse(value[-_DATE_TAIL:]).rstrip(" ;") if long else text
    semi = tail.rfind(";")
    if semi >= 0:
        date = _parse_date(tail[semi + 1 :])
        if date is not None:
            return (text if long else text[:semi].rstrip(" ;")), date
    end = tail[-80:]
    if "-" in end:
        iso = _ISO_TAIL.search(end)
        if iso is not None:
            date = _iso_date(iso)
            if date is not None:
                return (text if long else text[: len(text) - len(iso.group(0))].rstrip()), date
    plain = _DATE_NO_SEMI.search(end)
    if plain is not None:
        date = _parse_date(plain.group(0))
        if date is not None:
            return (text if long else text[: len(text) - len(plain.group(0))].rstrip(" ;")), date
    return text, None


def _parse_date(text: str) -> datetime | None:
    c = _COMMON_DATE.fullmatch(text)
    if c is not None:
        day, mon, year, hms, sign, oh, om = c.groups()
        digits = _MONTH_DIGITS.get(mon)
        if digits is not None:
            return _common_datetime(year, digits, day, hms, sign, oh, om)
    m = _RFC_DATE.match(text)
    if m is not None:  # the common shape, quickly
        day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
        month = _MONTHS_AS_WRITTEN.get(mon) or _MONTHS.get(mon.lower())
        if month is not None:
            return _rfc_datetime(year, month, day, hh, mm, ss, sign, oh, om)
    text = text.strip()
    if not text or not any(c.isdigit() for c in text):
        return None
    # the fraction needs a ".": without one, no scan (a long hostile zone costs nothing)
    return parse_date(_FRACTION.sub(r"\1", text) if "." in text else text)


def _rfc_datetime(
    year: str, month: int, day: str, hh: str, mm: str, ss: str | None, sign: str | None,
    oh: str, om: str,
) -> datetime | None:
    """The UTC datetime of an ``_RFC_DATE`` match's fields."""
    y = int(year)
    y += 2000 if y < 50 else (1900 if y < 100 else 0)
    try:
        dt = datetime(y, month, int(day), int(hh), int(mm), int(ss or 0), 0, UTC)
    except ValueError:
        return None
    if sign and (oh != "00" or om != "00"):  # +0000 / -0000 change nothing
        offset = timedelta(0, (int(oh) * 60 + int(om)) * 60)
        dt = dt - offset if sign == "+" else dt + offset
    return dt


def _common_datetime(
    year: str, month: str, day: str, hms: str, sign: str, oh: str, om: str
) -> datetime | None:
    """The UTC datetime of a ``_COMMON_DATE`` match's fields (as _rfc_datetime gives)."""
    try:
        dt = datetime.fromisoformat(
            f"{year}-{month}-{day if len(day) == 2 else '0' + day}T{hms}+00:00"
        )
    except ValueError:
        return None
    if oh != "00" or om != "00":
        offset = timedelta(0, (int(oh) * 60 + int(om)) * 60)
        dt = dt - offset if sign == "+" else dt + offset
    return dt


def _iso_date(m: re.Match[str]) -> datetime | None:
    y, mo, d, h, mi, s, sign, oh, om = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=UTC)
    except ValueError:
        return None
    if sign:
        offset = (int(oh) * 60 + int(om)) * 60
        dt = dt.fromtimestamp(dt.timestamp() - (offset if sign == "+" else -offset), UTC)
    return dt


def _top_level_by(text: str) -> int:
    """Index of the first ``by`` keyword outside parentheses, or -1."""
    m = _FIRST_BY.search(text)
    if m is not None:
        before = text[: m.start()]
        if before.count("(") == before.count(")") and not _NESTED.search(before):
            return m.start()  # the usual case: no unbalanced comment before it
    depth = 0
    first_any = -1
    for m in _TOP_BY.finditer(text):
        t = m.group()
        if t == "(":
            depth += 1
        elif t == ")":
            depth = max(0, depth - 1)
        else:
            if depth == 0:
                return m.start()
            if first_any < 0:
                first_any = m.start()
    return first_any


def _items(part: str, limit: int = 8) -> list[_Item]:
    items: list[_Item] = []
    if part.count("(") == part.count(")") and not _NESTED.search(part):
        for m in _FLAT_ITEM.finditer(part):  # no nesting: one regex pass
            if m.group(1) is not None:
                glued = m.start() > 0 and not part[m.start() - 1].isspace()
                items.append(_Item(True, m.group(1), glued))
            else:
                items.append(_Item(False, m.group(2)))
            if len(items) >= limit:
                break
        return items
    depth = 0
    start = 0
    attached = False
    pos = 0
    while True:
        # inside a comment only its parentheses matter: its words are skipped in C
        tok = (_TOKEN if depth == 0 else _PAREN).search(part, pos)
        if tok is None:
            break
        pos = tok.end()
        t = tok.group()
        if t == "(":
            if depth == 0:
                start = tok.end()
                attached = tok.start() > 0 and not part[tok.start() - 1].isspace()
            depth += 1
        elif t == ")":
            if depth > 0:
                depth -= 1
                if depth == 0:
                    items.append(_Item(True, part[start : tok.start()], attached))
        elif depth == 0:
            items.append(_Item(False, t))
        if len(items) >= limit:
            return items
    if depth > 0:
        items.append(_Item(True, part[start:], attached))
    return items


def _bracket_ip(token: str) -> str:
    """The IP of ``[ip]``, ``[IPv6:ip]``, ``[ip]:port``, ``[ip:port]``, ``[ip.port]``."""
    if not token.startswith("["):
        return ""
    end = token.find("]")
    inner = token[1:end] if end > 0 else token[1:]
    ip = ipaddr.normalise(inner)
    if not ip and inner.count(".") == 4:  # Exim's odd [a.b.c.d.port]
        ip = ipaddr.normalise(inner.rsplit(".", 1)[0])
    if not ip and inner.count(":") == 1:  # ecelerity's [a.b.c.d:port]
        ip = ipaddr.normalise(inner.split(":", 1)[0])
    return ip


def _bare_ip(token: str) -> str:
    """The IP of ``ip``, ``ip:port``, ``ident@ip``, ``ident@[ip]`` (no other decoration)."""
    if "@" in token:
        token = token.rsplit("@", 1)[1]
    if token.startswith("["):
        return _bracket_ip(token)
    return ipaddr.normalise(token.rstrip(","))


def _clean_rdns(name: str, keep_ident: bool = False) -> str:
    if "@" in name and not keep_ident:  # IDENT:user@host, user@host
        name = name.rsplit("@", 1)[1]
    name = name.rstrip(".")
    if name.lower() in ("unknown", "softdnserr") or name.startswith(("[", "<")):
        return ""
    return name


_CONNECTION_FORMS = ("rdns-bracket", "bracket", "ident-bracket", "bare", "space-bracket")


def _read_group(text: str) -> _Conn:
    """What one top-level comment of the from part says about the connection."""
    words = text.split()
    if not words:
        return _NONE
    first = words[0]
    if first.upper() in ("HELO", "EHLO", "LHLO"):
        return _Conn(helo=words[1] if len(words) > 1 else "", form="helo")
    if text.startswith(" ["):  # "( [1.2.3.4])": the address only
        return _Conn(ip=_bracket_ip(first), form="space-bracket")
    if first.startswith("["):
        ip = _bracket_ip(first)
        helo = _HELO_EQ.search(text)
        rest = text[len(first) :].strip()
        return _Conn(
            ip=ip,
            helo=helo.group(1) if helo else "",
            form="bracket" if not rest else ("bracket-helo" if helo else "bracket-more"),
        )
    if "[" in first and not first.startswith("[") and "@[" not in first and "=" not in first:
        pos = first.index("[")
        ip = _bracket_ip(first[pos:])
        if ip:
            return _Conn(ip=ip, rdns=_clean_rdns(first[:pos], True), form="rdns-bracket")
    if len(words) > 1 and words[1].startswith("["):
        ip = _bracket_ip(words[1])
        if ip:
            return _Conn(ip=ip, rdns=_clean_rdns(first, True), form="rdns-bracket")
    ip = _bare_ip(first)
    if ip and not first.startswith("[") and first.count(":") == 1 and "." in first:
        return _Conn(ip=ip, form="bare-port")  # XMail's (ip:port)
    if ip and "@[" in first and len(words) == 1:
        return _Conn(ip=ip, form="ident-bracket")
    if ip:
        helo = _HELO_WORD.search(text)
        if first.endswith(","):  # smap: host(ip, HELO name)
            return _Conn(ip=ip, helo=helo.group(1) if helo else "", form="bare-helo")
        return _Conn(ip=ip, form="bare" if len(words) == 1 else "bare-more")
    m = _HELO_EQ.search(text) or _HELO_WORD.search(text)
    return _Conn(helo=m.group(1), form="helo") if m else _NONE


def _connection(items: list[_Item], text: str, after_by: str, with_: str) -> _Conn:
    """Decide ip, rdns and helo from the from part's items and the MTA's dialect."""
    exim = "Exim" in text
    mapi = with_.lower() == "mapi" and " with mapi id " in text
    if not items:
        return _NONE
    if items[0].group:  # from ([1.2.3.4]) by ..., from (helo [1.2.3.4]) by ...
        g = _read_group(items[0].text)
        if g.form == "rdns-bracket":  # "(name [ip])": the name is a HELO here
            raw = items[0].text.split()[0]
            return _Conn(ip=g.ip, helo="" if raw.startswith("<") else raw, form="paren-only")
        ported = "]:" in items[0].text or ":" in items[0].text.split("]")[0][-6:]
        if ported and g.ip and "." in g.ip and not g.helo:  # ecelerity "([ip:port])"
            return _Conn(ip=g.ip, form="first-skip")
        return _Conn(ip=g.ip, helo=g.helo, form="paren-only") if g.ip else _NONE
    first = items[0].text
    rest = items[1:]
    after_host = after_by.split(None, 2)[2] if after_by.count(" ") >= 2 else ""
    groups: list[_Conn] = []
    for i in rest:  # each comment read in turn: the common shape is the first
        if not i.group:
            continue
        g = _read_group(i.text)
        # from name (rdns [ip]) ...: Sendmail, Postfix, Gmail, Courier, CommuniGate, ...
        if g.form == "rdns-bracket":
            rdns = _clean_rdns(g.rdns) if _sendmail(after_by, text) else g.rdns
            return _Conn(ip=g.ip, rdns=rdns, helo=first, form="rdns-bracket")
        groups.append(g)
    words = [i.text for i in rest if not i.group]
    first_ip = _bracket_ip(first) if first.startswith("[") else ipaddr.normalise(first)

    helo_group = next((g for g in groups if g.form == "helo"), None)
    ip_group = next((g for g in groups if g.ip), None)
    bare_bracket = next((w for w in words if w.startswith("[") and _bracket_ip(w)), "")

    if first_ip and first.startswith("[") and not exim:
        # from [helo-literal] ([ip]) / ( [ip]) / [ip]: the literal is the HELO
        plain_helo = (
            ip_group is not None and ip_group.form == "bracket-helo"
            and after_host.startswith("with ") and "]:" not in items[1].text
        )
        if ip_group is not None and (ip_group.form in _CONNECTION_FORMS or plain_helo):
            helo = "" if ip_group.form == "space-bracket" else first
            if plain_helo:
                helo = ip_group.helo
            if helo_group is not None:
                helo = helo_group.helo
            return _Conn(ip=ip_group.ip, rdns=ip_group.rdns, helo=helo, form="bracket")
        if ip_group is not None:  # "[ip] ([ip2]:port helo=x)": the first is the address
            return _Conn(ip=first_ip, helo=ip_group.helo, form="first-bracket")
        if bare_bracket:
            return _Conn(ip=_bracket_ip(bare_bracket), helo=first, form="word-bracket")
    if first_ip:  # from [1.2.3.4] (...) / from 1.2.3.4 (...) / from [ip]:port (HELO x)
        if ip_group is not None and not first.startswith("["):
            if "with HTTP" in after_by or "with HTTP" in text:  # webmail, numeric "HELO"
                return _Conn(ip=first_ip, form="first")
            if ip_group.form.startswith("bracket"):
                return _Conn(ip=ip_group.ip, helo=first, form="bracket")
            if helo_group is None:
                return _Conn(ip=ip_group.ip, rdns=_clean_rdns(first), helo=first, form="qmail")
        if helo_group is not None and ip_group is not None:
            rdns = _clean_rdns(first)
            return _Conn(ip=ip_group.ip, rdns=rdns, helo=helo_group.helo, form="qmail")
        helo = helo_group.helo if helo_group is not None else ""
        if not helo:
            helo = next((g.helo for g in groups if g.helo), "")
        if first.startswith("["):
            if not helo and not groups and not words and after_by.count(" ") < 2:
                helo = first  # "from [ip] by host;": nothing else to go on
            return _Conn(ip=first_ip, helo=helo, form="first-bracket")
        hotmail = ".hotmail.msn.com" in after_by[:80] or "with HTTP (WebMailUI)" in after_by
        known = _starts_with(after_host, ("with ", "(smtpl", "(interscan"))
        if not groups and not words and not hotmail and not known:
            return _Conn(ip=first_ip, form="first-skip")
        return _Conn(ip=first_ip, helo=helo, form="first")

    if helo_group is not None and ip_group is not None:
        # qmail, qpsmtpd, Yahoo: from rdns (HELO helo) (ident@ip)
        return _Conn(ip=ip_group.ip, rdns=_clean_rdns(first), helo=helo_group.helo, form="qmail")
    if helo_group is not None and bare_bracket:  # GMX: from rdns (EHLO helo) [ip] by host (x)
        gmx = after_host.startswith("(") and " with " in after_host[:80]
        rdns = _clean_rdns(first) if gmx else ""
        return _Conn(ip=_bracket_ip(bare_bracket), rdns=rdns, helo=helo_group.helo, form="qmail")

    if ip_group is not None:
        g = ip_group
        attached = next((i.attached for i in rest if i.group), False)
        if attached:  # smap / obtuse: host(1.2.3.4) or host(1.2.3.4, HELO x)
            return _Conn(ip=g.ip, rdns=_clean_rdns(first), helo=g.helo, form="smap")
        if g.form == "space-bracket":
            return _Conn(ip=g.ip, form="space-bracket")
        if g.form.startswith("bracket"):
            if exim:  # Exim writes the verified host name first, then [ip] helo=...
                helo = g.helo or first
                return _Conn(ip=g.ip, rdns=_clean_rdns(first), helo=helo, form="exim")
            if g.form == "bracket-helo":  # rdns only in the exact "([ip] helo=x) by h with"
                plain = items[1].text.split()[0].endswith("]") and len(items[1].text.split()) == 2
                rdns = _clean_rdns(first) if plain and after_host.startswith("with ") else ""
                return _Conn(ip=g.ip, rdns=rdns, helo=g.helo, form="bracket-helo")
            if "CommuniGate Pro" in text and items[1].text.endswith(" verified"):
                return _Conn(ip=g.ip, rdns=_clean_rdns(first), helo=first, form="cgp")
            at = next(n for n, i in enumerate(rest) if i.group and _read_group(i.text).ip)
            ip_last = all(i.group and i.text.startswith("envelope-") for i in rest[at + 1 :])
            if g.form == "bracket" and not mapi and ip_last and _qmail_with(after_by):
                return _Conn(ip=g.ip, rdns=_clean_rdns(first), helo=first, form="qmail")
            return _Conn(ip=g.ip, helo=first, form="bracket")
        if g.form == "ident-bracket" and not _qmail_with(after_by):
            return _Conn(ip=g.ip, helo=first, form="bracket")  # sendmail: helo (ident@[ip])
        # bare ip in parentheses: qmail, Exchange, getmail, XMail, Scalix
        if g.form == "bare-port" and "[XMail " not in text:
            return _NONE  # no MTA but XMail writes (ip:port): not a connection we know
        if mapi or "[XMail " in text or "(Scalix SMTP Relay" in text or g.form == "bare-more":
            return _Conn(ip=g.ip, helo=first, form="bare-helo-only")
        return _Conn(ip=g.ip, rdns=_clean_rdns(first), helo=first, form="bare")

    if bare_bracket:  # from host [ip] by ...: Exim (host is rDNS), MDaemon, fetchmail
        ip = _bracket_ip(bare_bracket)
        if exim:
            return _Conn(ip=ip, rdns=_clean_rdns(first), helo=first, form="word-bracket")
        return _Conn(ip=ip, helo=first, form="word-bracket")
    return _NONE


def _sendmail(after_by: str, text: str) -> bool:
    """Sendmail's "(ident@host [ip])": the ident is dropped only where SpamAssassin drops
    it (a "by host (version)" line that is not Postfix's)."""
    after_host = after_by.split(None, 2)[2] if after_by.count(" ") >= 2 else ""
    return after_host.startswith("(") and " (Postfix) with" not in text


def _starts_with(text: str, prefixes: tuple[str, ...]) -> bool:
    low = text.lower()
    return any(low.startswith(p) for p in prefixes)


def _qmail_with(after_by: str) -> bool:
    """qmail's protocol word: ``with [...] SMTP`` / ``QMQP`` and no ``id`` after it."""
    pos = after_by.find(" with ")
    if pos < 0:
        return False
    return _QMAIL_WITH.match(after_by[pos + 6 : pos + 200]) is not None


def _auth(text: str, with_: str, has_by: bool) -> str:
    if "uthenticated sender" in text:
        m = _AUTH_SENDER.search(text)
        if m:  # names the identity: better than the protocol word
            return f"Authenticated sender: {m.group(1)}"
    if has_by and _AUTH_WITH.match(with_.split("/", 1)[0]):
        return with_
    if "(AUTH: " in text:
        m = _AUTH_COURIER.search(text)
        if m:
            return f"AUTH: {m.group(1)}"
    if "uthenticated" in text or "UTHENTICATED" in text:
        m = _AUTHENTICATED.search(text)
        if m:
            return m.group(1)
    if "CommuniGate Pro" in text and "(account " in text:
        return "CommuniGate account"
    if " with Microsoft Exchange Server HTTP-DAV" in text:
        return "HTTP-DAV"
    if "(via " in text and has_by:
        m = _VIA_HTTP.search(text)
        if m:
            return m.group(1)
    if " with login)" in text:
        return "login"
    return ""


def _protocol(after_by: str, text: str) -> str:
    m = _WITH_AFTER_BY.search(after_by) or _WITH.search(text)
    if m is None:
        return ""
    word = m.group(1)
    if word.lower() == "microsoft" and m.group(2):  # "with Microsoft SMTP Server", "SMTPSVC"
        second = m.group(2)
        return "Microsoft SMTP Server" if second.upper() == "SMTP" else f"Microsoft {second}"
    return word


def parse_received(value: str, *, fast: bool = True) -> Hop:
    """One Received header value (unfolded) -> one Hop. Never raises on any input.

    ``fast=False`` reads every line the general way (the tests compare the two)."""
    return Hop(*read_received(value, fast=fast))


def read_received(value: str, *, fast: bool = True) -> HopParts:
    """``parse_received``'s fields, not yet a Hop (``trust.walk`` makes the Hop)."""
    text, date = _split_date(value)
    text = text.replace(")by ", ") by ")
    low = text[:6].lower()
    if low.startswith("from "):
        body = text[5:]
    elif low.startswith("(from "):
        body = text[6:]
    else:
        return _other(value, text, date)
    common = _common_from(body) if fast and low[0] == "f" else None
    if common is not None:  # the usual "from helo (rdns [ip]) by ..."
        conn, cut, n_items = common
        after_by = body[cut:]
        tail = _TAIL.match(after_by)
        if tail is not None:
            by, mta, with_, ident, rcpt = tail.groups()
            if ident is None:
                ident = _ident(text, after_by)
            if rcpt is None:
                rcpt = _rcpt(after_by)
            sendmail = mta is not None and " (Postfix) with" not in text
        else:
            by = _by_host(after_by)
            with_ = _protocol(after_by, text)
            ident, rcpt = _ident(text, after_by), _rcpt(after_by)
            sendmail = _sendmail(after_by, text)
        if sendmail:
            conn = _Conn(conn.ip, _clean_rdns(conn.rdns), conn.helo, conn.form)
        return HopParts(
            value, _status(conn, n_items, True, text, with_, by), conn.ip,
            ipaddr.classify_normal(conn.ip), conn.rdns, conn.helo, by, with_, ident, rcpt,
            _envelope_from(text), date, _auth(text, with_, bool(by)),
        )
    elif fast and low[0] == "f" and (bare := _bare_from(body, text)) is not None:
        conn, cut = bare  # Exchange's "from host (ip) by ..."
        after_by = body[cut:]
        by = _by_host(after_by)
        with_ = _protocol(after_by, text)
        if with_.lower() == "mapi" and " with mapi id " in text:
            conn = _Conn(conn.ip, "", conn.helo, "bare-helo-only")
        n_items, has_group, helo_word = 2, True, conn.helo
    elif fast and low[0] == "f" and (bracket := _bracket_from(body)) is not None:
        ip, host, cut = bracket  # Exim's, qmail's "from host ([ip]) by ..."
        after_by = body[cut:]
        by = _by_host(after_by)
        with_ = _protocol(after_by, text)
        conn = _bracket_conn(ip, host, text, after_by, with_)
        n_items, has_group, helo_word = 2, True, host
    else:
        cut = _top_level_by(body)
        from_part = body if cut < 0 else body[:cut].rstrip()
        after_by = "" if cut < 0 else body[cut:]
        by = _by_host(after_by)
        with_ = _protocol(after_by, text)
        items = _items(from_part)
        if low.startswith("(from "):
            conn = _paren_from(from_part, text)
        else:
            conn = _connection(items, text, after_by, with_)
        n_items = len(items)
        has_group = any(i.group for i in items)
        helo_word = items[0].text if items and not items[0].group else ""
    ident, rcpt = _ident(text, after_by), _rcpt(after_by)
    auth = _auth(text, with_, bool(by))
    if not conn.ip and by and has_group:  # last resort: any [ip] in the line
        ip = _any_bracket_ip(text)
        if ip:
            conn = _Conn(ip=ip, form="anywhere")
    status = _status(conn, n_items, has_group, text, with_, by)
    if not has_group and not conn.ip:
        status = HopStatus.SKIPPED  # "from name by host ...": a hand-over without an address
    return HopParts(
        value, status, conn.ip, ipaddr.classify_normal(conn.ip), conn.rdns,
        conn.helo if conn.form else helo_word, by, with_, ident, rcpt, _envelope_from(text),
        date, auth,
    )


def _common_from(body: str) -> tuple[_Conn, int, int] | None:
    """Connection, where ``by`` starts and how many items the from part has (2, or 3 for
    more), for ``helo (rdns [ip]) (comment)... by ...``; None for any other shape (the
    general reading then decides). Agrees with it by construction: the same first two items
    (the rest are comments), and _read_group's "rdns-bracket" reading of the first
    comment, which _connection takes as soon as it meets it."""
    m = _COMMON_FROM.match(body)
    if m is None:
        return None
    helo, rdns, literal, more = m.groups()
    if helo.lower() == "by" or rdns.upper() in ("HELO", "EHLO", "LHLO"):
        return None  # "by" would end the from part early; a HELO comment reads otherwise
    ip = literal if ipaddr.is_plain_v4(literal) else _bracket_ip(f"[{literal}]")
    if not ip:
        return None
    conn = _Conn(ip, _clean_rdns(rdns, True), helo, "rdns-bracket")
    return conn, m.end(), 3 if more else 2


def _bare_from(body: str, text: str) -> tuple[_Conn, int] | None:
    """Connection (as read without a mapi protocol) and where ``by`` starts, for ``host
    (ip) by ...``; None for any other shape. Agrees with _connection by construction: a
    host name that is no address, then one comment that _read_group reads as "bare"."""
    m = _BARE_FROM.match(body)
    if m is None:
        return None
    host, literal = m.groups()
    if host.lower() == "by" or (literal.count(":") == 1 and "." in literal):
        return None  # "by" ends the from part early; "(ip:port)" is XMail's
    ip = ipaddr.normalise(literal)
    if not ip or ipaddr.normalise(host):
        return None
    if "[XMail " in text or "(Scalix SMTP Relay" in text:
        return _Conn(ip, "", host, "bare-helo-only"), m.end()
    return _Conn(ip, _clean_rdns(host), host, "bare"), m.end()


def _bracket_from(body: str) -> tuple[str, str, int] | None:
    """(ip, host, where ``by`` starts) for ``host ([ip]) by ...``; None for any other shape.
    The host is no address and the comment is what _read_group reads as "bracket"."""
    m = _BRACKET_FROM.match(body)
    if m is None:
        return None
    host, literal = m.groups()
    if host.lower() == "by":
        return None  # "by" would end the from part early
    ip = _bracket_ip(f"[{literal}]")
    if not ip or ipaddr.normalise(host):
        return None
    return ip, host, m.end()


def _bracket_conn(ip: str, host: str, text: str, after_by: str, with_: str) -> _Conn:
    """What _connection decides for ``host ([ip])``: Exim names the verified host first;
    qmail's protocol word makes the host its rDNS too; else the host is the HELO."""
    if "Exim" in text:
        return _Conn(ip, _clean_rdns(host), host, "exim")
    mapi = with_.lower() == "mapi" and " with mapi id " in text
    if not mapi and _qmail_with(after_by):
        return _Conn(ip, _clean_rdns(host), host, "qmail")
    return _Conn(ip, "", host, "bracket")


def _status(
    conn: _Conn, n_items: int, has_group: bool, text: str, with_: str, by: str
) -> HopStatus:
    """``n_items``: how many items the from part has; ``has_group``: any comment among them."""
    lw = with_.lower()
    if " with local for " in text or (lw.startswith("local") and "Exim" in text):
        return HopStatus.SKIPPED
    if lw in ("local-smtp", "local-esmtp") and n_items == 2:
        return HopStatus.SKIPPED  # Exim -oMr local submission
    # lower() agrees with re.IGNORECASE on ASCII; other text keeps the regex ("İMAP")
    fetch = lw.startswith(("pop3", "imap")) if with_.isascii() else _FETCH.match(with_)
    if fetch and conn.form not in ("rdns-bracket", "bracket"):
        return HopStatus.SKIPPED  # fetchmail / getmail: a mailbox pick-up, not a relay
    if conn.form in ("first-skip",):
        return HopStatus.SKIPPED
    if conn.ip and by:
        return HopStatus.PARSED
    if conn.ip and ipaddr.classify(conn.ip).value == "loopback":
        return HopStatus.SKIPPED
    if n_items <= 3 and not has_group:
        return HopStatus.SKIPPED  # "from name by host", "from user@host by host", ...
    if any(s in text for s in _NO_IP_SKIPS):
        return HopStatus.SKIPPED
    return HopStatus.UNPARSEABLE


def _paren_from(from_part: str, text: str) -> _Conn:
    """``(from ...)`` lines: Norton AntiVirus gateway, sendmail -t submissions."""
    inner = from_part.strip().rstrip(")")
    words = inner.split()
    ip = _any_bracket_ip(inner)
    if ip and "(NAVGW " in text and words and not words[0].startswith("["):
        return _Conn(ip=ip, helo=words[0], form="navgw")
    if ip:
        return _Conn(ip=ip, form="anywhere")
    return _NONE


def _any_bracket_ip(text: str) -> str:
    start = 0
    for _ in range(16):
        pos = text.find("[", start)
        if pos < 0:
            return ""
        ip = _bracket_ip(text[pos : pos + 60])
        if ip and (text[pos + 1 : pos + 2].isdigit() or text[pos + 1 : pos + 6].lower() == "ipv6:"
                   or ":" in text[pos : pos + 8]):
            return ip
        start = pos + 1
    return ""


def _by_host(after_by: str) -> str:
    if not after_by:
        return ""
    parts = after_by.split(None, 2)
    if len(parts) < 2:
        return ""
    host = parts[1].rstrip(";,")
    if host.startswith("(") or host.lower() in ("with", "via", "id", "for", "uid"):
        return ""
    return host


def _ident(text: str, after_by: str) -> str:
    m = _ID_AFTER_BY.search(after_by) or _ID.search(text)
    return m.group(1) if m else ""


def _rcpt(after_by: str) -> str:
    m = _FOR.search(after_by)
    return m.group(1).strip("<>") if m else ""


def _envelope_from(text: str) -> str:
    low = text.lower()
    m = _ENV_FROM.search(text) if ("envelope-" in low or "return-path" in low) else None
    return m.group(1) if m else ""


def _other(value: str, text: str, date: datetime | None) -> HopParts:
    """Lines that do not start with ``from``: ``by``-only, qmail ``invoked by``, ..."""
    cut = _top_level_by(text)
    after_by = text[cut:] if cut >= 0 else ""
    with_ = _protocol(after_by, text)
    ident, rcpt, env = _ident(text, after_by), _rcpt(after_by), _envelope_from(text)
    by = _by_host(after_by)
    return HopParts(
        raw=value,
        status=HopStatus.SKIPPED if (by or text.startswith("(")) else HopStatus.UNPARSEABLE,
        by=by,
        with_=with_,
        id=ident,
        for_=rcpt,
        envelope_from=env,
        date=date,
        auth=_auth(text, with_, bool(by)),
    )


__all__ = ["HopParts", "parse_received", "read_received"]
