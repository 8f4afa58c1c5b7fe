"""Settings: env wins over the file, and a bad value fails at start with the variable named."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import Settings
from gateway.config import load_settings
from gateway.errors import ConfigError


def test_defaults_need_nothing() -> None:
    settings = load_settings({}, config_file="/nonexistent.toml")
    assert settings.database_url == "sqlite:///var/gateway.db"
    assert settings.targets == ("127.0.0.1",)
    assert settings.cron_token is None and not settings.allow_query_token


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\nbind = "0.0.0.0:9000"\nlease_seconds = 12\n')
    env = {"GATEWAY_BIND": "127.0.0.1:9001", "GATEWAY_ALLOWED_TARGETS": "a.example, *.b.example"}
    settings = load_settings(env, config_file=str(path))
    assert settings.bind == "127.0.0.1:9001" and settings.lease_seconds == 12.0
    assert settings.targets == ("a.example", "*.b.example")


def test_tokens_are_not_in_the_repr() -> None:
    settings = Settings(cron_token="s3cret-token-value-123")
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"GATEWAY_DATABASE_URL": "mysql://x"}, "GATEWAY_DATABASE_URL"),
        ({"GATEWAY_APP_URL": "ftp://x"}, "GATEWAY_APP_URL"),
        ({"GATEWAY_ALLOW_QUERY_TOKEN": "maybe"}, "allow_query_token"),
        ({"GATEWAY_CRON_TOKEN": "short"}, "GATEWAY_CRON_TOKEN"),
    ],
)
def test_a_bad_value_fails_at_start_naming_it(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(env, config_file="/nonexistent.toml")
    assert e.value.field == field


def test_a_broken_or_unknown_file_setting_fails(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("bind = [unclosed")
    with pytest.raises(ConfigError):
        load_settings({}, config_file=str(broken))
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match="colour"):
        load_settings({}, config_file=str(unknown))


@pytest.mark.parametrize("value", ["-1", "301", "soon"])
def test_database_wait_seconds_from_the_file_is_checked(tmp_path: Path, value: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(f'database_wait_seconds = "{value}"\n')
    with pytest.raises(ConfigError) as e:
        load_settings({}, config_file=str(path))
    assert e.value.field == "database_wait_seconds"


@pytest.mark.parametrize("value", ["-1", "65", '"two"'])
def test_gateway_senders_from_the_file_is_checked(tmp_path: Path, value: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(f"[gateway]\ngateway_senders = {value}\n")
    with pytest.raises(ConfigError) as e:
        load_settings({}, config_file=str(path))
    assert e.value.field == "gateway_senders"


def test_gateway_senders_reads_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text("[gateway]\ngateway_senders = 2\n")
    assert load_settings({}, config_file=str(path)).gateway_senders == 2
    assert load_settings({}, config_file="/nonexistent.toml").gateway_senders == 0


@pytest.mark.parametrize("other", ["gateway_per_host", "gateway_workers"])
def test_gateway_senders_cannot_outnumber_the_workers_or_the_cap_per_host(
    tmp_path: Path, other: str
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(f"[gateway]\ngateway_senders = 3\n{other} = 2\n")
    with pytest.raises(ConfigError, match="must not be more than") as e:
        load_settings({}, config_file=str(path))
    assert e.value.field == "gateway_senders"
    path.write_text(f"[gateway]\ngateway_senders = 2\n{other} = 2\n")
    assert load_settings({}, config_file=str(path)).gateway_senders == 2
