"""Key fields: the fast address reader agrees with the stdlib on every shape it takes."""

from __future__ import annotations

from email.utils import getaddresses

from hypothesis import given, settings
from hypothesis import strategies as st

from stopitd.analysis.fields import _grouped_address, _simple_address, parse_addresses
from stopitd.analysis.model import Address

_ATOM_CHARS = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
atoms = st.text(alphabet=_ATOM_CHARS, min_size=1, max_size=6)
pieces = st.sampled_from(
    [" ", "  ", "\t", ".", "@", "<", ">", '"', "\\", ",", "(", ")", ":", ";", "[", "]", "é", ""]
)
labels = st.text(alphabet="abz09-", min_size=1, max_size=6)
values = st.lists(st.one_of(atoms, pieces), max_size=14).map("".join)


def _stdlib(value: str) -> list[tuple[str, str]]:
    return [(n, a) for n, a in getaddresses([value]) if n or a]


@settings(max_examples=1500, deadline=None)
@given(values)
def test_fast_path_reads_what_the_stdlib_reads(value: str) -> None:
    simple = _simple_address(value)
    if simple is not None:
        assert [simple] == _stdlib(value) or (not simple[0] and not simple[1])


group_values = st.tuples(
    st.lists(st.one_of(atoms, st.sampled_from([" ", "\t", ":", ": ", ":", ";", ","])), max_size=8),
    st.one_of(values, st.sampled_from(["<x@example.net>", "jo@example.org", "N <a@b.example>"])),
).map(lambda t: "".join(t[0]) + t[1])


@settings(max_examples=1500, deadline=None)
@given(group_values)
def test_group_fast_path_reads_what_the_stdlib_reads(value: str) -> None:
    grouped = _grouped_address(value)
    if grouped is not None:
        assert [grouped] == _stdlib(value)


def test_hundreds_of_group_colons_take_the_fast_path() -> None:
    for value in ("group" + ":" * 600 + " <x@example.net>", ":" * 600 + "jdoe@example.edu"):
        assert _grouped_address(value) is not None
        assert [_grouped_address(value)] == _stdlib(value)
    assert parse_addresses("g: a@example.org") == (Address("", "a@example.org"),)


@settings(max_examples=500, deadline=None)
@given(st.lists(atoms, min_size=1, max_size=3), atoms, labels, st.booleans())
def test_common_shapes_take_the_fast_path(
    words: list[str], local: str, domain: str, quoted: bool
) -> None:
    addr = f"{local}@{domain}.example"
    name = " ".join(words)
    value = f'"{name}" <{addr}>' if quoted else f"{name} <{addr}>"
    assert _simple_address(value) is not None
    assert _simple_address(addr) is not None
    assert _simple_address(value) == _stdlib(value)[0]


def test_shapes_real_clients_write() -> None:
    cases = {
        "Jane Doe <jane@example.org>": (Address("Jane Doe", "jane@example.org"),),
        '"Doe, Jane" <jane@example.org>': (Address("Doe, Jane", "jane@example.org"),),
        "jane@example.org": (Address("", "jane@example.org"),),
        "<jane@example.org>": (Address("", "jane@example.org"),),
        "=?utf-8?q?J=C3=BCrgen?= <j@example.org>": (Address("Jürgen", "j@example.org"),),
        "a@example.org, B <b@example.org>": (
            Address("", "a@example.org"),
            Address("B", "b@example.org"),
        ),
        "jane@example.org (Jane)": (Address("Jane", "jane@example.org"),),
    }
    for value, expected in cases.items():
        assert parse_addresses(value) == expected, value
