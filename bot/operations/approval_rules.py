"""The approval rules file (`SMS_POLICY_FILE`) read from disk and checked; the rules themselves are pure
(bot/domain/approval_rules.py)."""

from __future__ import annotations

from pathlib import Path

from bot.domain.approval_rules import ApprovalPolicy, PolicyFileError, parse


def load_policy(path: str | None) -> ApprovalPolicy | None:
    """The rules of `path`, or None when no file is set (today's behaviour: no rules). Raises
    PolicyFileError naming the file, the line and the reason."""
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise PolicyFileError(path, None, f"cannot be read ({reason})") from error
    return parse(text, path)
