"""Every place a fake departs from the unmodified specs in tests/specs/ (= /work/shared/specs/), with
the source that justifies it. The fakes validate requests against those specs; nothing else is tolerated."""

from __future__ import annotations

DEVIATIONS: dict[str, str] = {
    # Telnyx
    "telnyx: Idempotency-Key header on POST /messages[/schedule]":
        "Not declared in the spec subset; documented at "
        "developers.telnyx.com/docs/development/api-fundamentals/idempotency (successful answers replayed "
        "24 h; same key with another body is 422).",
    "telnyx: send_at kept by the fake, not shown in the payload":
        "OutboundMessagePayload (spec) and the SDK's Message type list no send_at; the fake only needs it "
        "for the 'scheduled → delivered' and 'cancel more than a minute ahead' rules (spec's DELETE text).",
    # HighLevel
    "highlevel: SendMessageBodyDto.required patched to [type, contactId]":
        "Generator artefact since d9cbcd5a (tests/specs/README.md, 'HighLevel quirk'); patched in "
        "tests/fakes/telnyx.py load_spec(..., 'highlevel-required').",
    "highlevel: GET of a cancelled or unknown message answers 400 'Message not found'":
        "The spec documents only 400/401 for GET; design/providers.md §2.",
    "highlevel: scheduledTimestamp kept by the fake, not shown on GET":
        "GetMessageResponseDto lists no scheduledTimestamp.",
    "highlevel: Version: 2021-04-15 required":
        "design/providers.md §2; the SDK gohighlevel-api-client 3.0.0 sends Version: v3 instead (not yet "
        "reconciled: the contract test for HighLevel is not written).",
}
