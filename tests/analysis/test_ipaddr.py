"""The IP readers' fast paths (plain dotted quads, integer ranges, no exceptions for host
names) give what the ipaddress module's general reading gives."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from stopitd.analysis import ipaddr
from stopitd.analysis.model import IpClass


def _reference_parse(text: str) -> ipaddr.Address | None:
    s = ipaddr._strip(text)
    if not s or len(s) > 45:
        return None
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in ipaddr._NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def _reference_class(text: str) -> IpClass:
    ip = _reference_parse(text)
    if ip is None:
        return IpClass.NONE
    if ip.is_loopback:
        return IpClass.LOOPBACK
    if ip.is_link_local:
        return IpClass.LINK_LOCAL
    if isinstance(ip, ipaddress.IPv4Address):
        if ip in ipaddr._CGNAT:
            return IpClass.CGNAT
        if any(ip in n for n in ipaddr._V4_PRIVATE):
            return IpClass.PRIVATE
        if any(ip in n for n in ipaddr._V4_RESERVED) or ip.is_unspecified:
            return IpClass.RESERVED
        return IpClass.PUBLIC
    if ip in ipaddr._ULA:
        return IpClass.ULA
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved or ip in ipaddr._V6_DOC:
        return IpClass.RESERVED
    if ip.is_site_local:
        return IpClass.PRIVATE
    return IpClass.PUBLIC


def _check(text: str) -> None:
    ref = _reference_parse(text)
    assert ipaddr.parse(text) == ref, text
    assert ipaddr.normalise(text) == ("" if ref is None else str(ref)), text
    assert ipaddr.classify(text) is _reference_class(text), text


_EDGES = [0, 0x7F000001, 0xA9FE0101, 0x64400001, 0x0A000001, 0xAC100001, 0xC0A80101,
          0xC0000201, 0xC6120001, 0xC6336401, 0xCB007101, 0xE0000001, 0xF0000001,
          0xFFFFFFFF, 0x08080808, 0x64000000, 0x647FFFFF]


@settings(max_examples=1000, deadline=None)
@given(st.one_of(
    st.integers(min_value=0, max_value=2**32 - 1),
    st.sampled_from(_EDGES).flatmap(
        lambda e: st.integers(min_value=max(0, e - 300), max_value=min(2**32 - 1, e + 300))
    ),
))
def test_dotted_quads_read_as_ipaddress_reads_them(value: int) -> None:
    _check(str(ipaddress.IPv4Address(value)))


_TEXT = st.lists(
    st.sampled_from(["1", "25", "255", "256", "0", "01", ".", ":", "::", "[", "]", "ffff",
                     "IPv6:", "%eth0", "a", "g", "mail", "-", " ", "١", "2002", "64:ff9b"]),
    max_size=10,
).map("".join)


@settings(max_examples=1000, deadline=None)
@given(_TEXT)
def test_any_text_reads_as_ipaddress_reads_it(text: str) -> None:
    _check(text)


def test_written_forms() -> None:
    for text in ("192.0.2.1", "[192.0.2.1]", "192.0.2.1:25", "IPv6:2001:db8::1", "::1",
                 "::ffff:198.51.100.7", "64:ff9b::c000:201", "010.1.1.1", "mail.example.net",
                 "2a00:1450:4864:20::52f", "fe80::1%eth0", "", "1.2.3"):
        _check(text)


_V6_EDGES = [0, 1, 2, 0xFE80 << 112, 0xFEC0 << 112, 0xFC00 << 112, 0xFF00 << 112,
             0x20010DB8 << 96, 0x2002 << 112, 0x2A00 << 112, 0x0100 << 112, 0x4000 << 112,
             0xE000 << 112, 0xFE00 << 112, 0xFFFF << 32, 0x0064FF9B << 96, 2**128 - 1]


@settings(max_examples=1000, deadline=None)
@given(st.one_of(
    st.integers(min_value=0, max_value=2**128 - 1),
    st.sampled_from(_V6_EDGES).flatmap(
        lambda e: st.integers(min_value=max(0, e - 2**20), max_value=min(2**128 - 1, e + 2**20))
    ),
))
def test_ipv6_reads_and_classes_as_ipaddress_gives_them(value: int) -> None:
    text = str(ipaddress.IPv6Address(value))
    _check(text)
    _check(f"[IPv6:{text}]")


@given(st.text(alphabet="0123456789abcdefghijxyzABCFGZ.-", max_size=60))
def test_host_names_are_no_address_by_the_general_reading(text: str) -> None:
    if ipaddr._HOST_NAME.fullmatch(text) is not None:
        assert ipaddr._parse_stripped(ipaddr._strip(text)) is None
        assert ipaddr.parse(text) is None and ipaddr.normalise(text) == ""


def test_each_v6_slash16_but_2001_holds_one_class() -> None:
    for top in range(1, 0x10000):
        low = top << 112
        high = low | ((1 << 112) - 1)
        if top == 0x2001:
            for second in range(0x10000):
                low32 = low | (second << 96)
                assert ipaddr._classify_v6(low32) is ipaddr._classify_v6(low32 | ((1 << 96) - 1))
        else:
            assert ipaddr._classify_v6(low) is ipaddr._classify_v6(high), hex(top)


@settings(max_examples=500)
@given(st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_normal_forms_class_as_classify_gives(value: int) -> None:
    text = ipaddr.normalise(str(ipaddress.IPv6Address(value)))
    assert ipaddr.classify_normal(text) is ipaddr.classify(text), text


def test_normal_forms_of_the_special_networks_class_as_classify_gives() -> None:
    for text in ("::1", "::", "fe80::1", "fc00::1", "fd12::1", "ff02::1", "2001:db8::1",
                 "2001:db9::1", "2001::1", "2001:0:1::1", "fec0::1", "100::1", "2603:10a6::9",
                 "64:ff9b::102:304", "::ffff:1.2.3.4", "10.1.2.3", "", "1.2.3.4"):
        normal = ipaddr.normalise(text) if text else ""
        assert ipaddr.classify_normal(normal) is ipaddr.classify(normal), text


_HEX_COLON_TEXT = st.lists(
    st.sampled_from(["0", "1", "00", "0000", "00000", "ffff", "FFFF", "a0", "64", "ff9b",
                     ":", "::", ":::"]),
    max_size=18,
).map("".join)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(
    _HEX_COLON_TEXT,
    st.integers(min_value=0, max_value=2**128 - 1).map(
        lambda v: ipaddress.IPv6Address(v).exploded.upper()
    ),
    st.sampled_from(_V6_EDGES).flatmap(
        lambda e: st.integers(min_value=max(0, e - 2**40), max_value=min(2**128 - 1, e + 2**40))
    ).map(lambda v: str(ipaddress.IPv6Address(v))),
))
def test_hex_v6_text_gives_what_ipaddress_prints(text: str) -> None:
    fast = ipaddr.hex_v6_text(text, nat64=False)
    if fast is None:
        assert ":" not in text
        return
    try:
        ip = ipaddress.IPv6Address(text)
    except ValueError:
        assert fast == "", text
        return
    assert fast == str(ip.ipv4_mapped or ip), text
    _check(text)
