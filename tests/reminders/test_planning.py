"""Planning, dropping and firing reminders against a real database and the fake Telnyx (no Slack)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from bot.domain.results import CardKind
from bot.reminders import Reminders, job_id, parse_job_id, runs
from db.models import TrackedSend
from db.store import new_id
from tests.reminders.conftest import (
    claims,
    ledger,
    make_services,
    running_reminders,
    soon,
    stored_jobs,
    tracked,
)

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_runs_plans_every_lead_ahead_and_only_the_shortest_passed():
    send_at = NOW + timedelta(minutes=30)  # 1h before has passed: that one fires at once
    assert runs(send_at, [3600, 600], NOW) == [(600, send_at - timedelta(minutes=10)),
                                               (3600, send_at - timedelta(hours=1))]
    send_at = NOW + timedelta(hours=2)
    assert [lead for lead, _ in runs(send_at, [600, 3600], NOW)] == [3600, 600]
    send_at = NOW + timedelta(minutes=5)  # both passed: one reminder, at once
    assert runs(send_at, [3600, 600, 900], NOW) == [(600, send_at - timedelta(minutes=10))]
    assert runs(NOW - timedelta(seconds=1), [600], NOW) == []


def test_job_ids_are_deterministic():
    assert job_id("abc", 900) == "remind:abc:900"
    assert parse_job_id("remind:abc:900") == ("abc", 900)
    assert parse_job_id("other:abc") is None


async def test_plan_makes_one_job_per_batch_and_lead_however_often_it_is_called(world, telnyx):
    services, reminders = world
    sends = tracked(services, telnyx, soon(7200), count=3)
    for send in sends + sends:
        reminders.plan(send)
    batch = sends[0].batch_id
    assert stored_jobs(reminders, batch) == [job_id(batch, 3600), job_id(batch, 600)]
    job = reminders.scheduler.get_job(job_id(batch, 600))
    assert abs((job.next_run_time - (sends[0].send_at - timedelta(minutes=10))).total_seconds()) < 0.001


async def test_plan_ignores_what_cannot_be_reminded(world, telnyx):
    services, reminders = world
    unscheduled, cancelled, past = (tracked(services, telnyx, soon(7200))[0] for _ in range(3))
    unscheduled.send_at = None
    cancelled.state = "cancelled"
    past.send_at = soon(-5)
    for send in (unscheduled, cancelled, past):
        reminders.plan(send)
        assert stored_jobs(reminders, send.batch_id) == []


async def test_drop_waits_until_nothing_in_the_batch_is_waiting(world, telnyx):
    services, reminders = world
    first, second = tracked(services, telnyx, soon(7200), count=2)
    reminders.plan(first)
    services.store.set_state(first.id, "cancelled")
    reminders.drop(first.id)
    assert len(stored_jobs(reminders, first.batch_id)) == 2  # the second message still goes out
    services.store.set_state(second.id, "cancelled")
    reminders.drop(second.id)
    assert stored_jobs(reminders, first.batch_id) == []
    reminders.drop("no-such-send")  # tolerated


async def test_a_reminder_is_posted_once_and_recorded(world, telnyx):
    services, reminders = world
    sends = tracked(services, telnyx, soon(1200), count=2)
    batch = sends[0].batch_id
    assert await reminders.fire(batch, 900) == "posted"
    assert await reminders.fire(batch, 900) == "claimed-elsewhere"  # a second run, or another replica
    cards = services.notifier.cards
    assert len(cards) == 1
    channel, card = cards[0]
    assert channel == "C0OPS0001" and card.kind is CardKind.REMINDER and card.mention_owner
    assert card.record_id == batch and card.recipient_count == 2 and card.cancel_blocked is None
    entries = [e for e in ledger(services) if e.action == "reminded"]
    assert [(e.actor, e.outcome, e.channel) for e in entries] == [("system", "ok", "C0OPS0001")]
    assert "2 recipient(s)" in entries[0].detail
    assert [(c.send_id, c.lead_seconds, c.status) for c in claims(services)] == [(batch, 900, "posted")]


async def test_telnyx_inside_the_guard_gets_no_cancel_button(sqlite_url, telnyx):
    from db.migrate import upgrade

    upgrade(sqlite_url)
    services = make_services(sqlite_url, telnyx, telnyx_cancel_guard="30m")
    reminders = Reminders(services)
    send = tracked(services, telnyx, soon(1200))[0]
    assert await reminders.fire(send.batch_id, 900) == "posted"
    card = services.notifier.cards[0][1]
    assert card.cancel_blocked is not None and "Telnyx cancels only more than 30m" in card.cancel_blocked
    await services.aclose()


async def test_a_send_whose_time_passed_is_recorded_missed(world, telnyx):
    services, reminders = world
    send = tracked(services, telnyx, soon(-30))[0]
    assert await reminders.fire(send.batch_id, 600) == "missed"
    assert await reminders.fire(send.batch_id, 600) == "claimed-elsewhere"
    assert services.notifier.cards == []
    entry = ledger(services)[-1]
    assert (entry.action, entry.actor, entry.outcome) == ("reminded", "system", "error")
    assert "missed" in entry.detail
    assert [c.status for c in claims(services)] == ["missed"]


async def test_when_two_leads_are_due_at_once_only_the_shorter_speaks(world, telnyx):
    services, reminders = world  # leads 1h and 10m; the send is 5 minutes away
    send = tracked(services, telnyx, soon(300))[0]
    assert await reminders.fire(send.batch_id, 3600) == "superseded"
    assert await reminders.fire(send.batch_id, 600) == "posted"
    assert len(services.notifier.cards) == 1


async def test_a_send_cancelled_at_the_provider_gets_no_reminder_and_a_ledger_note(world, telnyx):
    services, reminders = world
    send = tracked(services, telnyx, soon(7200))[0]
    reminders.plan(send)  # two jobs, neither due yet
    telnyx.messages[send.target]["to"][0]["status"] = "cancelled"  # someone used the Telnyx portal
    assert await reminders.fire(send.batch_id, 600) == "skipped"
    assert services.notifier.cards == []
    note = ledger(services)[-1]
    assert (note.action, note.actor, note.outcome, note.target) == ("cancelled", "system", "ok", send.target)
    assert "Telnyx says `cancelled`" in note.detail
    with Session(services.engine) as session:
        fresh = session.get(TrackedSend, send.id)
        assert fresh is not None and (fresh.state, fresh.provider_status) == ("cancelled", "cancelled")
    assert stored_jobs(reminders, send.batch_id) == []  # its other lead is gone too
    assert [c.status for c in claims(services)] == ["skipped"]


async def test_only_the_messages_still_waiting_are_announced(world, telnyx):
    services, reminders = world
    first, second = tracked(services, telnyx, soon(1200), count=2)
    telnyx.messages[first.target]["to"][0]["status"] = "cancelled"
    assert await reminders.fire(first.batch_id, 600) == "posted"
    card = services.notifier.cards[0][1]
    assert card.targets == [second.target]
    assert [e.action for e in ledger(services)] == ["cancelled", "reminded"]


async def test_a_provider_that_does_not_answer_does_not_stop_the_reminder(world, telnyx):
    services, reminders = world
    send = tracked(services, telnyx, soon(1200))[0]
    telnyx.server.faults.status(401, b'{"errors":[{"code":"10009","title":"Authentication failed"}]}',
                                method="GET")
    assert await reminders.fire(send.batch_id, 600) == "posted"
    card = services.notifier.cards[0][1]
    assert card.outcome is not None and "Could not check" in card.outcome
    assert "provider not checked" in ledger(services)[-1].detail


async def test_a_post_that_fails_is_recorded(world, telnyx):
    services, reminders = world
    services.notifier.fail = True
    send = tracked(services, telnyx, soon(1200))[0]
    assert await reminders.fire(send.batch_id, 600) == "posted"
    assert [(e.action, e.outcome) for e in ledger(services)] == [("reminded", "ok"), ("failed", "error")]


async def test_start_plans_sends_that_have_no_job(world, telnyx):
    services, reminders = world
    send = tracked(services, telnyx, soon(7200))[0]  # in the ledger, never planned (a crash in between)
    assert await asyncio.to_thread(reminders.sweep) == 2
    assert len(stored_jobs(reminders, send.batch_id)) == 2
    assert await asyncio.to_thread(reminders.sweep) == 0


async def test_jobs_fire_on_time_and_once_with_two_schedulers_on_one_database(world, sqlite_url, telnyx):
    services, reminders = world  # a second scheduler on the same database learns of the job by polling
    other_services = make_services(sqlite_url, telnyx)
    other = Reminders(other_services, poll_seconds=0.3)
    other.start()
    try:
        send = tracked(services, telnyx, soon(3600 + 1.2))[0]  # the 1h lead is due in 1.2 s
        reminders.plan(send)
        await asyncio.sleep(2.5)
        cards = services.notifier.cards + other_services.notifier.cards
        assert len(cards) == 1
        assert [c.status for c in claims(services)] == ["posted"]
    finally:
        other.shutdown()
        await other_services.aclose()


async def test_replicas_firing_the_same_reminder_at_the_same_moment_post_it_once(any_db_url, telnyx):
    from db.migrate import upgrade

    upgrade(any_db_url)
    replicas = [make_services(any_db_url, telnyx) for _ in range(3)]
    send = tracked(replicas[0], telnyx, soon(1200))[0]
    try:
        outcomes = await asyncio.gather(*(Reminders(s).fire(send.batch_id, 600) for s in replicas))
        assert sorted(outcomes) == ["claimed-elsewhere", "claimed-elsewhere", "posted"]
        assert sum(len(s.notifier.cards) for s in replicas) == 1
        assert [e.action for e in ledger(replicas[0])] == ["reminded"]
    finally:
        for s in replicas:
            await s.aclose()
            s.engine.dispose()


async def test_cancelled_batches_lose_their_jobs_and_only_theirs_on_either_database(any_db_url, telnyx):
    """On PostgreSQL under a language collation too (tests/support/pg.py), where text ranges that
    assume bytewise order miss ids."""
    async with running_reminders(any_db_url, telnyx) as (services, reminders):
        assert reminders.swept is not None
        await reminders.swept
        mine, other, kept = (tracked(services, telnyx, soon(7200))[0] for _ in range(3))
        for send in (mine, other, kept):
            reminders.plan(send)

        def stored() -> set[str]:
            return {job.id for job in reminders.scheduler.get_jobs()}

        assert stored() == {job_id(s.batch_id, lead) for s in (mine, other, kept) for lead in (3600, 600)}
        assert stored_jobs(reminders, mine.batch_id) == sorted(job_id(mine.batch_id, lead) for lead in (3600, 600))

        services.store.set_state(mine.id, "cancelled")
        reminders.drop(mine.id)  # after the send's own transaction, as every caller does
        services.store.set_state(other.id, "cancelled")
        reminders.drop(other.id)

        assert stored() == {job_id(kept.batch_id, lead) for lead in (3600, 600)}
        assert stored_jobs(reminders, mine.batch_id) == stored_jobs(reminders, other.batch_id) == []


async def test_the_start_up_sweep_plans_only_what_is_missing_on_either_database(any_db_url, telnyx):
    """Over more than one page of batches, with some jobs planned, one claimed and one missing."""
    async with running_reminders(any_db_url, telnyx, sweep=False) as (services, reminders):
        sends = [tracked(services, telnyx, soon(7200), batch_id=new_id())[0] for _ in range(7)]
        planned, claimed, missing = sends[:3], sends[3], sends[4:]
        for send in planned:
            reminders.plan(send)
        services.store.claim_reminder(claimed.batch_id, 3600, "posted", None)  # its 1h reminder went out

        added = await asyncio.to_thread(reminders.sweep, 2)  # pages of two batches
        assert added == 2 * len(missing) + 1  # both leads of each missing batch, the claimed one's 10m
        assert stored_jobs(reminders, claimed.batch_id) == [job_id(claimed.batch_id, 600)]
        for send in (*planned, *missing):
            assert stored_jobs(reminders, send.batch_id) == sorted(job_id(send.batch_id, lead) for lead in (3600, 600))
        assert await asyncio.to_thread(reminders.sweep, 2) == 0


async def test_a_batchs_jobs_are_found_through_an_index_on_postgresql(pg_url, telnyx):
    """Every cancel looks its batch's jobs up by id prefix: without an index that serves a prefix under
    the database's collation, that is a scan of every reminder (13 ms at 100,000; 0.8 ms with it)."""
    from sqlalchemy import select

    async with running_reminders(pg_url, telnyx, sweep=False) as (services, reminders):
        send = tracked(services, telnyx, soon(7200))[0]
        reminders.plan(send)
        lookup = select(reminders.store.jobs_t.c.id).where(reminders._of_batch(send.batch_id))
        with services.engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a tiny table: ask whether it *can*
            compiled = lookup.compile(conn, compile_kwargs={"literal_binds": True})
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
            found = conn.execute(lookup).scalars().all()
        assert "apscheduler_jobs_id_prefix" in plan, plan
        assert sorted(found) == sorted(job_id(send.batch_id, lead) for lead in (3600, 600))
