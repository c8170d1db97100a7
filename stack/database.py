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

KEYS = ("service", "identifier", "address", "port", "master_user")
NOT_RECORDED = (
    "db_service is rds but no database is recorded in the state: run python provision.py "
    "(it creates the database and records its endpoint), then deploy"
)


def database_record(state: State | None) -> dict[str, Any] | None:
    """The recorded `database` entry, checked, or None when there is none."""
    record = (state.extra if state else {}).get("database")
    if record is None:
        return None
    missing = [key for key in KEYS if not isinstance(record, dict) or key not in record]
    if missing or not (record.get("ca_bundle_url") or record.get("ca_bundle_pem")):
        what = ", ".join(missing) or "ca_bundle_url or ca_bundle_pem"
        raise UserError(f'the state\'s "database" entry lacks {what}: re-run python provision.py to record it again')
    return dict(record)


def required_database(state: State | None) -> dict[str, Any]:
    """database_record(), or one line saying to provision it."""
    record = database_record(state)
    if record is None:
        raise UserError(NOT_RECORDED)
    return record
