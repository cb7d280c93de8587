"""DNS-backed verification at intake: DKIM per signature, ARC, SPF, DMARC.

``verify_analysis(analysis, dns_settings)`` gives one ``OriginalEvidence`` per original,
in order. DNS goes through one ``DnsClient`` per ``Verifier``: answers are cached for the
verifier's life, each message (report) has a total DNS budget, and after a resolver
timeout the verifier's DNS is off (``Verifier.dns_down``): later messages get
``temperror`` results at once, with a finding, instead of waiting again.

``verify_analysis`` without a verifier uses one per process and settings (a CLI run);
the daemon keeps its own ``Verifier`` and replaces it after its back-off period.
"""

from __future__ import annotations

import logging
import time

from stopitd.analysis.dmarc import DmarcRecord, domain_of, evaluate, org_domain, parse_record
from stopitd.analysis.model import (
    Analysis,
    AuthVerdict,
    DkimSignature,
    DmarcResult,
    Evidence,
    Finding,
    Grade,
    Original,
    OriginalEvidence,
    Severity,
    SpfResult,
)
from stopitd.config import DnsSettings
from stopitd.verify.dkimcheck import list_signatures, verify_arc, verify_dkim
from stopitd.verify.dnsclient import DnsClient, DnsTempError
from stopitd.verify.spfcheck import check_spf

__all__ = ["DnsClient", "Verifier", "reset_default_verifier", "verify_analysis"]

# stdlib logging (logs.py routes it through structlog); never stdout: `analyze --json`
log = logging.getLogger(__name__)


def _dmarc_record(client: DnsClient, from_domain: str) -> DmarcRecord:
    """_dmarc.<From domain>, else _dmarc.<organisational domain> (RFC 7489 §6.6.3)."""
    org = org_domain(from_domain)
    candidates = [(from_domain, False)] + ([(org, True)] if org and org != from_domain else [])
    for domain, at_org in candidates:
        try:
            records, _ = client.txt(f"_dmarc.{domain}")
        except DnsTempError as e:
            return DmarcRecord(from_domain, temperror=str(e))
        found = [r.decode("utf-8", "replace") for r in records]
        found = [r for r in found if parse_record(r) is not None]
        if len(found) == 1:
            return DmarcRecord(from_domain, found[0], at_org_domain=at_org)
        if len(found) > 1:
            return DmarcRecord(from_domain)  # several records: none applies (RFC 7489 §6.6.3)
    return DmarcRecord(from_domain)


def _handoff(original: Original) -> tuple[str, str, str]:
    """(IP, HELO, envelope sender) of the hand-off, from the walk's boundary hop."""
    idx = original.source.boundary_index
    if idx is None or idx >= len(original.hops):
        return "", "", original.envelope_sender
    hop = original.hops[idx]
    sender = original.envelope_sender or hop.envelope_from
    return hop.ip, hop.helo, sender.strip().strip("<>")


class Verifier:
    """Verification with one DNS client (cache, timeout state) across many messages."""

    def __init__(self, settings: DnsSettings) -> None:
        self.settings = settings
        self.client = DnsClient(settings)

    @property
    def dns_down(self) -> bool:
        """True after a resolver timeout: DNS is off for the rest of this verifier's life."""
        return self.client.down

    def switch_dns_off(self, reason: str) -> None:
        self.client.switch_off(reason)

    def down_for(self) -> float:
        """Seconds since DNS went off (0.0 while it is on)."""
        since = self.client.down_since
        return 0.0 if since is None else time.monotonic() - since

    def revive(self) -> None:
        """DNS on again with an empty cache (the daemon, after its back-off period)."""
        self.client = DnsClient(self.settings)

    def verify(self, analysis: Analysis) -> Evidence:
        self.client.start_budget()
        return Evidence(
            originals=tuple(self._original(o) for o in analysis.originals), verified=True
        )

    def _original(self, original: Original) -> OriginalEvidence:
        was_down = self.client.down
        try:
            ev = self._checks(original)
        except Exception as e:  # a bug or a library fault on odd input: a finding, not a crash
            log.error("verify_failed", exc_info=True, extra={"error": type(e).__name__})
            return OriginalEvidence(
                findings=(
                    Finding(
                        "verify-error",
                        Severity.ERROR,
                        f"Verification failed: {type(e).__name__}: {e}",
                    ),
                )
            )
        findings = list(ev.findings)
        if was_down:
            findings.append(
                Finding(
                    "dns-off",
                    Severity.WARNING,
                    f"DNS is off for this run ({self.client.down_reason}); results are"
                    " temperror: `stopitd cases reanalyze` verifies again.",
                )
            )
        elif self.client.failures:
            findings.append(
                Finding(
                    "dns-temperror",
                    Severity.WARNING,
                    "DNS lookups failed (" + self.client.failures[0] + "); the affected results"
                    " are temperror: `stopitd cases reanalyze` verifies again.",
                )
            )
        return OriginalEvidence(ev.dkim, ev.arc, ev.spf, ev.dmarc, tuple(findings))

    def _checks(self, original: Original) -> OriginalEvidence:
        self.client.failures = []
        findings: list[Finding] = []
        dkim_results: tuple[DkimSignature, ...] = ()
        arc = OriginalEvidence().arc
        if original.grade is Grade.FULL_MESSAGE:
            dkim_results = verify_dkim(original.raw, self.client)
            arc = verify_arc(original.raw, self.client)
        elif original.grade is Grade.HEADERS_ONLY:
            dkim_results = list_signatures(
                original.raw, "not verifiable: only the header block was reported"
            )
            if dkim_results:
                findings.append(
                    Finding(
                        "dkim-not-verifiable",
                        Severity.INFO,
                        "DKIM signatures cannot be verified without the message body.",
                    )
                )
        else:
            return OriginalEvidence()
        ip, helo, sender = _handoff(original)
        spf: SpfResult | None = check_spf(self.client, ip, sender, helo)
        dmarc: DmarcResult | None = None
        from_addr = original.fields.from_.address if original.fields.from_ else ""
        from_domain = domain_of(from_addr) if "@" in from_addr else ""
        if from_domain:
            dmarc = evaluate(_dmarc_record(self.client, from_domain), dkim_results, spf)
        elif original.fields.from_ is None:
            dmarc = DmarcResult(AuthVerdict.NONE)
        return OriginalEvidence(dkim_results, arc, spf, dmarc, tuple(findings))


_defaults: dict[DnsSettings, Verifier] = {}


def default_verifier(settings: DnsSettings) -> Verifier:
    """The process-wide verifier for these settings (one CLI run shares its cache/state)."""
    verifier = _defaults.get(settings)
    if verifier is None:
        verifier = _defaults[settings] = Verifier(settings)
    return verifier


def reset_default_verifier() -> None:
    _defaults.clear()


def verify_analysis(
    analysis: Analysis, dns_settings: DnsSettings, verifier: Verifier | None = None
) -> Evidence:
    """Verify every original of ``analysis`` within the DNS budget; never raises for DNS."""
    if not dns_settings.enabled:
        return Evidence.none()
    return (verifier or default_verifier(dns_settings)).verify(analysis)
