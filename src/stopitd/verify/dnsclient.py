"""DNS for the verifier: dnspython, configured nameservers, a per-message budget, a cache.

Every failure is a ``DnsTempError`` (the caller turns it into a ``temperror`` result),
never a stall: each query's lifetime is the smaller of the per-query timeout and what is
left of the message's budget. After a resolver timeout the client marks DNS as down
(``down_reason``): every later query fails at once, so one dead resolver costs one timeout
per run, not one per message. Answers (and failures) are cached for the client's life.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from stopitd.config import DnsSettings, split_host_port

# stdlib logging (logs.py routes it through structlog); never stdout: `analyze --json`
log = logging.getLogger(__name__)

_CACHE_LIMIT = 20000


class DnsTempError(Exception):
    """A lookup that could not be answered now (timeout, SERVFAIL, budget used up, down)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The records of one name and type: empty for NODATA, ``nxdomain`` when no such name."""

    rdatas: tuple[object, ...] = ()
    nxdomain: bool = False


def parse_nameserver(spec: str) -> dns.nameserver.Do53Nameserver:
    """ "HOST", "HOST:PORT", "[V6]:PORT" or a bare IPv6 address; HOST must be an IP."""
    spec = spec.strip()
    host, port = spec.strip("[]"), 53
    if spec.startswith("[") or spec.count(":") == 1:
        host, port = split_host_port(spec)
    ipaddress.ip_address(host)  # ValueError: not an IP address
    return dns.nameserver.Do53Nameserver(host, port)


class DnsClient:
    """One resolver for a run (the CLI) or a while (the daemon); not thread-safe."""

    def __init__(self, settings: DnsSettings) -> None:
        self.settings = settings
        self.down_reason = ""
        self._resolver = dns.resolver.Resolver(configure=False)
        if settings.nameservers:
            servers = []
            for spec in settings.nameservers:
                try:
                    servers.append(parse_nameserver(spec))
                except ValueError as e:
                    self.down_reason = f"unusable dns.nameservers entry {spec!r}: {e}"
            if servers and not self.down_reason:
                self._resolver.nameservers = servers
        else:
            try:
                self._resolver.read_resolv_conf("/etc/resolv.conf")
            except dns.resolver.NoResolverConfiguration as e:
                self.down_reason = f"no system resolver configuration: {e}"
        self._resolver.use_edns(0, 0, 1232)
        self._resolver.timeout = settings.timeout
        self._resolver.lifetime = settings.timeout
        self._cache: dict[tuple[str, str], Answer | DnsTempError] = {}
        self._deadline: float | None = None
        self.down_since: float | None = time.monotonic() if self.down_reason else None
        self.queries = 0  # asked on the wire (not from the cache)
        self.failures: list[str] = []  # every temporary failure seen, for findings

    @property
    def down(self) -> bool:
        """True once a resolver timed out: DNS is off for the rest of this client's life."""
        return bool(self.down_reason)

    def switch_off(self, reason: str) -> None:
        log.warning("dns_switched_off", extra={"reason": reason})
        self.down_reason = reason
        self.down_since = time.monotonic()

    def start_budget(self) -> None:
        """Start a message: its lookups share ``settings.budget`` seconds in total."""
        self._deadline = time.monotonic() + self.settings.budget
        self.failures = []

    def remaining(self) -> float:
        if self._deadline is None:
            return self.settings.budget
        return max(0.0, self._deadline - time.monotonic())

    def query(self, name: str, rdtype: str) -> Answer:
        """Records of ``name``/``rdtype``; raises DnsTempError for any temporary failure."""
        key = (name.lower().rstrip("."), rdtype.upper())
        cached = self._cache.get(key)
        if isinstance(cached, DnsTempError):
            self.failures.append(str(cached))
            raise cached
        if cached is not None:
            return cached
        try:
            answer = self._ask(*key)
        except DnsTempError as e:
            self.failures.append(str(e))
            if not self.down:  # a budget/down refusal is not an answer worth caching
                self._cache[key] = e
            raise
        if len(self._cache) >= _CACHE_LIMIT:  # a long-lived client: forget, do not grow
            self._cache.clear()
        self._cache[key] = answer
        return answer

    def _ask(self, name: str, rdtype: str) -> Answer:
        if self.down:
            raise DnsTempError(f"DNS is off for this run: {self.down_reason}")
        left = self.remaining()
        if left <= 0.0:
            raise DnsTempError(f"DNS budget of {self.settings.budget:g}s for this message used up")
        lifetime = min(self.settings.timeout, left)
        self.queries += 1
        qname = dns.name.from_text(name)
        try:
            result = self._resolver.resolve(
                qname, rdtype, lifetime=lifetime, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            return Answer(nxdomain=True)
        except dns.resolver.NoAnswer:
            return Answer()
        except dns.exception.Timeout as e:
            text = f"DNS timeout after {lifetime:.2g}s asking {rdtype} {name}"
            if lifetime >= self.settings.timeout:
                self.switch_off(f"the resolver did not answer ({rdtype} {name})")
            raise DnsTempError(text) from e
        except dns.resolver.NoNameservers as e:
            raise DnsTempError(f"DNS servers failed for {rdtype} {name} (SERVFAIL/refused)") from e
        except (dns.exception.DNSException, OSError, ValueError) as e:
            raise DnsTempError(f"DNS error for {rdtype} {name}: {type(e).__name__}: {e}") from e
        return Answer(tuple(result.rrset) if result.rrset is not None else ())

    def txt(self, name: str) -> tuple[list[bytes], bool]:
        """TXT records of ``name``, each with its strings joined, and whether NXDOMAIN."""
        answer = self.query(name, "TXT")
        return [b"".join(getattr(r, "strings", ())) for r in answer.rdatas], answer.nxdomain
