"""Recipients as operators type them become E.164 before anything else sees them; bad ones are named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain import commands, phones
from bot.domain.commands import UsageError, parse
from bot.providers.base import ProviderName

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("typed", ["010-1234-5678", "01012345678", "010 1234 5678", "+82 10-1234-5678",
                                   "+821012345678", "+82 (0)10 1234 5678"])
def test_a_korean_mobile_number_in_any_usual_form_is_one_e164_number(typed: str) -> None:
    assert phones.normalise(typed, "KR") == "+821012345678"


def test_national_numbers_are_read_for_the_configured_region() -> None:
    assert phones.normalise("(415) 555-0100", "US") == "+14155550100"
    assert phones.normalise("+1 415 555 0100", "KR") == "+14155550100"  # +country wins over the region
    with pytest.raises(phones.PhoneError, match="DEFAULT_REGION is not set"):
        phones.normalise("010-1234-5678", None)


@pytest.mark.parametrize(("typed", "why"), [
    ("010-1234", "not a valid KR number"),  # a home number must be valid there, not just digits
    ("02-123", "not a valid KR number"),
    ("+1555123456", "wrong number of digits for +1 (US)"),
    ("+999123456789", "country code is unknown"),
    ("hello", "not a phone number"),
    ("5551230001", "a national KR number starts with 0"),  # valid in Korea without its 0, never written so
])
def test_a_bad_number_is_refused_by_name_with_the_reason(typed: str, why: str) -> None:
    with pytest.raises(phones.PhoneError) as caught:
        phones.normalise(typed, "KR")
    assert f"`{typed}`" in str(caught.value) and why in str(caught.value)


def test_schedule_gets_e164_and_a_national_duplicate_is_caught() -> None:
    cmd = parse("schedule solapi 010-1234-5678,+15551234567 in 1h 안녕하세요", NOW)
    assert isinstance(cmd, commands.Schedule)
    assert cmd.to == ("+821012345678", "+15551234567")
    with pytest.raises(UsageError, match=r"listed twice \(\+821012345678\)"):
        parse("schedule solapi 010-1234-5678,+821012345678 in 1h 안녕", NOW)
    with pytest.raises(UsageError, match="`010-12` is not a phone number the bot can send to"):
        parse("schedule telnyx +15551230001,010-12 in 1h hi", NOW)
    with pytest.raises(UsageError, match="start it with \\+"):
        parse("schedule telnyx 010-1234-5678 in 1h hi", NOW, default_region=None)


def test_highlevel_contact_ids_are_left_alone() -> None:
    cmd = parse("schedule highlevel ve9EPM428h8vShlRW1KT in 1h hi", NOW)
    assert isinstance(cmd, commands.Schedule) and cmd.provider is ProviderName.HIGHLEVEL
    assert cmd.to == ("ve9EPM428h8vShlRW1KT",)


@pytest.mark.parametrize(("e164", "country", "to"), [
    ("+821012345678", "82", "01012345678"),
    ("+8221234567", "82", "021234567"),
    ("+15551234567", "1", "5551234567"),
    ("+447911123456", "44", "7911123456"),
])
def test_solapi_gets_the_national_number_and_its_country_code(e164: str, country: str, to: str) -> None:
    assert phones.for_solapi(e164) == phones.SolapiNumber(country, to)


def test_default_region_setting_is_checked_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from bot.infra.settings import Settings

    assert Settings(_env_file=None).default_region == "KR"  # type: ignore[call-arg]
    monkeypatch.setenv("DEFAULT_REGION", "us")
    assert Settings(_env_file=None).default_region == "US"  # type: ignore[call-arg]
    monkeypatch.setenv("DEFAULT_REGION", "")
    assert Settings(_env_file=None).default_region is None  # type: ignore[call-arg]
    monkeypatch.setenv("DEFAULT_REGION", "Korea")
    with pytest.raises(ValidationError, match="not a region code"):
        Settings(_env_file=None)  # type: ignore[call-arg]
