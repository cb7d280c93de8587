"""Hops + TrustPolicy -> the trust walk: a label per hop and the hand-off (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from stopitd.analysis.headers import HeaderField
from stopitd.analysis.model import Finding, Hop, HopStatus, Trust
from stopitd.analysis.policy import TrustPolicy


@dataclass(frozen=True, slots=True)
class Walk:
    hops: tuple[Hop, ...]  # labelled
    boundary_index: int | None  # the hop whose sender is the hand-off
    findings: tuple[Finding, ...] = ()


def walk(hops: Sequence[Hop], fields: list[HeaderField], policy: TrustPolicy) -> Walk:
    """With an empty policy only the top receiver is trusted: its sender is the hand-off."""
    del fields, policy
    boundary = next((i for i, h in enumerate(hops) if h.status is HopStatus.PARSED), None)
    labelled = tuple(
        replace(h, trust=Trust.BOUNDARY if i == boundary else Trust.CLAIMED)
        for i, h in enumerate(hops)
    )
    return Walk(hops=labelled, boundary_index=boundary)
