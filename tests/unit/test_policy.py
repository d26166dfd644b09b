"""The rules the bot enforces itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.policy import Permissions, schedule_window, telnyx_cancel
from bot.providers.base import ProviderName

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
GUARD = timedelta(seconds=60)


def test_telnyx_guard():
    assert telnyx_cancel(NOW + timedelta(minutes=5), NOW, GUARD).allowed
    refused = telnyx_cancel(NOW + timedelta(seconds=30), NOW, GUARD)
    assert not refused.allowed and "goes out in 30s" in refused.reason
    assert not telnyx_cancel(NOW + timedelta(seconds=60), NOW, GUARD).allowed
    assert "no longer be cancelled" in telnyx_cancel(NOW - timedelta(seconds=5), NOW, GUARD).reason


def test_schedule_windows():
    assert not schedule_window(ProviderName.TELNYX, NOW + timedelta(minutes=2), NOW).allowed
    assert schedule_window(ProviderName.TELNYX, NOW + timedelta(minutes=6), NOW).allowed
    assert not schedule_window(ProviderName.TELNYX, NOW + timedelta(days=5, minutes=1), NOW).allowed
    assert schedule_window(ProviderName.SOLAPI, NOW + timedelta(days=150), NOW).allowed
    assert not schedule_window(ProviderName.SOLAPI, NOW + timedelta(days=200), NOW).allowed
    assert schedule_window(ProviderName.HIGHLEVEL, NOW + timedelta(days=200), NOW).allowed


def test_twilio_schedules_fifteen_minutes_to_thirty_five_days_ahead():
    too_soon = schedule_window(ProviderName.TWILIO, NOW + timedelta(minutes=14, seconds=59), NOW)
    assert not too_soon.allowed
    assert too_soon.reason == "Twilio schedules 15 minutes to 35 days ahead; 14m 59s is too soon"
    assert schedule_window(ProviderName.TWILIO, NOW + timedelta(minutes=15), NOW).allowed
    assert schedule_window(ProviderName.TWILIO, NOW + timedelta(days=35), NOW).allowed
    too_far = schedule_window(ProviderName.TWILIO, NOW + timedelta(days=35, seconds=1), NOW)
    assert not too_far.allowed and too_far.reason.endswith("is too far")


def test_permissions():
    team = Permissions()
    assert team.may_cancel("U1", "U2").allowed  # no admins: a small team trusts everyone
    strict = Permissions(admins=frozenset({"UADMIN"}), auditors=frozenset({"UAUD"}), require_second_approver=True)
    assert strict.may_cancel("U1", "U1").allowed
    assert not strict.may_cancel("U1", "U2").allowed
    assert strict.may_cancel("UADMIN", "U2").allowed
    assert not strict.may_cancel("U1", None).allowed
    assert not strict.may_approve("UADMIN", "UADMIN").allowed
    assert strict.may_approve("UADMIN", "U1").allowed
    assert not strict.may_approve("U1", "U2").allowed
    assert strict.may_read_all_audit("UAUD") and strict.may_read_all_audit("UADMIN")
    assert not strict.may_read_all_audit("U1")
