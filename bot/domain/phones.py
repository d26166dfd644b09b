"""Phone numbers: what an operator types → E.164, and E.164 → what each provider wants (pure).

Operators type `+821012345678`, `+82 10-1234-5678` or, in their own country, `010-1234-5678`; the
bot normalises all of them to E.164 with Google's libphonenumber (the `phonenumbers` package) before
anything else sees them, so the ledger, the duplicate check and the providers all see one form.

How strict: a number of the default region's country (the operators' own, `DEFAULT_REGION`) must be
a *valid* number there, so a mistyped Korean mobile number is caught before any call. A number of
another country must have a *possible* length for that country: libphonenumber's numbering plans
for far-away countries lag behind new ranges, and refusing a real recipient is worse than letting
the provider refuse a number that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

DEFAULT_REGION = "KR"  # the bot's first users are Korean operators scheduling through Solapi
KOREA = 82

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "its country code is unknown",
    NumberParseException.NOT_A_NUMBER: "it is not made of digits, or has too few of them",
    NumberParseException.TOO_SHORT_AFTER_IDD: "it is too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "it is too short",
    NumberParseException.TOO_LONG: "it is too long",
}


class PhoneError(ValueError):
    """A number the bot will not send to, with a message that names it and says why."""

    def __init__(self, number: str, why: str) -> None:
        super().__init__(f"`{number}` is not a phone number the bot can send to: {why}")
        self.number = number
        self.why = why


def supported_region(region: str) -> bool:
    return region.upper() in phonenumbers.SUPPORTED_REGIONS


def _example(region: str | None) -> str:
    if region:
        example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
        if example is not None:
            national = phonenumbers.format_number(example, PhoneNumberFormat.NATIONAL)
            return (f"+ and the country code (E.164), such as +15551234567, or as a {region} number "
                    f"such as {national}")
    return "+ and the country code (E.164), such as +15551234567 or +821012345678"


def normalise(raw: str, default_region: str | None = DEFAULT_REGION) -> str:
    """`raw` as E.164 (`+821012345678`), or PhoneError. A number without `+` is read as a national
    number of `default_region` (None: only international numbers are accepted)."""
    text = raw.strip()
    region = default_region.upper() if default_region else None
    if not text.startswith("+") and region is None:
        raise PhoneError(raw, "start it with + and the country code (DEFAULT_REGION is not set, so "
                              "national numbers cannot be read)")
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except NumberParseException as error:
        reason = _PARSE_REASONS.get(error.error_type, "it could not be read")
        raise PhoneError(raw, f"{reason}; write it with {_example(region)}") from None
    code = number.country_code or 0
    where = phonenumbers.region_code_for_country_code(code)
    home = phonenumbers.country_code_for_region(region) if region else None
    if not text.startswith("+") and region and _trunk_zero_missing(text, region):
        # `5551230001` is a valid Korean number without its 0, but nobody in Korea writes it so:
        # far likelier a foreign number typed without its +country
        raise PhoneError(raw, f"a national {region} number starts with 0; write it with {_example(region)}")
    if code == home:
        if not phonenumbers.is_valid_number(number):
            raise PhoneError(raw, f"it is not a valid {where} number; write it with {_example(region)}")
    elif not phonenumbers.is_possible_number(number):
        raise PhoneError(raw, f"it has the wrong number of digits for +{code} ({where})")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _trunk_zero_missing(text: str, region: str) -> bool:
    """True when `region` writes national numbers with a leading 0 (KR, GB, DE, JP, …) and `text`
    has none."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    digits = "".join(ch for ch in text if ch.isdigit())
    return metadata is not None and metadata.national_prefix == "0" and not digits.startswith("0")


@dataclass(frozen=True)
class SolapiNumber:
    """Solapi's form of a recipient: `country` (calling code, no +) and `to` (the national number)."""

    country: str
    to: str


def for_solapi(e164: str) -> SolapiNumber:
    """Solapi takes the national number and a separate `country` code (the official SDK's `Message`
    has `country: str = "82"`; its overseas example sends `country="1"` with a national `to`).
    A Korean number keeps its leading 0 (`01012345678`), as Korean numbers are written; another
    country's is its national significant number (`5551234567` for +1 555 123 4567)."""
    number = phonenumbers.parse(e164, None)
    if number.country_code == KOREA:
        national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        return SolapiNumber(str(KOREA), "".join(ch for ch in national if ch.isdigit()))
    return SolapiNumber(str(number.country_code), phonenumbers.national_significant_number(number))
