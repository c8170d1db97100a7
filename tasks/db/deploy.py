"""The database host: PostgreSQL from the distribution, reachable only by the backends.

Defaults (tasks/db/settings.py): db_name dispatch_db, db_user dispatch_user,
max_connections 2000, backup_keep 7. The password is generated once (stack/secrets.py).

- The version and config folder come from the host (pg_lsclusters): 16 on Ubuntu 24.04, 15 on
  Debian 12. The deploy owns conf.d/90-deploy.conf, pg_hba.conf and pg_ident.conf; nothing else
  is edited. That folder is postgres's: they are written as postgres, never through a link
  (tasks/db/commands.py).
- pg_hba.conf: peer for local admins; the app role to the app database only from each
  backend's private address with scram-sha-256. No trust, no 0.0.0.0/0. pg_ident.conf maps the
  postgres system user to the app role, so `provision.py psql` is a session of the app role, never
  a superuser's.
- Every superuser session of the deploy connects to the `postgres` database, where the app role
  owns nothing (tasks/db/commands.py's psql).
- A changed file reloads PostgreSQL; it restarts only if a changed setting needs it
  (pg_settings.pending_restart, e.g. listen_addresses or max_connections).
- The role and database are created once; the role's password is compared with its stored SCRAM
  verifier, so an unchanged password is no change and the password never reaches a command line.
"""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import server
from pyinfra.operations.util import any_changed

from stack.secrets import deploy_secrets
from stack.settings import Settings, load_settings
from tasks.db.backup import deploy_backup
from tasks.db.commands import AS_POSTGRES, RELOAD_OR_RESTART
from tasks.db.history import history_role
from tasks.db.operations import app_database, app_role, cluster_file
from tasks.db.render import pg_hba_conf, pg_ident_conf, postgresql_conf
from tasks.packages import packages_installed
from tasks.shared import HISTORY_ROLE, backend_addresses
from tasks.units import units_running

PACKAGES = ["postgresql", "gzip"]


@deploy("Configure the database host")
def deploy_db(settings: Settings | None = None, secrets: dict | None = None):
    settings = settings or load_settings()
    secrets = secrets or deploy_secrets()

    packages_installed(name="Ensure PostgreSQL is installed", packages=PACKAGES)
    conf = cluster_file(
        name="Configure PostgreSQL's listen address, connections and memory",
        filename="conf.d/90-deploy.conf",
        content=postgresql_conf(host.data.private_ip, settings.max_connections),
        **AS_POSTGRES,
    )
    hba = cluster_file(
        name="Allow the app user in from the backends only (pg_hba.conf)",
        filename="pg_hba.conf",
        mode="640",
        content=pg_hba_conf(settings.db_name, settings.db_user, backend_addresses(), HISTORY_ROLE),
        **AS_POSTGRES,
    )
    ident = cluster_file(
        name="Let provision.py psql log in as the app role itself (pg_ident.conf)",
        filename="pg_ident.conf",
        mode="640",
        content=pg_ident_conf(settings.db_user),
        **AS_POSTGRES,
    )
    server.shell(
        name="Reload PostgreSQL, restarting it only for settings that need it",
        commands=[RELOAD_OR_RESTART],
        _if=any_changed(conf, hba, ident),
    )
    units_running(name="Ensure PostgreSQL is running and starts at boot", units=["postgresql.service"])
    app_role(
        name=f"Ensure the role {settings.db_user} exists with its password",
        role=settings.db_user,
        password=secrets["db_password"],
        **AS_POSTGRES,
    )
    app_database(
        name=f"Ensure the database {settings.db_name} exists",
        database=settings.db_name,
        owner=settings.db_user,
        **AS_POSTGRES,
    )
    history_role(
        name=f"Ensure the role {HISTORY_ROLE} owning the migration history exists with its password",
        role=HISTORY_ROLE,
        database=settings.db_name,
        password=secrets["db_history_password"],
        **AS_POSTGRES,
    )
    deploy_backup(settings=settings)
