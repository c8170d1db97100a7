"""Every distribution package a host's roles need, in one apt call per host, every host at once.

pyinfra runs one operation at a time, on every host that has it: each role installing its own
packages in its own step makes the backends wait for the database host's PostgreSQL install, then
the database host wait for theirs (a fresh converge paid both, and an `apt-get update` each).
deploy.py calls this step first, for every host, so the installs run side by side; each role's own
step then finds its packages installed (one read of the installed packages per host and run,
tasks/asked_once.py) and still stands for a role deployed alone. Only what the packages depend on
is installed (no recommends: sysstat, less, patch... are nothing the deploy uses).
"""

from tasks.backend.deploy import PACKAGES as BACKEND
from tasks.backend.deploy import RDS_PACKAGES
from tasks.db.deploy import PACKAGES as DB

# By inventory group; logrotate: the backends' log rotation (tasks/backend/logs.py).
ROLE_PACKAGES = {"db": DB, "backends": [*BACKEND, "logrotate"]}


def packages_for(groups: list[str], managed_database: bool = False) -> list[str]:
    """The packages of every role among `groups`, in order, each once; a backend of a managed
    database (db_service rds) also needs PostgreSQL's client (its psql, pg_dump and deploy lock)."""
    wanted: list[str] = []
    for group in groups:
        needed = ROLE_PACKAGES.get(group, []) + (RDS_PACKAGES if group == "backends" and managed_database else [])
        wanted += [package for package in needed if package not in wanted]
    return wanted
