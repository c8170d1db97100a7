"""What the backends need for a managed database (`db_service: rds`), as pure text.

The database's record (stack/database.py) reaches the deploy as host data `database`. The
backends verify the server's certificate against CA_BUNDLE (sslmode=verify-full: the chain and
the address), a root-owned file every user may read (certificates, no secret)."""

import json
import shlex

from stack.secrets import new_verifier
from tasks.backend.commands import ROOT_SCRIPT
from tasks.backend.layout import Layout

SSLMODE = "verify-full"


def ca_bundle(layout: Layout) -> str:
    return f"{layout.config_root}/database-ca.pem"


def roles_script(layout: Layout) -> str:
    return f"{layout.conf_dir}/rds_roles.py"


def master_credentials(layout: Layout) -> str:
    """The root-only file with the master user's login, on the setup backend while a setup runs."""
    return f"{layout.config_root}/database-master.json"


def tls_options(layout: Layout) -> dict[str, str]:
    """libpq's TLS settings of every connection to the managed database."""
    return {"sslmode": SSLMODE, "sslrootcert": ca_bundle(layout)}


def master_login(
    database: dict,
    layout: Layout,
    *,
    master_password: str,
    db_name: str,
    db_user: str,
    db_password: str,
    history_role: str,
    history_password: str,
) -> str:
    """The master credentials file's text: the master's login, and the roles to make with their
    passwords (to check them by a login) and their SCRAM verifiers (what a CREATE/ALTER ROLE sends)."""
    login = {
        "host": database["address"],
        "port": database["port"],
        "sslrootcert": ca_bundle(layout),
        "master_user": database["master_user"],
        "master_password": master_password,
        "database": db_name,
        "owner": db_user,
        "owner_password": db_password,
        "owner_verifier": new_verifier(db_password),
        "history_role": history_role,
        "history_password": history_password,
        "history_verifier": new_verifier(history_password),
    }
    return json.dumps(login, sort_keys=True) + "\n"


def roles_step(layout: Layout) -> str:
    """rds_roles.py as root: the system's Python in isolated mode from `/`, the script checked to be
    the plain root-owned file the deploy installed (tasks/backend/commands.py ROOT_SCRIPT)."""
    return (
        f"cd / && /usr/bin/python3 -I -c {shlex.quote(ROOT_SCRIPT)} {roles_script(layout)} {master_credentials(layout)}"
    )
