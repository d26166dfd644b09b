"""How long a text each provider takes, measured the way that provider measures it (pure).

- Solapi counts **bytes in EUC-KR**: a Hangul syllable is 2 bytes, ASCII 1. Up to 90 bytes goes as
  an SMS, up to 2,000 bytes as an LMS; longer is refused at registration (status 1031 "SMS는 90byte
  LMS, MMS는 2000byte …"). So a 1,500-character Korean text (3,000 bytes) is too long although it
  is under any character limit. Counting uses CP949, the superset Korean carriers use, so the
  8,822 modern syllables KS X 1001 lacks (똠, 햏) are 2 bytes too, as on a Korean phone. A character
  EUC-KR has no code for (an emoji, most accented Latin letters) is counted as the one byte of the
  `?` it is replaced by. The Solapi documents this project holds do not say how Solapi counts
  those: the fake counts them the same way, and a refusal from Solapi itself is still shown verbatim.
- Telnyx splits a long SMS into parts and sends at most **10 parts** (`parts`, `maximum: 10`, in
  its message schema): GSM-7 texts take 160 characters in one part, 153 per part when split
  (the extension characters such as `€ [ ] { }` take two); any other text goes as UCS-2, 70 UTF-16
  units in one part, 67 per part when split.
- HighLevel documents no length for an SMS body: the bot keeps its own cap of 1,600 characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.providers.base import ProviderName

SOLAPI_CODEC = "cp949"  # EUC-KR with every Hangul syllable (see above)
SOLAPI_SMS_BYTES = 90
SOLAPI_LMS_BYTES = 2000
TELNYX_MAX_PARTS = 10
HIGHLEVEL_MAX_CHARACTERS = 1600
LONGEST = SOLAPI_LMS_BYTES  # characters: no provider takes a longer text (2,000 ASCII at Solapi)

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")  # each is an escape plus a character: two septets


@dataclass(frozen=True)
class Measure:
    """A text as the provider sees it: its kind (SMS/LMS, GSM-7/UCS-2), its size and the limit."""

    kind: str
    size: int
    unit: str
    parts: int = 1


def solapi_bytes(text: str) -> int:
    return len(text.encode(SOLAPI_CODEC, errors="replace"))  # an unencodable character: one `?`


def telnyx_measure(text: str) -> Measure:
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        septets = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
        parts = 1 if septets <= 160 else -(-septets // 153)
        return Measure("GSM-7", septets, "characters", parts)
    units = len(text.encode("utf-16-le")) // 2
    parts = 1 if units <= 70 else -(-units // 67)
    return Measure("UCS-2", units, "UTF-16 units", parts)


def check(provider: ProviderName, text: str) -> str | None:
    """None when `provider` takes `text`; otherwise why not, naming the limit that applies."""
    if provider is ProviderName.SOLAPI:
        size = solapi_bytes(text)
        if size > SOLAPI_LMS_BYTES:
            return (f"the text is {size:,} bytes in EUC-KR (a Hangul character is 2 bytes, other characters 1); "
                    f"Solapi takes at most {SOLAPI_LMS_BYTES:,} bytes (an LMS; up to {SOLAPI_SMS_BYTES} bytes "
                    "goes as an SMS)")
        return None
    if provider is ProviderName.TELNYX:
        measure = telnyx_measure(text)
        if measure.parts > TELNYX_MAX_PARTS:
            per_part = 153 if measure.kind == "GSM-7" else 67
            return (f"the text needs {measure.parts} SMS parts at Telnyx ({measure.size:,} {measure.unit} in "
                    f"{measure.kind}, {per_part} per part); Telnyx sends at most {TELNYX_MAX_PARTS} parts "
                    f"({TELNYX_MAX_PARTS * per_part:,} {measure.unit} in {measure.kind})")
        return None
    if len(text) > HIGHLEVEL_MAX_CHARACTERS:
        return (f"the text is {len(text):,} characters; the bot sends at most {HIGHLEVEL_MAX_CHARACTERS:,} "
                "through HighLevel")
    return None
