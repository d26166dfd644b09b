"""Each provider's own length rule is checked before any call, and the refusal names the limit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain import text_limits
from bot.domain.commands import UsageError, parse
from bot.providers.base import ProviderName

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SOLAPI = ProviderName.SOLAPI


def test_solapi_counts_euc_kr_bytes_not_characters() -> None:
    assert text_limits.solapi_bytes("안녕 hi") == 7
    assert text_limits.check(SOLAPI, "가" * 1000) is None  # 2,000 bytes: the longest LMS
    assert text_limits.check(SOLAPI, "x" * 2000) is None
    refusal = text_limits.check(SOLAPI, "가" * 1001)
    assert refusal is not None and "2,002 bytes in EUC-KR" in refusal and "at most 2,000 bytes" in refusal


def test_a_1500_character_korean_text_is_refused_for_solapi_before_any_call() -> None:
    with pytest.raises(UsageError) as caught:
        parse("schedule solapi 010-1234-5678 in 1h " + "안" * 1500, NOW)
    message = caught.value.message
    assert "3,000 bytes in EUC-KR" in message and "Solapi takes at most 2,000 bytes" in message


def test_hangul_outside_ks_x_1001_is_two_bytes_and_an_unencodable_character_one() -> None:
    assert text_limits.solapi_bytes("똠햏") == 4 and text_limits.check(SOLAPI, "똠햏") is None
    assert text_limits.solapi_bytes("축하 🎉 é") == 8  # each becomes a one-byte `?`


def test_telnyx_allows_ten_parts_counted_in_its_encoding() -> None:
    telnyx = ProviderName.TELNYX
    assert text_limits.check(telnyx, "x" * 1530) is None
    assert "needs 11 SMS parts" in (text_limits.check(telnyx, "x" * 1531) or "")
    assert "GSM-7" in (text_limits.check(telnyx, "€" * 766) or "")  # an extension character is two septets
    assert text_limits.check(telnyx, "안" * 670) is None
    refusal = text_limits.check(telnyx, "안" * 671)
    assert refusal is not None and "UCS-2, 67 per part" in refusal and "at most 10 parts" in refusal


def test_highlevel_keeps_the_bots_cap() -> None:
    assert text_limits.check(ProviderName.HIGHLEVEL, "x" * 1600) is None
    assert "at most 1,600" in (text_limits.check(ProviderName.HIGHLEVEL, "x" * 1601) or "")
