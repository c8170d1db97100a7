"""What the operator asked provision.py for, passed to the provider."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    dry: bool = False  # print the plan, make no change
    yes: bool = False  # destructive changes approved up front
    wait: bool = True  # wait until new hosts answer on SSH
    only: tuple[str, ...] = ()  # destroy: just these host names
    backup: str | None = None  # destroy: pg_dump the database here first
    skip_final_snapshot: bool = False  # destroy: delete the RDS instance without a final snapshot
