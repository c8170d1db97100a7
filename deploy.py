"""Configure every host recorded by provision.py: pyinfra inventory.py deploy.py [--dry --diff].

This file only routes: each group's work lives in its own package under tasks/ (tasks/db,
tasks/backend, tasks/kong). The database is configured first, then the backends (which migrate
against it), then Kong (whose config lists the backends).
"""

from pyinfra import host, state

from stack.deploy_lock import take
from stack.settings import load_settings
from tasks.backend.deploy import deploy_backend
from tasks.backend.logs import deploy_log_rotation
from tasks.db.deploy import deploy_db
from tasks.host_packages import packages_for
from tasks.kong.deploy import deploy_kong
from tasks.packages import packages_installed

# One deploy at a time (held on the database host; not with --dry): a second one stops here.
take(load_settings().app_ref, state)

# One apt call per host, all hosts at once, before any role's own steps (tasks/host_packages.py).
packages_installed(
    name="Ensure each role's packages are installed, on every host at once",
    packages=packages_for(host.groups),
    recommends=False,
)

if "db" in host.groups:
    deploy_db()

if "backends" in host.groups:
    deploy_backend()
    deploy_log_rotation()

if "kong" in host.groups:
    deploy_kong()
