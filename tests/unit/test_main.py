"""`smsops` / `python -m bot` as an operator meets it: its help, and a wrong DATABASE_URL said in one line."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.infra.settings import Settings
from bot.server.runtime import Runtime

SMSOPS = Path(sys.executable).with_name("smsops")  # the console script pip installed next to python


@pytest.fixture
def operator_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A shell in an empty directory, with the Slack tokens set (so `run` means the real bot)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token-1234")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "signing-secret-5678")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield tmp_path
    root.handlers[:] = handlers  # main() installs the JSON handler on the root logger
    root.setLevel(level)


def test_the_installed_script_names_itself_and_the_console_default() -> None:
    done = subprocess.run([str(SMSOPS), "--help"], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.startswith("smsops                       run the bot")
    assert "python -m bot" not in done.stdout
    assert "without SLACK_BOT_TOKEN, on a terminal, the local console instead" in done.stdout
    as_module = subprocess.run([sys.executable, "-m", "bot", "--help"], capture_output=True, text=True, timeout=60,
                               check=True)
    assert as_module.stdout.startswith("python -m bot                       run the bot")


@pytest.mark.parametrize("command", ["run", "migrate", "audit", "verify-ledger"])
def test_an_unsupported_database_is_one_line_naming_the_setting(
        operator_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://ops:secret@db.internal/smsops")
    assert main([command]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err == ("smsops: DATABASE_URL uses mysql://, which smsops does not support: use sqlite:///./smsops.db"
                   " (one replica) or postgresql://user@host/dbname (several)\n")
    assert list(operator_env.iterdir()) == []


@pytest.mark.parametrize("command", ["run", "migrate"])
def test_an_unreachable_database_is_one_line_naming_the_setting(
        operator_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://ops:secret@127.0.0.1:1/smsops")  # nothing listens on port 1
    assert main([command]) == 3
    err = capsys.readouterr().err
    assert err.startswith("smsops: cannot open the database in DATABASE_URL (postgresql+psycopg://ops:***@127.0.0.1:1/"
                          "smsops): ")
    assert err.endswith("Check DATABASE_URL: check the host, port, database name and credentials, and that the"
                        " server is running.\n")
    assert "secret" not in err and err.count("\n") == 1


def test_a_sqlite_file_in_a_missing_directory_is_one_line(
        operator_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:///./data/smsops.db")
    assert main(["migrate"]) == 3
    assert capsys.readouterr().err == (
        f"smsops: cannot open the database in DATABASE_URL ({operator_env / 'data' / 'smsops.db'}): unable to open"
        " database file. Check DATABASE_URL: its directory must exist and be writable.\n")


def test_the_console_with_real_providers_checks_database_url(
        operator_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN")  # Slack not set up yet: the console uses the bot's own DATABASE_URL
    monkeypatch.setenv("TELNYX_API_KEY", "KEY-test-telnyx")
    monkeypatch.setenv("DATABASE_URL", "mysql://ops@db.internal/smsops")
    assert main(["console"]) == 3
    assert capsys.readouterr().err.startswith("smsops: DATABASE_URL uses mysql://, which smsops does not support")


def test_no_warning_about_an_unused_token_on_start(
        operator_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.infra import logs

    settings = Settings()
    logs.setup("INFO", settings.secrets())
    Runtime(settings, providers={}, run_reminders=False)  # builds the Slack app, as every start does
    assert "token" not in capsys.readouterr().err


def test_an_invalid_approval_rules_file_stops_the_bot_with_the_file_line_and_reason(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "large sends"\napprovers = ["@sms-leads"]\nquorum = 0\n', encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "SLACK_BOT_TOKEN": "xoxb-test-token-1234", "SLACK_SIGNING_SECRET": "s",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'smsops.db'}", "SMS_POLICY_FILE": str(rules)}
    done = subprocess.run([sys.executable, "-m", "bot"], capture_output=True, text=True, timeout=60, env=env,
                          cwd=tmp_path)
    assert done.returncode == 3
    assert done.stderr == f"smsops: SMS_POLICY_FILE: {rules}, line 4: rule 1: `quorum` must be a whole number ≥ 1\n"
    assert not (tmp_path / "smsops.db").exists()  # stopped before anything started
    rules.unlink()
    done = subprocess.run([sys.executable, "-m", "bot"], capture_output=True, text=True, timeout=60, env=env,
                          cwd=tmp_path)
    assert done.returncode == 3 and done.stderr.startswith(f"smsops: SMS_POLICY_FILE: {rules}: cannot be read (")
