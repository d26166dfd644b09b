"""App Home over real HTTP: opening the tab publishes the viewer's upcoming sends, the approvals waiting
(with their buttons) and the viewer's recent activity, fresh each time it is opened."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from urllib.parse import urlencode

import pytest

from bot.sandbox.harness import buttons, reply_text
from bot.sandbox.slack import TEAM_ID
from bot.slack.ids import ActionId

ALICE, BOB = "U0ALICE01", "U0BOB0001"
CHANNEL = "C0OPS0001"


@pytest.fixture
def world(world_factory):
    return world_factory()


def open_home(bot, user: str, tab: str = "home"):
    before = len(bot.slack.calls_to("views.publish"))
    body = json.dumps({
        "token": "legacy-verification-token", "team_id": TEAM_ID, "api_app_id": "A0SMSOPS1",
        "type": "event_callback", "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}", "event_time": int(time.time()),
        "event": {"type": "app_home_opened", "user": user, "channel": "D0HOME001", "tab": tab,
                  "event_ts": f"{time.time():.6f}"},
    })
    response = bot.post_signed(body, content_type="application/json")
    assert response.status_code == 200
    if tab != "home":
        return None
    call = bot.slack.wait_for(lambda: [c for c in bot.slack.calls_to("views.publish")[before:]
                                       if c.args.get("user_id") == user], 10)[-1]
    return call.args["view"]


def sections(view) -> dict[str, str]:
    """Each section's text by its first line (`*Upcoming sends*` → 'Upcoming sends')."""
    found = {}
    for block in view["blocks"]:
        if block["type"] == "section" and "text" in block:
            head, _, rest = block["text"]["text"].partition("\n")
            found[head.strip("*")] = rest
    return found


def schedule(bot, user: str) -> str:
    _, token = bot.command("schedule telnyx +15551230001 in 2h Doors open at 10", user=user, channel=CHANNEL)
    reply = reply_text(bot.final_reply(token))
    assert "Scheduled with Telnyx" in reply
    return reply.split("`")[1]


def request_send(bot, solapi, user: str) -> tuple[str, dict]:
    group = solapi.add_group(status="PENDING", recipients=["01011112222", "01033334444"])
    _, token = bot.command(f"send {group}", user=user, channel=CHANNEL)
    assert "Asked for approval" in reply_text(bot.final_reply(token))
    card = bot.slack.wait_for(lambda: [m for m in bot.slack.channel_messages(CHANNEL)
                                       if group in reply_text({"blocks": m.blocks})], 5)[-1]
    return group, card


def click_in_home(bot, action_id: str, value: str, user: str):
    """A button pressed in the Home tab: Slack sends the view as the container and no response_url."""
    payload = {
        "type": "block_actions", "team": {"id": TEAM_ID, "domain": "test"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID}, "api_app_id": "A0SMSOPS1",
        "token": "legacy-verification-token", "container": {"type": "view", "view_id": "V1"},
        "trigger_id": f"{secrets.randbelow(10**9)}.1.x", "view": {"id": "V1", "type": "home", "blocks": []},
        "actions": [{"action_id": action_id, "block_id": "b", "value": value, "type": "button",
                     "action_ts": f"{time.time():.6f}"}],
    }
    return bot.post_signed(urlencode({"payload": json.dumps(payload)}))


def test_home_shows_upcoming_sends_approvals_and_activity_and_is_fresh_each_time(world):
    bot, solapi = world.bot, world.solapi
    mine = schedule(bot, ALICE)
    theirs = schedule(bot, BOB)
    group, _ = request_send(bot, solapi, BOB)

    view = open_home(bot, ALICE)
    assert view["type"] == "home" and len(view["blocks"]) <= 100
    assert view["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": "Your SMS"}}
    parts = sections(view)
    assert mine in parts["Upcoming sends"] and theirs not in parts["Upcoming sends"], "only the viewer's"
    # the approval waiting, as a card with its buttons bound to the approval
    text = reply_text({"blocks": view["blocks"]})
    assert group in text
    named = {b["action_id"]: b for b in buttons(view["blocks"])}
    assert named.pop(ActionId.COMPOSE)["text"]["text"] == "Schedule SMS"  # opens the compose form
    assert set(named) == {ActionId.APPROVE, ActionId.REJECT}
    assert named[ActionId.APPROVE]["value"] == named[ActionId.REJECT]["value"]
    assert all("confirm" in b for b in named.values())
    assert "scheduled" in parts["Your recent activity"] and mine in parts["Your recent activity"]
    assert group not in parts["Your recent activity"], "Bob's request is Bob's activity"

    bobs = sections(open_home(bot, BOB))
    assert theirs in bobs["Upcoming sends"] and mine not in bobs["Upcoming sends"]
    assert "asked for approval" in bobs["Your recent activity"]
    assert "approval_requested" not in bobs["Your recent activity"]

    # Alice cancels; reopening the tab shows it (the view is built anew on every open)
    _, token = bot.command(f"cancel {mine}", user=ALICE, channel=CHANNEL)
    assert "Cancelled" in reply_text(bot.final_reply(token))
    again = sections(open_home(bot, ALICE))
    assert mine not in again["Upcoming sends"]
    assert "cancelled" in again["Your recent activity"]


def test_only_the_home_tab_is_published(world):
    before = len(world.bot.slack.calls_to("views.publish"))
    open_home(world.bot, ALICE, tab="messages")
    time.sleep(0.5)
    assert len(world.bot.slack.calls_to("views.publish")) == before


def test_approve_in_the_home_tab_sends_once_and_updates_the_channel_card(world):
    bot, solapi = world.bot, world.solapi
    group, card = request_send(bot, solapi, BOB)
    view = open_home(bot, ALICE)
    approve = next(b for b in buttons(view["blocks"]) if b["action_id"] == ActionId.APPROVE
                   and b["value"] in {x["value"] for x in buttons(card.blocks)})
    assert click_in_home(bot, ActionId.APPROVE, approve["value"], ALICE).status_code == 200
    bot.slack.wait_for(lambda: solapi.group(group)["status"] in ("SENDING", "COMPLETE"), 10)
    updated = bot.slack.wait_for(lambda: card.history and card, 10)
    assert "Approved by <@U0ALICE01>" in reply_text({"blocks": updated.blocks})
    assert solapi.calls("POST", f"/groups/{group}/send") == 1


def test_a_click_in_the_home_tab_refreshes_the_tab(world):
    bot, solapi = world.bot, world.solapi
    _, card = request_send(bot, solapi, BOB)
    value = buttons(card.blocks)[0]["value"]
    open_home(bot, ALICE)
    before = len(bot.slack.calls_to("views.publish"))
    group = next(g for g in solapi.groups if g in reply_text({"blocks": card.blocks}))
    assert click_in_home(bot, ActionId.REJECT, value, ALICE).status_code == 200
    call = bot.slack.wait_for(lambda: [c for c in bot.slack.calls_to("views.publish")[before:]
                                       if c.args.get("user_id") == ALICE], 5)[-1]
    view = call.args["view"]
    notice = view["blocks"][1]["text"]["text"]
    assert "cancel" in notice.lower() and group in notice, notice
    waiting = reply_text({"blocks": view["blocks"]}).split("Waiting for approval")[1].split("Your recent activity")[0]
    assert group not in waiting, "the request just cancelled is no longer offered"
    assert solapi.calls("POST", f"/groups/{group}/send") == 0
