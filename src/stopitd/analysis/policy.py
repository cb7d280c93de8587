"""What the analysis is told from outside: the trust policy and the structural limits.

Built from config by ``stopitd.config`` and passed in; the analysis never reads config.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """Which hops and stamps we trust. Every list empty: only the top receiver is trusted."""

    trusted_networks: tuple[str, ...] = ()  # CIDRs of our own relays
    trusted_hosts: tuple[str, ...] = ()  # host suffixes of provider-internal hops without IP
    msa_networks: tuple[str, ...] = ()  # CIDRs of our submission servers / clients
    trusted_authserv_ids: tuple[str, ...] = ()
    originating_ip_headers: tuple[str, ...] = ()  # e.g. X-Originating-IP
    providers: tuple[str, ...] = ()  # built-in profiles: google, microsoft, yahoo, apple


@dataclass(frozen=True, slots=True)
class Limits:
    """Structural limits on hostile input; each hit becomes a Finding, never an exception."""

    max_mime_depth: int = 32
    max_parts: int = 5000
    max_part_size: int = 50 * 1024 * 1024
    max_total_decoded: int = 100 * 1024 * 1024
    max_headers: int = 20000
    max_header_length: int = 2 * 1024 * 1024
    max_forward_depth: int = 16
    max_msg_attachments: int = 50


@dataclass(frozen=True, slots=True)
class Policy:
    trust: TrustPolicy = field(default_factory=TrustPolicy)
    limits: Limits = field(default_factory=Limits)
