"""Which authserv-ids the enabled provider profiles vouch for (pure).

The ids, the no-id flag and the Forefront hosts are fields of the provider profiles in
``providers.py`` (the one provider table, shared with the trust walk). An id entry
starting with ``.`` matches that suffix. A profile with ``stamps_without_id`` (Microsoft)
writes ``Authentication-Results`` without any authserv-id: such a stamp is only believed
by its position above the boundary. A profile with ``forefront_hosts`` has its
X-Forefront-Antispam-Report stamps read: Exchange Online reorders headers and strips
X-Forefront-* arriving from outside, so these are believed wherever they sit, but only
when the boundary hop was received by one of those hosts.
"""

from __future__ import annotations

from collections.abc import Iterable

from stopitd.analysis.policy import TrustPolicy
from stopitd.analysis.providers import PROFILES


def _matches(authserv_id: str, patterns: Iterable[str]) -> bool:
    aid = authserv_id.lower().rstrip(".")
    for p in patterns:
        p = p.lower()
        if p.startswith("."):
            if aid.endswith(p):
                return True
        elif aid == p:
            return True
    return False


def trusted_by(authserv_id: str, policy: TrustPolicy) -> str:
    """Who vouches for this authserv-id: "config", a provider name, or "" (nobody)."""
    if not policy.trusted_authserv_ids and not policy.providers:
        return ""  # the default policy: nobody, whatever the id
    if not authserv_id:
        return next(
            (p for p in policy.providers if p in PROFILES and PROFILES[p].stamps_without_id),
            "",
        )
    if _matches(authserv_id, policy.trusted_authserv_ids):
        return "config"
    for provider in policy.providers:
        profile = PROFILES.get(provider)
        if profile is not None and _matches(authserv_id, profile.authserv_ids):
            return provider
    return ""


def forefront_trusted(policy: TrustPolicy) -> str:
    """The provider whose Forefront stamps we read, or ""."""
    return next(
        (p for p in policy.providers if p in PROFILES and PROFILES[p].forefront_hosts), ""
    )


def received_by_provider(by: str, provider: str) -> bool:
    """Was a hop received ("by ...") by one of the provider's Forefront hosts?"""
    profile = PROFILES.get(provider)
    return profile is not None and _matches(by, profile.forefront_hosts)
