"""Facts and operations for PostgreSQL that pyinfra's own postgres module does not do idempotently.

Each operation reads the host when it runs (pyinfra 3 evaluates operation bodies at execution
time), so steps that depend on an earlier step (the cluster's version after the install, a role
after it was created) see the real state, and an operation with nothing to do yields no command:
a run that changes nothing reports nothing.
"""

import shlex
from io import StringIO

from pyinfra import host
from pyinfra.api import FactBase, operation
from pyinfra.context import state
from pyinfra.operations import files

from stack.secrets import new_verifier, verifier_matches

# Run as postgres through sudo: peer authentication on the local socket, no password anywhere.
AS_POSTGRES = {"_sudo": True, "_sudo_user": "postgres"}


def psql(sql: str) -> str:
    """A psql command line (no .psqlrc, stop on error, bare output). `cd /`: postgres may not read the SSH user's home."""
    return f"cd / && psql -X -v ON_ERROR_STOP=1 -tA -c {shlex.quote(sql)}"


class PostgresCluster(FactBase):
    """The 'main' cluster of the distribution's PostgreSQL: {"version": "16", "config_dir": ...}, or None."""

    def requires_command(self):
        return "pg_lsclusters"

    def command(self):
        return "pg_lsclusters --no-header"

    def process(self, output):
        for line in output:
            fields = line.split()
            if len(fields) >= 4 and fields[1] == "main":
                return {"version": fields[0], "status": fields[3],
                        "config_dir": f"/etc/postgresql/{fields[0]}/main"}
        return None


class PostgresRolePassword(FactBase):
    """None without the role; else its stored password verifier ('' when it has none)."""

    def requires_command(self, role):
        return "psql"

    def command(self, role):
        return psql(f"SELECT 'role:' || coalesce(rolpassword, '') FROM pg_authid WHERE rolname = '{role}'")

    def process(self, output):
        for line in output:
            if line.startswith("role:"):
                return line[len("role:"):]
        return None


class PostgresDatabaseOwner(FactBase):
    """The owner of `database`, or None when it does not exist."""

    def requires_command(self, database):
        return "psql"

    def command(self, database):
        return psql(f"SELECT 'owner:' || pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{database}'")

    def process(self, output):
        for line in output:
            if line.startswith("owner:"):
                return line[len("owner:"):]
        return None


@operation()
def cluster_file(filename: str, content: str, mode: str = "644"):
    """Write `filename` (relative to the main cluster's config folder, e.g. 'pg_hba.conf')."""
    cluster = host.get_fact(PostgresCluster)
    if not cluster:
        if state.is_executing:
            yield "echo 'no PostgreSQL cluster main found after the install (pg_lsclusters)' >&2; exit 1"
            return
        host.noop(f"{filename}: written once PostgreSQL is installed (its version decides the folder)")
        return
    yield from files.put._inner(
        src=StringIO(content), dest=f"{cluster['config_dir']}/{filename}",
        user="postgres", group="postgres", mode=mode,
    )


@operation()
def app_role(role: str, password: str):
    """Create the login role, or reset its password, only when the stored verifier does not match.

    The command carries a SCRAM verifier computed here, never the password itself.
    """
    stored = host.get_fact(PostgresRolePassword, role=role, **AS_POSTGRES)
    if stored is not None and verifier_matches(stored, password):
        host.noop(f"role {role} exists with the right password")
        return
    verb = "CREATE" if stored is None else "ALTER"
    yield psql(f"{verb} ROLE {role} WITH LOGIN PASSWORD '{new_verifier(password)}'")


@operation()
def app_database(database: str, owner: str):
    """Create the application database owned by the app role (once); fix its owner if it drifted."""
    current = host.get_fact(PostgresDatabaseOwner, database=database, **AS_POSTGRES)
    if current == owner:
        host.noop(f"database {database} exists, owned by {owner}")
        return
    if current is None:
        yield f"cd / && createdb --owner={owner} {database}"
    else:
        yield psql(f"ALTER DATABASE {database} OWNER TO {owner}")
