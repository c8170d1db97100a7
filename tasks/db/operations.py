"""Operations for PostgreSQL that pyinfra's own postgres module does not do idempotently (facts: tasks/db/facts.py).

Each operation reads the host when it runs (pyinfra 3 evaluates operation bodies at execution
time), so steps that depend on an earlier step (the cluster's version after the install, a role
after it was created) see the real state, and an operation with nothing to do yields no command:
a run that changes nothing reports nothing.
"""

from io import StringIO

from pyinfra import host, logger
from pyinfra.api import operation
from pyinfra.api.output import format_text
from pyinfra.context import state
from pyinfra.facts.files import FileContents
from pyinfra.operations.util.files import generate_color_diff

from stack.secrets import new_verifier, verifier_matches
from tasks import asked_once, uploads
from tasks.db.commands import AS_POSTGRES, psql, write_as_postgres
from tasks.db.facts import PostgresCluster, PostgresDatabaseOwner, PostgresRolePassword


@operation()
def cluster_file(filename: str, content: str, mode: str = "644"):
    """Write `filename` (relative to the main cluster's config folder, e.g. 'pg_hba.conf') as a
    regular file of postgres. Run it AS_POSTGRES: the folder is postgres's, so is what is written
    there (tasks/db/commands.py's write_as_postgres); root neither writes nor reads in it."""
    cluster = asked_once.fact(PostgresCluster, **AS_POSTGRES)  # one read for all the cluster files
    if not cluster:
        if state.is_executing:
            yield "echo 'no PostgreSQL cluster main found after the install (pg_lsclusters)' >&2; exit 1"
            return
        host.noop(f"{filename}: written once PostgreSQL is installed (its version decides the folder)")
        return
    path = f"{cluster['config_dir']}/{filename}"
    current = cluster["files"].get(filename)
    if _in_place(current, content, mode):
        host.noop(f"file {path} is already written")
        return
    asked_once.forget(PostgresCluster)
    if state.config.DIFF:
        _log_diff(path, current, content)
    yield write_as_postgres(path, content, mode)


def _in_place(current: dict | None, content: str, mode: str) -> bool:
    return bool(
        current
        and current["type"] in ("regular file", "regular empty file")
        and current.get("sha256") == uploads.sha256_of(StringIO(content))
        and (current["user"], current["group"]) == ("postgres", "postgres")
        and current["mode"] == int(mode)
    )


def _log_diff(path: str, current: dict | None, content: str) -> None:
    """What --diff shows for files.put: the lines that change (the old text read as postgres)."""
    old: list[str] = []
    if current and "sha256" in current:
        old = [line + "\n" for line in host.get_fact(FileContents, path=path, **AS_POSTGRES) or []]
    host.log(f"Will {'modify' if current else 'create'} {format_text(path, bold=True)}", logger.info)
    for line in generate_color_diff(old, content.splitlines(keepends=True)):
        logger.info("  %s", line)
    logger.info("")


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
