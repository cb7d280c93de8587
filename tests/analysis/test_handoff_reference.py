"""The hand-off address agrees with SpamAssassin's first untrusted relay, trust for trust.

For every fixture and every golden policy without provider profiles (SpamAssassin has
none), SpamAssassin is given the same trusted_networks (plus loopback, which it always
trusts) and msa_networks; the first relay of its X-Spam-Relays-Untrusted must be our
relay_ip. Submissions are left out by design: SpamAssassin trusts an authenticated hop and
walks on, where stopitd stops and names the submitting client.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.analysis.test_hops_golden import FIXTURES, run_case

SCRIPT = r"""
use strict; use warnings;
use Mail::SpamAssassin;
my ($trusted, $msa, @files) = @ARGV;
my $cfg = "trusted_networks $trusted\ninternal_networks $trusted\n";
$cfg .= "msa_networks $msa\n" if $msa ne "-";
my $sa = Mail::SpamAssassin->new({dont_copy_prefs => 1, local_tests_only => 1,
  config_text => $cfg, userprefs_filename => "/dev/null",
  site_rules_filename => "/nonexistent", rules_filename => "/nonexistent"});
for my $f (@files) {
  open my $fh, '<', $f or die "$f: $!"; local $/; my $raw = <$fh>; close $fh;
  my $msg = $sa->parse($raw);
  my $pms = Mail::SpamAssassin::PerMsgStatus->new($sa, $msg);
  $msg->extract_message_metadata($pms);
  my $u = $msg->{metadata}->{relays_untrusted};
  print((@$u ? $u->[0]->{ip} : ""), "\n");
  $pms->finish; $msg->finish;
}
"""


def _cases() -> list[tuple[Path, dict[str, list[str]]]]:
    out = []
    for eml in sorted(FIXTURES.glob("*.eml")):
        golden = json.loads(eml.with_suffix(".hops.json").read_text(encoding="utf-8"))
        for case in golden["cases"]:
            by_design = case["source"]["mode"] in ("submission", "internal")
            if not case["policy"].get("providers") and not by_design:
                out.append((eml, case["policy"]))
    return out


@pytest.mark.parametrize(
    ("eml", "policy"), _cases(), ids=lambda v: v.stem if isinstance(v, Path) else str(v)
)
def test_handoff_ip_agrees_with_spamassassin(eml: Path, policy: dict[str, list[str]]) -> None:
    if shutil.which("perl") is None or not Path("/usr/share/perl5/Mail/SpamAssassin.pm").exists():
        pytest.fail("SpamAssassin is needed as the reference: apt-get install spamassassin")
    ours = run_case(eml.read_bytes(), policy)["source"]
    trusted = " ".join(["127.0.0.0/8", *policy.get("trusted_networks", [])])
    msa = " ".join(policy.get("msa_networks", [])) or "-"
    out = subprocess.run(
        ["perl", "-e", SCRIPT, trusted, msa, str(eml)],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.splitlines()
    assert out == [ours["relay_ip"]]
