"""RFC 3834 rules: when stopitd must not answer a message automatically (pure).

An automatic reply (the acknowledgement, an automatic routing mail never goes to the
reporter) is only sent to a person: never to another robot, a list, a bounce, or back to
stopitd itself, so two responders can never talk to each other in a loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from stopitd.analysis.headers import HeaderField, parse_fields, split_message

# Headers stopitd puts on what it sends. Inbound copies mean "this came from a stopitd":
# they are a reason not to answer, never trusted for anything else (no threading, no
# case numbers), and are stripped from copies of inbound mail that stopitd sends on.
LOOP_HEADER = "X-Stopitd-Loop"
CASE_HEADER = "X-Stopitd-Case"
KIND_HEADER = "X-Stopitd-Kind"
CONTROL_HEADERS = (LOOP_HEADER, CASE_HEADER, KIND_HEADER)

_LIST_HEADERS = (
    "list-id",
    "list-unsubscribe",
    "list-post",
    "list-help",
    "list-subscribe",
    "list-owner",
    "list-archive",
)
_DAEMON_LOCAL_PARTS = {
    "mailer-daemon",
    "postmaster",
    "nobody",
    "noreply",
    "no-reply",
    "donotreply",
    "do-not-reply",
    "bounce",
    "bounces",
}
_DAEMON_SUFFIXES = ("-request", "-bounces", "-owner", "-bounce")


class NoReply(StrEnum):
    """Why an automatic reply is not sent (stable codes, shown on the case)."""

    NULL_SENDER = "null-sender"
    DAEMON_SENDER = "daemon-sender"
    OUR_ADDRESS = "our-address"
    AUTO_SUBMITTED = "auto-submitted"
    PRECEDENCE = "precedence"
    LIST_MAIL = "list-mail"
    LOOP = "loop"
    SUPPRESS_REQUESTED = "suppress-requested"
    BAD_ADDRESS = "bad-address"
    DAILY_CAP = "daily-cap"
    DISABLED = "disabled"
    ALREADY_ACKNOWLEDGED = "already-acknowledged"  # this reporter already heard on this case
    ALREADY_DECIDED = "already-decided"  # the same report saved again (idempotent save)
    ERROR = "error"  # rendering failed (e.g. a broken admin template): see the event


def is_daemon_address(address: str) -> bool:
    """MAILER-DAEMON, postmaster, owner-*, *-request and the like (RFC 3834 §2)."""
    local = address.rpartition("@")[0].lower() if "@" in address else address.lower()
    return (
        local in _DAEMON_LOCAL_PARTS
        or local.startswith("owner-")
        or local.endswith(_DAEMON_SUFFIXES)
    )


def _first(fields: list[HeaderField], name: str) -> str | None:
    for f in fields:
        if f.key == name:
            return f.value
    return None


def reply_refusal(raw: bytes, mail_from: str, own_addresses: Iterable[str]) -> NoReply | None:
    """Why the message ``raw`` (sent with envelope sender ``mail_from``) must get no
    automatic reply, or None when a reply is allowed."""
    sender = mail_from.strip().strip("<>")
    if not sender:
        return NoReply.NULL_SENDER
    local, at, domain = sender.rpartition("@")
    if not at or not local or not domain or any(c in sender for c in " \r\n,;<>"):
        return NoReply.BAD_ADDRESS
    if is_daemon_address(sender):
        return NoReply.DAEMON_SENDER
    if sender.lower() in {a.lower() for a in own_addresses}:
        return NoReply.OUR_ADDRESS
    fields = parse_fields(split_message(raw)[0])
    keys = {f.key for f in fields}
    if LOOP_HEADER.lower() in keys:
        return NoReply.LOOP
    auto = (_first(fields, "auto-submitted") or "no").split(";")[0].strip().lower()
    if auto != "no":
        return NoReply.AUTO_SUBMITTED
    precedence = (_first(fields, "precedence") or "").strip().lower()
    if precedence in ("bulk", "list", "junk"):
        return NoReply.PRECEDENCE
    if keys.intersection(_LIST_HEADERS):
        return NoReply.LIST_MAIL
    suppress = (_first(fields, "x-auto-response-suppress") or "").lower()
    if any(word in suppress for word in ("all", "autoreply", "oof")):
        return NoReply.SUPPRESS_REQUESTED
    if keys.intersection({"x-autoreply", "x-autorespond"}):
        return NoReply.AUTO_SUBMITTED
    return None


def strip_control_headers(raw: bytes) -> bytes:
    """A copy of inbound mail without stopitd's own control headers (they are not ours)."""
    block, body = split_message(raw)
    names = {h.lower() for h in CONTROL_HEADERS}
    kept = [f.raw for f in parse_fields(block) if f.key not in names]
    if len(kept) == len(parse_fields(block)):
        return raw
    separator = b"\r\n" if b"\r\n" in block else b"\n"
    return b"".join(kept) + separator + body
