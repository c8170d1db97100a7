"""Ask before anything destructive, as terraform apply does."""

import sys

from stack.errors import UserError


def confirm(what: str, yes: bool) -> bool:
    """True when `what` (e.g. "terminate 2 instances") may go ahead; refuses clearly without a terminal."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UserError(f"refusing to {what} without confirmation: re-run with --yes")
    answer = input(f"Do you want to {what}? Only 'yes' will be accepted: ")
    return answer.strip() == "yes"
