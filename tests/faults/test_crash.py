"""Crash safety: a real bot process is SIGKILLed at random points, 100 times, over real HTTP.

Each run picks a user story (cancel, delete, approve-and-send, schedule, schedule-then-cancel, on
Telnyx, Solapi and HighLevel) and a kill point: a random delay after the first request, or the
moment a fake provider receives the state-changing request, either before it acts (the provider never
changes) or after it acted but before its answer leaves (the provider changed, the bot cannot know).
The bot is then started again on the same database (RECONCILE_AFTER=0s) and, once it answers
/healthz (migrations and reconciliation run before it listens), the run checks:

1. no intent is left open;
2. every provider-side change of the run (the fakes keep the truth) has exactly one matching ledger
   outcome (`cancelled`, `sent`, `deleted`, `scheduled`), and no outcome claims a change that did not
   happen; a message created by a schedule whose answer was lost is covered by the system's
   "interrupted schedule: check the provider's console" entry and channel notice (the bot cannot know
   its id: see README.md (Guarantees));
3. an outcome the bot recorded after the restart is the system's (actor `system`), and the channel
   was told;
4. every request Slack got an ack for has a final answer, or the channel was told after the restart
   that it was interrupted (with what had been done for it): nothing is silently dropped.

The runs chain on one SQLite database: the restart of run n is the bot of run n+1.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from bot.sandbox.harness import buttons, reply_text
from bot.sandbox.highlevel import FakeHighLevel
from bot.sandbox.slack import FakeSlack
from bot.sandbox.solapi import FakeSolapi
from bot.sandbox.telnyx import FakeTelnyx
from bot.slack.ids import ActionId
from tests.faults.crash_support import ForkServer, Gate, RemoteBot, bot_env, new_token
from tests.faults.secrets_plugin import WATCH, scan_bot_database

RUNS = int(os.environ.get("SMSOPS_CRASH_RUNS", "100"))
CHANNEL = "C0OPS0001"
SEED = int(os.environ.get("SMSOPS_CRASH_SEED", "20261123"))

pytestmark = pytest.mark.timeout(600)


class Killed(Exception):
    pass


@dataclass
class Asked:
    """One request the user made (a command or a click) and what Slack saw of it."""

    what: str
    user: str
    token: str
    needle: str  # what a restart notice about it must quote
    acked: bool = False


@dataclass
class Story:
    name: str
    steps: Callable[[Ctx], None]
    gates: list[tuple[str, str, Callable[[str], bool]]]  # (provider, method, path predicate)


@dataclass
class Ctx:
    bot: RemoteBot
    slack: FakeSlack
    telnyx: FakeTelnyx
    solapi: FakeSolapi
    highlevel: FakeHighLevel
    rng: random.Random
    killed: threading.Event
    asked: list[Asked] = field(default_factory=list)
    seeded: dict[tuple[str, str], str] = field(default_factory=dict)  # put at the provider by the story
    user: str = "U0ALICE01"

    def seed(self, provider: str, ident: str, status: str) -> str:
        self.seeded[(provider, ident)] = status
        return ident

    def check_alive(self) -> None:
        if self.killed.is_set():
            raise Killed

    def command(self, text_: str, needle: str | None = None) -> Asked:
        self.check_alive()
        asked = Asked(f"/sms {text_}", self.user, new_token(), needle or text_)
        return self._post(asked, lambda: self.bot.command(text_, self.user, CHANNEL, asked.token))

    def click(self, action_id: str, value: str, message_ts: str, needle: str, user: str) -> Asked:
        self.check_alive()
        asked = Asked(f"click {action_id}", user, new_token(), needle)
        return self._post(asked, lambda: self.bot.click(action_id, value, user, CHANNEL, message_ts, asked.token))

    def _post(self, asked: Asked, send: Callable[[], httpx.Response]) -> Asked:
        self.asked.append(asked)
        try:
            response = send()
        except httpx.HTTPError:
            raise Killed from None
        except RuntimeError:
            if self.bot.http.is_closed:  # the kill timer struck between check_alive and the request
                raise Killed from None
            raise
        assert response.status_code == 200, response.text
        asked.acked = True
        return asked

    def final(self, asked: Asked, timeout: float = 8.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            finals = [r for r in self.slack.responses_to(asked.token)
                      if not str(r.get("text", "")).startswith("⏳")]
            if finals:
                return reply_text(finals[-1])
            if self.killed.is_set():
                raise Killed
            time.sleep(0.005)
        raise AssertionError(f"no final answer to {asked.what} within {timeout}s")


# --- the user stories ---------------------------------------------------------------------------

def later(hours: float = 2) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


def cancel_telnyx(ctx: Ctx) -> None:
    message_id = ctx.seed("telnyx", ctx.telnyx.add_message(send_at=later()), "scheduled")
    ctx.final(ctx.command(f"cancel {message_id}"))


def cancel_solapi(ctx: Ctx) -> None:
    group_id = ctx.seed("solapi", ctx.solapi.add_group(status="SCHEDULED", scheduled_at=later(24)), "SCHEDULED")
    ctx.final(ctx.command(f"cancel {group_id}"))


def cancel_highlevel(ctx: Ctx) -> None:
    message_id = ctx.seed("highlevel", ctx.highlevel.add_message(scheduled_at=later()), "scheduled")
    ctx.final(ctx.command(f"cancel highlevel:{message_id}"))


def delete_solapi(ctx: Ctx) -> None:
    group_id = ctx.seed("solapi", ctx.solapi.add_group(status="PENDING"), "PENDING")
    ctx.final(ctx.command(f"delete {group_id}"))


def approve_and_send(ctx: Ctx) -> None:
    group_id = ctx.seed("solapi", ctx.solapi.add_group(status="PENDING", recipients=["01011112222", "01033334444"]),
                        "PENDING")
    asked = ctx.command(f"send {group_id}")
    assert "Asked for approval" in ctx.final(asked)
    cards = [m for m in ctx.slack.channel_messages(CHANNEL) if group_id in m.text + str(m.blocks)
             and buttons(m.blocks)]
    assert cards, "no approval card"
    approve = {b["action_id"]: b for b in buttons(cards[-1].blocks)}[ActionId.APPROVE]
    ctx.final(ctx.click(approve["action_id"], approve["value"], cards[-1].ts, needle=approve["value"],
                        user="U0BOB0001"))


def _numbers(ctx: Ctx, count: int) -> str:
    return ",".join(f"+1555{ctx.rng.randrange(10**6, 10**7)}" for _ in range(count))


def schedule_telnyx(ctx: Ctx) -> None:
    ctx.final(ctx.command(f"schedule telnyx {_numbers(ctx, ctx.rng.choice([1, 2]))} in 2h crash test"))


def schedule_solapi(ctx: Ctx) -> None:
    numbers = ",".join(f"+8210{ctx.rng.randrange(10**7, 10**8)}" for _ in range(2))
    ctx.final(ctx.command(f"schedule solapi {numbers} in 3h crash test"))


def schedule_highlevel(ctx: Ctx) -> None:
    contacts = ",".join(f"cT{ctx.rng.randrange(10**9, 10**10)}x" for _ in range(2))
    ctx.final(ctx.command(f"schedule highlevel {contacts} in 2h crash test"))


def schedule_then_cancel(provider: str) -> Callable[[Ctx], None]:
    def steps(ctx: Ctx) -> None:
        to = {"telnyx": _numbers(ctx, 1), "solapi": f"+8210{ctx.rng.randrange(10**7, 10**8)}",
              "highlevel": f"cT{ctx.rng.randrange(10**9, 10**10)}y"}[provider]
        answer = ctx.final(ctx.command(f"schedule {provider} {to} in 2h then cancelled"))
        ids = re.findall(r"`([^`]+)`", answer)
        assert ids, answer
        ctx.final(ctx.command(f"cancel {provider}:{ids[-1]}", needle=ids[-1]))
    return steps


def _ends(suffix: str) -> Callable[[str], bool]:
    return lambda path: path.endswith(suffix)


def _is_message(path: str) -> bool:
    return re.fullmatch(r"/v2/messages/[0-9a-f-]{36}", path) is not None


def _is_group(path: str) -> bool:
    return re.fullmatch(r"/messages/v4/groups/G4V\w+", path) is not None


def _hl_post(path: str) -> bool:
    return path == "/conversations/messages"


STORIES = [
    Story("cancel telnyx", cancel_telnyx, [("telnyx", "DELETE", _is_message)]),
    Story("cancel solapi", cancel_solapi, [("solapi", "DELETE", _ends("/schedule"))]),
    Story("cancel highlevel", cancel_highlevel, [("highlevel", "DELETE", _ends("/schedule"))]),
    Story("delete solapi", delete_solapi, [("solapi", "DELETE", _is_group)]),
    Story("approve and send solapi", approve_and_send, [("solapi", "POST", _ends("/send"))]),
    Story("schedule telnyx", schedule_telnyx, [("telnyx", "POST", _ends("/messages/schedule"))]),
    Story("schedule solapi", schedule_solapi, [
        ("solapi", "POST", _ends("/groups")), ("solapi", "PUT", _ends("/messages")),
        ("solapi", "POST", _ends("/schedule"))]),
    Story("schedule highlevel", schedule_highlevel, [("highlevel", "POST", _hl_post)]),
    Story("schedule+cancel telnyx", schedule_then_cancel("telnyx"), [
        ("telnyx", "POST", _ends("/messages/schedule")), ("telnyx", "DELETE", _is_message)]),
    Story("schedule+cancel solapi", schedule_then_cancel("solapi"), [
        ("solapi", "POST", _ends("/schedule")), ("solapi", "DELETE", _ends("/schedule"))]),
    Story("schedule+cancel highlevel", schedule_then_cancel("highlevel"), [
        ("highlevel", "POST", _hl_post), ("highlevel", "DELETE", _ends("/schedule"))]),
]


# --- the provider-side truth ---------------------------------------------------------------------

Truth = dict[tuple[str, str], str]


def truth(telnyx: FakeTelnyx, solapi: FakeSolapi, highlevel: FakeHighLevel) -> Truth:
    found: Truth = {}
    for message_id in list(telnyx.messages):
        found[("telnyx", message_id)] = telnyx.status_of(message_id)
    for group_id in list(solapi.groups):
        found[("solapi", group_id)] = solapi.group(group_id)["status"]
    for message_id in list(highlevel.messages):
        found[("highlevel", message_id)] = highlevel.status_of(message_id)
    return found


def changes(before: Truth, after: Truth) -> tuple[dict[tuple[str, str, str], int], list[tuple[str, str]]]:
    """(expected ledger outcomes {(provider, id, action): 1}, ids created whose schedule must be
    accounted for)."""
    expected: dict[tuple[str, str, str], int] = {}
    created: list[tuple[str, str]] = []
    for (provider, ident), now in after.items():
        was = before.get((provider, ident))
        if was is None:
            created.append((provider, ident))
            if provider == "solapi" and now in ("PENDING", "DELETED"):
                continue  # a half-made group (killed before it was scheduled) or one the bot discarded
            expected[(provider, ident, "scheduled")] = 1
            was = "SCHEDULED" if provider == "solapi" else "scheduled"
        if was == now:
            continue
        if provider == "solapi":
            action = {("SCHEDULED", "FAILED"): "cancelled", ("PENDING", "SENDING"): "sent",
                      ("PENDING", "COMPLETE"): "sent", ("PENDING", "DELETED"): "deleted"}.get((was, now))
            if (was, now) == ("SENDING", "COMPLETE"):
                continue
        else:
            action = "cancelled" if (was, now) == ("scheduled", "cancelled") else None
        assert action is not None, f"unexpected provider change {provider} {ident}: {was} -> {now}"
        expected[(provider, ident, action)] = 1
    return expected, created


# the bot's view of a tracked send that agrees with the provider's status word
AGREES = {
    "scheduled": {"scheduled"}, "cancelled": {"cancelled"},  # Telnyx, HighLevel
    "SCHEDULED": {"scheduled"}, "FAILED": {"cancelled"}, "PENDING": {"pending"},  # Solapi
    "SENDING": {"sending", "sent"}, "COMPLETE": {"sending", "sent"}, "DELETED": {"deleted"},
}


# --- the database, read from outside the bot -----------------------------------------------------

class Ledger:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def last_seq(self) -> int:
        return int(self.rows("SELECT COALESCE(MAX(seq), 0) FROM ledger_entries")[0][0])


# --- the suite -------------------------------------------------------------------------------------

@pytest.fixture
def fakes() -> Any:
    slack, telnyx, solapi, highlevel = FakeSlack().start(), FakeTelnyx().start(), FakeSolapi().start(), \
        FakeHighLevel(rate_limit=None).start()
    try:
        yield slack, telnyx, solapi, highlevel
    finally:
        for fake in (slack, telnyx, solapi, highlevel):
            fake.stop()


def test_one_hundred_kills(tmp_path: Path, fakes: Any) -> None:
    slack, telnyx, solapi, highlevel = fakes
    gates = {"telnyx": Gate(telnyx.server), "solapi": Gate(solapi.server), "highlevel": Gate(highlevel.server)}
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    # a short lease: a request the killed bot had taken is taken again by the restarted one within a second
    env = bot_env(slack, url, telnyx, solapi, highlevel, INBOX_LEASE="1s")
    ledger = Ledger(url)
    rng = random.Random(SEED)
    server = ForkServer(tmp_path)
    tally: dict[str, int] = {}
    bot = RemoteBot(server, env, tmp_path / "bot-000.log", slack)
    try:
        bot.wait_ready()
        for run in range(RUNS):
            story = STORIES[run % len(STORIES)] if run < len(STORIES) else rng.choice(STORIES)
            mode = rng.choice(["delay", "before", "after", "after"])
            twice = rng.random() < 0.15
            result = one_run(run, story, mode, twice, bot, gates, slack, telnyx, solapi, highlevel, rng, ledger,
                             lambda n: RemoteBot(server, env, tmp_path / f"bot-{n:03d}.log", slack))
            bot = result.pop("bot")
            for key, value in result.items():
                tally[key] = tally.get(key, 0) + value
    finally:
        bot.kill()
        server.close()
        for log in sorted(tmp_path.glob("bot-*.log")):  # everything the bot processes wrote
            WATCH.scan(f"stderr:{log.name}", log.read_text(errors="replace"))
        scan_bot_database(ledger.engine, "crash")
    print(f"\ncrash runs: {tally}")
    # the kills must really have landed in the interesting places
    assert tally["kills"] == RUNS
    assert tally["reconciled"] >= 20, tally
    assert tally["changed_unanswered"] >= 10, tally  # provider changed, the bot was dead before the answer


def one_run(run: int, story: Story, mode: str, twice: bool, bot: RemoteBot, gates: dict[str, Gate], slack: FakeSlack,
            telnyx: FakeTelnyx, solapi: FakeSolapi, highlevel: FakeHighLevel, rng: random.Random,
            ledger: Ledger, start: Callable[[int], RemoteBot]) -> dict[str, Any]:
    label = f"run {run} ({story.name}, kill {mode}{', twice' if twice else ''})"
    before = truth(telnyx, solapi, highlevel)
    first_seq = ledger.last_seq()
    killed = threading.Event()
    ctx = Ctx(bot, slack, telnyx, solapi, highlevel, rng, killed)

    def do_kill() -> None:
        if not killed.is_set():
            bot.kill()
            killed.set()

    gate: Gate | None = None
    watcher: threading.Thread | None = None
    if mode == "delay":
        timer = threading.Timer(rng.uniform(0.0, 0.35), do_kill)
        timer.start()
    else:
        provider, method, path = rng.choice(story.gates)
        gate = gates[provider]
        gate.arm(method, path, after=mode == "after")

        def watch() -> None:
            if gate is not None and gate.hit.wait(8):
                time.sleep(rng.uniform(0, 0.01))
                do_kill()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
    try:
        story.steps(ctx)
    except Killed:
        pass
    do_kill()  # the story finished (or was cut short): the bot dies now if it is still alive
    if mode == "delay":
        timer.cancel()
    if gate is not None:
        gate.release()
    if watcher is not None:
        watcher.join(timeout=10)
    notices_before = len(slack.channel_messages(CHANNEL))

    fresh = start(run + 1)
    if twice:  # a second crash, while the restarted bot starts up and reconciles
        time.sleep(rng.uniform(0.0, 0.4))
        fresh.kill()
        fresh = start(run + 1)
    fresh.wait_ready()
    # the requests the killed bot acked are worked on by the restarted one's inbox (once the lease is out)
    deadline = time.monotonic() + 20
    while ledger.rows("SELECT COUNT(*) FROM slack_inbox WHERE state <> 'done'")[0][0] and time.monotonic() < deadline:
        time.sleep(0.02)
    after = truth(telnyx, solapi, highlevel)
    before.update(ctx.seeded)
    entries = ledger.rows("SELECT seq, actor, action, outcome, provider, target, detail FROM ledger_entries "
                          "WHERE seq > :s ORDER BY seq", s=first_seq)
    notices = [m.text for m in slack.channel_messages(CHANNEL)[notices_before:]]
    context = f"{label}\nledger: {entries}\nnotices: {notices}\nasked: {ctx.asked}"

    # 1. nothing left open
    open_left = ledger.rows("SELECT id, operation, provider, target FROM intents WHERE finished_at IS NULL")
    assert open_left == [], f"{context}\nopen intents after restart: {open_left}"

    # 2. every provider-side change has exactly one matching ledger outcome, and no outcome is false
    expected, created = changes(before, after)
    outcome_actions = ("scheduled", "cancelled", "sent", "deleted")
    for (provider, ident, action) in expected:
        count = ledger.rows("SELECT COUNT(*) FROM ledger_entries WHERE provider = :p AND target = :t "
                            "AND action = :a AND outcome = 'ok'", p=provider, t=ident, a=action)[0][0]
        if action == "scheduled" and count == 0:
            covered = [e for e in entries if e.actor == "system" and e.action == "failed"
                       and e.provider == provider and "interrupted schedule" in e.detail]
            assert covered, f"{context}\n{provider} {ident} was scheduled but nothing in the ledger says so"
            assert any("The bot restarted during" in n for n in notices), context
            continue
        assert count == 1, f"{context}\n{provider} {ident} {action}: {count} ledger outcomes"
    claimed = [(e.provider, e.target, e.action) for e in entries
               if e.action in outcome_actions and e.outcome == "ok"]
    for claim in claimed:
        assert claim in expected, f"{context}\nthe ledger claims {claim}, the provider shows otherwise"
    for provider, ident in created:
        if provider == "solapi" and after[(provider, ident)] == "PENDING":
            assert any(e.actor == "system" and "interrupted schedule" in e.detail for e in entries), \
                f"{context}\nhalf-made Solapi group {ident} not accounted for"

    # nothing half-done is left behind in the bot's own state either
    claimed = ledger.rows("SELECT id FROM approvals WHERE state = 'claimed'")
    assert claimed == [], f"{context}\napprovals left claimed (an approve click half done): {claimed}"
    for provider, ident, state in ledger.rows("SELECT provider, target, state FROM tracked_sends"):
        assert state in AGREES[after[(provider, ident)]], \
            f"{context}\ntracked {provider} {ident} is {state!r}, the provider says {after[(provider, ident)]!r}"

    # 3. what the restart settled is the system's, and the channel heard of it
    system = [e for e in entries if e.actor == "system"]
    for entry in system:
        assert entry.target is None or any(entry.target in n for n in notices), \
            f"{context}\nsystem outcome {entry} was not told to the channel"

    # 4. nothing the user asked for is silently dropped
    for asked in ctx.asked:
        if not asked.acked:
            continue  # Slack got no ack: it shows the user an error itself
        answered = any(not str(r.get("text", "")).startswith("⏳") for r in slack.responses_to(asked.token))
        told = any(f"<@{asked.user}>" in n and asked.needle in n for n in notices)
        assert answered or told, f"{context}\n{asked.what} was acked, then neither answered nor reported"

    changed_unanswered = int(any(
        not any(not str(r.get("text", "")).startswith("⏳") for r in slack.responses_to(a.token))
        for a in ctx.asked if a.acked) and bool(expected))
    return {"bot": fresh, "kills": 1, "reconciled": int(bool(system)), "changed_unanswered": changed_unanswered,
            f"mode:{mode}": 1}
