"""One provider table serves the trust walk and the recorded-auth vouching."""

from __future__ import annotations

from stopitd.analysis import authserv, providers
from stopitd.analysis.policy import TrustPolicy


def test_each_profile_vouches_for_its_own_stamps_only_when_enabled() -> None:
    for name, profile in providers.PROFILES.items():
        exact = next(i for i in profile.authserv_ids if not i.startswith("."))
        on = TrustPolicy(providers=(name,))
        assert authserv.trusted_by(exact, on) == name
        assert authserv.trusted_by(exact.upper() + ".", on) == name  # case, trailing dot
        assert authserv.trusted_by(exact, TrustPolicy()) == ""
        others = TrustPolicy(providers=tuple(n for n in providers.PROFILES if n != name))
        assert authserv.trusted_by(exact, others) in ("", *others.providers)
        # the same profile is what the walk reads its hosts and networks from
        assert providers.enabled((name,)) == (profile,)


def test_suffix_ids_and_the_microsoft_flags() -> None:
    yahoo = TrustPolicy(providers=("yahoo",))
    assert authserv.trusted_by("mta1004.mail.ne1.yahoo.com", yahoo) == "yahoo"
    assert authserv.trusted_by("yahoo.com.evil.example", yahoo) == ""
    both = TrustPolicy(providers=("google", "microsoft"))
    assert authserv.trusted_by("", both) == "microsoft"  # stamps without an authserv-id
    assert authserv.trusted_by("", TrustPolicy(providers=("google",))) == ""
    assert authserv.forefront_trusted(both) == "microsoft"
    assert authserv.forefront_trusted(TrustPolicy(providers=("google",))) == ""
    assert authserv.received_by_provider("AM6PR01MB1234.eurprd01.prod.outlook.com", "microsoft")
    assert not authserv.received_by_provider("mx.google.com", "microsoft")
    assert not authserv.received_by_provider("x.outlook.com", "google")


def test_unknown_profile_names_vouch_for_nothing() -> None:
    policy = TrustPolicy(providers=("nosuch",))
    assert authserv.trusted_by("", policy) == ""
    assert authserv.trusted_by("mx.google.com", policy) == ""
    assert authserv.forefront_trusted(policy) == ""
    assert providers.enabled(("nosuch",)) == ()
