"""The deploy-only role that owns the migration history (files/backend/deploy_marker.py).

The history is code: its files are imported on the setup backend. The app's role owns its database
(and so its public schema), so the history lives in a schema of another role, `sprint2_deploy`
(tasks/shared.py HISTORY_ROLE): a login role with no other right than to create that schema in the
app database. The setup backend logs in as it and makes the schema and its table itself, so this
superuser SQL never enters the app's database (where the app's role could have left settings,
functions or a schema of that name): it only makes the role and grants CREATE on the database,
statements that run no code another role owns. Only PostgreSQL's ordinary roles and grants: on a
managed database (Amazon RDS) its master user, which may CREATE ROLE and GRANT but is no true
superuser, runs the same statements. The app's role gets nothing on the schema (no USAGE): it can
neither read, write, alter nor drop it; it may revoke the grant (it owns the database), which
stops the next setup, never forges the history.
"""

from pyinfra import host
from pyinfra.api import FactBase, operation

from stack.secrets import new_verifier, verifier_matches
from tasks.db.commands import AS_POSTGRES, psql


class HistoryRole(FactBase):
    """None without the role; else {"verifier": its stored password verifier, "create": whether
    it may create schemas in `database` (None when the database does not exist yet)}."""

    def requires_command(self, role, database):
        return "psql"

    def command(self, role, database):
        grant = (
            f"(SELECT has_database_privilege(a.rolname, d.datname, 'CREATE')::text FROM pg_database d "
            f"WHERE d.datname = '{database}')"
        )
        return psql(
            f"SELECT 'role:' || coalesce(a.rolpassword, '') || '|' || coalesce({grant}, 'none') "
            f"FROM pg_authid a WHERE a.rolname = '{role}'"
        )

    def process(self, output):
        for line in output:
            if line.startswith("role:"):
                verifier, _, create = line[len("role:") :].rpartition("|")
                return {"verifier": verifier, "create": {"true": True, "false": False}.get(create)}
        return None


def history_role_commands(role: str, database: str, password: str, found: dict | None) -> list[str]:
    """What makes `found` (HistoryRole) the role wanted: a login with no other attribute (no
    superuser, no createdb, createrole, replication, bypassrls: PostgreSQL's defaults; NOINHERIT:
    it gains nothing from roles it might be granted), its password, CREATE on `database`."""
    commands = []
    if found is None:
        commands.append(psql(f"CREATE ROLE {role} WITH LOGIN NOINHERIT PASSWORD '{new_verifier(password)}'"))
    elif not verifier_matches(found["verifier"], password):
        commands.append(psql(f"ALTER ROLE {role} WITH LOGIN PASSWORD '{new_verifier(password)}'"))
    if found is None or found["create"] is not True:
        commands.append(psql(f"GRANT CREATE ON DATABASE {database} TO {role}"))
    return commands


@operation()
def history_role(role: str, database: str, password: str):
    """The deploy-only role of the migration history, with its password (compared with the stored
    SCRAM verifier: the password never reaches a command line) and CREATE on the app database."""
    found = host.get_fact(HistoryRole, role=role, database=database, **AS_POSTGRES)
    commands = history_role_commands(role, database, password, found)
    if not commands:
        host.noop(f"role {role} exists with its password and may create its schema in {database}")
    yield from commands
