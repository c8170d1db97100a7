"""The managed database's record in the state (`db_service: rds`), as provision.py leaves it.

A top-level `database` entry, written by the provider that made the database:
  AWS:   {"service": "rds", "identifier": "<prefix>-db", "address": <endpoint>, "port": 5432,
          "master_user": "sprint2admin", "ca_bundle_url": <AWS's bundle for the region>}
  local: the same with "identifier": "<prefix>-rds" (a stand-in host) and "ca_bundle_pem": the PEM
         text of the stand-in's own CA instead of the URL.
The deploy reads it (stack/inventory.py hands it to every host as host data `database`); nothing
in it is secret: the master password is with the other secrets (stack/secrets.py)."""

from typing import Any

from stack.errors import UserError
from stack.state import State

NOT_RECORDED = (
    "db_service is rds but no database is recorded in the state: run python provision.py "
    "(it creates the database and records its endpoint), then deploy"
)


def database_record(state: State | None) -> dict[str, Any] | None:
    """The recorded `database` entry (load_state has checked its shape), or None when there is none."""
    return dict(state.database) if state and state.database else None


def required_database(state: State | None) -> dict[str, Any]:
    """database_record(), or one line saying to provision it."""
    record = database_record(state)
    if record is None:
        raise UserError(NOT_RECORDED)
    return record
