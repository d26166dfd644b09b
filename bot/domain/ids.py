"""Which provider an id belongs to, by prefix or by shape (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.providers.base import ProviderName

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SOLAPI = re.compile(r"^[GM][34]V\d{14}[A-Z0-9]{15}$")
_HIGHLEVEL = re.compile(r"^[A-Za-z0-9]{20}$")
_TWILIO = re.compile(r"^[SM]M[0-9a-f]{32}$")  # a Message SID: SM (SMS) or MM (MMS), then 32 hex digits
_ANY_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

PROVIDER_ALIASES: dict[str, ProviderName] = {
    "solapi": ProviderName.SOLAPI,
    "coolsms": ProviderName.SOLAPI,
    "highlevel": ProviderName.HIGHLEVEL,
    "ghl": ProviderName.HIGHLEVEL,
    "telnyx": ProviderName.TELNYX,
    "twilio": ProviderName.TWILIO,
}


class IdError(ValueError):
    """An id the bot cannot use, with the reason in plain words."""


@dataclass(frozen=True)
class TargetRef:
    """An id as the user gave it; `provider` is None when neither prefix nor shape tells."""

    id: str
    provider: ProviderName | None
    explicit: bool  # the user named the provider with a prefix

    def __str__(self) -> str:
        return f"{self.provider}:{self.id}" if self.provider else self.id


def provider_from_name(name: str) -> ProviderName | None:
    return PROVIDER_ALIASES.get(name.strip().lower())


def provider_by_shape(raw: str) -> ProviderName | None:
    if _UUID.match(raw):
        return ProviderName.TELNYX
    if _SOLAPI.match(raw):
        return ProviderName.SOLAPI
    if _TWILIO.match(raw):
        return ProviderName.TWILIO
    if _HIGHLEVEL.match(raw):
        return ProviderName.HIGHLEVEL
    return None


def clean(raw: str) -> str:
    """Strip what Slack or a copy-paste wraps around an id: backticks, quotes, <…>."""
    return raw.strip().strip("`'\"<>").strip()


def parse_target(raw: str) -> TargetRef:
    text = clean(raw)
    if not text:
        raise IdError("an id is needed")
    prefix, sep, rest = text.partition(":")
    if sep:
        provider = provider_from_name(prefix)
        if provider is None:
            raise IdError(
                f"`{prefix}` is not a provider: use telnyx:, twilio:, solapi: (or coolsms:) or highlevel: before the id"
            )
        return TargetRef(_validate(rest.strip(), provider), provider, explicit=True)
    if not _ANY_ID.match(text):
        raise IdError(f"`{_show(text)}` is not an id: ids are letters, digits, `-` and `_` only")
    return TargetRef(text, provider_by_shape(text), explicit=False)


def _validate(raw: str, provider: ProviderName) -> str:
    if provider is ProviderName.TELNYX and not _UUID.match(raw):
        raise IdError(f"`{_show(raw)}` is not a Telnyx message id: those are UUIDs such as "
                      "`182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e`")
    if provider is ProviderName.SOLAPI and not _SOLAPI.match(raw):
        raise IdError(f"`{_show(raw)}` is not a Solapi id: group ids look like `G4V20181005162502HEA0ZB9AQOUMSE1`")
    if provider is ProviderName.TWILIO and not _TWILIO.match(raw):
        raise IdError(f"`{_show(raw)}` is not a Twilio message SID: those are SM or MM and 32 hex digits, "
                      "such as `SM1f0e8ae6ade43cb3c0ce4525424e404f`")
    if provider is ProviderName.HIGHLEVEL and not _ANY_ID.match(raw):
        raise IdError(f"`{_show(raw)}` is not a HighLevel message id")
    return raw


def _show(text: str, limit: int = 60) -> str:
    printable = "".join(ch if ch.isprintable() and ch != "`" else "?" for ch in text)
    return printable if len(printable) <= limit else printable[: limit - 1] + "…"
