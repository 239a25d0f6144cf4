"""Settings: the TOML file, environment overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from egresswatch.config import DEFAULT_DB_URL, Settings, load_settings
from egresswatch.errors import ConfigError
from tests.conftest import REPO


def test_shipped_config_is_the_defaults() -> None:
    assert load_settings(REPO / "deploy" / "egresswatch.toml") == Settings()


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text('db = "sqlite:///file.db"\n[flows]\nmax_flows = 10\nactive_timeout = 30\n')
    monkeypatch.setenv("EGRESSWATCH_DB", "sqlite:///env.db")
    monkeypatch.setenv("EGRESSWATCH_FLOWS__ACTIVE_TIMEOUT", "7")
    settings = load_settings(path)
    assert settings.db == "sqlite:///env.db"
    assert (settings.flows.max_flows, settings.flows.active_timeout) == (10, 7.0)


def test_no_file_means_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("egresswatch.config.DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    assert load_settings().db == DEFAULT_DB_URL


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[flows]\nmax_flow = 1\n", "config key 'flows.max_flow' (EGRESSWATCH_FLOWS__MAX_FLOW)"),
        ("[flows]\nmax_flows = 0\n", "'flows.max_flows'"),
        ('local_networks = ["10.0.0.0/8", "office"]\n', "'office' is not an IP network"),
        ('log_level = "LOUD"\n', "'log_level'"),
        ("db = \n", "not valid TOML"),
    ],
)
def test_bad_config_names_key_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert expected in str(err.value) and str(path) in str(err.value)


def test_bad_environment_value_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("egresswatch.config.DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    monkeypatch.setenv("EGRESSWATCH_FLOWS__CLOSE_GRACE", "soon")
    with pytest.raises(ConfigError, match="EGRESSWATCH_FLOWS__CLOSE_GRACE"):
        load_settings()


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_the_slack_webhook_is_one_environment_variable_and_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "http://127.0.0.1:9/services/T0/B0/secret"  # never posted to: a config test
    monkeypatch.setenv("EGRESSWATCH_SLACK_WEBHOOK_URL", url)
    settings = Settings()
    assert settings.slack_webhook_url is not None
    assert settings.slack_webhook_url.get_secret_value() == url
    assert url not in repr(settings) and url not in str(settings.model_dump())
