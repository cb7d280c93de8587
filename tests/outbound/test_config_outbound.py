"""[outbound], [reply], [offices.NAME], [routing]: documented, validated, errors name the key."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from stopitd import config
from stopitd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "stopitd.example.toml"


def test_example_documents_every_outbound_key_including_unset_ones() -> None:
    text = EXAMPLE.read_text()
    for cls, section in (
        (config.OutboundSettings, "[outbound]"),
        (config.ReplySettings, "[reply]"),
        (config.OfficeSettings, "[offices.security]"),
        (config.RoutingSettings, "[routing]"),
    ):
        assert section in text
        for f in fields(cls):
            assert f"\n{f.name} =" in text or f"\n# {f.name} =" in text, f"{section} {f.name}"
    for f in fields(config.RoutingRule):
        assert f.name in text, f"routing rule condition {f.name} is not documented"


def test_example_values() -> None:
    settings = config.load(EXAMPLE)
    assert settings.outbound.enabled is False
    assert settings.from_address == "stopit@example.edu"  # falls back to the report address
    assert settings.offices["security"].attach_evidence is True
    assert [r.office for r in settings.routing.rules] == ["hr", "security"]
    assert settings.routing.rules[0].internal is True
    assert settings.reply.tag_prefix == "stopit"


def test_defaults_without_file() -> None:
    settings = config.Settings()
    assert settings.outbound.enabled is False and settings.offices == {}
    assert settings.reply.daily_cap_per_address == 5


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "stopitd.toml"
    path.write_text(
        '[outbound]\nusername = "u"\npassword_file = "secret"\ndry_run_dir = "out"\n'
        'templates_dir = "/etc/stopitd/templates"\n'
    )
    out = config.load(path).outbound
    assert out.password_file == tmp_path / "secret"
    assert out.dry_run_dir == tmp_path / "out"
    assert out.templates_dir == Path("/etc/stopitd/templates")
    assert out.ca_file is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[outbound]\nsmarthost = "relay.example.edu"\n', "outbound.smarthost"),
        ('[outbound]\nsmarthost = "relay:99999"\n', "outbound.smarthost"),
        ('[outbound]\nfrom_address = "stopit"\n', "outbound.from_address"),
        ('[outbound]\npassword_file = "p"\n', "outbound.password_file"),
        ('[outbound]\ndry_run_dir = ""\n', "outbound.dry_run_dir"),
        ('[outbound]\nstarttls = "yes"\n', "outbound.starttls"),
        ("[outbound]\nretry_initial = 0\n", "outbound.retry_initial"),
        ("[outbound]\nretry_initial = 60\nretry_max = 10\n", "outbound.retry_max"),
        ('[outbound]\nsmarthst = "x:25"\n', "outbound.smarthst"),
        ('[reply]\ntag_prefix = "stop it"\n', "reply.tag_prefix"),
        ("[reply]\ndaily_cap_per_address = -1\n", "reply.daily_cap_per_address"),
        ('[offices.hr]\naddress = "hr"\n', "offices.hr.address"),
        ('[offices.hr]\naddress = "hr@example.edu"\nemail = "x"\n', "offices.hr.email"),
        ('[offices]\nhr = "hr@example.edu"\n', "offices.hr"),
        ('[routing]\nrules = [{ office = "legal" }]\n', r"routing.rules\[0\].office"),
        ("[routing]\nrules = [{ internal = true }]\n", r"routing.rules\[0\].office"),
        (
            '[offices.hr]\naddress = "hr@x.example"\n[routing]\n'
            'rules = [{ office = "hr", origin_networks = ["10.0.0.0/33"] }]\n',
            r"routing.rules\[0\].origin_networks",
        ),
        (
            '[offices.hr]\naddress = "hr@x.example"\n[routing]\n'
            'rules = [{ office = "hr", modes = ["smtp"] }]\n',
            r"routing.rules\[0\].modes",
        ),
        (
            '[offices.hr]\naddress = "hr@x.example"\n[routing]\n'
            'rules = [{ office = "hr", colour = "red" }]\n',
            r"routing.rules\[0\].colour",
        ),
        ('[routing]\nrules = "hr"\n', "routing.rules"),
        ("[routing]\nrule = []\n", "routing.rule"),
    ],
)
def test_bad_values_name_the_dotted_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "stopitd.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.") if "\\" not in key else key):
        config.load(path)


def test_check_config_prints_offices_and_rules(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from stopitd.cli import main

    result = CliRunner().invoke(main, ["check-config", "--config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "[offices.hr]" in result.output and "[outbound]" in result.output
    assert '"office": "security"' in result.output
