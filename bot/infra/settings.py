"""Settings from the environment (and `.env`), as the interface contract lists them."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.domain import phones
from bot.domain.durations import parse_duration, parse_duration_list
from bot.domain.quiet_hours import QuietHours


def _id_set(value: object) -> frozenset[str]:
    if value is None or value == "":
        return frozenset()
    if isinstance(value, str):
        return frozenset(part.strip() for part in value.replace(" ", ",").split(",") if part.strip())
    if isinstance(value, list | tuple | set | frozenset):
        return frozenset(str(v) for v in value)
    raise ValueError("expected a comma-separated list of Slack user ids")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_signing_secret_previous: SecretStr | None = None  # also accepted while the secret is rotated
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    host: str = "0.0.0.0"  # noqa: S104 - a server in a container listens on every interface
    port: int = 3000
    database_url: str = "sqlite:///./smsops.db"

    solapi_api_key: SecretStr | None = None
    solapi_api_secret: SecretStr | None = None
    solapi_base_url: str = "https://api.solapi.com"
    solapi_from: str | None = None

    highlevel_token: SecretStr | None = None
    highlevel_location_id: str | None = None
    highlevel_base_url: str = "https://services.leadconnectorhq.com"

    telnyx_api_key: SecretStr | None = None
    telnyx_base_url: str = "https://api.telnyx.com/v2"
    telnyx_from: str | None = None
    telnyx_messaging_profile_id: str | None = None
    telnyx_public_key: str | None = None  # base64 ed25519 key for delivery webhooks

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None  # also the key Twilio signs status callbacks with
    twilio_api_key: str | None = None  # an API key SID (SK…), with its secret instead of the auth token
    twilio_api_secret: SecretStr | None = None
    twilio_messaging_service_sid: str | None = None  # MG…: Twilio schedules only through a Messaging Service
    twilio_base_url: str = "https://api.twilio.com"
    # the public URL of POST /webhooks/twilio: sent as StatusCallback, and the URL the signature covers
    twilio_status_callback_url: str | None = None

    telnyx_cancel_guard: timedelta = timedelta(seconds=60)
    reminder_leads: Annotated[list[timedelta], NoDecode] = Field(default_factory=lambda: [timedelta(minutes=15)])
    approval_ttl: timedelta = timedelta(hours=24)
    reconcile_after: timedelta = timedelta(minutes=2)  # an open intent older than this is reconciled
    # how often a replica looks at the shared job store for reminders another replica planned
    reminder_poll_seconds: float = Field(default=5.0, ge=0.2, le=3600)
    # how often each replica hands held sends that are due to their provider (bot/operations/held.py)
    held_poll_seconds: float = Field(default=30.0, ge=0.2, le=3600)
    # the approval rules file (TOML, bot/domain/approval_rules.py); unset: no rules
    sms_policy_file: str | None = None

    sms_admins: Annotated[frozenset[str], NoDecode] = frozenset()
    sms_auditors: Annotated[frozenset[str], NoDecode] = frozenset()
    sms_require_second_approver: bool = False
    sms_channel: str | None = None
    default_tz: str = "UTC"  # for times written without an offset when Slack does not know the writer's zone

    # guard rails on what leaves (issue 15): checked by bot/operations/guard.py before any provider call
    quiet_hours: str | None = None  # `21:00-08:00` in each recipient's zone; unset or `off`: no quiet hours
    daily_limit_telnyx: int | None = Field(default=None, ge=0)  # recipients per day; unset: no cap
    daily_limit_twilio: int | None = Field(default=None, ge=0)
    daily_limit_solapi: int | None = Field(default=None, ge=0)
    daily_limit_highlevel: int | None = Field(default=None, ge=0)
    daily_limit_tz: str = "UTC"  # the zone whose calendar days the daily limits count

    # region for phone numbers typed without +country (010-1234-5678); empty: only +country numbers
    default_region: str | None = phones.DEFAULT_REGION

    # tasks in each bot process that work on queued Slack requests (0: this process only acks them, and
    # `smsops worker` processes on the same database do the work)
    inbox_workers: int = Field(default=16, ge=0, le=256)
    # how long a worker holds a request without renewing (it renews every third of it): a dead worker's
    # requests are taken again after this
    inbox_lease: timedelta = timedelta(seconds=30)
    # HTTP mode: how many processes serve PORT (uvicorn's workers; the name platforms such as Heroku set).
    # Each is a whole bot (acks, inbox workers, reminders) on the same database: PostgreSQL for more than one.
    web_concurrency: int = Field(default=1, ge=1, le=64)
    # `smsops worker` processes lower their CPU priority by this much (nice): on a machine whose cores are all
    # busy, the processes that ack Slack requests get the CPU first, and a queued request waits instead of an ack
    worker_nice: int = Field(default=10, ge=0, le=19)

    provider_connect_timeout: float = 5.0
    provider_read_timeout: float = 15.0
    log_level: str = "INFO"

    @field_validator("telnyx_cancel_guard", "approval_ttl", "reconcile_after", "inbox_lease", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_duration(value)
        return value

    @field_validator("reminder_leads", mode="before")
    @classmethod
    def _leads(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_duration_list(value)
        return value

    @field_validator("sms_admins", "sms_auditors", mode="before")
    @classmethod
    def _ids(cls, value: object) -> frozenset[str]:
        return _id_set(value)

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        return None if QuietHours.parse(value) is None else value  # raises with the rule when unreadable

    @field_validator("default_tz", "daily_limit_tz")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"{value!r} is not an IANA time zone, such as Asia/Seoul or America/New_York") from error
        return value

    @field_validator("default_region", mode="before")
    @classmethod
    def _region(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, str):
            if not phones.supported_region(value.strip()):
                raise ValueError(f"{value!r} is not a region code such as KR or US (ISO 3166-1 alpha-2)")
            return value.strip().upper()
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    def daily_limit(self, provider: str) -> int | None:
        """DAILY_LIMIT_<PROVIDER>: recipients per day at that provider, or None when uncapped."""
        value = getattr(self, f"daily_limit_{provider}", None)
        return value if isinstance(value, int) else None

    def secrets(self) -> list[str]:
        """Every configured secret's value, for the log redactor."""
        values = [
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_signing_secret_previous,
            self.slack_app_token,
            self.solapi_api_secret,
            self.solapi_api_key,
            self.highlevel_token,
            self.telnyx_api_key,
            self.twilio_auth_token,
            self.twilio_api_secret,
        ]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]
