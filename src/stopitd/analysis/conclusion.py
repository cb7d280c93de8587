"""Fold verified evidence (DKIM, ARC, SPF, DMARC) into an original's verdict (pure).

``source.from_authenticated`` is true when the From domain is proven by one of:
a verified DMARC pass; when the From domain publishes no DMARC record (or its lookup
failed), a verified DKIM signature whose d= aligns (relaxed) with the From domain or a
verified SPF pass whose domain aligns; or the same results recorded by a trusted
receiver (kept stamps only, see ``authres.py``). With no evidence (DNS not asked) it stays
null unless a kept stamp proves it. The domains of passing DKIM signatures and an
authenticated From domain are added to ``source.responsible_domains``.
"""

from __future__ import annotations

from dataclasses import replace

from stopitd.analysis.dmarc import aligned, domain_of
from stopitd.analysis.model import (
    AuthSummary,
    AuthVerdict,
    Original,
    OriginalEvidence,
    Reason,
    RecordedAuth,
    SourceEstimate,
)
from stopitd.analysis.policy import TrustPolicy


def _prop(rec: RecordedAuth, *names: str) -> str:
    for key, value in rec.properties:
        if key.lower() in names:
            return value
    return ""


def _recorded_proof(from_domain: str, recorded: tuple[RecordedAuth, ...]) -> str:
    for rec in recorded:
        if rec.result != "pass":
            continue
        who = rec.authserv_id or rec.header
        if rec.method == "dmarc":
            d = _prop(rec, "header.from")
            if not d or aligned(d, from_domain, strict=True):
                return f"{who} recorded dmarc=pass for {from_domain}"
        if rec.method == "dkim":
            d = _prop(rec, "header.d") or domain_of(_prop(rec, "header.i"))
            if d and aligned(d, from_domain, strict=False):
                return f"{who} recorded dkim=pass for d={d}, aligned with the From domain"
        if rec.method == "spf" and rec.header != "Received-SPF":
            d = domain_of(_prop(rec, "smtp.mailfrom"))
            if d and aligned(d, from_domain, strict=False):
                return f"{who} recorded spf=pass for {d}, aligned with the From domain"
    return ""


def _verified_proof(from_domain: str, auth: AuthSummary) -> str:
    """The proof from verified evidence; the domain's own DMARC record governs when found."""
    if auth.dmarc is not None and auth.dmarc.result is AuthVerdict.PASS:
        how = " and ".join(
            n
            for n, ok in (("DKIM", auth.dmarc.dkim_aligned), ("SPF", auth.dmarc.spf_aligned))
            if ok
        )
        return f"DMARC pass for {from_domain} ({how} aligned)"
    if auth.dmarc is not None and auth.dmarc.result is AuthVerdict.FAIL:
        return ""  # the domain's own alignment rules (maybe strict) were applied, not met
    for sig in auth.dkim:
        if sig.result is AuthVerdict.PASS and aligned(sig.domain, from_domain, strict=False):
            return f"DKIM signature d={sig.domain} s={sig.selector} verifies and aligns"
    spf = auth.spf
    if (
        spf is not None
        and spf.result is AuthVerdict.PASS
        and aligned(spf.domain, from_domain, strict=False)
    ):
        return f"SPF pass for {spf.domain} from {spf.ip}, aligned with the From domain"
    return ""


def _signer_domains(auth: AuthSummary) -> list[str]:
    out = [s.domain.lower() for s in auth.dkim if s.result is AuthVerdict.PASS and s.domain]
    for rec in auth.recorded:
        if rec.method == "dkim" and rec.result == "pass":
            d = _prop(rec, "header.d") or domain_of(_prop(rec, "header.i"))
            if d:
                out.append(d.lower())
    return out


def conclude(
    original: Original, evidence: OriginalEvidence | None, policy: TrustPolicy
) -> Original:
    del policy  # which stamps are trusted was settled when they were read
    auth = original.auth
    if evidence is None and not auth.recorded and not auth.dkim:
        # No evidence and no stamps (--no-dns, the usual case): no proof and no signer
        # domains, so nothing folds in unless the domains had repeats to drop.
        given = original.source.responsible_domains
        if len(set(given)) == len(given):
            return original
    findings = original.findings
    if evidence is not None:
        auth = replace(
            auth,
            dkim=evidence.dkim,
            arc=evidence.arc,
            spf=evidence.spf,
            dmarc=evidence.dmarc,
            verified=True,
        )
        findings = findings + evidence.findings
    source = original.source
    from_domain = domain_of(original.fields.from_.address) if original.fields.from_ else ""
    proof = ""
    if from_domain:
        proof = (_verified_proof(from_domain, auth) if evidence is not None else "") or (
            _recorded_proof(from_domain, auth.recorded)
        )
    from_authenticated = source.from_authenticated
    reasons = source.reasons
    if proof:
        from_authenticated = True
        reasons = (*reasons, Reason("from-authenticated", f"From is authenticated: {proof}."))
    elif evidence is not None:
        from_authenticated = False
        why = (
            "the original has no From address"
            if not from_domain
            else f"no aligned DKIM or SPF pass and no trusted DMARC pass for {from_domain}"
        )
        reasons = (*reasons, Reason("from-not-authenticated", f"From is not proven: {why}."))
    domains = dict.fromkeys(source.responsible_domains)  # ordered, each once
    for d in _signer_domains(auth) + ([from_domain] if proof else []):
        domains.setdefault(d)
    responsible = tuple(domains)
    if evidence is None and not proof and responsible == source.responsible_domains:
        return original  # nothing to fold in (--no-dns, no kept proof): no copies to build
    # ``replace(...)`` spelt out: dataclasses.replace is slow, and this runs per original
    source = SourceEstimate(
        relay_ip=source.relay_ip,
        origin_ip=source.origin_ip,
        mode=source.mode,
        internal=source.internal,
        provider=source.provider,
        responsible_domains=responsible,
        authenticated_identity=source.authenticated_identity,
        from_authenticated=from_authenticated,
        confidence=source.confidence,
        reasons=reasons,
        boundary_index=source.boundary_index,
        origin_index=source.origin_index,
    )
    o = original
    return Original(
        how=o.how,
        grade=o.grade,
        raw=o.raw,
        fields=o.fields,
        findings=findings,
        hops=o.hops,
        source=source,
        auth=auth,
        envelope_sender=o.envelope_sender,
        sha256=o.sha256,
        found_in=o.found_in,
        filename=o.filename,
        feedback=o.feedback,
        header_fields=o.header_fields,
    )
