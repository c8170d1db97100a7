"""Operations for PostgreSQL that pyinfra's own postgres module does not do idempotently (facts: tasks/db/facts.py).

Each operation reads the host when it runs (pyinfra 3 evaluates operation bodies at execution
time), so steps that depend on an earlier step (the cluster's version after the install, a role
after it was created) see the real state, and an operation with nothing to do yields no command:
a run that changes nothing reports nothing.
"""

from io import StringIO

from pyinfra import host
from pyinfra.api import operation
from pyinfra.context import state

from stack.secrets import new_verifier, verifier_matches
from tasks import asked_once, uploads
from tasks.db.commands import AS_POSTGRES, psql
from tasks.db.facts import PostgresCluster, PostgresDatabaseOwner, PostgresRolePassword


@operation()
def cluster_file(filename: str, content: str, mode: str = "644"):
    """Write `filename` (relative to the main cluster's config folder, e.g. 'pg_hba.conf')."""
    cluster = asked_once.fact(PostgresCluster)  # one pg_lsclusters for both cluster files
    if not cluster:
        if state.is_executing:
            yield "echo 'no PostgreSQL cluster main found after the install (pg_lsclusters)' >&2; exit 1"
            return
        host.noop(f"{filename}: written once PostgreSQL is installed (its version decides the folder)")
        return
    yield from uploads.put._inner(
        src=StringIO(content),
        dest=f"{cluster['config_dir']}/{filename}",
        user="postgres",
        group="postgres",
        mode=mode,
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
