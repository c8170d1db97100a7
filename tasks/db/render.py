"""PostgreSQL's files, as the deploy writes them: a conf.d snippet, pg_hba.conf and pg_ident.conf."""

from tasks.templating import render_template

# The pg_ident.conf map that lets `provision.py psql` log in as the app role (never a superuser).
PSQL_MAP = "sprint2-psql"


def postgresql_conf(private_ip: str, max_connections: int) -> str:
    """conf.d/90-deploy.conf: listen on the private address and localhost; memory for a 512 MB host."""
    return render_template(
        "db/deploy.conf.j2",
        listen_addresses=f"localhost,{private_ip}",
        max_connections=max_connections,
    )


def pg_hba_conf(db_name: str, db_user: str, backend_addresses: list[str], history_user: str | None = None) -> str:
    """Local peer for admins and for psql as the app role (PSQL_MAP); the app user (and the
    migration history's deploy-only role, since whichever backend is first sets the database up)
    to the app database from each backend's /32, scram only."""
    return render_template(
        "db/pg_hba.conf.j2",
        db_name=db_name,
        db_user=db_user,
        psql_map=PSQL_MAP,
        history_user=history_user,
        backend_addresses=sorted(set(backend_addresses), key=_address_order),
    )


def pg_ident_conf(db_user: str) -> str:
    """The postgres system user may log in as the app role (for `provision.py psql`), nobody else."""
    return render_template("db/pg_ident.conf.j2", db_user=db_user, psql_map=PSQL_MAP)


def _address_order(address: str) -> tuple:
    return tuple(int(part) for part in address.split("."))
