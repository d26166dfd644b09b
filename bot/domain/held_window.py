"""When the bot keeps a schedule itself because it is further out than the provider schedules (pure).

Telnyx takes `send_at` up to 5 days ahead and Twilio up to 35 days: a later send is held by the bot and
handed to the provider a day inside that window (4 days ahead for Telnyx, 34 for Twilio), so a bot that
was down for a while still has a day to submit it."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.domain.policy import TELNYX_MAX_AHEAD, TWILIO_MAX_AHEAD
from bot.providers.base import ProviderName

MAX_AHEAD: dict[ProviderName, timedelta] = {ProviderName.TELNYX: TELNYX_MAX_AHEAD,
                                            ProviderName.TWILIO: TWILIO_MAX_AHEAD}
MARGIN = timedelta(days=1)


def beyond_window(provider: ProviderName, send_at: datetime, now: datetime) -> bool:
    """Whether the provider would refuse `send_at` only because it is too far ahead."""
    limit = MAX_AHEAD.get(provider)
    return limit is not None and send_at - now > limit


def submit_at(provider: ProviderName, send_at: datetime) -> datetime:
    """When a held send is handed to its provider: a margin inside the provider's window."""
    return send_at - (MAX_AHEAD[provider] - MARGIN)
