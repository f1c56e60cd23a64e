"""Settings from the environment and a TOML file; the embedded default; refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cloudctl.core.config import Settings


def test_embedded_default_is_a_sqlite_file_in_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDCTL_DATABASE_URL", raising=False)
    monkeypatch.setenv("CLOUDCTL_DATA_DIR", str(tmp_path / "data"))
    settings = Settings()
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'data' / 'cloudctl.db'}"


def test_environment_wins_over_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cloudctl.toml"
    config.write_text('database_url = "postgresql+psycopg://c@db/city"\ntoken_ttl_days = 30\n', encoding="utf-8")
    monkeypatch.setenv("CLOUDCTL_CONFIG", str(config))
    monkeypatch.setenv("CLOUDCTL_TOKEN_TTL_DAYS", "7")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://c@db/city"
    assert settings.token_ttl_days == 7


def test_a_missing_config_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDCTL_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ValueError, match="CLOUDCTL_CONFIG"):
        Settings()


def test_production_needs_an_explicit_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDCTL_DATABASE_URL", raising=False)
    with pytest.raises(ValidationError, match="database_url"):
        Settings(environment="production")


def test_unknown_display_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="display_timezone"):
        Settings(display_timezone="Mars/Olympus")
