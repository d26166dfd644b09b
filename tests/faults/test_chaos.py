"""Provider faults, end to end: a signed /sms command → the bot → a misbehaving fake provider → the
answer the user reads, the requests the provider saw, and the ledger.

What is proved (README.md (Guarantees) lists it with these test names):
- every call has a timeout, and the user gets a progress note ("⏳ Telnyx is slow …, retrying…") and a
  final answer, never silence;
- 5xx, dropped connections and timeouts are retried with backoff only where repeating is harmless
  (reads, cancels, deletes); a cancel/delete whose first answer was lost is read as "already done"
  when the provider's state says so; a send or a schedule is never repeated;
- after a send's answer is lost, the bot asks the provider before saying anything;
- a 429 is waited out for as long as Retry-After (or HighLevel's window header) says;
- Solapi gets a fresh signature on every attempt;
- HTML error pages, truncated JSON and wrong types become a plain "could not read" provider error.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.sandbox.harness import buttons, reply_text
from bot.slack.ids import ActionId
from db.models import LedgerEntry
from tests.faults.crash_support import Gate

FAST = {"provider_read_timeout": 0.4, "provider_connect_timeout": 0.4}


def ledger(bot: Any) -> list[tuple[str, str, str | None]]:
    with Session(bot.services.engine) as session:
        return [(e.action, e.outcome, e.target)
                for e in session.exec(select(LedgerEntry).order_by(LedgerEntry.seq))]


def later(hours: float = 2) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


def progress_and_final(bot: Any, token: str, timeout: float = 15) -> tuple[list[str], str]:
    final = reply_text(bot.final_reply(token, timeout=timeout))
    notes = [str(r.get("text", "")) for r in bot.replies(token) if str(r.get("text", "")).startswith("⏳")]
    return notes, final


def no_internals(text: str) -> None:
    for leak in ("Traceback", "Exception", "httpx", "File \""):
        assert leak not in text, text
    assert len(text) < 400, text  # a short, plain answer: at most a snippet of what the provider sent


# --- timeouts, progress and a final answer ---------------------------------------------------------

def test_a_slow_cancel_is_retried_with_a_progress_note_then_done(make_bot, telnyx):
    bot = make_bot(**FAST)
    message_id = telnyx.add_message(send_at=later())
    telnyx.server.faults.latency(1.0, method="DELETE", times=1)  # the first attempt times out
    _, token = bot.command(f"cancel {message_id}")
    notes, final = progress_and_final(bot, token)
    assert notes == ["⏳ Telnyx is slow (timeout), retrying…"]
    assert "Cancelled" in final
    assert len(telnyx.server.requests_to("DELETE")) == 2
    assert telnyx.status_of(message_id) == "cancelled"
    assert ledger(bot) == [("cancelled", "ok", message_id)]


def test_a_provider_that_never_answers_gets_a_final_error_not_silence(make_bot, telnyx):
    bot = make_bot(**FAST)
    message_id = telnyx.add_message(send_at=later())
    telnyx.server.faults.latency(1.0, method="GET")  # every attempt of the read times out
    started = time.monotonic()
    _, token = bot.command(f"status {message_id}")
    notes, final = progress_and_final(bot, token)
    assert time.monotonic() - started < 10
    assert notes == ["⏳ Telnyx is slow (timeout), retrying…"]
    assert "Telnyx did not answer in time" in final
    assert len(telnyx.server.requests_to("GET")) == 3  # the retry policy's three attempts, then an answer
    no_internals(final)


def test_every_provider_call_has_a_timeout(make_bot, solapi, highlevel):
    """A Solapi or HighLevel call that hangs ends in a timeout answer too (no call waits forever)."""
    bot = make_bot(**FAST)
    group_id = solapi.add_group(status="SCHEDULED", scheduled_at=later(24))
    message_id = highlevel.add_message(scheduled_at=later())
    solapi.server.faults.latency(1.0)
    highlevel.server.faults.latency(1.0)
    _, t1 = bot.command(f"status {group_id}")
    _, t2 = bot.command(f"status highlevel:{message_id}")
    assert "Solapi did not answer in time" in progress_and_final(bot, t1)[1]
    assert "HighLevel did not answer in time" in progress_and_final(bot, t2)[1]


# --- what is repeated, and what never is -----------------------------------------------------------

@pytest.mark.parametrize("fault", ["503", "drop"])
def test_a_cancel_hitting_a_5xx_or_a_dropped_connection_is_retried(make_bot, telnyx, fault):
    bot = make_bot()
    message_id = telnyx.add_message(send_at=later())
    if fault == "503":
        telnyx.server.faults.status(503, '{"errors":[{"code":"10007","title":"Service unavailable"}]}',
                                    method="DELETE", times=1)
    else:
        telnyx.server.faults.drop(method="DELETE", times=1)
    _, token = bot.command(f"cancel {message_id}")
    notes, final = progress_and_final(bot, token)
    assert notes == ["⏳ Telnyx is slow (unavailable), retrying…"]
    assert "Cancelled" in final
    assert len(telnyx.server.requests_to("DELETE")) == 2
    assert ledger(bot) == [("cancelled", "ok", message_id)]


def test_a_read_with_a_dropped_connection_is_retried(make_bot, solapi):
    bot = make_bot()
    group_id = solapi.add_group(status="SCHEDULED", scheduled_at=later(24))
    solapi.server.faults.drop(method="GET", times=1)
    _, token = bot.command(f"status {group_id}")
    assert "`SCHEDULED`" in progress_and_final(bot, token)[1]
    assert solapi.calls("GET", group_id) == 2


def test_a_telnyx_schedule_hitting_a_5xx_is_repeated_with_its_key_and_scheduled_once(make_bot, telnyx):
    bot = make_bot()
    telnyx.server.faults.status(503, '{"errors":[{"code":"10007","title":"Service unavailable"}]}',
                                method="POST", times=1)
    _, token = bot.command("schedule telnyx +15551230001 in 2h hello")
    notes, final = progress_and_final(bot, token)
    assert notes == ["⏳ Telnyx is slow (unavailable), retrying…"]
    assert "Scheduled with Telnyx" in final
    posts = telnyx.server.requests_to("POST")
    keys = {p.headers.get("idempotency-key") for p in posts}
    assert len(posts) == 2 and len(keys) == 1 and None not in keys  # the same key: Telnyx sends it once
    assert len(telnyx.messages) == 1
    assert [a for a, _, _ in ledger(bot)] == ["scheduled"]


def test_a_highlevel_schedule_hitting_a_5xx_is_never_repeated_and_is_unknown(make_bot, highlevel):
    bot = make_bot()
    highlevel.server.faults.status(503, '{"statusCode":503,"message":"Service Unavailable"}', method="POST",
                                   times=1)
    _, token = bot.command("schedule highlevel cT0000000001 in 2h hello")
    notes, final = progress_and_final(bot, token)
    assert notes == []
    assert "Unknown, checking" in final and "Not scheduled" not in final
    assert len(highlevel.server.requests_to("POST")) == 1  # no key: asking again could send it twice
    assert [a for a, _, _ in ledger(bot)] == []  # nothing is known yet: reconcile records what it finds


def test_a_highlevel_schedule_that_times_out_is_not_repeated_and_says_the_outcome_is_unknown(
        make_bot, highlevel):
    bot = make_bot(**FAST)
    gate = Gate(highlevel.server)
    gate.arm("POST", lambda path: path == "/conversations/messages", after=True)  # HighLevel acts, answers late
    try:
        _, token = bot.command("schedule highlevel cT0000000001 in 2h hello")
        notes, final = progress_and_final(bot, token)
    finally:
        gate.release()
    assert notes == []
    assert "Unknown, checking" in final and "may or may not have scheduled it" in final
    assert "Not scheduled" not in final
    assert len(highlevel.server.requests_to("POST")) == 1


def _approve(bot: Any, solapi: Any) -> tuple[str, str]:
    group_id = solapi.add_group(status="PENDING", recipients=["01011112222"])
    _, token = bot.command(f"send {group_id}")
    assert "Asked for approval" in reply_text(bot.final_reply(token))
    card = bot.slack.wait_for(lambda: bot.slack.channel_messages("C0OPS0001"), 5)[-1]
    approve = {b["action_id"]: b for b in buttons(card.blocks)}[ActionId.APPROVE]
    _, click = bot.click(approve["action_id"], approve["value"], user="U0BOB0001", message_ts=card.ts)
    return group_id, click


def test_a_send_whose_answer_is_lost_is_checked_not_repeated(make_bot, solapi):
    bot = make_bot()
    solapi.lose_answer("POST", "/send", status=500)  # Solapi sends, then answers 500
    group_id, click = _approve(bot, solapi)
    final = reply_text(bot.final_reply(click, timeout=15))
    assert "Sent Solapi" in final
    assert solapi.calls("POST", "/send") == 1
    sent_at = solapi.server.requests_to("POST", "/send")[0].at
    checks = [r for r in solapi.server.requests_to("GET", group_id) if r.at > sent_at]
    assert checks, "the bot must ask Solapi for the group's state after the lost answer"
    assert solapi.group(group_id)["status"] in ("SENDING", "COMPLETE")
    assert [a for a, _, _ in ledger(bot)] == ["approval_requested", "approved", "sent"]


def test_a_send_that_times_out_is_checked_not_repeated(make_bot, solapi):
    bot = make_bot(**FAST)
    gate = Gate(solapi.server)
    gate.arm("POST", lambda path: path.endswith("/send"), after=True)  # Solapi sends; the answer is late
    try:
        _group_id, click = _approve(bot, solapi)
        final = reply_text(bot.final_reply(click, timeout=15))
    finally:
        gate.release()
    assert "Sent Solapi" in final
    assert solapi.calls("POST", "/send") == 1
    assert [a for a, _, _ in ledger(bot)] == ["approval_requested", "approved", "sent"]


def test_a_send_refused_for_real_is_not_sent(make_bot, solapi):
    bot = make_bot()
    solapi.server.faults.status(500, '{"errorCode":"InternalError","errorMessage":"oops"}', method="POST",
                                path_contains="/send", times=1)  # the fake never acted
    group_id, click = _approve(bot, solapi)
    final = reply_text(bot.final_reply(click, timeout=15))
    assert "Not sent" in final and "unavailable" in final
    assert solapi.calls("POST", "/send") == 1
    assert solapi.group(group_id)["status"] == "PENDING"
    assert [a for a, _, _ in ledger(bot)] == ["approval_requested", "approved", "failed"]


@pytest.mark.parametrize("provider", ["solapi", "highlevel", "telnyx", "twilio"])
def test_a_cancel_whose_first_answer_was_lost_is_read_as_already_done(make_bot, solapi, highlevel, telnyx,
                                                                       twilio, provider):
    bot = make_bot()
    if provider == "solapi":
        target = solapi.add_group(status="SCHEDULED", scheduled_at=later(24))
        solapi.lose_answer("DELETE", "/schedule", status=503)
        ref, fake = target, solapi.server
    elif provider == "highlevel":
        target = highlevel.add_message(scheduled_at=later())
        ref, fake = f"highlevel:{target}", highlevel.server
        gate = Gate(highlevel.server)  # HighLevel cancels, its answer is lost in a 502 from a gateway
        _lose_once(gate, "DELETE", target)
    elif provider == "twilio":
        target = twilio.add_message(send_at=later())
        ref, fake = target, twilio.server
        gate = Gate(twilio.server)  # Twilio cancels (Status=canceled), its answer is lost in a 502
        _lose_once(gate, "POST", target)
    else:
        target = telnyx.add_message(send_at=later())
        ref, fake = target, telnyx.server
        gate = Gate(telnyx.server)
        _lose_once(gate, "DELETE", target)
    _, token = bot.command(f"cancel {ref}")
    notes, final = progress_and_final(bot, token)
    assert len(notes) == 1 and "retrying" in notes[0]
    assert "Cancelled" in final, final
    cancels = fake.requests_to("POST", target) if provider == "twilio" else fake.requests_to("DELETE")
    assert len(cancels) == 2
    assert ledger(bot) == [("cancelled", "ok", target)]


def _lose_once(gate: Gate, method: str, target: str) -> None:
    """The provider acts on the first matching request, and its answer becomes a 502."""
    inner = gate.inner
    done = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != method or target not in scope["path"] or done.is_set():
            await inner(scope, receive, send)
            return
        done.set()

        async def swallow(_message: Any) -> None:
            return None

        await inner(scope, receive, swallow)
        await send({"type": "http.response.start", "status": 502,
                    "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"<html>502 Bad Gateway</html>"})

    gate.inner = app


def test_a_delete_whose_first_answer_was_lost_is_read_as_already_done(make_bot, solapi):
    bot = make_bot()
    group_id = solapi.add_group(status="PENDING")
    solapi.lose_answer("DELETE", f"/groups/{group_id}", status=503)
    _, token = bot.command(f"delete {group_id}")
    _notes, final = progress_and_final(bot, token)
    assert "Deleted" in final, final
    assert solapi.calls("DELETE", group_id) == 2
    assert ledger(bot) == [("deleted", "ok", group_id)]


# --- rate limits ---------------------------------------------------------------------------------

def test_a_429_waits_for_retry_after_even_for_a_schedule(make_bot, telnyx):
    bot = make_bot()
    telnyx.server.faults.rate_limit(retry_after=1, method="POST", times=1)
    _, token = bot.command("schedule telnyx +15551230002 in 2h hello")
    notes, final = progress_and_final(bot, token)
    assert notes == ["⏳ Telnyx is slow (rate_limited), retrying…"]
    assert "Scheduled with Telnyx" in final
    first, second = telnyx.server.requests_to("POST")
    assert second.at - first.at >= 0.95  # Retry-After: 1
    assert len(telnyx.messages) == 1  # a 429 means the provider did nothing: repeating is safe


def test_highlevel_429_waits_for_its_window_header(make_bot, highlevel):
    bot = make_bot()
    message_id = highlevel.add_message(scheduled_at=later())
    highlevel.server.faults.status(429, '{"statusCode":429,"message":"Too many requests"}', method="GET",
                                   times=1, headers={"content-type": "application/json",
                                                     "x-ratelimit-interval-milliseconds": "800"})
    _, token = bot.command(f"status highlevel:{message_id}")
    notes, final = progress_and_final(bot, token)
    assert notes == ["⏳ HighLevel is slow (rate_limited), retrying…"]
    assert "`scheduled`" in final
    first, second = highlevel.server.requests_to("GET")
    assert second.at - first.at >= 0.75


def test_a_429_asking_for_too_long_a_wait_is_answered_at_once(make_bot, solapi):
    bot = make_bot()
    group_id = solapi.add_group(status="SCHEDULED", scheduled_at=later(24))
    solapi.server.faults.rate_limit(retry_after=3600, method="GET")
    started = time.monotonic()
    _, token = bot.command(f"status {group_id}")
    final = progress_and_final(bot, token)[1]
    assert time.monotonic() - started < 5
    assert "rate-limiting" in final and "1h" in final


def test_solapi_gets_a_fresh_signature_on_every_attempt(make_bot, solapi):
    bot = make_bot()
    group_id = solapi.add_group(status="SCHEDULED", scheduled_at=later(24))
    solapi.server.faults.status(502, "<html>bad gateway</html>", method="GET", times=2,
                                headers={"content-type": "text/html"})
    _, token = bot.command(f"status {group_id}")
    assert "`SCHEDULED`" in progress_and_final(bot, token)[1]
    signatures = [r.headers["authorization"] for r in solapi.server.requests_to("GET", group_id)]
    assert len(signatures) == 3 and len(set(signatures)) == 3  # the fake refuses a reused one, too


# --- garbage ---------------------------------------------------------------------------------------

GARBAGE = {
    "html": ("<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
    "truncated": ('{"data": {"id": "0b5c', "application/json"),
    "wrong types": ('{"data": [1, 2, 3], "groupId": 7, "status": {"x": []}, "id": null}', "application/json"),
    "not json at all": ("\x00\xff\xfe binary", "application/octet-stream"),
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
@pytest.mark.parametrize("provider", ["telnyx", "solapi", "highlevel", "twilio"])
def test_a_garbage_answer_becomes_a_clear_provider_error(make_bot, telnyx, solapi, highlevel, twilio, provider,
                                                         kind):
    bot = make_bot()
    body, ctype = GARBAGE[kind]
    if provider == "telnyx":
        ref, server = telnyx.add_message(send_at=later()), telnyx.server
    elif provider == "solapi":
        ref, server = solapi.add_group(status="SCHEDULED", scheduled_at=later(24)), solapi.server
    elif provider == "twilio":
        ref, server = twilio.add_message(send_at=later()), twilio.server
    else:
        ref, server = "highlevel:" + highlevel.add_message(scheduled_at=later()), highlevel.server
    server.faults.garbage(body, status=200, method="GET", headers={"content-type": ctype})
    _, token = bot.command(f"status {ref}")
    final = progress_and_final(bot, token)[1]
    name = {"telnyx": "Telnyx", "solapi": "Solapi", "highlevel": "HighLevel", "twilio": "Twilio"}[provider]
    assert f"{name} sent an answer the bot could not read" in final, final
    no_internals(final)


def test_slack_markup_in_a_providers_answer_reaches_slack_inert(make_bot, telnyx):
    """A provider's error text is shown, but `<!channel>` in it must not notify the channel, nor
    `<https://…|…>` become a disguised link."""
    bot = make_bot()
    ref = telnyx.add_message(send_at=later())
    body = json.dumps({"errors": [{"code": "<!channel>", "title": "Bad",
                                   "detail": "see <https://evil.example|Telnyx support> <!here>"}]})
    telnyx.server.faults.garbage(body, status=422, method="GET", headers={"content-type": "application/json"})
    _, token = bot.command(f"status {ref}")
    final = progress_and_final(bot, token)[1]
    assert "Telnyx said no" in final and "evil.example" in final, final
    assert "<!" not in final and "<https" not in final, final
    assert "&lt;!here&gt;" in final


def test_a_garbage_answer_to_a_cancel_is_checked_and_reported(make_bot, telnyx):
    bot = make_bot()
    message_id = telnyx.add_message(send_at=later())
    telnyx.server.faults.garbage("<html>oops</html>", status=200, method="DELETE", times=1)  # never acted
    _, token = bot.command(f"cancel {message_id}")
    final = progress_and_final(bot, token)[1]
    assert "Not cancelled" in final and "could not read" in final
    assert telnyx.status_of(message_id) == "scheduled"
    assert len(telnyx.server.requests_to("DELETE")) == 1  # garbage is not retried: it may have acted
    assert [(a, o) for a, o, _ in ledger(bot)] == [("failed", "error")]
