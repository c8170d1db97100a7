"""`provision.py backup` with a managed database (db_service rds), for both providers: pg_dump on
the setup backend (the first by name), as the app role over verified TLS (stack/operate/commands.py
managed_client_command), pulled into a file here by stack/dump.py.

The app role cannot read the migration history's schema (the deploy-only role's, tasks/db/history.py),
so the dump holds the app's data without it; a deploy into the restored database writes the history
again from the app's models."""

from stack.database import required_database
from stack.dump import check_backup_path, pull_dump
from stack.errors import UserError
from stack.operate.commands import managed_client_command, ssh_argv
from stack.operate.hosts import target
from stack.settings import Settings
from stack.state import State
from tasks.shared import HISTORY_ROLE

DUMP_ARGS = ["--format=custom", f"--exclude-schema={HISTORY_ROLE}"]


def dump_command(state: State, settings: Settings) -> tuple[str, list[str]]:
    """(the database's name for messages, the ssh argv that prints the dump)."""
    backends = sorted(name for name, host in state.hosts.items() if host.role == "backend")
    if not backends:
        raise UserError("no backend is recorded to dump the managed database from: run python provision.py first")
    database = required_database(state)
    found = target(backends[0], state.hosts[backends[0]], state.provider)
    remote = managed_client_command(found, "pg_dump", settings, database, DUMP_ARGS)
    return f"{database['identifier']} (through {backends[0]})", ssh_argv(found, [remote])


def backup_through_backend(
    state: State, settings: Settings, path: str, progress, if_failed: str = "", label: str = "backup"
) -> None:
    name, command = dump_command(state, settings)
    pull_dump(command, check_backup_path(path, label), name, settings.db_name, progress, if_failed, label)
