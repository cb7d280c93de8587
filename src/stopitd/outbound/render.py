"""Jinja2 templates -> complete RFC 5322 messages (bytes, CRLF) with stopitd's headers.

A template renders to a ``Subject:`` line, an empty line, then the plain-text body, so an
admin sees and edits both in one file. Admin templates (``[outbound] templates_dir``) are
searched before the built-in ones (``config/templates/``, shipped as
``stopitd/templates`` in the wheel).
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import jinja2

from stopitd.errors import StopitdError
from stopitd.outbound.safety import CASE_HEADER, KIND_HEADER, LOOP_HEADER

_SPACE = re.compile(r"\s+")
MAX_SUBJECT = 200


class TemplateError(StopitdError):
    """A template is missing, does not parse, or uses a name it is not given."""


def builtin_templates_dir() -> Path:
    """The packaged templates (wheel), else the checkout's config/templates."""
    packaged = Path(str(importlib.resources.files("stopitd"))) / "templates"
    if (packaged / "ack.txt.j2").is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[3] / "config" / "templates"
    if (checkout / "ack.txt.j2").is_file():
        return checkout
    raise TemplateError("the built-in mail templates are missing from this installation")


class Templates:
    """Renders ``NAME.txt.j2`` to (subject, body); admin overrides win."""

    def __init__(self, override_dir: Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            loaders.append(jinja2.FileSystemLoader(override_dir))
        loaders.append(jinja2.FileSystemLoader(builtin_templates_dir()))
        self._env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            autoescape=False,  # plain-text mail, never HTML
        )

    def exists(self, name: str) -> bool:
        try:
            self._env.get_template(name)
        except jinja2.TemplateNotFound:
            return False
        return True

    def render(self, name: str, context: Mapping[str, Any]) -> tuple[str, str]:
        try:
            text = self._env.get_template(name).render(**context)
        except jinja2.TemplateNotFound as e:
            raise TemplateError(f"template {name}: not found ({e.name})") from None
        except jinja2.TemplateSyntaxError as e:
            raise TemplateError(f"template {e.name or name} line {e.lineno}: {e.message}") from None
        except jinja2.UndefinedError as e:
            raise TemplateError(f"template {name}: {e.message}") from None
        head, sep, body = text.replace("\r\n", "\n").partition("\n\n")
        if not sep or not head.startswith("Subject:"):
            raise TemplateError(
                f"template {name}: must start with 'Subject: ...' and an empty line"
            )
        return clean_subject(head[len("Subject:") :]), body.strip("\n") + "\n"


def clean_subject(value: str) -> str:
    """One line, no control characters, bounded length (subjects quote reporters' text)."""
    text = _SPACE.sub(" ", "".join(c if c.isprintable() else " " for c in value)).strip()
    return text if len(text) <= MAX_SUBJECT else text[: MAX_SUBJECT - 1] + "…"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One rendered message, ready for the outbox."""

    to: str
    mail_from: str  # the envelope sender; "" is the null sender <>
    message_id: str  # without <>
    subject: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class EvidenceFile:
    filename: str
    data: bytes


def compose(
    *,
    kind: str,
    case_id: int,
    from_address: str,
    from_name: str,
    to: str,
    subject: str,
    body: str,
    now: datetime,
    mail_from: str,
    in_reply_to: str = "",
    references: Sequence[str] = (),
    auto_submitted: str | None = None,
    attachments: Sequence[EvidenceFile] = (),
) -> Outgoing:
    """Build the message. ``in_reply_to``/``references`` are Message-IDs without <>."""
    msg = EmailMessage(policy=SMTP)
    local, _, domain = from_address.rpartition("@")
    msg["From"] = Address(display_name=from_name, username=local, domain=domain)
    msg["To"] = to
    msg["Subject"] = clean_subject(subject)
    msg["Date"] = format_datetime(now)
    message_id = make_msgid(idstring=f"stopit.{case_id}.{kind}", domain=domain)
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    refs = [r for r in references if r] + ([in_reply_to] if in_reply_to else [])
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in dict.fromkeys(refs))
    if auto_submitted:
        msg["Auto-Submitted"] = auto_submitted
    msg[LOOP_HEADER] = from_address
    msg[CASE_HEADER] = str(case_id)
    msg[KIND_HEADER] = kind
    msg.set_content(body, charset="utf-8")
    for item in attachments:
        msg.add_attachment(
            item.data, maintype="application", subtype="octet-stream", filename=item.filename
        )
    return Outgoing(
        to=to,
        mail_from=mail_from,
        message_id=message_id.strip("<>"),
        subject=str(msg["Subject"]),
        raw=msg.as_bytes(),
    )
