"""User-facing errors: one clear line, a non-zero exit, never a traceback."""

import sys
from typing import NoReturn


class UserError(Exception):
    """A mistake the user can fix. The message is the whole story: what is wrong and how to fix it."""

    exit_code = 1


class SettingsError(UserError):
    """A bad config.yml: the message names the key path and what is expected."""

    exit_code = 2


def exit_with(error: UserError) -> NoReturn:
    print(f"error: {error}", file=sys.stderr)
    raise SystemExit(error.exit_code)
