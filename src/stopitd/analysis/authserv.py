"""Which authserv-ids the enabled provider profiles vouch for (pure data).

Each profile names the ids its receivers write in ``Authentication-Results``,
``ARC-Authentication-Results`` and ``Received-SPF`` (``receiver=`` or the host at the start
of the comment). An entry starting with ``.`` matches that suffix (Yahoo stamps with the
name of the host that received, under ``mail.yahoo.com``). ``MICROSOFT_NO_ID`` is the
profile flag for Microsoft's ``Authentication-Results`` written without any authserv-id:
such a stamp is only believed by its position above the boundary.
"""

from __future__ import annotations

from collections.abc import Iterable

from stopitd.analysis.policy import TrustPolicy

PROVIDER_AUTHSERV_IDS: dict[str, tuple[str, ...]] = {
    "google": ("mx.google.com", "google.com"),
    "microsoft": (
        "mx.microsoft.com",
        "microsoft.com",
        "protection.outlook.com",
        ".protection.outlook.com",
    ),
    "yahoo": (".mail.yahoo.com", "yahoo.com", ".yahoo.com"),
    "apple": (
        "dkim-verifier.icloud.com",
        "spf.icloud.com",
        "dmarc.icloud.com",
        "arc.icloud.com",
        "bimi.icloud.com",
        "icloud.com",
    ),
}

# Profiles whose receivers write Authentication-Results with no authserv-id at all.
PROVIDERS_WITHOUT_ID = frozenset({"microsoft"})

# Profiles whose X-Forefront-Antispam-Report stamps we read. Exchange Online reorders
# headers (its X- stamps usually sit below every Received header) and its header firewall
# strips X-Forefront-* arriving from outside, so these are believed wherever they sit, but
# only when the boundary hop was received by one of the provider's hosts.
PROVIDERS_WITH_FOREFRONT = frozenset({"microsoft"})
FOREFRONT_HOSTS: dict[str, tuple[str, ...]] = {
    "microsoft": (".protection.outlook.com", ".outlook.com", ".outlook.office365.com"),
}


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
    if not authserv_id:
        return next((p for p in policy.providers if p in PROVIDERS_WITHOUT_ID), "")
    if _matches(authserv_id, policy.trusted_authserv_ids):
        return "config"
    for provider in policy.providers:
        if _matches(authserv_id, PROVIDER_AUTHSERV_IDS.get(provider, ())):
            return provider
    return ""


def forefront_trusted(policy: TrustPolicy) -> str:
    """The provider whose Forefront stamps we read, or ""."""
    return next((p for p in policy.providers if p in PROVIDERS_WITH_FOREFRONT), "")


def received_by_provider(by: str, provider: str) -> bool:
    """Was a hop received ("by ...") by one of the provider's Forefront hosts?"""
    return _matches(by, FOREFRONT_HOSTS.get(provider, ()))
