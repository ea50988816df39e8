"""Settings: YAML under environment, frozen, and bad values named at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from replicator.errors import ConfigError
from replicator.settings import load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "config.yaml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("REPLICATOR_"):
            monkeypatch.delenv(key)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_example_config_loads() -> None:
    s = load_settings(EXAMPLE)
    assert s.tables and s.tables[0].source == "shop.users"


def test_environment_overrides_the_file_with_nested_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write(tmp_path, "mysql: {host: db.example, port: 3307}\nkafka: {topic_prefix: fromfile}\n")
    monkeypatch.setenv("REPLICATOR_MYSQL__PORT", "4000")
    s = load_settings(cfg)
    assert (s.mysql.host, s.mysql.port, s.kafka.topic_prefix) == ("db.example", 4000, "fromfile")


def test_namespace_defaults_to_topic_prefix(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "kafka: {topic_prefix: mig1}\n"))
    assert s.namespace == "mig1"


def test_bad_value_names_the_option_and_its_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, "mysql: {port: not-a-port}\n"))
    assert "mysql.port" in str(exc.value) and "REPLICATOR_MYSQL__PORT" in str(exc.value)
    assert exc.value.exit_code == 2


def test_unknown_option_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap"):
        load_settings(write(tmp_path, "kafka: {bootstrap: x}\n"))


def test_table_source_must_be_database_dot_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tables\.0\.source"):
        load_settings(write(tmp_path, "tables: [{source: users}]\n"))


def test_a_table_mapped_twice_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mapped twice"):
        load_settings(write(tmp_path, "tables: [{source: a.b}, {source: a.b}]\n"))


def test_missing_file_and_bad_yaml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "mysql: [unclosed\n"))


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        s.mysql.host = "x"  # type: ignore[misc]


def test_password_is_not_shown_in_repr(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "mysql: {password: hunter2}\n"))
    assert "hunter2" not in repr(s) and s.mysql.password.get_secret_value() == "hunter2"
