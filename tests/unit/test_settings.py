"""Every setting is documented in the README, and a bad value stops the bot at start with its name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.infra.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def documented() -> set[str]:
    """The variables named in the first column of the README's settings table."""
    table = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def test_every_setting_is_in_the_readme_and_nothing_else_is():
    variables = {name.upper() for name in Settings.model_fields}
    assert variables - documented() == set(), "settings the README does not document"
    assert documented() - variables == set(), "the README documents settings the bot does not read"


def test_reminder_poll_seconds_is_read_and_checked(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REMINDER_POLL_SECONDS", "0.5")
    assert Settings(_env_file=None).reminder_poll_seconds == 0.5  # type: ignore[call-arg]
    monkeypatch.setenv("REMINDER_POLL_SECONDS", "soon")
    with pytest.raises(ValidationError, match="reminder_poll_seconds"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("REMINDER_POLL_SECONDS", "0")
    with pytest.raises(ValidationError, match="reminder_poll_seconds"):
        Settings(_env_file=None)  # type: ignore[call-arg]


ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def test_every_setting_is_in_env_example_and_nothing_else_is():
    """`.env.example` is where a new team starts: each setting once, set or commented out (`# NAME=`)."""
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    listed = [m.group(1) for line in lines if (m := re.match(r"^(?:# ?)?([A-Z][A-Z0-9_]+)=", line))]
    variables = {name.upper() for name in Settings.model_fields}
    assert variables - set(listed) == set(), ".env.example misses settings the bot reads"
    assert set(listed) - variables == set(), ".env.example lists settings the bot does not read"
    assert len(listed) == len(set(listed)), "a setting is listed twice"


def test_env_example_as_copied_is_read_by_the_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    (tmp_path / ".env").write_text(ENV_EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    settings = Settings()
    assert settings.slack_bot_token is not None and settings.slack_bot_token.get_secret_value() == "xoxb-..."
    assert settings.database_url == "sqlite:///./smsops.db"
