"""Inline forwards: the text a mail client puts in the body when it forwards "inline".

Where a forward starts is found here, line by line (the separators of Gmail, Outlook,
Apple Mail, Thunderbird and Yahoo in the languages the ``email-forward-parser`` library
knows, plus Outlook's ``-----Original Message-----`` family and Outlook's separator-less
From/Sent/To/Subject table). Reading the forwarded From/To/Subject/Date lines is left to
``email-forward-parser`` (``parse_original_email``), on a bounded slice: its patterns
backtrack badly on long hostile lines, so it never sees more than a short header table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from emailforwardparser import forward_parser, regexs

from stopitd.analysis.fields import message_id, parse_addresses, parse_date
from stopitd.analysis.model import Address, Finding, KeyFields, Severity

MAX_LINE = 400  # longer lines are never separators nor forwarded header lines
MAX_TABLE_LINES = 12
TABLE_LINE = 300  # forwarded header lines are cut here before the library reads them

_QUOTE = re.compile(r"^((?:[ \t]*>)+)[ \t]?")

# The library's separators that are plain markers (the "On ... wrote:" ones are reply
# attributions with nested ``.+``, slow on hostile input and not forwards).
_LIB_SEPARATORS = tuple(p for p in regexs.SEPARATOR if ".+" not in p.pattern)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|"
    r"Mensaje original|Messaggio originale|Oorspronkelijk bericht|Mensagem original|"
    r"Originalmeddelande|Oprindelig meddelelse|Opprinnelig melding|Alkuperäinen viesti|"
    r"Wiadomość oryginalna|Původní zpráva|Исходное сообщение)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_FORWARDED_DASHES = re.compile(
    r"^\s*-{3,}\s*(?:Forwarded message|Weitergeleitete Nachricht|Message transféré|"
    r"Mensaje reenviado|Messaggio inoltrato|Doorgestuurd bericht|Mensagem encaminhada|"
    r"Mensagem reencaminhada|Vidarebefordrat meddelande|Videresendt meddelelse|"
    r"Videresendt melding|Välitetty viesti|Przekazana wiadomość|Přeposlaná zpráva|"
    r"Пересылаемое сообщение|Пересланное сообщение)\s*-{3,}\s*$",
    re.IGNORECASE,
)
_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")

_LABEL = re.compile(r"^\*?\s*([^\W\d_][\w .()-]{0,28}?)\s?\*?\s?[:：]")
_FROM_LABELS = frozenset(
    {"from", "von", "de", "da", "van", "från", "fra", "od", "от", "lähettäjä", "feladó",
     "mittente", "nadawca", "expeditorul", "kimden", "від", "de la", "afzender", "remitente",
     "差出人", "送信者", "发件人", "寄件者", "寄件人", "보낸 사람"}
)
_DATE_LABELS = frozenset(
    {"sent", "date", "datum", "gesendet", "envoyé", "enviado", "enviado el", "inviato",
     "verzonden", "skickat", "sendt", "wysłano", "odesláno", "lähetetty", "elküldve",
     "отправлено", "data", "fecha", "dato", "tarih", "päivämäärä", "дата", "gönderilen",
     "送信日時", "日付", "发送时间", "日期", "傳送時間", "寄件日期", "날짜", "보낸 날짜"}
)
_TO_LABELS = frozenset(
    {"to", "an", "à", "a", "para", "aan", "till", "til", "do", "komu", "кому",
     "vastaanottaja", "címzett", "kime", "destinatario", "宛先", "收件人", "收件者",
     "받는 사람"}
)
_SUBJECT_LABELS = frozenset(
    {"subject", "betreff", "objet", "asunto", "oggetto", "onderwerp", "assunto", "ämne",
     "emne", "temat", "předmět", "тема", "aihe", "tárgy", "konu", "sujet", "件名", "主题",
     "主旨", "제목"}
)
_MESSAGE_ID_LABELS = frozenset({"message-id", "message id"})


_REPLY_PREFIX = re.compile(r"^\s*(?:re|aw|sv|antw|ref|odp|vá|ynt|r)\s*(?:\[\d+\])?\s*:", re.I)


def is_forward_subject(subject: str) -> bool:
    """Does the subject carry a forward prefix (FW:, Fwd:, WG:, TR:, ...; the library's list)?"""
    return bool(forward_parser.parse_subject(subject[:MAX_LINE]))


def is_reply_subject(subject: str) -> bool:
    return bool(_REPLY_PREFIX.match(subject)) and not is_forward_subject(subject)


@dataclass(frozen=True, slots=True)
class InlineBlock:
    first_line: int  # the separator (or the From line when there is none)
    client: str  # the client the separator points to, for the finding text
    fields: KeyFields
    findings: tuple[Finding, ...]


def _unquote(line: str) -> str:
    m = _QUOTE.match(line)
    return line[m.end() :] if m else line


def _label(line: str) -> str:
    m = _LABEL.match(line.strip())
    return m.group(1).strip().lower() if m else ""


def separator_client(line: str) -> str | None:
    """The client whose forward separator this line is, or None."""
    text = _unquote(line).rstrip()
    if len(text) > MAX_LINE or not text.strip():
        return None
    stripped = text.strip()
    if not (stripped.endswith(":") or "---" in stripped or "___" in stripped):
        return None
    if _ORIGINAL_MESSAGE.match(text):
        # Outlook writes "-----Original Message-----"; Samsung/Android clients and
        # Fastmail put spaces and more dashes around it.
        return (
            "Outlook (plain text)"
            if stripped.startswith("-----O")
            else "Samsung/Android, Fastmail or IONOS mail"
        )
    if _UNDERSCORES.match(text):
        return "Outlook"
    if _FORWARDED_DASHES.match(text) or any(p.match(text) for p in _LIB_SEPARATORS):
        dashes = len(stripped) - len(stripped.lstrip("-"))
        if stripped.endswith(":"):
            return "Apple Mail"
        if dashes >= 10:
            return "Gmail"
        if dashes >= 8:
            return "Thunderbird"
        return "Yahoo Mail"
    return None


def _is_table_start(lines: list[str], i: int) -> bool:
    """A From line followed by Sent/Date, To and Subject lines (Outlook, no separator)."""
    if _label(_unquote(lines[i])) not in _FROM_LABELS:
        return False
    seen: set[str] = set()
    for line in lines[i + 1 : i + 7]:
        text = _unquote(line)
        if not text.strip():
            break
        label = _label(text)
        if label in _DATE_LABELS:
            seen.add("date")
        elif label in _TO_LABELS:
            seen.add("to")
        elif label in _SUBJECT_LABELS:
            seen.add("subject")
    return len(seen) >= 2 and "subject" in seen


def _table(lines: list[str], start: int) -> tuple[list[str], int]:
    """The forwarded header lines from ``start`` (leading blank lines skipped), and the
    index of the first line after them."""
    out: list[str] = []
    i = start
    while i < len(lines) and not _unquote(lines[i]).strip() and i - start < 3:
        i += 1
    while i < len(lines) and len(out) < MAX_TABLE_LINES:
        text = _unquote(lines[i])
        if not text.strip() or (out and separator_client(lines[i]) is not None):
            break  # a blank line, or the next forward starting right away
        out.append(lines[i][:TABLE_LINE])
        i += 1
    return out, i


_SEPARATOR_HEAD = re.compile(r"^\s*[-_]{3,}[^-_]{0,60}?[-_]{3,}")
_RUN_ON_LABEL = re.compile(r"(?<=\S)(?=(?:To|Cc|Sent|Date|Subject)\s?:)")


def _trailing_table(line: str) -> list[str]:
    """Yahoo's plain-text part puts the whole forwarded header on the separator line."""
    text = _unquote(line)[:MAX_LINE]
    m = _SEPARATOR_HEAD.match(text)
    rest = text[m.end() :].strip() if m else ""
    if not rest:
        return []
    return _RUN_ON_LABEL.sub("\n", rest).split("\n")


def _weak_separator(line: str) -> bool:
    """Underscores and "Original Message" also mark replies and signatures."""
    text = _unquote(line)
    return bool(_UNDERSCORES.match(text) or _ORIGINAL_MESSAGE.match(text))


def _has_sender_or_subject(table: list[str]) -> bool:
    labels = {_label(_unquote(t)) for t in table}
    return bool(labels & (_FROM_LABELS | _SUBJECT_LABELS))


def find_blocks(lines: list[str], skip: set[int], max_blocks: int) -> list[InlineBlock]:
    """Every inline forward in the text, in order; ``skip`` holds lines already taken."""
    blocks: list[InlineBlock] = []
    i = 0
    n = len(lines)
    while i < n and len(blocks) < max_blocks:
        if i in skip:
            i += 1
            continue
        client = separator_client(lines[i])
        if client is not None:
            table, after = _table(lines, i + 1)
            table = _trailing_table(lines[i]) + table
            if _weak_separator(lines[i]) and not _has_sender_or_subject(table):
                i += 1  # a line of underscores in a signature, not a forward
                continue
        elif _is_table_start(lines, i):
            client = "Outlook"
            table, after = _table(lines, i)
        else:
            i += 1
            continue
        blocks.append(_block(i, client, table))
        i = max(after, i + 1)
    return blocks


def _own_reading(table: list[str]) -> dict[str, str]:
    """Label -> value from the table lines, for what the library does not read (CJK, ...)."""
    out: dict[str, str] = {}
    for line in table:
        text = _unquote(line).strip()
        m = _LABEL.match(text)
        if m is None:
            continue
        label = m.group(1).strip().lower()
        value = text[m.end() :].strip().strip("*").strip()
        for key, labels in (
            ("from", _FROM_LABELS),
            ("date", _DATE_LABELS),
            ("to", _TO_LABELS),
            ("subject", _SUBJECT_LABELS),
            ("message-id", _MESSAGE_ID_LABELS),
        ):
            if label in labels:
                out.setdefault(key, value)
    return out


def _block(first: int, client: str, table: list[str]) -> InlineBlock:
    # Only labelled lines and their continuations reach the library (see module doc).
    table = [t for t in table if _label(_unquote(t)) or t[:1] in (" ", "\t")]
    text = "\n".join(table)
    meta = forward_parser.parse_original_email(text, text)
    own = _own_reading(table)
    sender = _address(meta.from_.name, meta.from_.address)
    if sender is None and own.get("from"):
        found = parse_addresses(own["from"])
        sender = found[0] if found else None
    to = tuple(a for a in (_address(r.name, r.address) for r in meta.to) if a is not None)
    if not to and own.get("to"):
        to = parse_addresses(own["to"])
    subject = meta.subject.strip() or own.get("subject", "")
    date_text = " ".join((meta.date or own.get("date", "")).split())  # U+202F, NBSP -> " "
    when, zoned = inline_date(date_text)
    findings = [
        Finding(
            "no-trace-headers",
            Severity.WARNING,
            f"Forwarded inline (looks like {client}): the mail client kept only From/To/"
            "Date/Subject as text, with no Received or authentication headers, so there "
            "is nothing to trace. Ask the reporter to forward it as an attachment.",
        )
    ]
    if date_text and not zoned:
        findings.append(
            Finding(
                "inline-date-no-zone",
                Severity.INFO,
                f"The forwarded date {date_text!r} has no time zone (or is in a form not "
                "read here); it was not converted.",
            )
        )
    fields = KeyFields(
        message_id=message_id(own.get("message-id")),
        date=when,
        from_=sender,
        to=to,
        subject=subject,
    )
    return InlineBlock(first, client, fields, tuple(findings))


def _address(name: str, address: str) -> Address | None:
    name = name.strip().strip("'\"").strip()
    address = address.strip()
    if address.lower().startswith("mailto:"):
        address = address[7:]
    if not name and not address:
        return None
    if not address:
        parsed = parse_addresses(name)
        if parsed and "@" in parsed[0].address:
            return parsed[0]
    return Address(name, address)


# --- dates as clients print them -----------------------------------------------------------

_MONTHS = {
    name: n
    for n, names in enumerate(
        [
            ("jan", "january", "januar", "janvier", "enero", "gennaio", "januari", "janeiro"),
            ("feb", "february", "februar", "février", "febrero", "febbraio", "februari"),
            ("mar", "march", "märz", "mars", "marzo", "maart", "março", "mär"),
            ("apr", "april", "avril", "abril", "aprile"),
            ("may", "mai", "mayo", "maggio", "mei", "maio"),
            ("jun", "june", "juni", "juin", "junio", "giugno", "junho"),
            ("jul", "july", "juli", "juillet", "julio", "luglio", "julho"),
            ("aug", "august", "août", "agosto", "augustus"),
            ("sep", "sept", "september", "septembre", "septiembre", "settembre", "setembro"),
            ("oct", "october", "oktober", "octobre", "octubre", "ottobre", "outubro", "okt"),
            ("nov", "november", "novembre", "noviembre", "novembro"),
            ("dec", "december", "dezember", "décembre", "diciembre", "dicembre", "dezembro",
             "dez"),
        ],
        start=1,
    )
    for name in names
}
_ZONES = {
    "utc": 0, "gmt": 0, "ut": 0, "z": 0, "est": -5, "edt": -4, "cst": -6, "cdt": -5,
    "mst": -7, "mdt": -6, "pst": -8, "pdt": -7, "cet": 1, "cest": 2, "mez": 1, "mesz": 2,
    "bst": 1, "eet": 2, "eest": 3, "wet": 0, "west": 1, "ist": 5.5, "jst": 9, "aest": 10,
}
_WORD = re.compile(r"[^\W\d_]+\.?")
_TIME = re.compile(r"(\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?\s*([AaPp]\.?[Mm]\.?)?")
_YEAR = re.compile(r"\b(\d{4})\b")
_OFFSET = re.compile(r"(?:GMT|UTC|UT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?\b")


def inline_date(text: str) -> tuple[datetime | None, bool]:
    """(UTC time, had a zone) for a date as a client prints it; (None, False) if unsure."""
    text = text.strip()[:MAX_LINE]
    if not text:
        return None, False
    rfc = parse_date(text)
    if rfc is not None and re.search(r"[+-]\d{4}\b|\b(?:GMT|UT|UTC)\b", text):
        return rfc, True
    year = _YEAR.search(text)
    time = _TIME.search(text)
    if year is None or time is None:
        return None, False
    month = day = None
    for word in _WORD.findall(text):
        month = month or _MONTHS.get(word.lower().rstrip("."))
    rest = _YEAR.sub(" ", _TIME.sub(" ", text))
    for num in re.findall(r"\b(\d{1,2})\b", rest):
        day = int(num)
        break
    if month is None or day is None:
        return None, False
    hour, minute = int(time.group(1)), int(time.group(2))
    second = int(time.group(3) or 0)
    ampm = (time.group(4) or "").lower().replace(".", "")
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm == "am" and hour == 12:
        hour = 0
    zone = _zone(text[time.end() :])
    try:
        local = datetime(int(year.group(1)), month, day, hour, minute, second)
    except ValueError:
        return None, False
    if zone is None:
        return None, False
    return local.replace(tzinfo=zone).astimezone(UTC), True


def _zone(text: str) -> timezone | None:
    m = _OFFSET.search(text)
    if m is not None and (m.group(0).strip()[:1] in "+-" or m.group(0)[:1].isalpha()):
        hours = int(m.group(2))
        minutes = int(m.group(3) or 0)
        if hours <= 14 and minutes < 60:
            delta = timedelta(hours=hours, minutes=minutes)
            return timezone(-delta if m.group(1) == "-" else delta)
    for word in _WORD.findall(text):
        offset = _ZONES.get(word.lower())
        if offset is not None:
            return timezone(timedelta(hours=offset))
    return None
