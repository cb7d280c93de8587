"""Built-in provider profiles (google, microsoft, yahoo, apple): what their hops look like.

This is the one provider table: a profile lists the host-name suffixes of the provider's
mail servers, the networks they send from (and the internal ones their own hops carry)
for the trust walk, and for the recorded authentication results (``authserv.py``) the
authserv-ids its receivers stamp, whether they stamp without any id, and the hosts whose
X-Forefront-Antispam-Report stamps are read. The walk uses a profile two ways: when our own mailbox
sits at the provider (the top receiver is theirs), the provider's hops are trusted like
our own; when the provider handed the message to us, its hops one level deeper are read
as provider-attested. Ranges are the providers' published outbound ranges (SPF records,
documentation) as of 2026; review them when a provider announces new ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from stopitd.analysis import ipaddr
from stopitd.analysis.ipaddr import Network


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    abuse_domain: str  # the domain whose abuse desk answers for the provider
    host_suffixes: tuple[str, ...]
    networks: tuple[Network, ...]
    # authserv-ids its receivers write in Authentication-Results, ARC-Authentication-Results
    # and Received-SPF; an entry starting with "." matches that suffix (Yahoo stamps with
    # the name of the host that received, under mail.yahoo.com)
    authserv_ids: tuple[str, ...]
    webmail_hides_client: bool = True  # consumer webmail does not record the client IP
    # writes Authentication-Results with no authserv-id at all (believed by position only)
    stamps_without_id: bool = False
    # hosts ("." suffixes) that, having received the boundary hop, make its
    # X-Forefront-Antispam-Report believed wherever it sits; () when it writes none
    forefront_hosts: tuple[str, ...] = ()


def _p(
    name: str,
    abuse: str,
    hosts: str,
    nets: str,
    authserv: str,
    *,
    without_id: bool = False,
    forefront: str = "",
) -> Provider:
    return Provider(
        name=name,
        abuse_domain=abuse,
        host_suffixes=tuple(hosts.split()),
        networks=ipaddr.networks(nets.split()),
        authserv_ids=tuple(authserv.split()),
        stamps_without_id=without_id,
        forefront_hosts=tuple(forefront.split()),
    )


PROFILES: dict[str, Provider] = {
    p.name: p
    for p in (
        _p(
            "google",
            "google.com",
            "google.com googlemail.com gmail.com",
            "209.85.128.0/17 66.102.0.0/20 64.233.160.0/19 66.249.80.0/20 72.14.192.0/18 "
            "74.125.0.0/16 108.177.8.0/21 108.177.96.0/19 142.250.0.0/15 172.217.0.0/16 "
            "172.253.0.0/16 173.194.0.0/16 216.58.192.0/19 216.239.32.0/19 35.190.247.0/24 "
            "35.191.0.0/16 130.211.0.0/22 2001:4860:4000::/36 2404:6800:4000::/36 "
            "2607:f8b0:4000::/36 2800:3f0:4000::/36 2a00:1450:4000::/36 2c0f:fb50:4000::/36 "
            "2002:a00::/24",  # 6to4 form of 10/8: Google's internal "by 2002:a05:..." hops
            "mx.google.com google.com",
        ),
        _p(
            "microsoft",
            "microsoft.com",
            "outlook.com hotmail.com office365.com outlook.office365.com microsoft.com "
            "exchangelabs.com",
            "40.92.0.0/15 40.107.0.0/16 52.100.0.0/14 104.47.0.0/17 65.54.0.0/16 "
            "65.55.0.0/16 157.55.0.0/16 207.46.0.0/16 2a01:111:f400::/48 2a01:111:f403::/48 "
            "2603:1000::/24",  # Exchange Online's internal IPv6 hops
            "mx.microsoft.com microsoft.com protection.outlook.com .protection.outlook.com",
            # Exchange Online reorders headers (its X- stamps usually sit below every
            # Received header) and its header firewall strips X-Forefront-* arriving from
            # outside
            without_id=True,
            forefront=".protection.outlook.com .outlook.com .outlook.office365.com",
        ),
        _p(
            "yahoo",
            "yahooinc.com",
            "yahoo.com yahoo.net yahoodns.net aol.com aol.net ymail.com",
            "66.163.160.0/19 66.196.64.0/18 67.195.0.0/16 68.142.192.0/18 74.6.0.0/16 "
            "77.238.176.0/20 87.248.96.0/19 98.136.0.0/14 106.10.128.0/17 124.108.96.0/19 "
            "188.125.64.0/19 212.82.96.0/19 216.252.96.0/19 2001:4998::/32",
            ".mail.yahoo.com yahoo.com .yahoo.com",
        ),
        _p(
            "apple",
            "apple.com",
            "icloud.com me.com mac.com apple.com",
            "17.0.0.0/8 2620:149::/32 2a01:b740::/32",
            "dkim-verifier.icloud.com spf.icloud.com dmarc.icloud.com arc.icloud.com "
            "bimi.icloud.com icloud.com",
        ),
    )
}


def enabled(names: tuple[str, ...]) -> tuple[Provider, ...]:
    return tuple(PROFILES[n] for n in names if n in PROFILES)


def host_in(host: str, suffixes: tuple[str, ...]) -> bool:
    """Is ``host`` one of the suffixes or below one of them (case-insensitive)?"""
    if not host or not suffixes:
        return False
    h = host.lower().rstrip(".")
    for s in suffixes:
        s = s.lower().strip(".")
        if s and (h == s or h.endswith("." + s)):
            return True
    return False


def owns_host(provider: Provider, host: str) -> bool:
    """A host name or IP literal (``by 2002:a05:...``) that belongs to the provider."""
    if host_in(host, provider.host_suffixes):
        return True
    return bool(ipaddr.parse(host)) and ipaddr.in_networks(host, provider.networks)


def owns_ip(provider: Provider, ip: str) -> bool:
    return ipaddr.in_networks(ip, provider.networks)
