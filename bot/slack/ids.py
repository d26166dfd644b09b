"""Every action id the bot's buttons use, in one place."""

from enum import StrEnum


class ActionId(StrEnum):
    CANCEL_BATCH = "sms_cancel"  # value: batch id (schedule notices, reminders)
    APPROVE = "sms_approve"  # value: approval id
    REJECT = "sms_reject"  # value: approval id
    AUDIT_MORE = "sms_audit_more"  # value: paging token
    HOME_REFRESH = "sms_home_refresh"
    CANCEL_MINE = "sms_cancel_mine"  # value: what `/sms cancel all mine` listed (since, as of)
    COMPOSE = "sms_compose_open"  # App Home: opens the compose form
    RESCHEDULE = "sms_change_time"  # value: batch id (schedule notices, reminders): opens "Change time"
