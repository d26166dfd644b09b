"""/sms cancel all mine (and a list of ids), end to end over real HTTP, against rate-limited fakes.

Checked every time: each cancellable send is cancelled once at the provider and once in the ledger;
what the Telnyx guard or the permissions forbid is untouched at the provider and recorded as refused;
the provider's limit is kept (no 429 unless one is injected); one channel message shows the progress
and ends with the summary.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from bot.providers.base import ProviderName
from bot.sandbox.harness import buttons, reply_text
from bot.sandbox.slack import TEAM_ID
from bot.slack.ids import ActionId
from bot.slack.listeners.commands import PROGRESS_MESSAGE_MIN
from db.models import LedgerEntry, TrackedSend
from db.store import new_id

ALICE = "U0ALICE01"
BOB = "U0BOB0001"
CHANNEL = "C0OPS0001"


def track(bot, provider: str, targets: list[str], owner: str = ALICE, send_at: datetime | None = None,
          created_at: datetime | None = None) -> list[TrackedSend]:
    """Tracked sends straight into the bot's store, as `/sms schedule` would have left them."""
    now = datetime.now(UTC)
    sends = [TrackedSend(id=new_id(), provider=provider, target=t, batch_id=new_id(), state="scheduled",
                         provider_status="scheduled", send_at=send_at or now + timedelta(hours=2),
                         recipient_count=1, created_by=owner, team=TEAM_ID, channel=CHANNEL,
                         created_at=created_at or now, updated_at=now)
             for t in targets]
    bot.services.store.add_sends(sends, [])
    return sends


def ledger(bot) -> list[LedgerEntry]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(LedgerEntry).order_by(LedgerEntry.seq)))


def states(bot) -> dict[str, str]:
    with Session(bot.services.engine) as session:
        return {s.target: s.state for s in session.exec(select(TrackedSend))}


def deletes_per_id(fake) -> Counter[str]:
    return Counter(r.path.split("/")[-2] if r.path.endswith("/schedule") else r.path.split("/")[-1]
                   for r in fake.server.requests_to("DELETE"))


def progress_messages(slack):
    return [m for m in slack.channel_messages(CHANNEL) if "is cancelling" in (m.history or [{"text": m.text}])[0]
            ["text"]]


def confirm_mine(bot, text: str = "cancel all mine", user: str = ALICE) -> str:
    """`/sms cancel all mine` lists and asks; the confirmed button does it. Returns the click's token."""
    _, token = bot.command(text, user=user)
    listing = bot.final_reply(token, timeout=30)
    [button] = buttons(listing.get("blocks") or [])
    assert button["action_id"] == ActionId.CANCEL_MINE and "confirm" in button
    return bot.click(button["action_id"], button["value"], user=user)[1]


def limiter(bot, name: ProviderName):
    return bot.services.providers[name]._http.rate_limiter


def test_cancel_all_mine_at_the_limit_once_each_guard_and_owner_respected(
        bulk_bot, limited_highlevel, telnyx, slack):
    bot = bulk_bot()
    mine_hl = [limited_highlevel.add_message() for _ in range(60)]
    bobs_hl = [limited_highlevel.add_message() for _ in range(5)]
    mine_tx = [telnyx.add_message(send_at=datetime.now(UTC) + timedelta(hours=2)) for _ in range(8)]
    soon = datetime.now(UTC) + timedelta(seconds=40)
    guarded_tx = [telnyx.add_message(send_at=soon) for _ in range(3)]
    track(bot, "highlevel", mine_hl)
    track(bot, "highlevel", bobs_hl, owner=BOB)
    track(bot, "telnyx", mine_tx)
    track(bot, "telnyx", guarded_tx, send_at=soon)

    started = time.monotonic()
    token = confirm_mine(bot)
    final = reply_text(bot.final_reply(token, timeout=30))
    elapsed = time.monotonic() - started

    assert "Cancelled 68 of 71; refused 3; failed 0; already done 0." in final
    assert final.count("Telnyx cancel guard") + final.count("goes out in") >= 3
    # at the providers: each of mine once, nothing of Bob's, nothing inside the guard
    assert {limited_highlevel.status_of(i) for i in mine_hl} == {"cancelled"}
    assert {limited_highlevel.status_of(i) for i in bobs_hl} == {"scheduled"}
    assert {telnyx.status_of(i) for i in mine_tx} == {"cancelled"}
    assert {telnyx.status_of(i) for i in guarded_tx} == {"scheduled"}
    assert deletes_per_id(limited_highlevel) == Counter({i: 1 for i in mine_hl})
    assert deletes_per_id(telnyx) == Counter({i: 1 for i in mine_tx})
    # at the limit (20 per 2 s), not past it: 60 HighLevel cancels need two full waits
    assert limiter(bot, ProviderName.HIGHLEVEL).rejections == 0
    assert elapsed >= 4.0
    # the ledger: one `cancelled` per cancelled send, one `refused` per guarded one
    entries = ledger(bot)
    cancelled = Counter(e.target for e in entries if e.action == "cancelled")
    assert cancelled == Counter({i: 1 for i in mine_hl + mine_tx})
    refused = [e for e in entries if e.action == "refused"]
    assert sorted(e.target for e in refused) == sorted(guarded_tx)
    assert all("guard" in e.detail and e.actor == ALICE for e in refused)
    now = states(bot)
    assert {now[i] for i in mine_hl + mine_tx} == {"cancelled"}
    assert {now[i] for i in guarded_tx + bobs_hl} == {"scheduled"}
    # one progress message, updated with the bar, ending with the summary
    [message] = progress_messages(slack)
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert "Cancelled 68 of 71" in message.text and "bulk cancel is done" in message.text
    bars = [v["text"] for v in message.history]
    assert bars[0].endswith("0 / 71 ░░░░░░░░░░")
    assert len(bars) >= 3  # posted, then updated as it went (about every 1.2 s over 4+ s)
    counts = [int(b.split(": ")[-1].split(" / ")[0].replace(",", "")) for b in bars]
    assert counts == sorted(counts) and 0 < counts[-1] < 71


def test_a_list_of_ids_refuses_someone_elses_and_backs_off_on_429(bulk_bot, limited_highlevel, slack):
    bot = bulk_bot(sms_admins="U0ADMIN01")
    mine = [limited_highlevel.add_message() for _ in range(10)]
    bobs = [limited_highlevel.add_message() for _ in range(3)]
    track(bot, "highlevel", mine)
    track(bot, "highlevel", bobs, owner=BOB)
    limited_highlevel.server.faults.rate_limit(
        retry_after=0.5, method="DELETE", times=2, body=b'{"statusCode":429,"message":"Too many requests"}')

    ids = [*mine, *bobs]
    _, token = bot.command("cancel " + " ".join(f"highlevel:{i}" for i in ids))
    final = reply_text(bot.final_reply(token, timeout=30))

    assert "Cancelled 10 of 13; refused 3; failed 0" in final
    assert {limited_highlevel.status_of(i) for i in mine} == {"cancelled"}
    assert {limited_highlevel.status_of(i) for i in bobs} == {"scheduled"}
    assert limiter(bot, ProviderName.HIGHLEVEL).rejections == 2  # the injected ones, waited out
    entries = ledger(bot)
    assert Counter(e.target for e in entries if e.action == "cancelled") == Counter({i: 1 for i in mine})
    refused = [e for e in entries if e.action == "refused"]
    assert sorted(e.target for e in refused) == sorted(bobs)
    assert all(f"<@{BOB}>" in e.detail for e in refused)
    [message] = progress_messages(slack)
    assert "Cancelled 10 of 13" in message.text


def test_two_bulk_cancels_at_once_cancel_each_send_once_and_since_is_respected(
        bulk_bot, limited_highlevel, slack):
    bot = bulk_bot()
    now = datetime.now(UTC)
    recent = [limited_highlevel.add_message() for _ in range(24)]
    older = [limited_highlevel.add_message() for _ in range(4)]
    track(bot, "highlevel", recent, created_at=now - timedelta(minutes=10))
    track(bot, "highlevel", older, created_at=now - timedelta(hours=3))

    tokens: list[str] = []

    def go() -> None:
        tokens.append(confirm_mine(bot, "cancel all mine since 1h"))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    finals = [reply_text(bot.final_reply(t, timeout=30)) for t in tokens]

    oks = [int(f.split("Cancelled ")[1].split(" of ")[0]) for f in finals]
    assert sum(oks) == 24, finals
    assert {limited_highlevel.status_of(i) for i in recent} == {"cancelled"}
    assert {limited_highlevel.status_of(i) for i in older} == {"scheduled"}
    assert deletes_per_id(limited_highlevel) == Counter({i: 1 for i in recent})
    assert Counter(e.target for e in ledger(bot) if e.action == "cancelled") == Counter({i: 1 for i in recent})
    # Whichever command read its sends after the other had cancelled most of them has a small job, and a
    # job under PROGRESS_MESSAGE_MIN gets its answer without a progress message.
    totals = [int(f.split(" of ")[1].split(";")[0]) for f in finals]
    assert sum(totals) >= 24
    assert len(progress_messages(slack)) == sum(1 for t in totals if t >= PROGRESS_MESSAGE_MIN) >= 1


def test_where_the_bot_may_not_post_the_ephemeral_reply_shows_the_progress(bulk_bot, limited_highlevel, slack):
    slack._m_chat_postMessage = lambda args: {"ok": False, "error": "not_in_channel"}
    bot = bulk_bot()
    mine = [limited_highlevel.add_message() for _ in range(30)]
    track(bot, "highlevel", mine)

    token = confirm_mine(bot)
    final = slack.wait_for(lambda: [reply_text(r) for r in bot.replies(token) if "Cancelled" in reply_text(r)],
                           timeout=30)[-1]

    assert "Cancelled 30 of 30" in final
    replies = bot.replies(token)
    progress = [r for r in replies if str(r.get("text", "")).startswith("Cancelling…")]
    assert 1 <= len(progress) <= 3 and all(r["replace_original"] for r in progress)
    assert len(replies) <= 5  # a response_url allows five uses
    assert slack.calls_to("chat.update") == []
