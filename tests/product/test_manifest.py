"""app_manifest.yml (Socket Mode) and app_manifest.http.yml (HTTP mode) against the code: the command,
the events and the buttons the code listens to, and
exactly the bot scopes its Slack Web API calls need — found by reading the code, and by watching the
calls a running bot makes."""

from __future__ import annotations

import ast
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.harness import buttons
from bot.slack.ids import ActionId

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "app_manifest.yml"
HTTP_MANIFEST = ROOT / "app_manifest.http.yml"
MANIFESTS = pytest.mark.parametrize("path", [MANIFEST, HTTP_MANIFEST], ids=["socket", "http"])

# Web API method → the bot scopes it needs (any one of each set). Methods the code does not call are
# here so that a new call is a one-line change; a call missing here fails the test on purpose.
NEEDS: dict[str, set[str]] = {
    "auth.test": set(),
    "chat.postMessage": {"chat:write"},
    "chat.update": {"chat:write"},
    "chat.delete": {"chat:write"},
    "chat.postEphemeral": {"chat:write"},
    "chat.scheduleMessage": {"chat:write"},
    "users.info": {"users:read"},
    "users.lookupByEmail": {"users:read.email"},
    "usergroups.list": {"usergroups:read"},
    "usergroups.users.list": {"usergroups:read"},
    "views.publish": set(),
    "views.open": set(),
    "views.update": set(),
    "views.push": set(),
    "conversations.info": {"channels:read", "groups:read", "im:read", "mpim:read"},
    "conversations.join": {"channels:join"},
    "reactions.add": {"reactions:write"},
    "apps.connections.open": set(),  # Socket Mode: the app-level token's connections:write
}
# Scopes that widen what a call may do and so may be granted without a call of their own.
OPTIONAL = {"chat:write.public": "chat.postMessage", "chat:write.customize": "chat.postMessage"}
# Listener kinds → the scope (or setting) they need.
COMMAND_SCOPE = "commands"


def manifest(path: Path = MANIFEST) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def web_api_methods() -> dict[str, str]:
    """AsyncWebClient's snake_case method names → Slack's method names (from the SDK's own docs)."""
    names = {}
    for attribute in dir(AsyncWebClient):
        doc = getattr(getattr(AsyncWebClient, attribute, None), "__doc__", None) or ""
        found = re.search(r"/methods/([a-zA-Z.]+)", doc)
        if found and not attribute.startswith("_"):
            names[attribute] = found.group(1)
    return names


def code_files() -> list[Path]:
    return sorted(p for p in (ROOT / "bot").rglob("*.py") if p.name not in ("console.py", "console_render.py"))


def calls_in_code() -> dict[str, list[str]]:
    """Every Web API call in bot/: `client.chat_postMessage(…)` and `api_call("chat.postMessage")`."""
    methods = web_api_methods()
    found: dict[str, list[str]] = {}
    for path in code_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            name = node.func.attr
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if name in methods:
                found.setdefault(methods[name], []).append(where)
            elif name == "api_call" and node.args and isinstance(node.args[0], ast.Constant):
                found.setdefault(str(node.args[0].value), []).append(where)
    return found


def listeners_in_code() -> dict[str, set[str]]:
    """`app.command("/sms")`, `app.event("app_home_opened")`, `app.action(…)` … as registered in bot/."""
    found: dict[str, set[str]] = {}
    for path in code_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "app"
                    and node.func.attr in ("command", "event", "action", "view", "shortcut", "options",
                                           "message")):
                arg = node.args[0] if node.args else None
                value = arg.value if isinstance(arg, ast.Constant) else ast.unparse(arg) if arg else ""
                found.setdefault(node.func.attr, set()).add(str(value))
    return found


def test_the_code_calls_only_methods_whose_scopes_are_known():
    calls = calls_in_code()
    assert "chat.postMessage" in calls and "views.publish" in calls, "the scan found the bot's calls"
    unknown = {m: w for m, w in calls.items() if m not in NEEDS}
    assert not unknown, f"add these Web API methods and their scopes to NEEDS (and the manifest): {unknown}"


@MANIFESTS
def test_the_manifest_grants_exactly_the_scopes_the_calls_need(path: Path):
    granted = set(manifest(path)["oauth_config"]["scopes"]["bot"])
    calls = calls_in_code()
    needed = {COMMAND_SCOPE}
    for method in calls:
        options = NEEDS[method]
        if options and not options & granted:
            pytest.fail(f"{method} (called at {calls[method][0]}) needs one of {sorted(options)}")
        needed |= options & granted
    extra = {s for s in granted - needed if not (s in OPTIONAL and OPTIONAL[s] in calls)}
    assert not extra, f"the manifest grants scopes no code uses: {sorted(extra)}"
    assert needed <= granted


def test_the_calls_a_running_bot_makes_are_covered(bot, solapi):
    """The other direction: drive the bot (schedule, approve, audit, home) and check every
    Web API method it called at the fake Slack against the manifest."""
    _, token = bot.command("schedule telnyx +15551230001 in 2h Doors open at 10")
    bot.final_reply(token)
    group = solapi.add_group(status="PENDING")
    _, token = bot.command(f"send {group}")
    bot.final_reply(token)
    card = bot.slack.wait_for(lambda: [m for m in bot.slack.channel_messages("C0OPS0001")
                                       if any(b["action_id"] == ActionId.APPROVE for b in buttons(m.blocks))])[-1]
    approve = next(b for b in buttons(card.blocks) if b["action_id"] == ActionId.APPROVE)
    _, token = bot.click(ActionId.APPROVE, approve["value"], user="U0BOB0001", message_ts=card.ts)
    bot.final_reply(token)
    _, token = bot.command(f"audit since {(datetime.now(UTC) - timedelta(days=1)).date()}")
    bot.final_reply(token)
    bot.post_signed(json.dumps({"type": "event_callback", "team_id": "T0TEST001", "api_app_id": "A0SMSOPS1",
                                "event_id": "Ev0MANIFEST", "event_time": int(time.time()),
                                "event": {"type": "app_home_opened", "user": "U0ALICE01", "tab": "home"}}),
                    content_type="application/json")
    bot.slack.wait_for(lambda: "U0ALICE01" in bot.slack.views)

    called = {c.method for c in bot.slack.calls}
    print("Web API methods called:", sorted(called))
    assert {"chat.postMessage", "chat.update", "views.publish"} <= called
    for path in (MANIFEST, HTTP_MANIFEST):
        granted = set(manifest(path)["oauth_config"]["scopes"]["bot"])
        for method in called:
            assert method in NEEDS, f"the bot called {method}: add it to NEEDS and the manifest"
            assert not NEEDS[method] or NEEDS[method] & granted, f"{path.name}: {method} needs one of {NEEDS[method]}"


@MANIFESTS
def test_the_manifest_declares_what_the_code_listens_to(path: Path):
    data = manifest(path)
    listeners = listeners_in_code()
    commands = {c["command"] for c in data["features"]["slash_commands"]}
    assert commands == listeners["command"] == {"/sms"}
    # Mentions must arrive as <@U…> ids: `/sms audit @someone` parses those.
    assert all(c.get("should_escape") is True for c in data["features"]["slash_commands"])
    events = set(data["settings"]["event_subscriptions"]["bot_events"])
    assert events == listeners["event"], "subscribe to exactly the events the code handles"
    shortcuts = {s["callback_id"] for s in data["features"].get("shortcuts") or []}
    assert shortcuts == listeners.get("shortcut", set()), "declare exactly the shortcuts the code handles"
    if listeners.get("action") or listeners.get("view") or listeners.get("shortcut"):
        assert data["settings"]["interactivity"]["is_enabled"] is True
    if "app_home_opened" in events:
        assert data["features"]["app_home"]["home_tab_enabled"] is True


def _common(data: dict) -> None:
    """What Slack checks in any manifest."""
    assert data["_metadata"]["major_version"] == 1
    info = data["display_information"]
    assert 1 <= len(info["name"]) <= 35 and len(info["description"]) <= 140
    assert data["features"]["bot_user"]["display_name"]
    command = data["features"]["slash_commands"][0]
    assert len(command["description"]) <= 2000 and len(command["usage_hint"]) <= 1000


def test_the_manifest_is_a_socket_mode_app_slack_accepts():
    data = manifest()
    _common(data)
    assert data["settings"]["socket_mode_enabled"] is True
    # In Socket Mode Slack refuses request URLs; app_manifest.http.yml is the HTTP-mode variant.
    assert "url" not in data["features"]["slash_commands"][0]
    assert "request_url" not in data["settings"]["interactivity"]
    assert "request_url" not in data["settings"]["event_subscriptions"]


def test_the_http_manifest_sends_everything_to_the_bots_one_endpoint():
    data = manifest(HTTP_MANIFEST)
    _common(data)
    assert data["settings"]["socket_mode_enabled"] is False
    urls = {data["features"]["slash_commands"][0]["url"], data["settings"]["interactivity"]["request_url"],
            data["settings"]["event_subscriptions"]["request_url"]}
    assert len(urls) == 1, "the command, the clicks and the events go to the same URL"
    (url,) = urls
    assert url.startswith("https://") and url.endswith("/slack/events")  # the route bot/server/http.py serves


def test_the_two_manifests_differ_only_in_the_mode():
    def without_mode(data: dict) -> dict:
        data["settings"].pop("socket_mode_enabled")
        data["features"]["slash_commands"][0].pop("url", None)
        data["settings"]["interactivity"].pop("request_url", None)
        data["settings"]["event_subscriptions"].pop("request_url", None)
        return data

    assert without_mode(manifest(HTTP_MANIFEST)) == without_mode(manifest())
