"""The fakes validate requests against the OpenAPI specs; make sure that never silently turns off."""

from bot.sandbox.highlevel import FakeHighLevel
from bot.sandbox.telnyx import FakeTelnyx


def test_the_fakes_validate_against_the_specs():
    assert FakeTelnyx().validating
    assert FakeHighLevel().validating
