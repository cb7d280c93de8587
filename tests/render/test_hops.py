"""The readable hop table and verdict show staff what the JSON says."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from stopitd.analysis import analyze
from stopitd.analysis.model import Envelope
from stopitd.analysis.policy import Policy, TrustPolicy
from stopitd.render.hops import render_hops, render_source

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "received"


def _text(name: str, policy: TrustPolicy) -> str:
    raw = (FIXTURES / name).read_bytes()
    (original,) = analyze(raw, Envelope(), Policy(trust=policy), as_original=True).originals
    console = Console(record=True, width=240, color_system=None)
    console.print(render_hops(original))
    console.print(render_source(original))
    return console.export_text()


def test_table_shows_each_hop_and_the_verdict_names_the_handoff_and_why() -> None:
    out = _text("postfix-amavis-botnet.eml", TrustPolicy())
    assert "WIN-5H4X2P8Q (dsl-187-156-22-9-dyn.prod-infinitum.com.mx [187.156.22.9])" in out
    assert "boundary" in out and "claimed" in out and "trusted" in out
    assert "Verdict: handoff" in out and "hand-off 187.156.22.9" in out
    assert "[top-receiver-only]" in out


def test_internal_submission_is_visible_with_the_user() -> None:
    policy = TrustPolicy(trusted_networks=("193.60.0.0/16",), msa_networks=("193.60.10.0/24",))
    out = _text("exim-university-submission.eml", policy)
    assert "Verdict: submission" in out and "internal sender" in out
    assert "esmtpsa" in out


def test_unknown_verdict_tells_whom_to_ask() -> None:
    out = _text("yahoo-webmail-to-gmail.eml", TrustPolicy(providers=("google", "yahoo")))
    assert "Verdict: unknown" in out and "provider yahoo" in out
    assert "yahooinc.com's abuse desk" in out
