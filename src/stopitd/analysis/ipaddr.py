"""IP addresses as MTAs write them -> one normal form, and what kind of address it is (pure).

Normal form: RFC 5952 for IPv6 (lower case, longest zero run compressed), IPv4-mapped
(``::ffff:a.b.c.d``) and NAT64 (``64:ff9b::/96``) addresses as plain IPv4.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from stopitd.analysis.model import IpClass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_ULA = ipaddress.IPv6Network("fc00::/7")
_V4_RESERVED = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
_V4_PRIVATE = tuple(
    ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
_V6_DOC = ipaddress.IPv6Network("2001:db8::/32")


# A plain dotted quad as ``ipaddress`` accepts it (no leading zeros): the common case, read
# without the module's string parser. Anything else takes the general path.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_PLAIN_V4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


# A host name: letters, digits, dots and hyphens, with a letter past "f" or a hyphen.
# ``_strip`` leaves such text as it is and no address holds those characters, so it is
# no address: said with one match instead of _strip and _parse_stripped.
_HOST_NAME = re.compile(r"[0-9A-Za-z.-]*[G-Zg-z-][0-9A-Za-z.-]*")


# No IPv4 or IPv6 text (after ``_strip``) holds any other character.
_NOT_IP_CHAR = re.compile(r"[^0-9A-Fa-f:.]")


def is_plain_v4(text: str) -> bool:
    """A dotted quad as ``ipaddress`` reads it, and already in normal form."""
    return _PLAIN_V4.fullmatch(text) is not None


def _v4_int(text: str) -> int | None:
    m = _PLAIN_V4.fullmatch(text)
    if m is None:
        return None
    a, b, c, d = m.groups()
    return (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)


def _ranges(nets: Iterable[ipaddress.IPv4Network]) -> tuple[tuple[int, int], ...]:
    return tuple((int(n.network_address), int(n.broadcast_address)) for n in nets)


# IPv4 classes as integer ranges, in the order ``classify`` tests them.
_V4_CLASSES: tuple[tuple[IpClass, tuple[tuple[int, int], ...]], ...] = (
    (IpClass.LOOPBACK, _ranges([ipaddress.IPv4Network("127.0.0.0/8")])),
    (IpClass.LINK_LOCAL, _ranges([ipaddress.IPv4Network("169.254.0.0/16")])),
    (IpClass.CGNAT, _ranges([_CGNAT])),
    (IpClass.PRIVATE, _ranges(_V4_PRIVATE)),
    (IpClass.RESERVED, _ranges(_V4_RESERVED)),
)


_V6 = ipaddress.IPv6Network
_V6_CONSTANTS = ipaddress.IPv6Address._constants  # type: ignore[attr-defined]  # what is_* test
# IPv6 classes as integer ranges, in the order (and from the networks) the ipaddress
# properties would be asked: loopback, link-local, ULA, multicast / unspecified /
# reserved / documentation, site-local.
_V6_CLASSES: tuple[tuple[IpClass, tuple[tuple[int, int], ...]], ...] = tuple(
    (cls, tuple((int(n.network_address), int(n.broadcast_address)) for n in nets))
    for cls, nets in (
        (IpClass.LOOPBACK, [_V6("::1/128")]),
        (IpClass.LINK_LOCAL, [_V6_CONSTANTS._linklocal_network]),
        (IpClass.ULA, [_ULA]),
        (
            IpClass.RESERVED,
            [
                _V6_CONSTANTS._multicast_network,
                _V6("::/128"),
                *_V6_CONSTANTS._reserved_networks,
                _V6_DOC,
            ],
        ),
        (IpClass.PRIVATE, [_V6_CONSTANTS._sitelocal_network]),
    )
)


def _classify_v4(value: int) -> IpClass:
    for cls, ranges in _V4_CLASSES:
        for low, high in ranges:
            if low <= value <= high:
                return cls
    return IpClass.PUBLIC


def _octet_class(first: int) -> IpClass | None:
    """The class of every address in ``first``/8, or None when the /8 holds several."""
    low, high = first << 24, (first << 24) | 0xFFFFFF
    a, b = _classify_v4(low), _classify_v4(high)
    overlaps = [r for _, ranges in _V4_CLASSES for r in ranges if r[0] <= high and r[1] >= low]
    whole = all(r[0] <= low and r[1] >= high for r in overlaps)
    return a if a is b and whole else None


# The class of a dotted quad by its first octet (most /8s hold one class), so the common
# address is classed without reading its other three octets.
_V4_BY_FIRST_OCTET: tuple[IpClass | None, ...] = tuple(_octet_class(o) for o in range(256))


def _classify_plain_v4(m: re.Match[str]) -> IpClass:
    """The class of a ``_PLAIN_V4`` match."""
    cls = _V4_BY_FIRST_OCTET[int(m.group(1))]
    if cls is not None:
        return cls
    a, b, c, d = m.groups()
    return _classify_v4((int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d))


def _strip(text: str) -> str:
    """Remove the decorations MTAs put around an address: brackets, IPv6:, zone, port."""
    s = text.strip()
    if s.startswith("[") and "]" in s:
        s = s[1 : s.index("]")]  # "[1.2.3.4]:25" -> "1.2.3.4"
    s = s.strip("[]")
    if s[:5].lower() == "ipv6:":
        s = s[5:]
    if "%" in s:
        s = s.split("%", 1)[0]
    if s.count(":") == 1 and "." in s:  # IPv4 with a port: 1.2.3.4:25
        s = s.split(":", 1)[0]
    return s


def parse(text: str) -> Address | None:
    """The address written in ``text`` (decorations allowed), or None."""
    plain = _v4_int(text)
    if plain is not None:
        return ipaddress.IPv4Address(plain)
    if _HOST_NAME.fullmatch(text) is not None:
        return None
    s = _strip(text)
    plain = _v4_int(s)
    if plain is not None:  # [1.2.3.4], 1.2.3.4:25, ...
        return ipaddress.IPv4Address(plain)
    return _parse_stripped(s)


def is_address(text: str) -> bool:
    """``parse(text) is not None``, with a host name (the usual text) ruled out by one
    match instead of ``parse``'s two."""
    return _HOST_NAME.fullmatch(text) is None and parse(text) is not None


def _parse_stripped(s: str) -> Address | None:
    """``parse``'s general part, for ``s`` that ``_strip`` returned and that is no plain
    dotted quad."""
    if not s or len(s) > 45 or _NOT_IP_CHAR.search(s) is not None:
        return None  # a host name, mostly: no exception raised to say so
    try:
        # what ``ipaddress.ip_address`` does, without first failing as IPv4 on IPv6 text
        ip: Address = ipaddress.IPv6Address(s) if ":" in s else ipaddress.IPv4Address(s)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def normalise(text: str) -> str:
    """The normal form of the address written in ``text``, or "" when it is not one."""
    if _PLAIN_V4.fullmatch(text) is not None:
        return text  # a plain dotted quad is its own normal form
    if _HOST_NAME.fullmatch(text) is not None:
        return ""
    stripped = _strip(text)
    if _PLAIN_V4.fullmatch(stripped) is not None:
        return stripped
    fast = hex_v6_text(stripped, nat64=True)
    if fast is not None:
        return fast
    ip = _parse_stripped(stripped)  # what ``parse(text)`` gives here, without its first steps
    return "" if ip is None else str(ip)


# What ``hex_v6_text`` reads: hex digits and colons only (no embedded dotted quad).
_HEX_V6 = re.compile(r"[0-9A-Fa-f:]*:[0-9A-Fa-f:]*")
_V4_MAPPED_TOP = 0xFFFF  # ::ffff:0:0/96, shifted right by 32
_NAT64_TOP = int(_NAT64.network_address) >> 32


def hex_v6_text(s: str, *, nat64: bool) -> str | None:
    """``str`` of ``ipaddress.IPv6Address(s)`` (its IPv4-mapped address as plain IPv4, and
    with ``nat64`` a NAT64 one too), "" where it would raise, for ``s`` of hex digits and
    colons only; None for any other ``s`` (the caller takes the ``ipaddress`` way).
    ``ipaddress`` builds and prints its objects in pure Python at ~30 K instructions per
    address; test_ipaddr checks this against it."""
    if _HEX_V6.fullmatch(s) is None:
        return None
    value = _v6_int(s)
    if value is None:
        return ""
    top = value >> 32
    if top == _V4_MAPPED_TOP or (nat64 and top == _NAT64_TOP):
        return f"{value >> 24 & 255}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"
    return _v6_text(value)


def _v6_int(s: str) -> int | None:
    """IPv6 text of hex digits and colons as ``ipaddress`` reads it (None where it raises):
    eight hextets of one to four digits, or fewer with one "::" standing for one or more."""
    head, gap, tail = s.partition("::")
    words = head.split(":") if head else []
    if gap:
        low = tail.split(":") if tail else []
        if len(words) + len(low) > 7:
            return None
        words += ["0"] * (8 - len(words) - len(low))
        words += low
    elif len(words) != 8:
        return None
    value = 0
    for w in words:
        if not w or len(w) > 4:  # "" also where a ":" leads, trails or a ":::" sits
            return None
        value = value << 16 | int(w, 16)
    return value


def _v6_text(value: int) -> str:
    """RFC 5952 text of an IPv6 address, as ``ipaddress`` prints it: lower-case hextets
    without leading zeros, the first longest run of two or more zero hextets as "::"."""
    words = [value >> shift & 0xFFFF for shift in range(112, -16, -16)]
    best_at, best_len, run = -1, 1, 0
    for i, w in enumerate(words):
        run = run + 1 if w == 0 else 0
        if run > best_len:
            best_at, best_len = i - run + 1, run
    hexes = [f"{w:x}" for w in words]
    if best_at < 0:
        return ":".join(hexes)
    return ":".join(hexes[:best_at]) + "::" + ":".join(hexes[best_at + best_len :])


def classify(text: str) -> IpClass:
    """What kind of address ``text`` (already normalised or not) is; NONE when it is none."""
    if not text:
        return IpClass.NONE
    m = _PLAIN_V4.fullmatch(text)
    if m is not None:
        return _classify_plain_v4(m)
    ip = parse(text)
    if ip is None:
        return IpClass.NONE
    if isinstance(ip, ipaddress.IPv4Address):
        return _classify_v4(int(ip))
    return _classify_v6(int(ip))


def classify_normal(text: str) -> IpClass:
    """``classify`` of text that ``normalise`` returned ("" included), without parsing an
    IPv6 address again: in normal form its first hextet (its first two for 2001::/16)
    decides the class, as every class is a network of /32 or wider there (test_ipaddr
    checks each /16); ``::``-led addresses take the general way."""
    m = _PLAIN_V4.fullmatch(text)
    if m is not None:
        return _classify_plain_v4(m)
    head, colon, rest = text.partition(":")
    if not head or not colon:
        return classify(text)
    top = int(head, 16) << 112
    if top == _V6_SPLIT_SLASH16:  # 2001:db8::/32 sits inside
        second = rest.partition(":")[0]
        top |= int(second, 16) << 96 if second else 0
    return _classify_v6(top)


# The one /16 that holds more than one class (2001:db8::/32, documentation).
_V6_SPLIT_SLASH16 = 0x2001 << 112


def _classify_v6(value: int) -> IpClass:
    for cls, ranges in _V6_CLASSES:
        for low, high in ranges:
            if low <= value <= high:
                return cls
    return IpClass.PUBLIC


def is_public(text: str) -> bool:
    return classify(text) is IpClass.PUBLIC


def networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """CIDR strings -> networks; entries that are not networks are dropped (config checks)."""
    out: list[Network] = []
    for c in cidrs:
        try:
            out.append(ipaddress.ip_network(c.strip(), strict=False))
        except ValueError:
            continue
    return tuple(out)


def in_networks(text: str, nets: tuple[Network, ...]) -> bool:
    if not nets:
        return False
    ip = parse(text)
    if ip is None:
        return False
    return any(ip.version == n.version and ip in n for n in nets)


def far_apart(a: str, b: str) -> bool:
    """Two addresses not in one /16 (IPv4) or /32 (IPv6): unlikely the same site."""
    plain_a, plain_b = _v4_int(a), _v4_int(b)
    if plain_a is not None and plain_b is not None:  # the usual pair: no address objects
        return (plain_a >> 16) != (plain_b >> 16)
    x, y = parse(a), parse(b)
    if x is None or y is None:
        return False
    if x.version != y.version:
        return True
    shift = 16 if x.version == 4 else 96
    return (int(x) >> shift) != (int(y) >> shift)
