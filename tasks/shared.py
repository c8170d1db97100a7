"""What the components share: the name Kong balances over, and where the other hosts are.

The backends accept requests addressed to the upstream's name (Kong sends it as the Host
header), the database lets in the backends' addresses, Kong lists them as targets: each reads
them here, from the inventory, rather than from another component's module.
"""

from stack.errors import UserError, exit_with

# Kong's upstream (tasks/kong/render.py), and the Host header of the requests it proxies.
UPSTREAM = "backend-cluster"
# The deploy-only database role that owns the migration history (tasks/db/history.py makes it, the
# setup backend logs in as it: files/backend/deploy_marker.py); the app's role has no right on it.
HISTORY_ROLE = "sprint2_deploy"


def _inventory():
    # Imported when deploying only: provision.py status reads UPSTREAM and should not pay for pyinfra.
    from pyinfra import inventory

    return inventory


def backend_addresses() -> list[str]:
    """Private addresses of the `backends` group, ordered by host name so files are stable."""
    backends = sorted(_inventory().get_group("backends", default=[]), key=lambda backend: backend.name)
    return [backend.data.get("private_ip") for backend in backends]


def db_private_ip() -> str:
    databases = _inventory().get_group("db", [])
    if not databases:
        # e.g. after `destroy --only <prefix>-db`: say what to do rather than pyinfra's "No such group".
        exit_with(UserError("no database host is recorded: run python provision.py to create it, then deploy"))
    return databases[0].data.private_ip


def managed_database() -> dict | None:
    """The managed database's record (db_service rds: host data `database`, stack/inventory.py), or None."""
    from pyinfra import host

    return host.data.get("database")


def database_endpoint() -> tuple[str, int]:
    """(address, port) the backends connect to: the managed database's, else the db host's."""
    database = managed_database()
    if database:
        return database["address"], int(database["port"])
    return db_private_ip(), 5432
