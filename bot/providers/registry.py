"""Build the configured provider clients from settings; an unconfigured provider is not offered."""

from __future__ import annotations

from bot.infra.settings import Settings
from bot.providers.base import Provider, ProviderName

CREDENTIALS: dict[ProviderName, str] = {
    ProviderName.SOLAPI: "SOLAPI_API_KEY and SOLAPI_API_SECRET",
    ProviderName.HIGHLEVEL: "HIGHLEVEL_TOKEN",
    ProviderName.TELNYX: "TELNYX_API_KEY",
    ProviderName.TWILIO: "TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN, or with TWILIO_API_KEY and TWILIO_API_SECRET",
}

DISPLAY: dict[ProviderName, str] = {
    ProviderName.SOLAPI: "Solapi",
    ProviderName.HIGHLEVEL: "HighLevel",
    ProviderName.TELNYX: "Telnyx",
    ProviderName.TWILIO: "Twilio",
}


def display(name: str) -> str:
    try:
        return DISPLAY[ProviderName(name)]
    except ValueError:
        return name


def build_providers(settings: Settings) -> dict[ProviderName, Provider]:
    from bot.providers.highlevel import HighLevelClient
    from bot.providers.solapi import SolapiClient
    from bot.providers.telnyx import TelnyxClient
    from bot.providers.twilio import TwilioClient

    connect, read = settings.provider_connect_timeout, settings.provider_read_timeout
    providers: dict[ProviderName, Provider] = {}
    if settings.solapi_api_key and settings.solapi_api_secret:
        providers[ProviderName.SOLAPI] = SolapiClient(
            settings.solapi_api_key.get_secret_value(),
            settings.solapi_api_secret.get_secret_value(),
            base_url=settings.solapi_base_url,
            sender=settings.solapi_from,
            connect_timeout=connect,
            read_timeout=read,
        )
    if settings.highlevel_token:
        providers[ProviderName.HIGHLEVEL] = HighLevelClient(
            settings.highlevel_token.get_secret_value(),
            location_id=settings.highlevel_location_id,
            base_url=settings.highlevel_base_url,
            connect_timeout=connect,
            read_timeout=read,
        )
    if settings.telnyx_api_key:
        providers[ProviderName.TELNYX] = TelnyxClient(
            settings.telnyx_api_key.get_secret_value(),
            base_url=settings.telnyx_base_url,
            sender=settings.telnyx_from,
            messaging_profile_id=settings.telnyx_messaging_profile_id,
            connect_timeout=connect,
            read_timeout=read,
        )
    twilio_key = settings.twilio_api_key and settings.twilio_api_secret
    if settings.twilio_account_sid and (settings.twilio_auth_token or twilio_key):
        providers[ProviderName.TWILIO] = TwilioClient(
            settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None,
            api_key=settings.twilio_api_key,
            api_secret=settings.twilio_api_secret.get_secret_value() if settings.twilio_api_secret else None,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            status_callback=settings.twilio_status_callback_url,
            base_url=settings.twilio_base_url,
            connect_timeout=connect,
            read_timeout=read,
        )
    return providers
