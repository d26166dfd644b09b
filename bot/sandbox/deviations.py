"""Every place a fake departs from the unmodified specs in tests/specs/ (= /work/shared/specs/), with
the source that justifies it. ONE place: the fakes' spec validation consults this list and nothing else
(`bot/sandbox/telnyx.py` `SpecCheck.check`), so a departure not listed here is a spec violation.

Three kinds of entry:
- `tolerates`: a validator problem (regex on openapi-core's message; a problem with the fake's answer
  rather than the request starts `response: `) on `method` + `path` that is not counted as a violation
  (the spec is wrong there, the source says how);
- `header`: a header value the real API also accepts though the vendored spec does not list it; the
  request is validated with `validate_as` in its place (so the rest of it is still checked), and the
  HighLevel fake accepts the value (`accepted_header_values`);
- neither: a behaviour of the fake the spec does not describe (no request is affected).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Deviation:
    provider: str  # "telnyx" | "highlevel"
    what: str
    source: str
    method: str | None = None  # None: any method
    path: str | None = None  # a regex the whole path must match; None: any path
    tolerates: str | None = None  # a regex on a validator problem's message
    header: str | None = None  # lower-case header name
    value: str | None = None  # the value sent
    validate_as: str | None = None  # the value the vendored spec lists, validated in its place

    def applies(self, provider: str, method: str, path: str) -> bool:
        return (
            self.provider == provider
            and (self.method is None or self.method == method.upper())
            and (self.path is None or re.fullmatch(self.path, path) is not None)
        )


_HL_VERSIONED = r"/conversations/(messages(/[^/]+(/schedule)?)?|search)"  # the paths declaring Version

DEVIATIONS: tuple[Deviation, ...] = (
    # Telnyx
    Deviation(
        "telnyx", "Idempotency-Key header on POST /messages[/schedule], with Telnyx's replay semantics",
        "Not declared in the spec subset (extra headers are not a violation); documented at "
        "developers.telnyx.com/docs/development/api-fundamentals/idempotency (successful answers replayed "
        "24 h; same key with another body is 422).",
    ),
    Deviation(
        "telnyx", "send_at kept by the fake, not shown in the payload",
        "OutboundMessagePayload (spec) and the SDK's Message type list no send_at; the fake only needs it "
        "for the 'scheduled → delivered' and 'cancel more than a minute ahead' rules (spec's DELETE text).",
    ),
    Deviation(
        "telnyx", "to[].status 'scheduled' (and 'cancelled') in answers about a scheduled message",
        "The spec's OutboundMessagePayload to[].status enum lacks them, yet developers.telnyx.com/docs/messaging/"
        "messages/schedule-message says the answer to a schedule is the message with status 'scheduled', the "
        "spec's own CancelMessage text says only status=scheduled can be cancelled, and telnyx-python@6d68c8c "
        "types/message_cancel_scheduled_response.py lists scheduled and cancelled (design/providers.md §3).",
        path=r"/v2/messages(/schedule|/[0-9a-fA-F-]{36})?",
        tolerates=r"^response: '(scheduled|cancelled)' is not one of \['queued'",
    ),
    # HighLevel
    Deviation(
        "highlevel", "SendMessageBodyDto.required lists subType and status",
        "Generator artefact since d9cbcd5a (tests/specs/README.md, 'HighLevel quirk'; design/providers.md "
        "§2): a real SMS body has type, contactId and message. The SDK's pydantic model has the same "
        "artefact (subType: Dict required, status required).",
        method="POST", path=r"/conversations/messages", tolerates=r"'(subType|status)' is a required property",
    ),
    Deviation(
        "highlevel", "Version: v3 accepted where the v1 spec lists only 2021-04-15",
        "GoHighLevel/highlevel-api-docs@0af86a4 apps/v3/conversations-v3.json: the same paths with Version "
        "enum [v3] (design/providers.md §2); the official SDK gohighlevel-api-client 3.0.0 forces it "
        "(highlevel.py API_VERSION = 'v3'). The bot sends 2021-04-15, the vendored spec's value.",
        path=_HL_VERSIONED, header="version", value="v3", validate_as="2021-04-15",
    ),
    Deviation(
        "highlevel", "GET of a cancelled or unknown message answers 400 'Message not found'",
        "The spec documents only 400/401 for GET; design/providers.md §2.",
    ),
    Deviation(
        "highlevel", "scheduledTimestamp kept by the fake, not shown on GET",
        "GetMessageResponseDto (spec) and the SDK's model list no scheduledTimestamp.",
    ),
)


def applicable(provider: str, method: str, path: str) -> list[Deviation]:
    return [d for d in DEVIATIONS if d.applies(provider, method, path)]


def headers_to_validate(provider: str, method: str, path: str, headers: Mapping[str, str]) -> dict[str, str]:
    """The request's headers with every listed header deviation replaced by the value the spec lists."""
    shown = dict(headers)
    for deviation in applicable(provider, method, path):
        if deviation.header and deviation.validate_as is not None and shown.get(deviation.header) == deviation.value:
            shown[deviation.header] = deviation.validate_as
    return shown


def header_deviation(provider: str, method: str, path: str, headers: Mapping[str, str]) -> Deviation | None:
    for deviation in applicable(provider, method, path):
        if deviation.header and headers.get(deviation.header) == deviation.value:
            return deviation
    return None


def tolerated(provider: str, method: str, path: str, message: str) -> Deviation | None:
    for deviation in applicable(provider, method, path):
        if deviation.tolerates and re.search(deviation.tolerates, message):
            return deviation
    return None


def accepted_header_values(provider: str, method: str, path: str, header: str) -> set[str]:
    """Values of `header` a listed deviation says the real API accepts on this request."""
    return {d.value for d in applicable(provider, method, path) if d.header == header and d.value}
