"""`python -m bot console`: the /sms commands in a local shell, through a pseudo-terminal (pexpect) and
through a pipe; and the pure rendering of Block Kit as terminal text."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pexpect

from bot.cli.console_render import Names, Style, buttons_of, confirm_question, mrkdwn, render_blocks
from bot.domain.results import Card, CardKind
from bot.slack.blocks import card_blocks

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "you> "


def console_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A newcomer's environment: no Slack tokens, no provider credentials, no .env."""
    keep = {k: v for k, v in os.environ.items()
            if k in ("PATH", "LANG", "LC_ALL", "TMPDIR", "SMSOPS_SPECS_DIR")}
    return {**keep, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "TERM": "xterm",
            "PYTHONIOENCODING": "utf-8", **extra}


# --- the whole thing, as a newcomer types it ----------------------------------------------------------
def test_a_newcomer_schedules_lists_approves_cancels_and_is_reminded(tmp_path):
    elsewhere = tmp_path / "production.db"
    env = console_env(tmp_path, REMINDER_LEADS="15s", DATABASE_URL=f"sqlite:///{elsewhere}")
    transcript = StringIO()
    # `python -m bot` with no Slack token, on a terminal: the console, with the simulated providers
    child = pexpect.spawn(sys.executable, ["-m", "bot"], cwd=str(tmp_path), env=env, encoding="utf-8",
                          timeout=20, dimensions=(60, 220))
    child.logfile_read = transcript
    try:
        child.expect_exact(PROMPT)
        banner = child.before
        assert "No SLACK_BOT_TOKEN is set: starting the local console" in banner
        assert "Sandbox: simulated HighLevel, Solapi, Telnyx" in banner
        group = re.search(r"send (G4V\w+)", banner).group(1)
        telnyx_id = re.search(r"track telnyx ([0-9a-f-]{36})", banner).group(1)

        child.sendline("schedule solapi +821012345678 in 20s 안녕하세요")
        child.expect(r"\[#sandbox\] @you scheduled an SMS")
        child.expect(r"\[(\d+)\] Cancel")
        cancel_button = child.match.group(1)
        child.expect(r"\[only you\] ✅ Scheduled with Solapi .* to 1 recipient\(s\): (G4V\w+)\.")
        scheduled = child.match.group(1)
        child.expect_exact(PROMPT)

        child.sendline("/sms list")
        child.expect(rf"• .* Solapi {scheduled} · 1 recipient\(s\) · by @you · scheduled")
        child.expect_exact(PROMPT)

        child.sendline(f"send {group}")
        child.expect(r"@you asks to send an SMS group now")
        child.expect(r"\[(\d+)\] Approve   \[(\d+)\] Cancel")
        approve, reject = child.match.group(1), child.match.group(2)
        child.expect(r"Asked for approval to send Solapi")
        child.expect_exact(PROMPT)
        child.sendline(approve)
        child.expect_exact("Send now? This sends the Solapi send to 3 recipient(s) immediately. It can't be "
                           "undone. [y = Send it, n = Not yet] ")
        child.sendline("y")
        child.expect(r"\[#sandbox, edited\] @you asks to send an SMS group now")
        child.expect(r"Approved by @you at .* sent; Solapi says SENDING")
        child.expect(rf"✅ Sent Solapi {group}")
        child.expect_exact(PROMPT)
        child.sendline(reject)  # the card was updated: its buttons are gone
        child.expect_exact(f"Button [{reject}] is gone: its message was updated since.")
        child.expect_exact(PROMPT)

        child.sendline(f"track telnyx {telnyx_id}")
        child.expect(rf"Following Telnyx {telnyx_id}: scheduled")
        child.expect_exact(PROMPT)
        child.sendline(f"cancel {telnyx_id}")
        child.expect(rf"✅ Cancelled Telnyx {telnyx_id}")
        child.expect_exact(PROMPT)

        child.sendline(cancel_button)  # the notice's Cancel asks first; say no
        child.expect_exact("Cancel this SMS? This cancels the Solapi send to 1 recipient(s) at the provider. "
                           "[y = Cancel it, n = Keep it] ")
        child.sendline("n")
        child.expect_exact("(Keep it: nothing was pressed)")
        child.expect_exact(PROMPT)

        child.sendline("frobnicate")
        child.expect_exact("⚠️ frobnicate is not an /sms command.")
        child.expect_exact(PROMPT)

        child.sendline("home")
        child.expect(r"\[App Home\] Your SMS")
        child.expect(r"Upcoming sends\s+• .* Solapi " + scheduled)
        child.expect_exact(PROMPT)

        # the reminder (REMINDER_LEADS=15s) arrives by itself, while the console waits at its prompt
        deadline = time.monotonic() + 15
        while "⏰ @you your SMS goes out in" not in transcript.getvalue() and time.monotonic() < deadline:
            child.expect([pexpect.TIMEOUT, "⏰"], timeout=0.5)
        assert re.search(r"\[#sandbox\] ⏰ @you your SMS goes out in \d+s", transcript.getvalue())

        child.sendline("audit")
        child.expect(r"ledger entries \(newest first\)")
        child.expect_exact(PROMPT)
        child.sendeof()
        child.expect_exact("bye")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, transcript.getvalue()[-3000:]
    # the sandbox kept to its own database, next to where it ran, and its log
    assert (tmp_path / "smsops-sandbox.db").is_file()
    assert not elsewhere.exists(), "the sandbox must not write into DATABASE_URL"
    log = (tmp_path / "smsops-console.log").read_text(encoding="utf-8")
    assert log and all(line.startswith("{") for line in log.splitlines())
    assert "Traceback" not in transcript.getvalue()


def test_piped_input_reads_like_a_session(tmp_path):
    commands = "help\nas bob\n/sms providers\nwait 0.1\nquit\n"
    result = subprocess.run([sys.executable, "-m", "bot", "console", "--sandbox"], input=commands,
                            capture_output=True, text=True, cwd=tmp_path, env=console_env(tmp_path), timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "you> help" in out and "press button [n]" in out and "/sms schedule <provider>" in out
    assert "(you are now @bob)" in out and "bob> /sms providers" in out
    assert "Telnyx" in out and "Solapi" in out and "HighLevel" in out and "Twilio" in out
    assert out.rstrip().endswith("bye")
    assert result.stderr == ""


def test_with_provider_credentials_the_console_uses_them_and_the_configured_database(tmp_path, telnyx):
    database = tmp_path / "ledger.db"
    env = console_env(tmp_path, TELNYX_API_KEY=telnyx.api_key, TELNYX_BASE_URL=telnyx.base_url,
                      TELNYX_FROM="+18445550001", DATABASE_URL=f"sqlite:///{database}")
    result = subprocess.run([sys.executable, "-m", "bot", "console"], input="schedule telnyx +15551234567 in 2h "
                            "Real provider, local Slack\nquit\n", capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "REAL providers: Telnyx" in result.stdout
    assert "Scheduled with Telnyx" in result.stdout
    assert [m["text"] for m in telnyx.messages.values()] == ["Real provider, local Slack"]
    assert database.is_file() and not (tmp_path / "smsops-sandbox.db").exists()


def test_the_console_sends_text_escaped_as_slack_does_so_the_phone_gets_what_was_typed(tmp_path, telnyx):
    env = console_env(tmp_path, TELNYX_API_KEY=telnyx.api_key, TELNYX_BASE_URL=telnyx.base_url,
                      TELNYX_FROM="+18445550001", DATABASE_URL=f"sqlite:///{tmp_path / 'ledger.db'}")
    typed = "Tom & Jerry <3, literally &amp;"
    result = subprocess.run([sys.executable, "-m", "bot", "console"], input=f"schedule telnyx +15551234567 in 2h "
                            f"{typed}\nquit\n", capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert [m["text"] for m in telnyx.messages.values()] == [typed]


def test_the_installed_wheel_runs_a_console_session_from_any_directory(tmp_path):
    """`pip install` of the wheel, then `smsops console` in an empty directory: the sandbox ships in the
    package. The fresh venv sees the test venv's dependencies (a .pth line) but not this checkout."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(wheels), str(ROOT)], check=True, capture_output=True, timeout=120)
    (wheel,) = wheels.glob("smsops-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    dependencies = [p for p in sys.path if p.endswith("site-packages")]
    Path(site, "test-dependencies.pth").write_text("\n".join(dependencies) + "\n", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True, timeout=120)
    somewhere = tmp_path / "somewhere"
    somewhere.mkdir()
    env = {k: v for k, v in console_env(somewhere).items() if k not in ("PYTHONPATH", "SMSOPS_SPECS_DIR")}
    where = subprocess.run([str(python), "-I", "-c", "import bot.sandbox; print(bot.sandbox.__file__)"],
                           check=True, capture_output=True, text=True, cwd=somewhere, env=env).stdout
    assert where.startswith(site), where  # the installed copy, not the checkout
    result = subprocess.run([str(venv / "bin" / "smsops"), "console"], capture_output=True, text=True,
                            input="schedule solapi +821012345678 in 2h 안녕하세요\nlist\nquit\n",
                            cwd=somewhere, env=env, timeout=90)
    assert result.returncode == 0, result.stderr
    scheduled = re.search(r"✅ Scheduled with Solapi .* to 1 recipient\(s\): (G4V\w+)\.", result.stdout)
    assert scheduled, result.stdout
    assert re.search(rf"• .* Solapi {scheduled.group(1)} · 1 recipient\(s\) · by @you · scheduled", result.stdout)
    assert (somewhere / "smsops-sandbox.db").is_file()


def test_the_sandbox_never_overwrites_a_database_it_did_not_make(tmp_path):
    ledger = tmp_path / "smsops.db"
    ledger.write_bytes(b"someone's ledger")
    result = subprocess.run([sys.executable, "-m", "bot", "console", "--sandbox", "--db", str(ledger)],
                            input="quit\n", capture_output=True, text=True, cwd=tmp_path, env=console_env(tmp_path),
                            timeout=60)
    assert result.returncode == 2 and "won't overwrite a file it did not make" in result.stderr
    assert ledger.read_bytes() == b"someone's ledger"


def test_the_console_never_shares_a_database_with_a_slack_connected_bot(tmp_path, monkeypatch):
    from bot.cli.console import database_for
    from bot.infra.settings import Settings

    monkeypatch.chdir(tmp_path)
    configured = "postgresql+psycopg://bot@db/smsops"
    plain = Settings(_env_file=None, database_url=configured, telnyx_api_key="k")
    connected = Settings(_env_file=None, database_url=configured, telnyx_api_key="k", slack_bot_token="xoxb-1")
    assert database_for(plain, True, None) == f"sqlite:///{tmp_path / 'smsops-sandbox.db'}"
    assert database_for(connected, True, None) == f"sqlite:///{tmp_path / 'smsops-sandbox.db'}"
    assert database_for(plain, False, None) == configured  # Slack not set up yet: the bot's own ledger
    assert database_for(connected, False, None) == f"sqlite:///{tmp_path / 'smsops-console.db'}"
    assert database_for(connected, False, "x.db") == f"sqlite:///{tmp_path / 'x.db'}"


# --- rendering (pure) -----------------------------------------------------------------------------------
NAMES = Names(users={"U0ALICE01": "alice"}, channels={"C0OPS0001": "ops"})


def test_mrkdwn_becomes_plain_text():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    at = int((now + timedelta(minutes=5)).timestamp())
    text = (f"*Goes out*\n<!date^{at}^{{date_short_pretty}} at {{time}}|2026-01-01 12:05 UTC> for <@U0ALICE01> "
            "and <@U0OTHER01> in <#C0OPS0001> and <#C0NEW0001|new>: `G4V123` &amp; <https://x.test|docs> "
            "<!here>\n>quoted &lt;text&gt;")
    rendered = mrkdwn(text, NAMES, now)
    first, second, third = rendered.split("\n")
    assert first == "Goes out"
    assert second.endswith("(in 5m) for @alice and @U0OTHER01 in #ops and #new: G4V123 & docs (https://x.test) @here")
    assert third == "│ quoted <text>"


def test_a_card_renders_with_numbered_buttons_and_its_confirm_dialog():
    card = Card(kind=CardKind.APPROVAL, record_id="appr1", provider="solapi", targets=["G4V1"],
                send_at=None, recipient_count=3, text_preview="안녕하세요", owner="U0ALICE01",
                headline="<@U0ALICE01> asks to send an SMS group now")
    blocks = card_blocks(card)
    numbers = iter(range(7, 100))
    given = {}

    def number(button):
        given[button.label] = next(numbers)
        return given[button.label]

    lines = render_blocks(blocks, "", NAMES, number, Style.plain())
    assert lines == [
        "@alice asks to send an SMS group now",
        "Provider: Solapi · Goes out: not scheduled · Recipients: 3 · Id: G4V1",
        "│ 안녕하세요",
        "[7] Approve   [8] Cancel",
    ]
    approve, reject = buttons_of(blocks)
    assert (approve.value, reject.value) == ("appr1", "appr1")
    assert confirm_question(approve.confirm, NAMES) == (
        "Send now? This sends the Solapi send to 3 recipient(s) immediately. It can't be undone.",
        "Send it", "Not yet")


def test_a_message_without_blocks_shows_its_text():
    assert render_blocks([], "plain *fallback* for <@U0ALICE01>", NAMES, lambda b: 1) == [
        "plain fallback for @alice"]


def test_the_readme_shows_the_session_a_newcomer_sees(tmp_path):
    """The README's transcript starts with the console's own greeting, word for word (ids aside)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    session = readme.split("```text\n$ make run\n", 1)[1].split("```", 1)[0]
    result = subprocess.run([sys.executable, "-m", "bot", "console", "--sandbox"], input="quit\n",
                            capture_output=True, text=True, cwd=tmp_path, env=console_env(tmp_path), timeout=60)
    assert result.returncode == 0, result.stderr

    def greeting(text: str) -> list[str]:
        lines = text.split("you>", 1)[0].strip().splitlines()
        lines = [re.sub(r"G4V\w{29}", "<group>", re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "<uuid>", x))
                 for x in lines]
        lines = [re.sub(r"SM[0-9a-f]{32}", "<sid>", x) for x in lines]
        return [x for x in lines if x.strip() and not x.startswith((".venv/bin/python", "No SLACK_BOT_TOKEN"))]

    assert greeting(session) == greeting(result.stdout)
    for typed in ("schedule solapi", "list", "send G4V", "track telnyx", "cancel ", "wait 30", "quit"):
        assert f"you> {typed}" in session
