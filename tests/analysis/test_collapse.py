"""received._collapse skips the split and join when the text has nothing to collapse: it
must give what they give for any text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stopitd.analysis.received import _collapse

_PIECES = st.sampled_from(
    [" ", "  ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85",
     "\xa0", "\u2028", "\u3000", "a", "by", "é", "[192.0.2.1]", ";"]
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(_PIECES, max_size=12).map("".join) | st.text(max_size=40))
def test_collapse_is_split_and_join(text: str) -> None:
    assert _collapse(text) == " ".join(text.split())
