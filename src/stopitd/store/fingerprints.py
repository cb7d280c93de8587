"""What a reported original is (its de-duplication keys) and who sent it (its identities).

Pure functions over the analysis dataclasses: no database here.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import ipaddress
import re
from dataclasses import dataclass

from stopitd.analysis.model import AuthVerdict, Original

# identities that say something about one sender; the others are kept for filters only
IP_KINDS = ("relay_ip", "origin_ip")
PREFIX_KINDS = ("relay_prefix", "origin_prefix")
DOMAIN_KINDS = ("from_domain", "dkim_domain", "envelope_domain")
KINDS = (
    *IP_KINDS,
    *PREFIX_KINDS,
    "dkim_domain",
    "envelope_sender",
    "envelope_domain",
    "from_address",
    "from_domain",
    "auth_user",
)
_WS = re.compile(r"\s+")


@dataclass(frozen=True, slots=True, order=True)
class IdentitySeen:
    kind: str
    value: str
    links: bool  # does sharing it make two cases related?

    @property
    def ip_key(self) -> str | None:
        return ip_key(self.value) if self.kind in IP_KINDS else None


def ip_key(value: str) -> str | None:
    """A fixed-width sortable key: IPv4 as IPv4-mapped IPv6, 32 hex digits."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv4Address):
        ip = ipaddress.IPv6Address("::ffff:" + str(ip))
    return f"{int(ip):032x}"


def ip_key_range(value: str) -> tuple[str, str]:
    """The (low, high) keys of an address or CIDR, for a BETWEEN over `ip_key`."""
    net = ipaddress.ip_network(value.strip(), strict=False)
    low, high = ip_key(str(net.network_address)), ip_key(str(net.broadcast_address))
    assert low is not None and high is not None
    return low, high


def _prefix(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    length = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{length}", strict=False))


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower() if "@" in address else ""


def identities(original: Original) -> list[IdentitySeen]:
    """The sender identities one original shows, with whether each may link cases.

    A provider's relay (Gmail's outbound servers), a private or reserved address, and
    domains of a provider or of the From (free-mail domains) are kept for the filters but
    never link cases: thousands of unrelated senders share them.
    """
    src = original.source
    provider = bool(src.provider)
    seen: set[IdentitySeen] = set()
    for kind, value in (("relay", src.relay_ip), ("origin", src.origin_ip)):
        if not value:
            continue
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            continue
        distinctive = ip.is_global and not (kind == "relay" and provider)
        seen.add(IdentitySeen(f"{kind}_ip", str(ip), distinctive))
        seen.add(IdentitySeen(f"{kind}_prefix", _prefix(ip), distinctive))
    for domain in _dkim_domains(original):
        seen.add(IdentitySeen("dkim_domain", domain, not provider))
    sender = original.envelope_sender.strip().strip("<>").lower()
    if sender and "@" in sender:
        seen.add(IdentitySeen("envelope_sender", sender, True))
        seen.add(IdentitySeen("envelope_domain", _domain(sender), False))
    from_ = original.fields.from_
    if from_ and "@" in from_.address:
        address = from_.address.strip().lower()
        seen.add(IdentitySeen("from_address", address, True))
        seen.add(IdentitySeen("from_domain", _domain(address), False))
    if src.authenticated_identity:
        seen.add(IdentitySeen("auth_user", src.authenticated_identity.strip().lower(), True))
    return sorted(i for i in seen if i.value and len(i.value) <= 320)


def _dkim_domains(original: Original) -> set[str]:
    """Domains whose DKIM signature passed (verified here, or recorded by a trusted MTA)."""
    out = {s.domain.lower() for s in original.auth.dkim if s.result == AuthVerdict.PASS}
    for rec in original.auth.recorded:
        if rec.method == "dkim" and rec.result == "pass":
            for key, value in rec.properties:
                if key in ("header.d", "header.i"):
                    out.add(value.rpartition("@")[2].lower())
    return {d for d in out if d}


def dedupe_keys(original: Original) -> list[str]:
    """Keys under which the same original, reported by several people, meets itself.

    `mid:` the Message-ID; `dig:` a digest of From, Date, Subject and the decoded body
    text, for clients (Outlook) that regenerate the Message-ID when forwarding. An
    original with neither a Message-ID nor a Date gets no digest key (too weak to merge).
    """
    keys = []
    fields = original.fields
    if fields.message_id:
        keys.append("mid:" + _sha(fields.message_id.strip()))
    if fields.message_id or fields.date:
        parts = [
            fields.from_.address.lower() if fields.from_ else "",
            _WS.sub(" ", fields.subject).strip(),
            fields.date.isoformat() if fields.date else "",
            _cached_body_text(original.raw),
        ]
        keys.append("dig:" + _sha("\n".join(parts)))
    return sorted(keys)


_BODY_CACHE: dict[str, str] = {}
_BODY_CACHE_ENTRIES = 64
_BODY_CACHE_MAX = 64 * 1024  # bytes of text kept per entry


def _cached_body_text(raw: bytes) -> str:
    """`body_text`, remembered by the raw bytes' digest for the last few originals.

    A flood repeats one original in many reports; parsing its MIME again for each copy
    was a fifth of the time spent saving one.
    """
    digest = hashlib.sha256(raw).hexdigest()
    text = _BODY_CACHE.get(digest)
    if text is None:
        text = body_text(raw)
        if len(text) <= _BODY_CACHE_MAX:
            if len(_BODY_CACHE) >= _BODY_CACHE_ENTRIES:
                del _BODY_CACHE[next(iter(_BODY_CACHE))]  # the oldest first
            _BODY_CACHE[digest] = text
    return text


def body_text(raw: bytes) -> str:
    """The decoded text parts of a message, whitespace collapsed (encoding-independent)."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        texts = []
        for part in msg.walk():
            if part.get_content_maintype() == "text" and not part.is_attachment():
                content = part.get_content()
                if isinstance(content, str):
                    texts.append(content)
        return _WS.sub(" ", " ".join(texts)).strip()
    except Exception:  # hostile MIME: fall back to the bytes after the header block
        _, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
        return _WS.sub(" ", body.decode("utf-8", "replace")).strip()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
