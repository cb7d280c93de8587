"""Walk + recorded auth + evidence -> the source estimate and its reasons (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from stopitd.analysis.authres import Recorded
from stopitd.analysis.model import (
    Confidence,
    Finding,
    Mode,
    Original,
    OriginalEvidence,
    Reason,
    SourceEstimate,
)
from stopitd.analysis.policy import TrustPolicy
from stopitd.analysis.trust import Walk


@dataclass(frozen=True, slots=True)
class Estimate:
    source: SourceEstimate
    findings: tuple[Finding, ...] = ()


def estimate(
    original: Original,
    walk: Walk,
    recorded: Recorded,
    evidence: OriginalEvidence | None,
    policy: TrustPolicy,
) -> Estimate:
    del original, recorded, evidence, policy
    if walk.boundary_index is None:
        return Estimate(
            SourceEstimate(
                reasons=(Reason("no-trace", "The original carries no usable Received header."),)
            )
        )
    hop = walk.hops[walk.boundary_index]
    return Estimate(
        SourceEstimate(
            relay_ip=hop.ip,
            mode=Mode.HANDOFF if hop.ip else Mode.UNKNOWN,
            confidence=Confidence.LOW if hop.ip else Confidence.NONE,
            boundary_index=walk.boundary_index,
            reasons=(Reason("top-hop-only", "Only the top receiver is trusted."),),
        )
    )
