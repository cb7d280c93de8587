"""Fold verified evidence (DKIM, ARC, SPF, DMARC) into an original's verdict (pure)."""

from __future__ import annotations

from dataclasses import replace

from stopitd.analysis.model import Original, OriginalEvidence
from stopitd.analysis.policy import TrustPolicy


def conclude(
    original: Original, evidence: OriginalEvidence | None, policy: TrustPolicy
) -> Original:
    del policy
    if evidence is None:
        return original
    auth = replace(
        original.auth,
        dkim=evidence.dkim,
        arc=evidence.arc,
        spf=evidence.spf,
        dmarc=evidence.dmarc,
        verified=True,
    )
    return replace(original, auth=auth, findings=original.findings + evidence.findings)
