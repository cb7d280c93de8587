from __future__ import annotations

from pathlib import Path

import pytest

from stopitd import config
from stopitd.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stopitd.toml"
    path.write_text(text)
    return path


def test_development_config_resolves_paths_against_its_folder() -> None:
    settings = config.load(ROOT / "config" / "stopitd.toml")
    assert settings.smtp.listen == "127.0.0.1:2525"
    assert settings.smtp.report_addresses == ("stopit@localhost",)
    assert settings.spool.path == ROOT / "var" / "spool"
    assert settings.database.url == f"sqlite:///{ROOT / 'var' / 'stopitd.db'}"


def test_example_config_is_valid_and_documents_every_key() -> None:
    settings = config.load(ROOT / "config" / "stopitd.example.toml")
    text = (ROOT / "config" / "stopitd.example.toml").read_text()
    for section, keys in config.as_toml_dict(settings).items():
        assert f"[{section}]" in text
        for key in keys:
            assert f"\n{key} =" in text, f"{section}.{key} is not in the example config"


def test_unknown_key_names_the_dotted_key_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[smtp]\nlisten = "127.0.0.1:25"\nlsten = "x"\n')
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert "smtp.lsten" in str(err.value)
    assert str(path) in str(err.value)


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"smtp\.max_message_size"):
        config.load(write(tmp_path, '[smtp]\nmax_message_size = "big"\n'))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[smtp]\nlisten = "nohost"\n', "smtp.listen"),
        ("[smtp]\nreport_addresses = []\n", "smtp.report_addresses"),
        ('[log]\nformat = "xml"\n', "log.format"),
        ('[trust]\nproviders = ["aol"]\n', "trust.providers"),
        ('[trust]\ntrusted_networks = ["10.0.0.0/33"]\n', "trust.trusted_networks"),
        ("[nosuch]\n", "nosuch"),
    ],
)
def test_bad_values_are_rejected(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config.load(write(tmp_path, text))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        config.load(tmp_path / "absent.toml")


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STOPITD_CONFIG", raising=False)
    assert config.discover("explicit.toml") == Path("explicit.toml")
    monkeypatch.setenv("STOPITD_CONFIG", "/from/env.toml")
    assert config.discover(None) == Path("/from/env.toml")
    monkeypatch.delenv("STOPITD_CONFIG")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "stopitd.toml").write_text("")
    assert config.discover(None) == Path("config/stopitd.toml")


@pytest.mark.parametrize("server", ["dns.example", "127.0.0.1:99999"])
def test_bad_nameserver_is_rejected_at_load(tmp_path: Path, server: str) -> None:
    with pytest.raises(ConfigError, match=r"dns\.nameservers"):
        config.load(write(tmp_path, f'[dns]\nnameservers = ["{server}"]\n'))


def test_nameservers_with_ports_are_accepted(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, '[dns]\nnameservers = ["127.0.0.1:5353", "::1"]\n'))
    assert settings.dns.nameservers == ("127.0.0.1:5353", "::1")
